"""A job's status as the API and the UI show it: what its folder says, overlaid with what its live run reports.

The folder (:class:`~pipeline.jobs.store.Job`) knows the state, segments and times; the latest
:class:`~pipeline.jobs.events.JobEvent` of a running job knows the stage, audio done and speed.
"""

from __future__ import annotations

from typing import Any

from pipeline.core.errors import CheckpointError
from pipeline.core.states import JobState
from pipeline.jobs.events import JobEvent
from pipeline.jobs.store import Job
from workbench.errors import one_line

#: Stages that are no :class:`JobState`: taken by the worker but not reported yet; left unfinished by a process
#: that is gone; removed.
STARTING, INTERRUPTED, DELETED = "starting", "interrupted", "deleted"


def describe(job: Job, *, live: bool, queued: bool, event: JobEvent | None) -> dict[str, Any]:
    """One job's status dict (the ``GET /api/jobs/{id}`` fields).

    Args:
        job: The job's folder.
        live: The service holds the job (queued or running).
        queued: It waits in the service's queue.
        event: The latest event of its run, if it runs.
    """
    summary = job.summary()
    try:
        duration = float(job.read_job().get("duration") or 0.0)
    except CheckpointError:
        duration = 0.0
    state: str = summary.state
    stage: str
    segments_done, segments_total = summary.segments_done, summary.segments_total
    audio_done, rtf, error = 0.0, 0.0, summary.error
    if queued:
        state = stage = JobState.QUEUED.value
    elif live and event is None:
        stage = STARTING
    elif event is not None:
        stage = event.stage
        segments_done = max(segments_done, event.segments_done)
        segments_total = event.segments_total if event.segments_total is not None else segments_total
        audio_done, rtf = event.audio_done, event.rtf
        duration = event.duration or duration
        if event.stage == JobState.FAILED and event.message:
            error = event.message
    elif not live and is_active(state):
        # Left running or queued by a process that is gone: resumable, but nothing runs it now.
        stage = INTERRUPTED
    else:
        stage = state
    if state == JobState.DONE:
        progress = 1.0
    elif duration > 0 and audio_done > 0:
        progress = audio_done / duration
    elif segments_total:
        progress = segments_done / segments_total
    else:
        progress = 0.0
    return {
        "job_id": job.id,
        "input_name": summary.input_name,
        "state": str(state),
        "stage": str(stage),
        "active": live,
        "progress": round(min(max(progress, 0.0), 1.0), 4),
        "segments_done": segments_done,
        "segments_total": segments_total,
        "audio_done": round(audio_done, 3),
        "duration": round(duration, 3),
        "rtf": round(rtf, 4),
        "error": one_line(error) or None,
        # What the running job waits for or does ("waiting for the model: tiny.en is loading …").
        "message": one_line(event.message) if event is not None else "",
        "created": summary.created,
        "updated": summary.updated,
        # The model and language of the job, once known (auto picks the model per detected language).
        "model": summary.model,
        "model_reason": summary.model_reason,
        "language": summary.language,
        "language_probability": summary.language_probability,
        "language_warning": summary.language_warning,
    }


def deleted_status(job_id: str) -> dict[str, Any]:
    """The placeholder status of a job that is gone (a UI still following it shows this)."""
    return {
        "job_id": job_id,
        "input_name": "(deleted)",
        "state": str(JobState.CANCELLED),
        "stage": DELETED,
        "active": False,
        "progress": 0.0,
    }


def is_active(state: str) -> bool:
    """Whether ``state`` (a wire string, possibly unknown such as ``corrupt``) is queued or working."""
    try:
        return JobState(state).active
    except ValueError:
        return False
