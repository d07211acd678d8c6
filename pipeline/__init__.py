"""video2srt's pipeline: media → audio → speech spans → segments → timed words → cues → files."""

from __future__ import annotations

__version__ = "0.1.0"
