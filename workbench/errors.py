"""The job service's own refusals, on top of :mod:`pipeline.core.errors`.

Each is a :class:`~pipeline.core.errors.PipelineError` with a kind, so the edges map it like any other error;
the HTTP edge (:mod:`workbench.http.errors`) also tells these classes apart, because "no such job" and "not
now" are both a wrong request but answer 404 and 409.
"""

from __future__ import annotations

from pipeline.core.errors import CheckpointError, ErrorKind, InputError, PipelineError


class JobsError(PipelineError):
    """A request the job service refuses."""

    kind = ErrorKind.USAGE


class UnsupportedMediaError(JobsError, InputError):
    """The upload's file name does not end in a known media extension."""

    kind = ErrorKind.INPUT


class UploadTooLargeError(JobsError, InputError):
    """The upload is larger than the configured limit."""

    kind = ErrorKind.INPUT


class InvalidJobIdError(JobsError, CheckpointError):
    """Not of the generated job id form (path traversal attempts land here)."""

    kind = ErrorKind.USAGE


class JobNotFoundError(JobsError, CheckpointError):
    """A well-formed id with no job folder."""

    kind = ErrorKind.USAGE


class ResultNotFoundError(JobsError):
    """The requested result file does not exist (yet)."""


class JobConflictError(JobsError):
    """The job is in a state that does not allow the request (resume while queued, running or done)."""


class StorageError(JobsError):
    """The upload or job folder cannot be stored (disk full, not writable)."""

    kind = ErrorKind.STORAGE


def one_line(text: str) -> str:
    """Collapse whitespace and newlines so a message fits one line."""
    return " ".join(str(text).split())


__all__ = [
    "InvalidJobIdError",
    "JobConflictError",
    "JobNotFoundError",
    "JobsError",
    "ResultNotFoundError",
    "StorageError",
    "UnsupportedMediaError",
    "UploadTooLargeError",
    "one_line",
]
