"""Constants every stage shares."""

from __future__ import annotations

#: Whisper's input rate; every stage after decoding works on 16 kHz mono samples.
SAMPLE_RATE = 16000
