"""The job engine: :class:`Runner` runs jobs, each one input file through every stage, on one backend.

The runner holds what its jobs share: the settings resolved for this machine, the VAD model, and the
:class:`~pipeline.backends.base.Backend` the batches run on (in-process, or a Dask cluster); it makes job
folders and turns every failure into one clear line. A job's own steps are :class:`pipeline.jobs.run.JobRun`.
Constructing a runner starts nothing: :meth:`Runner.start` warms up, and jobs wait for what they need.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from pipeline.asr.manager import ModelBusyError, ModelManager
from pipeline.asr.model_status import aggregate_status
from pipeline.asr.models import LoadedModel, ModelCache
from pipeline.backends.base import Backend
from pipeline.backends.local import LocalBackend
from pipeline.core.errors import CancelledError, CheckpointError, ClusterError, PipelineError, TranscriptionError
from pipeline.core.settings import ModelSettings, Settings
from pipeline.core.states import JobState
from pipeline.jobs.events import Emitter, EventCallback, JobResult
from pipeline.jobs.feed import Stop, VadModel, disk_full
from pipeline.jobs.files import check_free_space, file_sha256
from pipeline.jobs.fingerprint import fingerprint_of
from pipeline.jobs.plan import first_models, use_cluster
from pipeline.jobs.run import JobRun
from pipeline.jobs.store import Job, JobStore
from pipeline.media import decode as audio_mod
from pipeline.resolve import resolve

__all__ = ["Runner"]

log = logging.getLogger(__name__)


class Runner:
    """Runs jobs on one backend, with one VAD model, shared across inputs.

    Args:
        settings: Defaults for every job; a job may pass its own.
        models: The model manager for jobs run in this process (created when omitted), so several inputs load
            the model once; a plain :class:`ModelCache` is wrapped in a manager of this runner's own.
    """

    def __init__(self, settings: Settings, models: ModelManager | ModelCache | None = None) -> None:
        self.settings = resolve(settings)[0]
        self._local = LocalBackend(self.settings, models)
        self._backends: list[Backend] = [self._local]
        if use_cluster(self.settings):
            from pipeline.backends.dask import DaskBackend

            # Untuned: a cluster plans its workers' threads itself.
            self._backends.insert(0, DaskBackend(settings))
        self._backend: Backend = self._backends[0]
        self._lock = threading.Lock()
        self._vad = VadModel()
        self._active = 0  # jobs running now, for cluster_status

    @property
    def models(self) -> ModelManager:
        """The model manager of this process (where jobs run unless they run on a cluster)."""
        return self._local.models

    @property
    def on_cluster(self) -> bool:
        """Whether jobs run on a Dask cluster (False: in this process)."""
        return self._backend.distributed

    @property
    def job_slots(self) -> int:
        """Jobs worth running at once: one in-process (one inference thread); on a cluster, enough for
        several jobs to share the workers (each keeps only a few batches in flight)."""
        return self._backend.job_slots

    def start(self) -> None:
        """Get ready in the background: bind this process's cores and preload the model, or start (reach) the
        cluster, whose workers preload it. Jobs may be submitted at once; they wait for what they need."""
        models, preload = first_models(self.settings)
        self._backend.start(models, preload=preload)

    def backend(self) -> Backend:
        """The backend jobs run on, started or reached first.

        Raises:
            ClusterError: The scheduler is unreachable or the local cluster cannot start (unless the settings
                allow falling back to in-process, which is then logged as a warning).
        """
        backend = self._backend
        try:
            backend.ready()
        except ClusterError as exc:
            if not self.settings.cluster.fallback_local:
                raise
            with self._lock:
                if self._backend is backend:
                    log.warning("%s; running jobs in this process instead", exc)
                    self._backend = self._local
            return self.backend()
        return backend

    def preload(self, settings: Settings | None = None) -> Future[LoadedModel]:
        """Start loading the model here in the background (the selected one by default); the future gives it."""
        if settings is None:
            return self.models.request()
        return self.models.request(resolve(settings)[0].model)

    @property
    def selected_model(self) -> ModelSettings:
        """The model settings new jobs get: the model last loaded through :meth:`load_model`, or the default."""
        return self.models.selected

    def load_model(self, name: str | None = None) -> dict[str, Any]:
        """Switch to ``name`` (blank: load the selected model again, a retry); returns the model status.

        Raises:
            ModelBusyError: A load is running (its status is on the error).
        """
        answers = self._backend.load_model(name)
        busy = [a for a in answers.values() if not a.get("ok")]
        status = self.model_status()
        if busy and len(busy) == len(answers):
            raise ModelBusyError(busy[0].get("error") or "a model is still loading", status)
        return status

    def model_status(self) -> dict[str, Any]:
        """The app-level model status over the workers (in-process: one, this process)."""
        return aggregate_status(self._backend.model_statuses())

    def cluster_status(self) -> dict[str, Any]:
        """Where jobs run, for the UI and the API.

        Returns:
            ``{"mode", "scheduler", "dashboard", "workers": [{"name", "address", "state", "nthreads",
            "resources", "models", ...}]}``; ``mode`` is ``in-process``, ``local``, ``remote`` or
            ``starting`` (a cluster not up yet). Cluster workers also report ``model_state``, ``tasks``,
            ``cpu_percent``, ``memory_mb`` and ``usage`` (:func:`pipeline.system.hardware.sample_usage`).
        """
        return self._backend.status(jobs=self._active)

    def create_job(self, input_path: Path, settings: Settings | None = None) -> Job:
        """Check the input and make its job folder (state ``queued``); nothing is decoded yet.

        Raises:
            InputError: The file is missing, unreadable or has no audio track.
            CheckpointError: The jobs folder cannot hold the job (no space, not writable).
        """
        s = resolve(settings)[0] if settings is not None else self.settings
        input_path = Path(input_path)
        audio_mod.check_input(input_path)
        info = audio_mod.probe(input_path, s.audio)
        # audio.wav is 16 kHz PCM16: 32 kB per second, plus the results and outputs (small).
        check_free_space(s.jobs.jobs_dir, int(info.duration * s.audio.sample_rate * 2), f"{input_path.name}'s job")
        store = JobStore(s.jobs.jobs_dir)
        job = store.create(input_path, file_sha256(input_path), s.to_dict(), fingerprint_of(s))
        job.update_job(duration=info.duration)
        return job

    def run(
        self,
        input_path: Path,
        settings: Settings | None = None,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> JobResult:
        """Transcribe one file and write its outputs.

        Raises:
            InputError: The file is missing, unreadable or has no audio.
            ModelError: The model cannot be had.
            TranscriptionError: A segment kept failing after its retries.
            CancelledError: ``cancel`` was set.
        """
        return self.run_job(self.create_job(input_path, settings), on_event, cancel, fresh=True)

    def resume(
        self, job_id: str, on_event: EventCallback | None = None, cancel: threading.Event | None = None
    ) -> JobResult:
        """Finish an unfinished job from its last finished segment.

        Integrity first: the folder's format and the input's hash (when the input is still needed) must match;
        results made under another fingerprint, or whose checksum fails, are recomputed.

        Raises:
            CheckpointError: No such job, an unknown folder format, a changed input or changed settings.
        """
        job = JobStore(self.settings.jobs.jobs_dir).open(job_id)
        return self.run_job(job, on_event, cancel)

    def run_job(
        self,
        job: Job,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
        fresh: bool = False,
    ) -> JobResult:
        """Run (or continue) the job in ``job``'s folder to the end.

        Args:
            job: The job folder, from :meth:`create_job` or :class:`~pipeline.jobs.store.JobStore`.
            on_event: Progress callback.
            cancel: Set it to stop the job at its next step.
            fresh: The job was just created from its input (skips re-hashing the input).
        """
        s = job.settings()
        # Finished segments made under other settings, model files or code are transcribed again.
        note = job.match_settings(fingerprint_of(s))
        if note:
            log.warning("%s", note)
        meta = job.read_job()  # a changed audio or VAD part drops the stored segment plan
        input_path = Path(meta["input_path"])
        started = time.monotonic()
        stop = Stop(cancel)
        emit = Emitter(job.id, input_path, float(meta.get("duration") or 0.0), started, on_event)
        self._active += 1
        try:
            # A fresh job's input was hashed a moment ago by create_job.
            source = input_path if fresh else _audio_source(job, meta, input_path)
            done = job.load_results()
            return JobRun(job, input_path, source, s, meta, done, emit, stop, started, self._vad, self.backend).run()
        except CancelledError:
            _record(job, state=JobState.CANCELLED.value)
            emit("cancelled", message="cancelled")
            raise
        except PipelineError as exc:
            _record(job, state=JobState.FAILED.value, error=str(exc))
            emit("failed", message=str(exc))
            raise
        except Exception as exc:
            # A fault below us (CTranslate2, the disk): one clear line for the user, the details in the log.
            log.debug("job %s failed", job.id, exc_info=True)
            error = _one_line(exc, job, input_path)
            _record(job, state=JobState.FAILED.value, error=str(error))
            emit("failed", message=str(error))
            raise error from exc
        finally:
            self._active -= 1
            # The producer, if still running, ends at its next step. A job that fails early (its model cannot
            # be had) must not leave it decoding while the process exits: PyAV and onnxruntime threads torn
            # down mid-call crashed the interpreter's exit.
            stop.stop(join_s=30.0)

    def close(self) -> None:
        """Stop the model manager (when this runner made it) and the cluster (when this runner started it)."""
        for backend in self._backends:
            backend.close()


def _audio_source(job: Job, meta: dict[str, Any], input_path: Path) -> Path:
    """Where a (resumed) job reads its audio: its own complete audio.wav, else the original input.

    The input is referenced, not copied. Whenever it is still there its hash must match; when it is gone, a
    job whose audio.wav was complete carries on from that, and any other job is refused.
    """
    if input_path.is_file():
        if file_sha256(input_path) != meta.get("input_sha256"):
            raise CheckpointError(
                f"job {job.id}: {input_path} changed since the job started (its sha256 differs); "
                "start a new job for the new file"
            )
    elif not job.audio_path.exists():
        raise CheckpointError(
            f"job {job.id}: its input {input_path} is gone and its decoded audio is incomplete; "
            "start a new job from the file"
        )
    return job.audio_path if job.audio_path.exists() else input_path


def _one_line(exc: Exception, job: Job, input_path: Path) -> PipelineError:
    """The error a user sees for a fault below the pipeline: a full disk, or a failed transcription."""
    if disk_full(exc):
        return CheckpointError(
            f"{job.dir.parent}: the disk is full ({getattr(exc, 'strerror', None) or exc}); free some space, "
            f"then resume the job with `video2srt --resume {job.id}`: its finished segments are kept"
        )
    return TranscriptionError(
        f"{input_path}: transcription failed ({type(exc).__name__}: {exc}); run again with --debug for details"
    )


def _record(job: Job, **fields: Any) -> None:
    """Record a job's end in its checkpoint; on a full disk that may fail too, and the job then stays listed as
    interrupted (resumable) rather than losing the error that ended it."""
    try:
        job.update_checkpoint(**fields)
    except OSError as exc:
        log.info("job %s: cannot record %s (%s)", job.id, fields.get("state"), exc)
