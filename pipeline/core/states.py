"""The states of a job, shared by the job store, the engine, the job service and the HTTP API."""

from __future__ import annotations

from enum import Enum


class WireEnum(str, Enum):
    """A state whose value is the string on the wire (JSON, the API); ``str()`` gives that string."""

    def __str__(self) -> str:
        return str(self.value)


class JobState(WireEnum):
    """A job's state as written to ``checkpoint.json`` and shown by the API."""

    QUEUED = "queued"
    WAITING_FOR_MODEL = "waiting_for_model"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        """Whether the job is still queued or working (not finished one way or the other)."""
        return self in (JobState.QUEUED, JobState.WAITING_FOR_MODEL, JobState.RUNNING)
