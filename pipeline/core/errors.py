"""The small error hierarchy of video2srt.

Every error a user can cause or meet is a :class:`PipelineError`. Its message is one line that says what is
wrong and what to do. The edges (CLI, app) map these to exit codes or UI errors; nothing inside
``pipeline`` prints them.
"""

from __future__ import annotations

from pipeline.core.states import WireEnum


class ErrorKind(WireEnum):
    """What kind of failure an error is; the edges map a kind to an exit code, an HTTP status or a UI message."""

    USAGE = "usage"  # a wrong flag, setting or request: fix the call
    INPUT = "input"  # the media or job id given cannot be used
    MODEL = "model"  # a model cannot be found, assembled or loaded
    TRANSCRIPTION = "transcription"  # the work itself failed for good
    TRANSIENT = "transient"  # may pass on a retry: out of memory, a lost worker, a timeout
    STORAGE = "storage"  # a job folder is missing, corrupt or from an unknown format
    CLUSTER = "cluster"  # the Dask cluster cannot be reached or has no workers
    CANCELLED = "cancelled"  # the owner cancelled the job
    EXPORT = "export"  # writing a styled file or a video failed


class PipelineError(Exception):
    """Base of every expected failure. ``kind`` classifies it; ``exit_code`` is what the CLI returns for it."""

    kind: ErrorKind = ErrorKind.TRANSCRIPTION
    exit_code: int = 1
    #: Whether retrying the same work may succeed (a lost worker, out of memory, a timeout).
    transient: bool = False


class UsageError(PipelineError):
    """A wrong flag or setting value."""

    kind = ErrorKind.USAGE
    exit_code = 2


class InputError(PipelineError):
    """The input file is missing, unreadable, has no audio or is empty."""

    kind = ErrorKind.INPUT


class ModelError(PipelineError):
    """A model cannot be resolved or loaded."""

    kind = ErrorKind.MODEL


class TranscriptionError(PipelineError):
    """Transcribing a segment failed."""

    kind = ErrorKind.TRANSCRIPTION


class TransientError(TranscriptionError):
    """A failure that may pass on a retry (out of memory, a lost worker, a timeout, an I/O hiccup)."""

    kind = ErrorKind.TRANSIENT
    transient = True


class CheckpointError(PipelineError):
    """A job folder is missing, corrupt, or of an unknown format."""

    kind = ErrorKind.STORAGE


class ClusterError(PipelineError):
    """The Dask cluster cannot be reached or has no workers."""

    kind = ErrorKind.CLUSTER


class CancelledError(PipelineError):
    """The job was cancelled by its owner."""

    kind = ErrorKind.CANCELLED


class ExportError(PipelineError):
    """Writing an ASS file, an embedded subtitle track or a burned-in video failed."""

    kind = ErrorKind.EXPORT


class CueEditError(UsageError):
    """An edited cue list breaks a rule; ``index`` is the first offending cue (from 1), ``reason`` why."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"cue {index}: {reason}")
        self.index = index
        self.reason = reason
