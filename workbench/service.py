"""The job service the HTTP API and the UI share: uploads in, worker threads running the jobs in order.

:class:`JobManager` owns one :class:`~pipeline.jobs.engine.Runner` (so one model cache) and the worker threads that
take queued jobs from a :class:`queue.Queue` and run them in submission order. Callers (HTTP handlers, UI
callbacks) only ever copy an upload, create the job folder and enqueue; they never wait for transcription.
State comes from the job folders (:class:`~pipeline.jobs.store.JobStore`), overlaid with the latest
:class:`~pipeline.jobs.events.JobEvent` of the job that is running (:mod:`workbench.status`).

Once started (:meth:`JobManager.start`), the service also cleans up on a schedule: jobs unfinished for longer
than ``jobs.expire_days`` (never one it holds) and upload folders no job uses.

Errors are :class:`~pipeline.core.errors.PipelineError` subclasses with one-line messages
(:mod:`workbench.errors` for the service's own refusals); the edges map them by kind.
"""

from __future__ import annotations

import builtins
import logging
import queue
import secrets
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pipeline.core.errors import CancelledError, CheckpointError, InputError, PipelineError
from pipeline.core.settings import FORMATS, Settings
from pipeline.core.states import JobState
from pipeline.jobs.engine import Runner
from pipeline.jobs.events import JobEvent
from pipeline.jobs.store import Job, JobStore, validate_job_id
from pipeline.parse import settings_from_request
from workbench.errors import (
    InvalidJobIdError,
    JobConflictError,
    JobNotFoundError,
    ResultNotFoundError,
    StorageError,
    one_line,
)
from workbench.review import ReviewManager
from workbench.status import describe, is_active
from workbench.uploads import MAX_UPLOAD_BYTES, copy_upload, prune_uploads, safe_file_name, upload_dir_of

log = logging.getLogger(__name__)

#: After a cancel, how long a running job may take to stop before the worker moves on without it.
CANCEL_GRACE_S = 30.0
#: How often the service removes expired jobs and orphaned uploads while it runs.
HOUSEKEEPING_EVERY_S = 3600.0


@dataclass(eq=False)
class _Entry:
    """A job this manager has queued or is running."""

    job: Job
    cancel: threading.Event = field(default_factory=threading.Event)
    status: JobState = JobState.QUEUED  # QUEUED or RUNNING
    event: JobEvent | None = None
    deleted: bool = False
    #: Just created from its upload (not a resume): the input was hashed a moment ago.
    fresh: bool = False


class JobManager:
    """Queues uploaded jobs and runs them in order on background worker threads.

    Args:
        settings: Defaults for every job (model, jobs folder, subtitle rules …).
        runner: The runner to use (tests pass one sharing a loaded model); created on first use when omitted.
        max_upload_bytes: Uploads larger than this are refused (413).
        cancel_grace_s: How long a cancelled running job may take to stop before the worker stops waiting
            for it and goes on with the next job.
        housekeeping_every_s: How often, once :meth:`start` ed, expired jobs and orphaned uploads are removed.
    """

    def __init__(
        self,
        settings: Settings,
        runner: Runner | None = None,
        *,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        cancel_grace_s: float = CANCEL_GRACE_S,
        housekeeping_every_s: float = HOUSEKEEPING_EVERY_S,
    ) -> None:
        self.settings = settings
        self.store = JobStore(settings.jobs.jobs_dir)
        self.uploads_root = Path(settings.jobs.jobs_dir) / "uploads"
        self.max_upload_bytes = max_upload_bytes
        self.cancel_grace_s = cancel_grace_s
        self.housekeeping_every_s = housekeeping_every_s
        self._runner = runner
        self._review: ReviewManager | None = None
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._queue: queue.Queue[_Entry | None] = queue.Queue()
        self._workers: list[threading.Thread] = []
        self._stop = threading.Event()
        self._housekeeper: threading.Thread | None = None
        # Not resumed automatically (that is the caller's decision); listed so the UI can offer it.
        self.unfinished_at_start: builtins.list[str] = [job.id for job in self.store.unfinished()]
        if self.unfinished_at_start:
            log.info("unfinished jobs in %s: %s", self.store.root, ", ".join(self.unfinished_at_start))

    @property
    def review(self) -> ReviewManager:
        """Cue review and video exports of this manager's finished jobs (created on first use)."""
        with self._lock:
            if self._review is None:
                self._review = ReviewManager(self.open, self.status)
            return self._review

    @property
    def runner(self) -> Runner:
        """The runner, created on first use (building it detects the hardware)."""
        with self._lock:
            if self._runner is None:
                self._runner = Runner(self.settings)
            return self._runner

    # housekeeping ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Clean up now, then every ``housekeeping_every_s`` on a background thread until :meth:`stop`."""
        with self._lock:
            if self._housekeeper is not None or self._stop.is_set():
                return
            self._housekeeper = threading.Thread(target=self._housekeeping, name="jobs-housekeeping", daemon=True)
        self.housekeep()
        self._housekeeper.start()

    def _housekeeping(self) -> None:
        while not self._stop.wait(self.housekeeping_every_s):
            try:
                self.housekeep()
            except Exception:  # noqa: BLE001 - a failed round is retried at the next; the service goes on
                log.exception("jobs housekeeping failed")

    def housekeep(self) -> builtins.list[str]:
        """Remove jobs unfinished for longer than ``jobs.expire_days`` (never one this service holds, queued or
        running) and upload folders no job uses; return the removed jobs' ids."""
        days = self.settings.jobs.expire_days
        with self._lock:
            # Under the lock: a job cannot be queued (or resumed) while its folder is being judged.
            removed = self.store.expire(days, keep=set(self._entries))
        for job_id in removed:
            log.warning("removed job %s: unfinished for more than %g days", job_id, days)
        prune_uploads(self.uploads_root, self.store)
        return removed

    # submitting -----------------------------------------------------------------------------------
    def submit_upload(
        self, filename: str | None, stream: BinaryIO, settings_overrides: Mapping[str, Any] | None = None
    ) -> str:
        """Store an upload, create its job and queue it.

        Args:
            filename: The client's file name; only its base name, reduced to safe characters, is used.
            stream: The upload's bytes, read in chunks.
            settings_overrides: Optional ``formats`` ("srt,vtt,json"), ``language``, ``max_line_width`` and the
                other names :func:`~pipeline.parse.settings_from_request` takes.

        Returns:
            The new job's id.

        Raises:
            UnsupportedMediaError: Not a known media extension.
            UsageError: A bad setting value.
            UploadTooLargeError: Larger than ``max_upload_bytes``.
            InputError: Not readable media or no audio.
            StorageError: The upload or job folder cannot be stored.
        """
        name = safe_file_name(filename)
        upload_dir = self.uploads_root / secrets.token_hex(8)
        # New jobs get the model selected now (switched in the Models tab or by POST /api/models/load).
        base = self.settings.replace(model=self.runner.selected_model)
        settings = settings_from_request(base, settings_overrides, upload_dir / "out")
        path = upload_dir / name
        try:
            try:
                upload_dir.mkdir(parents=True)
                copy_upload(stream, path, self.max_upload_bytes)
            except OSError as exc:
                raise StorageError(f"cannot store the upload {name}: {exc.strerror or exc}; free some space") from exc
            try:
                job = self.runner.create_job(path, settings)
            except InputError as exc:
                # The message names the server-side upload path; the client knows the file by its name.
                raise InputError(one_line(str(exc).replace(str(path), name))) from exc
            except CheckpointError as exc:
                raise StorageError(one_line(str(exc))) from exc
            except PipelineError:
                raise
            except Exception as exc:
                log.debug("probing %s failed", path, exc_info=True)
                raise InputError(f"{name}: cannot be read as video or audio ({type(exc).__name__})") from exc
        except BaseException:
            shutil.rmtree(upload_dir, ignore_errors=True)
            raise
        self._enqueue(_Entry(job, fresh=True))
        log.info("job %s queued for %s", job.id, name)
        return job.id

    def resume(self, job_id: str) -> None:
        """Queue an unfinished job (failed, cancelled or interrupted) to continue from its last segment.

        Raises:
            InvalidJobIdError: Malformed id.
            JobNotFoundError: No such job.
            JobConflictError: It is queued, running or done, or its folder cannot be resumed.
        """
        job = self.open(job_id)
        with self._lock:
            entry = self._entries.get(job.id)
            if entry is not None:
                raise JobConflictError(f"job {job.id} is already {entry.status}; wait for it or cancel it")
            try:
                job.read_job()
                state = job.read_checkpoint().get("state")
            except CheckpointError as exc:
                raise JobConflictError(f"job {job.id} cannot be resumed: {one_line(str(exc))}") from exc
            if state == JobState.DONE:
                raise JobConflictError(f"job {job.id} is already done; fetch its results")
            job.update_checkpoint(state=JobState.QUEUED.value, error=None)
            self._enqueue(_Entry(job))

    def _enqueue(self, entry: _Entry) -> None:
        with self._lock:
            self._entries[entry.job.id] = entry
            self._queue.put(entry)
            # In-process, one job at a time (one model, one inference thread); on a cluster several jobs share
            # the workers fairly, each with a bounded number of batches in flight.
            self._workers = [w for w in self._workers if w.is_alive()]
            if len(self._workers) < self.runner.job_slots:
                worker = threading.Thread(target=self._work, name=f"jobs-worker-{len(self._workers)}", daemon=True)
                self._workers.append(worker)
                worker.start()

    # cancelling and deleting ----------------------------------------------------------------------
    def cancel(self, job_id: str) -> JobState:
        """Cancel a job: a queued one at once, a running one at its next step.

        Returns:
            The job's state after the request (``cancelled``, or ``running`` while it stops).

        Raises:
            InvalidJobIdError: Malformed id.
            JobNotFoundError: No such job.
            JobConflictError: The job is already done.
        """
        job = self.open(job_id)
        with self._lock:
            entry = self._entries.get(job.id)
            if entry is not None:
                entry.cancel.set()
                if entry.status == JobState.RUNNING:
                    return JobState.RUNNING
                # Still queued: it will never run; the worker skips entries no longer in the table.
                del self._entries[job.id]
                job.update_checkpoint(state=JobState.CANCELLED.value)
                return JobState.CANCELLED
            state = job.summary().state
            if state == JobState.DONE:
                raise JobConflictError(f"job {job.id} is already done; nothing to cancel")
            if state != JobState.CANCELLED:
                # Failed or interrupted: cancelling means "do not offer to resume it".
                job.update_checkpoint(state=JobState.CANCELLED.value)
            return JobState.CANCELLED

    def delete(self, job_id: str) -> None:
        """Remove a job's folder and its upload, cancelling it first if it is queued or running.

        A running job is removed by the worker as soon as it has stopped; it is gone from
        :meth:`status` and :meth:`list` at once.

        Raises:
            InvalidJobIdError: Malformed id.
            JobNotFoundError: No such job.
        """
        job = self.open(job_id)
        with self._lock:
            entry = self._entries.get(job.id)
            if entry is not None:
                entry.cancel.set()
                entry.deleted = True
                if entry.status == JobState.RUNNING:
                    return
                del self._entries[job.id]
        self._remove(job)

    def _remove(self, job: Job) -> None:
        upload = upload_dir_of(job, self.uploads_root)
        try:
            self.store.delete(job.id)
        except CheckpointError:
            log.debug("job %s: its folder was already gone", job.id)
        if upload is not None:
            shutil.rmtree(upload, ignore_errors=True)
        log.info("job %s deleted", job.id)

    # status ---------------------------------------------------------------------------------------
    def status(self, job_id: str) -> dict[str, Any]:
        """One job's state, stage, progress (0–1), segments done/total, audio seconds done, duration, rtf, error.

        Raises:
            InvalidJobIdError: Malformed id.
            JobNotFoundError: No such job.
        """
        job = self.open(job_id)
        with self._lock:
            entry = self._entries.get(job.id)
        return _describe(job, entry)

    def list(self) -> builtins.list[dict[str, Any]]:
        """Every job, unfinished ones first and newest first, with the same fields as :meth:`status`."""
        with self._lock:
            entries = dict(self._entries)
        out = []
        for summary in self.store.summaries():
            entry = entries.get(summary.job_id)
            if entry is not None and entry.deleted:
                continue
            out.append(_describe(Job(summary.job_id, self.store.root / summary.job_id), entry))
        return out

    def result(self, job_id: str, fmt: str) -> tuple[bytes, bool]:
        """The bytes of a job's ``result.<fmt>``, and whether it is the partial SRT of a running job.

        Raises:
            InvalidJobIdError: Malformed id.
            JobNotFoundError: No such job.
            ResultNotFoundError: Unknown format, or no such result (yet).
        """
        job = self.open(job_id)
        if fmt not in FORMATS:
            raise ResultNotFoundError(f"no result.{one_line(fmt)[:20]}: results are {', '.join(FORMATS)}")
        # Outputs are replaced atomically (rename): reading the whole file gives one complete version.
        for name, partial in ((f"result.{fmt}", False), ("partial.srt", True)):
            if partial and fmt != "srt":
                break
            try:
                return (job.output_dir / name).read_bytes(), partial
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ResultNotFoundError(f"job {job.id}: result.{fmt} cannot be read ({exc.strerror or exc})") from exc
        summary = job.summary()
        if summary.state == JobState.DONE:
            # A format the job did not write (or one from before it existed): made from its transcript.
            return self.review.rendered(job.id, fmt), False
        hint = "try again when it is done" if is_active(summary.state) else "resume it first"
        raise ResultNotFoundError(f"job {job.id} has no result.{fmt} yet (state {summary.state}); {hint}")

    def open(self, job_id: str) -> Job:
        """The job's folder, for a valid id of a job that exists and is not being deleted.

        Raises:
            InvalidJobIdError: Malformed id.
            JobNotFoundError: No such job.
        """
        try:
            validate_job_id(job_id)
        except CheckpointError as exc:
            raise InvalidJobIdError(one_line(str(exc))) from exc
        with self._lock:
            entry = self._entries.get(job_id)
            if entry is not None and entry.deleted:
                raise JobNotFoundError(f"no job {job_id}: it was deleted")
        try:
            return self.store.open(job_id)
        except CheckpointError as exc:
            raise JobNotFoundError(f"no job {job_id}; list jobs with GET /api/jobs") from exc

    # the worker -----------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            entry = self._queue.get()
            if entry is None:
                return
            try:
                self._run_entry(entry)
            except Exception:  # noqa: BLE001 - one job's fault must never stop the worker
                log.exception("job %s: unexpected failure in the worker", entry.job.id)

    def _run_entry(self, entry: _Entry) -> None:
        job = entry.job
        with self._lock:
            # Cancelled or deleted while queued (or queued again by a resume: a newer entry).
            if self._entries.get(job.id) is not entry or entry.cancel.is_set():
                return
            entry.status = JobState.RUNNING
        # The job runs on its own thread so that the worker can give up on one that does not stop after a
        # cancel (a runner stuck waiting on its decoder); each worker thread still runs one job at a time.
        thread = threading.Thread(target=self._execute, args=(entry,), name=f"job-{job.id}", daemon=True)
        thread.start()
        cancelled_at: float | None = None
        while thread.is_alive():
            thread.join(0.25)
            if entry.cancel.is_set() and thread.is_alive():
                cancelled_at = cancelled_at or time.monotonic()
                if time.monotonic() - cancelled_at > self.cancel_grace_s:
                    log.warning(
                        "job %s did not stop within %.0f s of its cancel; going on without it",
                        job.id,
                        self.cancel_grace_s,
                    )
                    if not entry.deleted:
                        _mark(job, JobState.CANCELLED, None)
                    break
        with self._lock:
            if self._entries.get(job.id) is entry:
                del self._entries[job.id]
        if entry.deleted:
            self._remove(job)

    def _execute(self, entry: _Entry) -> None:
        job = entry.job

        def on_event(event: JobEvent) -> None:
            entry.event = event  # one reference assignment: atomic, readers see the old or the new event

        try:
            self.runner.run_job(job, on_event, entry.cancel, fresh=entry.fresh)
        except CancelledError:
            log.info("job %s cancelled", job.id)
        except Exception as exc:  # noqa: BLE001 - recorded in the job folder; the worker goes on
            log.info("job %s failed: %s", job.id, exc)
            log.debug("job %s failed", job.id, exc_info=True)
            if not entry.deleted:
                _mark_failed(job, exc)
        else:
            if not entry.deleted:
                # The upload moves into the job folder (a rename: the uploads are in the jobs folder), where the
                # Review tab plays it and the video exports read it; it goes when the job is deleted.
                upload = upload_dir_of(job, self.uploads_root)
                if upload is not None:
                    try:
                        job.adopt_input()
                    except (PipelineError, OSError) as exc:
                        log.warning("job %s: cannot keep its input for review (%s)", job.id, exc)
                    shutil.rmtree(upload, ignore_errors=True)

    def stop(self) -> None:
        """Stop the scheduled housekeeping (jobs go on running)."""
        self._stop.set()

    def close(self) -> None:
        """Cancel the running job, stop the worker threads and the housekeeping; queued jobs stay queued on
        disk. Last call."""
        self.stop()
        with self._lock:
            for entry in self._entries.values():
                if entry.status == JobState.RUNNING:
                    entry.cancel.set()
            for worker in self._workers:
                if worker.is_alive():
                    self._queue.put(None)


def _describe(job: Job, entry: _Entry | None) -> dict[str, Any]:
    return describe(
        job,
        live=entry is not None,
        queued=entry is not None and entry.status == JobState.QUEUED,
        event=entry.event if entry is not None else None,
    )


def _mark(job: Job, state: JobState, error: str | None) -> None:
    try:
        job.update_checkpoint(state=state.value, error=error)
    except (PipelineError, OSError) as exc:
        log.warning("job %s: cannot record state %s (%s)", job.id, state, exc)


def _mark_failed(job: Job, exc: BaseException) -> None:
    # The runner records its own failures, except those raised before its handler (stored settings
    # that fail their fingerprint, an unreadable job.json): record those so the job does not look alive.
    try:
        state = job.read_checkpoint().get("state")
    except CheckpointError:
        state = None
    if state not in (JobState.FAILED, JobState.CANCELLED):
        message = str(exc) if isinstance(exc, PipelineError) else f"{type(exc).__name__}: {exc}"
        _mark(job, JobState.FAILED, one_line(message))


__all__ = ["CANCEL_GRACE_S", "HOUSEKEEPING_EVERY_S", "JobManager"]
