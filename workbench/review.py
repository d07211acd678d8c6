"""Review and export of finished jobs, for the HTTP API and the Review tab: the cues with their words and flags,
saving an edit (every subtitle output rewritten, the originals kept), restoring the originals, and the video
exports (embed, burn) running on a background thread with progress and cancel.

The rules and the work live in ``pipeline`` (:mod:`pipeline.text.cue_edit`, :mod:`pipeline.text.mux`); the job folder
is read and written only through :mod:`pipeline.jobs.store`. Export state is kept in memory while an export
runs; a finished export is its file in the job folder, so it survives a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.errors import CancelledError, CheckpointError, PipelineError, UsageError
from pipeline.core.settings import Settings
from pipeline.core.states import JobState, WireEnum
from pipeline.core.types import Transcript
from pipeline.jobs.store import EDITABLE_FORMATS, Job
from pipeline.text import mux as export_mod
from pipeline.text.cue_edit import review_cues, transcript_from_dict, validate_cues, with_cues
from pipeline.text.writers import render
from workbench.errors import JobConflictError, ResultNotFoundError, one_line

log = logging.getLogger(__name__)

KINDS = export_mod.KINDS
#: Export files by kind, in the job folder's ``output/`` and under ``/api/jobs/{id}/``.
EXPORT_FILES = {
    "embed": ("result.subtitled.mp4", "result.subtitled.mkv", "result.subtitled.mka"),
    "burn": ("result.burned.mp4",),
}


class ExportState(WireEnum):
    """An export's state as ``GET /api/jobs/{id}/export/{kind}`` shows it."""

    IDLE = "idle"  # none made, none running
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: An export that is not over yet.
_BUSY = (ExportState.QUEUED, ExportState.RUNNING)


@dataclass
class _Export:
    """One export that runs or ran in this process."""

    kind: str
    state: ExportState = ExportState.QUEUED
    progress: float = 0.0
    file: str | None = None
    error: str | None = None
    note: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class ReviewManager:
    """Cue review and video export over the job service's jobs.

    Exports run one at a time (burning is heavy), each on its own thread, queued behind the one running.

    Args:
        open_job: The job service's ``open``: a job's folder by id (raises for a bad or unknown id).
        status: The job service's ``status``: a job's status dict by id.
    """

    def __init__(self, open_job: Callable[[str], Job], status: Callable[[str], dict[str, Any]]) -> None:
        self._open, self._status = open_job, status
        self._lock = threading.RLock()
        self._exports: dict[tuple[str, str], _Export] = {}
        self._one_at_a_time = threading.Semaphore(1)

    # reading ----------------------------------------------------------------------------------------
    def _done_job(self, job_id: str, doing: str) -> Job:
        job = self._open(job_id)
        status = self._status(job_id)
        if status["state"] != JobState.DONE or status["active"]:
            raise JobConflictError(f"job {job.id} is not done (state {status['state']}): {doing} once it has finished")
        return job

    def _settings(self, job: Job) -> Settings:
        return job.settings()

    def _transcript(self, job: Job) -> Transcript:
        try:
            return transcript_from_dict(job.read_transcript())
        except (CheckpointError, UsageError) as exc:
            raise ResultNotFoundError(
                f"job {job.id} has no transcript to review ({one_line(str(exc))}); run it again to review it"
            ) from exc

    def input_path(self, job_id: str) -> Path | None:
        """The job's input media when it is still there (review plays it, exports read it)."""
        job = self._open(job_id)
        try:
            path = Path(job.read_job()["input_path"])
        except (CheckpointError, KeyError, TypeError):
            return None
        return path if path.is_file() else None

    def cues(self, job_id: str) -> dict[str, Any]:
        """The finished job's cues with their words and flags, and the limits an edit must keep.

        Raises:
            JobConflictError: The job is not done (409).
            ResultNotFoundError: It has no transcript (404).
        """
        job = self._done_job(job_id, "review it")
        rules = self._settings(job).subtitles
        transcript = self._transcript(job)
        return {
            "job_id": job.id,
            "language": transcript.language,
            "edited": job.edited(),
            "limits": {
                "max_line_width": rules.max_line_width,
                "cjk_line_width": rules.cjk_line_width,
                "max_lines": rules.max_lines,
                "max_cps": rules.max_cps,
                "min_duration": rules.min_duration,
                "max_duration": rules.max_duration,
            },
            "cues": review_cues(transcript, rules),
        }

    # editing ----------------------------------------------------------------------------------------
    def save_cues(self, job_id: str, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Check an edited cue list and rewrite every subtitle output of the job from it.

        The first save keeps the originals (``original.<ext>``); exports made from the old cues are removed.

        Raises:
            CueEditError: The first cue that breaks a rule (422).
            JobConflictError: The job is not done, or one of its exports is running (409).
        """
        job = self._done_job(job_id, "edit it")
        rules = self._settings(job).subtitles
        cues = validate_cues(items, rules)
        with self._lock:
            self._refuse_while_exporting(job.id, "save an edit")
            transcript = with_cues(self._transcript(job), cues)
            self._rewrite(job, transcript)
            self._forget_exports(job.id)
        log.info("job %s: %d edited cues saved", job.id, len(cues))
        return self.cues(job.id)

    def restore(self, job_id: str) -> dict[str, Any]:
        """Put the job's original outputs back (undo every saved edit).

        Raises:
            JobConflictError: The job is not done, was not edited, or one of its exports is running (409).
        """
        job = self._done_job(job_id, "restore it")
        with self._lock:
            self._refuse_while_exporting(job.id, "restore it")
            if not job.restore_original():
                raise JobConflictError(f"job {job.id} has no edit to undo")
            self._forget_exports(job.id)
        return self.cues(job.id)

    def _rewrite(self, job: Job, transcript: Transcript) -> None:
        s = self._settings(job)
        size = self._video_size(job)
        files = {fmt: render(transcript, fmt, s.export, size) for fmt in EDITABLE_FORMATS}
        try:
            job.save_edit(files)
        except OSError as exc:
            raise JobConflictError(
                f"job {job.id}: the edit could not be saved ({exc.strerror or exc}); its files are unchanged"
            ) from exc

    def _video_size(self, job: Job) -> tuple[int, int] | None:
        path = self.input_path(job.id)
        if path is None:
            return None
        try:
            info = export_mod.probe_media(path)
        except PipelineError:
            return None
        return (info.width, info.height) if info.has_video else None

    def rendered(self, job_id: str, fmt: str) -> bytes:
        """A finished job's subtitles in ``fmt``, rendered from its transcript: for a format the job was not
        asked to write (the default is SRT alone; the Review player needs VTT, an export needs ASS)."""
        job = self._done_job(job_id, f"get its {fmt.upper()} file")
        s = self._settings(job)
        size = self._video_size(job) if fmt == "ass" else None
        return render(self._transcript(job), fmt, s.export, size).encode("utf-8")

    # exporting --------------------------------------------------------------------------------------
    def _refuse_while_exporting(self, job_id: str, doing: str) -> None:
        for (jid, kind), ex in self._exports.items():
            if jid == job_id and ex.state in _BUSY:
                raise JobConflictError(
                    f"job {job_id}: its {kind} export is running; wait for it or cancel it to {doing}"
                )

    def _forget_exports(self, job_id: str) -> None:
        for key in [k for k in self._exports if k[0] == job_id]:
            del self._exports[key]

    def start_export(self, job_id: str, kind: str) -> dict[str, Any]:
        """Start (or join) an ``embed`` or ``burn`` export of a finished job; returns its status.

        Raises:
            UsageError: Not a known kind (400).
            JobConflictError: The job is not done, or its input is gone (409).
        """
        if kind not in KINDS:
            raise UsageError(f"unknown export kind {one_line(str(kind))[:20]!r}: use one of {', '.join(KINDS)}")
        job = self._done_job(job_id, f"{kind} it")
        source = self.input_path(job.id)
        if source is None:
            raise JobConflictError(f"job {job.id}: its input file is gone, so it cannot be exported; submit it again")
        with self._lock:
            current = self._exports.get((job.id, kind))
            if current is not None and current.state in _BUSY:
                return self._describe(job, kind, current)
            ex = _Export(kind)
            self._exports[(job.id, kind)] = ex
            ex.thread = threading.Thread(
                target=self._run_export, args=(job, source, ex), name=f"export-{kind}-{job.id}", daemon=True
            )
            ex.thread.start()
            return self._describe(job, kind, ex)

    def _run_export(self, job: Job, source: Path, ex: _Export) -> None:
        with self._one_at_a_time:
            if ex.cancel.is_set():
                ex.state = ExportState.CANCELLED
                return
            ex.state = ExportState.RUNNING
            try:
                s = self._settings(job)
                transcript = self._transcript(job)
                info = export_mod.probe_media(source)

                def progress(share: float) -> None:
                    ex.progress = share

                if ex.kind == "embed":
                    ext = export_mod.embed_target(source, job.output_dir, info).suffix.lstrip(".")
                    done = export_mod.embed(
                        source, [transcript], job.export_path(f"result.subtitled.{ext}"), progress, ex.cancel, info
                    )
                    for stale in EXPORT_FILES["embed"]:  # an older export in the other container
                        if stale != done.path.name:
                            job.export_path(stale).unlink(missing_ok=True)
                else:
                    done = export_mod.burn(
                        source, transcript, job.export_path("result.burned.mp4"), s.export, progress, ex.cancel, info
                    )
            except CancelledError:
                ex.state = ExportState.CANCELLED
                return
            except PipelineError as exc:
                ex.state, ex.error = ExportState.FAILED, one_line(str(exc))
                log.info("job %s: %s export failed: %s", job.id, ex.kind, exc)
                return
            except Exception as exc:  # noqa: BLE001 - recorded for the client; the server goes on
                ex.state, ex.error = ExportState.FAILED, f"{type(exc).__name__}: {one_line(str(exc))}"
                log.exception("job %s: %s export failed", job.id, ex.kind)
                return
            ex.file, ex.note, ex.progress, ex.state = done.path.name, done.note, 1.0, ExportState.DONE
            log.info("job %s: %s export written: %s", job.id, ex.kind, done.path.name)

    def export_status(self, job_id: str, kind: str) -> dict[str, Any]:
        """An export's state (``idle``, ``queued``, ``running``, ``done``, ``failed``, ``cancelled``), progress, file.

        Raises:
            UsageError: Not a known kind (400).
        """
        if kind not in KINDS:
            raise UsageError(f"unknown export kind {one_line(str(kind))[:20]!r}: use one of {', '.join(KINDS)}")
        job = self._open(job_id)
        with self._lock:
            ex = self._exports.get((job.id, kind))
        return self._describe(job, kind, ex)

    def cancel_export(self, job_id: str, kind: str) -> dict[str, Any]:
        """Stop a queued or running export; nothing of it is left behind."""
        status = self.export_status(job_id, kind)
        with self._lock:
            ex = self._exports.get((status["job_id"], kind))
        if ex is None or ex.state not in _BUSY:
            raise JobConflictError(f"job {status['job_id']}: no {kind} export is running")
        ex.cancel.set()
        if ex.thread is not None:
            ex.thread.join(30)
        return self.export_status(job_id, kind)

    def _describe(self, job: Job, kind: str, ex: _Export | None) -> dict[str, Any]:
        on_disk = next((name for name in EXPORT_FILES[kind] if (job.output_dir / name).exists()), None)
        if ex is None:
            state = ExportState.DONE if on_disk else ExportState.IDLE
            progress, error, note, name = (1.0 if on_disk else 0.0), None, "", on_disk
        else:
            state, progress, error, note = ex.state, ex.progress, ex.error, ex.note
            name = ex.file if ex.state == ExportState.DONE else None
        return {
            "job_id": job.id,
            "kind": kind,
            "state": str(state),
            "progress": round(progress, 4),
            "file": name,
            "url": f"/api/jobs/{job.id}/{name}" if name else None,
            "error": error,
            "note": note,
        }

    def export_file(self, job_id: str, name: str) -> Path:
        """The path of a finished export (``result.subtitled.mkv`` …).

        Raises:
            ResultNotFoundError: No such export (404).
        """
        job = self._open(job_id)
        try:
            path = job.export_path(name)
        except CheckpointError as exc:
            raise ResultNotFoundError(one_line(str(exc))) from exc
        if not path.is_file():
            kind = "burn" if "burned" in name else "embed"
            raise ResultNotFoundError(
                f'job {job.id} has no {name}: start it with POST /api/jobs/{job.id}/export {{"kind": "{kind}"}}'
            )
        return path
