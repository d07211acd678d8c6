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
