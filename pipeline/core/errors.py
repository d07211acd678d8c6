"""The small error hierarchy of video2srt.

Every error a user can cause or meet is a :class:`PipelineError`. Its message is one line that says what is
wrong and what to do. The edges (CLI, app) map these to exit codes or UI errors; nothing inside
``pipeline`` prints them.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every expected failure. ``exit_code`` is what the CLI returns for it."""

    exit_code: int = 1
    #: Whether retrying the same work may succeed (a lost worker, out of memory, a timeout).
    transient: bool = False


class UsageError(PipelineError):
    """A wrong flag or setting value."""

    exit_code = 2


class InputError(PipelineError):
    """The input file is missing, unreadable, has no audio or is empty."""


class ModelError(PipelineError):
    """A model cannot be resolved or loaded."""


class TranscriptionError(PipelineError):
    """Transcribing a segment failed."""


class TransientError(TranscriptionError):
    """A failure that may pass on a retry (out of memory, a lost worker, a timeout, an I/O hiccup)."""

    transient = True


class CheckpointError(PipelineError):
    """A job folder is missing, corrupt, or of an unknown format."""


class ClusterError(PipelineError):
    """The Dask cluster cannot be reached or has no workers."""


class CancelledError(PipelineError):
    """The job was cancelled by its owner."""


class ExportError(PipelineError):
    """Writing an ASS file, an embedded subtitle track or a burned-in video failed."""


class CueEditError(UsageError):
    """An edited cue list breaks a rule; ``index`` is the first offending cue (from 1), ``reason`` why."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"cue {index}: {reason}")
        self.index = index
        self.reason = reason
