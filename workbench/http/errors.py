"""Errors to HTTP answers, in one place: by the error's kind, the job service's own refusals by class first.

Every route answers a :class:`~pipeline.core.errors.PipelineError` with ``{"detail": "one line"}`` and the status
:func:`http_status` gives it; no route looks at an error's message.
"""

from __future__ import annotations

from fastapi import HTTPException

from pipeline.asr.manager import ModelBusyError
from pipeline.core.errors import ErrorKind, PipelineError
from workbench.errors import (
    InvalidJobIdError,
    JobConflictError,
    JobNotFoundError,
    ResultNotFoundError,
    StorageError,
    UnsupportedMediaError,
    UploadTooLargeError,
    one_line,
)

#: The status of each kind of error. A failure of the work itself (a model, a transcription, an export) is a
#: conflict with the job's state, never a 500; one that may pass on a retry is 503.
STATUS_BY_KIND: dict[ErrorKind, int] = {
    ErrorKind.USAGE: 400,
    ErrorKind.INPUT: 400,
    ErrorKind.MODEL: 503,
    ErrorKind.TRANSCRIPTION: 409,
    ErrorKind.TRANSIENT: 503,
    ErrorKind.STORAGE: 409,
    ErrorKind.CLUSTER: 503,
    ErrorKind.CANCELLED: 409,
    ErrorKind.EXPORT: 409,
}
#: Refusals finer than their kind: what a client does next differs (look elsewhere, wait, send less).
STATUS_BY_ERROR: tuple[tuple[type[PipelineError], int], ...] = (
    (UnsupportedMediaError, 415),
    (UploadTooLargeError, 413),
    (InvalidJobIdError, 400),
    (JobNotFoundError, 404),
    (ResultNotFoundError, 404),
    (JobConflictError, 409),
    (StorageError, 507),
    (ModelBusyError, 409),
)


def http_status(exc: PipelineError, *, usage: int = 400) -> int:
    """The HTTP status for ``exc``.

    Args:
        exc: The error.
        usage: The status of a usage error that is not one of the service's own: 422 where the route's body or
            query was checked (an edit, an optimizer parameter), 400 elsewhere.
    """
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    if exc.kind is ErrorKind.USAGE:
        return usage
    return STATUS_BY_KIND.get(exc.kind, 409)


def http_error(exc: PipelineError, *, usage: int = 400) -> HTTPException:
    """``exc`` as the HTTPException a route raises: its status and its message on one line."""
    return HTTPException(http_status(exc, usage=usage), one_line(str(exc)))
