"""Background jobs for the HTTP API and the UI: uploads in, one worker thread running them in order.

:class:`JobManager` owns one :class:`~pipeline.jobs.engine.Runner` (so one model cache) and one worker thread that
takes queued jobs from a :class:`queue.Queue` and runs them one at a time, in submission order. Callers
(HTTP handlers, UI callbacks) only ever copy an upload, create the job folder and enqueue; they never wait
for transcription. State comes from the job folders (:class:`~pipeline.jobs.store.JobStore`), overlaid
with the latest :class:`~pipeline.jobs.engine.JobEvent` of the job that is running.

Errors are :class:`~pipeline.core.errors.PipelineError` subclasses with one-line messages; the ones defined here
carry the HTTP status the API answers with (``status_code``).
"""

from __future__ import annotations

import builtins
import logging
import queue
import re
import secrets
import shutil
import threading
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from pipeline.core.errors import CancelledError, CheckpointError, InputError, PipelineError
from pipeline.core.settings import FORMATS, Settings
from pipeline.jobs.engine import JobEvent, Runner
from pipeline.jobs.store import Job, JobStore, validate_job_id
from pipeline.parse import settings_from_request

if TYPE_CHECKING:
    from workbench.review import ReviewManager

log = logging.getLogger(__name__)

#: File name extensions accepted for upload (checked before anything is stored; the real probe follows).
MEDIA_EXTENSIONS = (
    "mp4",
    "mkv",
    "webm",
    "mov",
    "avi",
    "mp3",
    "m4a",
    "ogg",
    "opus",
    "flac",
    "wav",
    "aac",
    "wma",
    "mpg",
    "mpeg",
    "ts",
    "m4v",
    "3gp",
)
#: Default upload size limit: 2 GiB.
MAX_UPLOAD_BYTES = 2 << 30
#: After a cancel, how long a running job may take to stop before the worker moves on without it.
CANCEL_GRACE_S = 30.0
#: Unfinished states that a live job can be in; on disk without a live job they mean "interrupted".
_ACTIVE_STATES = ("queued", "waiting_for_model", "running")
_CHUNK = 1 << 20
_TOKEN_RE = re.compile(r"^[0-9a-f]{16}$")


class JobsError(PipelineError):
    """A request the job manager refuses; ``status_code`` is the HTTP answer."""

    status_code = 400


class UnsupportedMediaError(JobsError, InputError):
    """The upload's file name does not end in a known media extension."""

    status_code = 415


class UploadTooLargeError(JobsError, InputError):
    """The upload is larger than the configured limit."""

    status_code = 413


class InvalidJobIdError(JobsError, CheckpointError):
    """Not of the generated job id form (path traversal attempts land here)."""

    status_code = 400


class JobNotFoundError(JobsError, CheckpointError):
    """A well-formed id with no job folder."""

    status_code = 404


class ResultNotFoundError(JobsError):
    """The requested result file does not exist (yet)."""

    status_code = 404


class JobConflictError(JobsError):
    """The job is in a state that does not allow the request (resume while queued, running or done)."""

    status_code = 409


class StorageError(JobsError):
    """The upload or job folder cannot be stored (disk full, not writable)."""

    status_code = 507


def one_line(text: str) -> str:
    """Collapse whitespace and newlines so a message fits one line."""
    return " ".join(str(text).split())


def safe_file_name(filename: str | None) -> str:
    """The upload's base name reduced to safe characters, keeping its extension.

    Raises:
        UnsupportedMediaError: The extension is not one of :data:`MEDIA_EXTENSIONS`.
    """
    # Browsers and clients may send a full client-side path (either slash); only the last part counts.
    base = re.split(r"[\\/]", unicodedata.normalize("NFC", filename or ""))[-1]
    base = re.sub(r"[^\w.\- ]+", "_", base).strip(" .")
    stem, dot, ext = base.rpartition(".")
    ext = ext.lower()
    if not dot or ext not in MEDIA_EXTENSIONS:
        shown = one_line(filename or "") or "the upload"
        raise UnsupportedMediaError(
            f"{shown}: not a known video or audio file type; upload one of: {', '.join(MEDIA_EXTENSIONS)}"
        )
    stem = stem.strip(" .")[:100] or "upload"
    return f"{stem}.{ext}"


def job_settings(base: Settings, overrides: Mapping[str, Any] | None, output_dir: Path) -> Settings:
    """Settings for one uploaded job: ``base`` plus the request's values, checked by the validators every edge
    shares (:func:`pipeline.parse.settings_from_request`).

    Raises:
        UsageError: A value is unknown or out of range.
    """
    return settings_from_request(base, overrides, output_dir)


@dataclass(eq=False)
class _Entry:
    """A job this manager has queued or is running."""

    job: Job
    cancel: threading.Event = field(default_factory=threading.Event)
    status: str = "queued"  # queued | running
    event: JobEvent | None = None
    deleted: bool = False
    #: Just created from its upload (not a resume): the input was hashed a moment ago.
    fresh: bool = False


class JobManager:
    """Queues uploaded jobs and runs them one at a time on one background worker thread.

    Args:
        settings: Defaults for every job (model, jobs folder, subtitle rules …).
        runner: The runner to use (tests pass one sharing a loaded model); created on first use when omitted.
        max_upload_bytes: Uploads larger than this are refused (413).
        cancel_grace_s: How long a cancelled running job may take to stop before the worker stops waiting
            for it and goes on with the next job.
    """

    def __init__(
        self,
        settings: Settings,
        runner: Runner | None = None,
        *,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        cancel_grace_s: float = CANCEL_GRACE_S,
    ) -> None:
        self.settings = settings
        self.store = JobStore(settings.jobs.jobs_dir)
        self.uploads_root = Path(settings.jobs.jobs_dir) / "uploads"
        self.max_upload_bytes = max_upload_bytes
        self.cancel_grace_s = cancel_grace_s
        self._runner = runner
        self._review: ReviewManager | None = None
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._queue: queue.Queue[_Entry | None] = queue.Queue()
        self._workers: list[threading.Thread] = []
        # Not resumed automatically (that is the caller's decision); listed so the UI can offer it.
        self.unfinished_at_start: builtins.list[str] = [job.id for job in self.store.unfinished()]
        if self.unfinished_at_start:
            log.info("unfinished jobs in %s: %s", self.store.root, ", ".join(self.unfinished_at_start))
        self._prune_uploads()

    @property
    def review(self) -> ReviewManager:
        """Cue review and video exports of this manager's finished jobs (created on first use)."""
        from workbench.review import ReviewManager

        with self._lock:
            if self._review is None:
                self._review = ReviewManager(self)
            return self._review

    @property
    def runner(self) -> Runner:
        """The runner, created on first use: building it applies CPU affinity and expires old jobs."""
        with self._lock:
            if self._runner is None:
                self._runner = Runner(self.settings)
            return self._runner

    # submitting -----------------------------------------------------------------------------------
    def submit_upload(
        self, filename: str | None, stream: BinaryIO, settings_overrides: Mapping[str, Any] | None = None
    ) -> str:
        """Store an upload, create its job and queue it.

        Args:
            filename: The client's file name; only its base name, reduced to safe characters, is used.
            stream: The upload's bytes, read in chunks.
            settings_overrides: Optional ``formats`` ("srt,vtt,json"), ``language``, ``max_line_width`` and the
                other names :func:`job_settings` takes.

        Returns:
            The new job's id.

        Raises:
            UnsupportedMediaError: Not a known media extension (415).
            UsageError: A bad setting value (400).
            UploadTooLargeError: Larger than ``max_upload_bytes`` (413).
            InputError: Not readable media or no audio (400).
            StorageError: The upload or job folder cannot be stored (507).
        """
        name = safe_file_name(filename)
        upload_dir = self.uploads_root / secrets.token_hex(8)
        # New jobs get the model selected now (switched in the Models tab or by POST /api/models/load).
        base = self.settings.replace(model=self.runner.selected_model)
        settings = job_settings(base, settings_overrides, upload_dir / "out")
        path = upload_dir / name
        try:
            try:
                upload_dir.mkdir(parents=True)
                self._copy(stream, path)
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

    def _copy(self, stream: BinaryIO, path: Path) -> None:
        size = 0
        with open(path, "wb") as out:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > self.max_upload_bytes:
                    raise UploadTooLargeError(
                        f"{path.name}: the upload is larger than the limit of {_human(self.max_upload_bytes)}; "
                        "send a smaller file or cut it into parts"
                    )
                out.write(chunk)

    def resume(self, job_id: str) -> None:
        """Queue an unfinished job (failed, cancelled or interrupted) to continue from its last segment.

        Raises:
            InvalidJobIdError: Malformed id (400).
            JobNotFoundError: No such job (404).
            JobConflictError: It is queued, running or done, or its folder cannot be resumed (409).
        """
        job = self._open(job_id)
        with self._lock:
            entry = self._entries.get(job.id)
            if entry is not None:
                raise JobConflictError(f"job {job.id} is already {entry.status}; wait for it or cancel it")
            try:
                job.read_job()
                state = job.read_checkpoint().get("state")
            except CheckpointError as exc:
                raise JobConflictError(f"job {job.id} cannot be resumed: {one_line(str(exc))}") from exc
            if state == "done":
                raise JobConflictError(f"job {job.id} is already done; fetch its results")
            job.update_checkpoint(state="queued", error=None)
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
    def cancel(self, job_id: str) -> str:
        """Cancel a job: a queued one at once, a running one at its next step.

        Returns:
            The job's state after the request (``cancelled``, or ``running`` while it stops).

        Raises:
            InvalidJobIdError: Malformed id (400).
            JobNotFoundError: No such job (404).
            JobConflictError: The job is already done (409).
        """
        job = self._open(job_id)
        with self._lock:
            entry = self._entries.get(job.id)
            if entry is not None:
                entry.cancel.set()
                if entry.status == "running":
                    return "running"
                # Still queued: it will never run; the worker skips entries no longer in the table.
                del self._entries[job.id]
                job.update_checkpoint(state="cancelled")
                return "cancelled"
            state = job.summary().state
            if state == "done":
                raise JobConflictError(f"job {job.id} is already done; nothing to cancel")
            if state != "cancelled":
                # Failed or interrupted: cancelling means "do not offer to resume it".
                job.update_checkpoint(state="cancelled")
            return "cancelled"

    def delete(self, job_id: str) -> None:
        """Remove a job's folder and its upload, cancelling it first if it is queued or running.

        A running job is removed by the worker as soon as it has stopped; it is gone from
        :meth:`status` and :meth:`list` at once.

        Raises:
            InvalidJobIdError: Malformed id (400).
            JobNotFoundError: No such job (404).
        """
        job = self._open(job_id)
        with self._lock:
            entry = self._entries.get(job.id)
            if entry is not None:
                entry.cancel.set()
                entry.deleted = True
                if entry.status == "running":
                    return
                del self._entries[job.id]
        self._remove(job)

    def _remove(self, job: Job) -> None:
        upload = self._upload_dir(job)
        shutil.rmtree(job.dir, ignore_errors=True)
        if upload is not None:
            shutil.rmtree(upload, ignore_errors=True)
        log.info("job %s deleted", job.id)

    def _prune_uploads(self, min_age_s: float = 86400.0) -> None:
        # Uploads whose job is gone (expired by the runner, or a crash between upload and job folder) would
        # otherwise stay forever. Only old ones: another manager on this folder may be mid-upload.
        if not self.uploads_root.is_dir():
            return
        used = {folder for folder in (self._upload_dir(job) for job in self.store.jobs()) if folder is not None}
        now = time.time()
        for folder in self.uploads_root.iterdir():
            try:
                old = now - folder.stat().st_mtime > min_age_s
            except OSError:
                continue
            if old and _TOKEN_RE.match(folder.name) and folder.resolve() not in used:
                shutil.rmtree(folder, ignore_errors=True)
                log.info("removed upload %s: no job uses it", folder.name)

    def _upload_dir(self, job: Job) -> Path | None:
        # Only a folder this manager made: a CLI job's input is the user's own file and is never removed.
        try:
            folder = Path(job.read_job()["input_path"]).parent
        except (CheckpointError, KeyError, TypeError):
            return None
        try:
            root = self.uploads_root.resolve()
        except OSError:
            return None
        if folder.parent == root and _TOKEN_RE.match(folder.name):
            return folder
        return None

    # status ---------------------------------------------------------------------------------------
    def status(self, job_id: str) -> dict[str, Any]:
        """One job's state, stage, progress (0–1), segments done/total, audio seconds done, duration, rtf, error.

        Raises:
            InvalidJobIdError: Malformed id (400).
            JobNotFoundError: No such job (404).
        """
        job = self._open(job_id)
        with self._lock:
            entry = self._entries.get(job.id)
        return self._describe(job, entry)

    def result(self, job_id: str, fmt: str) -> tuple[bytes, bool]:
        """The bytes of a job's ``result.<fmt>``, and whether it is the partial SRT of a running job.

        Raises:
            InvalidJobIdError: Malformed id (400).
            JobNotFoundError: No such job (404).
            ResultNotFoundError: Unknown format, or no such result (yet) (404).
        """
        job = self._open(job_id)
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
        if summary.state == "done" and fmt == "ass":
            # A job from before ASS existed, or one that did not ask for it: styled from its transcript.
            return self.review.ass_text(job.id), False
        if summary.state == "done":
            raise ResultNotFoundError(
                f"job {job.id} has no result.{fmt}: it was not among the formats asked for; "
                "submit again with formats=srt,vtt,json,ass"
            )
        hint = "try again when it is done" if summary.state in _ACTIVE_STATES else "resume it first"
        raise ResultNotFoundError(f"job {job.id} has no result.{fmt} yet (state {summary.state}); {hint}")

    def _open(self, job_id: str) -> Job:
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

    def _describe(self, job: Job, entry: _Entry | None) -> dict[str, Any]:
        summary = job.summary()
        try:
            duration = float(job.read_job().get("duration") or 0.0)
        except CheckpointError:
            duration = 0.0
        state = summary.state
        event = entry.event if entry is not None else None
        active = entry is not None
        segments_done, segments_total = summary.segments_done, summary.segments_total
        audio_done, rtf, error = 0.0, 0.0, summary.error
        if entry is not None and entry.status == "queued":
            state = stage = "queued"
        elif entry is not None and event is None:
            stage = "starting"  # taken by the worker; the runner has not reported yet
        elif event is not None:
            stage = event.stage
            segments_done = max(segments_done, event.segments_done)
            segments_total = event.segments_total if event.segments_total is not None else segments_total
            audio_done, rtf = event.audio_done, event.rtf
            duration = event.duration or duration
            if event.stage == "failed" and event.message:
                error = event.message
        elif not active and state in _ACTIVE_STATES:
            # Left running or queued by a process that is gone: resumable, but nothing runs it now.
            stage = "interrupted"
        else:
            stage = state
        if state == "done":
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
            "state": state,
            "stage": stage,
            "active": active,
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
            entry.status = "running"
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
                        _mark(job, "cancelled", None)
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
                upload = self._upload_dir(job)
                if upload is not None:
                    try:
                        job.adopt_input()
                    except (PipelineError, OSError) as exc:
                        log.warning("job %s: cannot keep its input for review (%s)", job.id, exc)
                    shutil.rmtree(upload, ignore_errors=True)

    def close(self) -> None:
        """Cancel the running job and stop the worker thread; queued jobs stay queued on disk. Last call."""
        with self._lock:
            for entry in self._entries.values():
                if entry.status == "running":
                    entry.cancel.set()
            for worker in self._workers:
                if worker.is_alive():
                    self._queue.put(None)

    def list(self) -> builtins.list[dict[str, Any]]:
        """Every job, unfinished ones first and newest first, with the same fields as :meth:`status`."""
        with self._lock:
            entries = dict(self._entries)
        out = []
        for summary in self.store.summaries():
            entry = entries.get(summary.job_id)
            if entry is not None and entry.deleted:
                continue
            job = Job(summary.job_id, self.store.root / summary.job_id)
            out.append(self._describe(job, entry))
        return out


def _mark(job: Job, state: str, error: str | None) -> None:
    try:
        job.update_checkpoint(state=state, error=error)
    except (PipelineError, OSError) as exc:
        log.warning("job %s: cannot record state %s (%s)", job.id, state, exc)


def _mark_failed(job: Job, exc: BaseException) -> None:
    # The runner records its own failures, except those raised before its handler (stored settings
    # that fail their fingerprint, an unreadable job.json): record those so the job does not look alive.
    try:
        state = job.read_checkpoint().get("state")
    except CheckpointError:
        state = None
    if state not in ("failed", "cancelled"):
        message = str(exc) if isinstance(exc, PipelineError) else f"{type(exc).__name__}: {exc}"
        _mark(job, "failed", one_line(message))


def _human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"
