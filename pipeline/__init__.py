"""video2srt's pipeline: media → audio → speech spans → segments → timed words → cues → files.

``from pipeline import transcribe_file, Settings`` is the Python API (:mod:`pipeline.api`). The names load on
first use, so ``import pipeline`` itself does no work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.api import JobResult, transcribe_file
    from pipeline.core.settings import Settings

__version__ = "0.1.0"
__all__ = ["JobResult", "Settings", "transcribe_file"]

_LAZY = {
    "transcribe_file": "pipeline.api",
    "JobResult": "pipeline.jobs.events",
    "Settings": "pipeline.core.settings",
}


def __getattr__(name: str) -> Any:  # noqa: ANN401 - whatever the named module holds
    """The public names, imported from their modules on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
