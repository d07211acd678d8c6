"""A job: one input file through every stage, stages overlapped, results checkpointed per segment.

Decoding streams into VAD on a producer thread; each segment is handed over, with its samples, as soon as
it is cut, while the model loads and transcribes on the calling thread. Windows of several queued
segments share one batched Whisper call. Every finished segment is stored in the job folder, the partial
SRT grows in order, and progress goes out as :class:`JobEvent` values through a plain callback.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.asr.catalogue import model_identity, usable
from pipeline.asr.detect import LanguageGuess, detect_with
from pipeline.asr.guard import drop_repeated_lines
from pipeline.asr.inputs import SegmentAudio
from pipeline.asr.manager import ModelBusyError, ModelManager
from pipeline.asr.model_status import aggregate_status
from pipeline.asr.models import LoadedModel, ModelCache, choose_model, placement_for
from pipeline.asr.packaged import PACKAGED
from pipeline.asr.timing import refine_words, speech_edges
from pipeline.asr.transcribe import batch_future, check_multilingual
from pipeline.core.constants import SAMPLE_RATE
from pipeline.core.errors import (
    CancelledError,
    CheckpointError,
    ClusterError,
    InputError,
    PipelineError,
    TranscriptionError,
    UsageError,
)
from pipeline.core.settings import AUTO_MODEL, AudioSettings, ModelSettings, Settings, TranscribeSettings
from pipeline.core.states import JobState
from pipeline.core.types import Segment, SegmentResult, SpeechSpan, TextSegment, Transcript
from pipeline.jobs.fingerprint import fingerprint_of
from pipeline.jobs.store import Job, JobStore, VadCache, atomic_write_text, check_free_space, file_sha256
from pipeline.media import decode as audio_mod
from pipeline.media.segments import VadMetrics, finish_metrics, segment_stream
from pipeline.media.vad import SileroVad
from pipeline.resolve import optimize, resolve
from pipeline.system.affinity import apply_cpu_affinity
from pipeline.text import cjk, writers
from pipeline.text import cues as subtitles
from pipeline.text.cue_edit import transcript_from_dict, with_cues
from pipeline.text.mux import probe_media

if TYPE_CHECKING:
    from pipeline.backends.dask import DaskBackend

log = logging.getLogger(__name__)

#: Seconds between rewrites of the partial SRT while a job runs.
PARTIAL_EVERY_S = 2.0
#: Batches of one job in flight per cluster worker: a deep enough queue for the longest-first order to even
#: out the last wave (memory on the coordinator: about this many batches' samples per worker).
INFLIGHT_PER_WORKER = 4
#: Jobs a server runs at once on a cluster (Dask shares the workers between them by priority and order).
JOBS_ON_CLUSTER = 4
#: First retry waits this long; each further one twice as long.
RETRY_BACKOFF_S = 0.5


@dataclass(frozen=True)
class JobEvent:
    """Progress of one job, sent to the ``on_event`` callback."""

    job_id: str
    input: str
    stage: str  # queued | waiting_for_model | waiting_for_workers | running | writing | done | failed | cancelled
    segments_done: int = 0
    segments_total: int | None = None
    audio_done: float = 0.0
    duration: float = 0.0
    elapsed: float = 0.0
    message: str = ""

    @property
    def rtf(self) -> float:
        """Real-time factor so far: wall seconds per second of audio transcribed."""
        return self.elapsed / self.audio_done if self.audio_done else 0.0


@dataclass
class JobResult:
    """What a finished job leaves: its transcript, the files written, and its VAD metrics."""

    job_id: str
    input_path: Path
    transcript: Transcript
    outputs: dict[str, Path]
    vad: VadMetrics
    job_dir: Path


EventCallback = Callable[[JobEvent], None]


class RollingAudio:
    """The decoded samples not yet handed to a segment; old samples are dropped as segments are cut."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self._offset = 0  # sample index of the first held sample

    def append(self, chunk: np.ndarray) -> None:
        self._chunks.append(chunk)

    def read(self, start: float, end: float) -> np.ndarray:
        """int16 samples of [start, end) seconds, which must still be held."""
        data = (
            np.concatenate(self._chunks)
            if len(self._chunks) > 1
            else (self._chunks[0] if self._chunks else np.zeros(0, np.int16))
        )
        self._chunks = [data] if data.size else []
        a = max(0, int(round(start * SAMPLE_RATE)) - self._offset)
        b = max(a, min(data.size, int(round(end * SAMPLE_RATE)) - self._offset))
        return data[a:b].copy()

    def drop_before(self, t: float) -> None:
        cut = int(round(t * SAMPLE_RATE)) - self._offset
        if cut <= 0 or not self._chunks:
            return
        data = np.concatenate(self._chunks)
        cut = min(cut, data.size)
        self._chunks = [data[cut:]] if data.size > cut else []
        self._offset += cut


@dataclass
class _Produced:
    """What the producer thread reports back besides segments."""

    vad: VadMetrics = field(default_factory=VadMetrics)
    spans: list[SpeechSpan] = field(default_factory=list)
    decode_s: float = 0.0
    vad_s: float = 0.0
    audio_seconds: float = 0.0


_DONE = object()


class Runner:
    """Runs jobs in this process with one model cache and one VAD model, shared across inputs.

    Args:
        settings: Defaults for every job; a job may pass its own.
        models: The model manager (created when omitted), so several inputs load the model once; a plain
            :class:`ModelCache` is wrapped in a manager of this runner's own.
    """

    def __init__(self, settings: Settings, models: ModelManager | ModelCache | None = None) -> None:
        self._given = settings  # untuned: a cluster plans its workers' threads itself
        self.settings = resolve(settings)[0]
        # The manager owns the one inference thread that loads the model and runs every inference call:
        # CTranslate2 on CPU ran 3.5x slower when a model loaded on one thread was used from another
        # (measured: 5.7 s vs 20.6 s on manifesto).
        self._owns_models = not isinstance(models, ModelManager)
        self.models = (
            models
            if isinstance(models, ModelManager)
            else ModelManager(self.settings.model, self.settings.models, cache=models)
        )
        self.affinity = apply_cpu_affinity(settings.cluster.cpu_affinity, placement_for(settings.model).device)
        for job_id in JobStore(self.settings.jobs.jobs_dir).expire(self.settings.jobs.expire_days):
            log.warning("removed job %s: unfinished for more than %g days", job_id, self.settings.jobs.expire_days)
        self._vad: SileroVad | None = None
        self._active = 0  # jobs running now, for cluster_status
        self._use_cluster = use_cluster(self.settings)
        self._backend: DaskBackend | None = None
        self._backend_lock = threading.Lock()
        self._backend_error: ClusterError | None = None

    @property
    def on_cluster(self) -> bool:
        """Whether jobs run on a Dask cluster (False: in this process)."""
        return self._use_cluster

    @property
    def job_slots(self) -> int:
        """Jobs worth running at once: one in-process (one inference thread); on a cluster, enough for
        several jobs to share the workers (each keeps only a few batches in flight)."""
        return JOBS_ON_CLUSTER if self._use_cluster else 1

    def start(self) -> None:
        """Get ready in the background: start or reach the cluster (whose workers preload the model), or
        preload the model here. Jobs may be submitted at once; they wait for what they need."""
        if self._use_cluster:
            threading.Thread(target=self._start_backend, name="cluster-start", daemon=True).start()
            return
        s = self.settings
        language = s.transcribe.language
        if s.model.name == AUTO_MODEL and language not in (None, "en"):
            # ``auto`` for a known other language: its multilingual model, not the English default.
            self.models.request(self._pick_model(s, language, None)[0])
            return
        self.models.preload()
        if s.model.name == AUTO_MODEL and language is None and s.models.max_cached >= 2:
            # The language will be detected on the multilingual base: its load queues behind tiny.en's.
            self.models.request(self._detection_model(s))

    def _start_backend(self) -> None:
        try:
            self.backend()
        except Exception:  # noqa: BLE001 - the error surfaces again, as one line, on the first job
            log.debug("cluster start failed", exc_info=True)

    def backend(self) -> DaskBackend | None:
        """The cluster jobs run on, started or reached on first use; ``None`` when jobs run in-process.

        Raises:
            ClusterError: The scheduler is unreachable or the local cluster cannot start (unless the
                settings allow falling back to in-process, which is then logged as a warning).
        """
        if not self._use_cluster:
            return None
        with self._backend_lock:
            if self._backend is not None:
                return self._backend
            if self._backend_error is not None and not self.settings.cluster.fallback_local:
                raise self._backend_error
            from pipeline.backends.dask import DaskBackend

            try:
                self._backend = DaskBackend(self._given)
            except ClusterError as exc:
                if not self.settings.cluster.fallback_local:
                    self._backend_error = exc
                    raise
                log.warning("%s; running jobs in this process instead", exc)
                self._use_cluster = False
                return None
            return self._backend

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
        backend = self._ready_backend()
        if backend is None:
            self.models.load(name)
            return self.model_status()
        answers = backend.load_model(name)
        busy = [a for a in answers.values() if not a.get("ok")]
        status = self.model_status()
        if busy and len(busy) == len(answers):
            raise ModelBusyError(busy[0].get("error") or "a model is still loading", status)
        return status

    def model_status(self) -> dict[str, Any]:
        """The app-level model status over the workers (in-process: one, this process)."""
        if not self._use_cluster:
            return aggregate_status({self.models.name: self.models.status()})
        backend = self._ready_backend()
        return aggregate_status(backend.model_statuses() if backend is not None else {})

    def _ready_backend(self) -> DaskBackend | None:
        """The backend when it is up (never blocks on a cluster that is still starting)."""
        return self._backend if self._use_cluster else None

    def _vad_model(self, settings: Settings) -> SileroVad | None:
        if not settings.vad.enabled:
            return None
        if self._vad is None:
            try:
                self._vad = SileroVad()
            except Exception as exc:  # noqa: BLE001 - VAD failure falls back to fixed cuts
                log.warning("silero-vad could not be loaded (%s); cutting at fixed lengths", exc)
                return None
        return self._vad

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

        Integrity first: the folder's format, the input's hash (when the input is still needed) and the
        settings fingerprint must match; stored results whose checksum fails are recomputed.

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
        meta = job.read_job()
        s = Settings.from_dict(meta.get("settings") or {}, jobs_dir=job.dir.parent)
        # Finished segments made under other settings, model files or code are transcribed again.
        note = job.match_settings(fingerprint_of(s))
        if note:
            log.warning("%s", note)
        meta = job.read_job()  # a changed audio or VAD part drops the stored segment plan
        input_path = Path(meta["input_path"])
        started = time.monotonic()
        stop = _Stop(cancel)
        emit = _Emitter(job.id, input_path, float(meta.get("duration") or 0.0), started, on_event)
        self._active += 1
        try:
            # A fresh job's input was hashed a moment ago by create_job.
            source = input_path if fresh else self._audio_source(job, meta, input_path)
            done = job.load_results()
            return self._run(job, input_path, source, s, meta, done, emit, stop, started)
        except CancelledError:
            _record(job, state=JobState.CANCELLED)
            emit(JobState.CANCELLED, message="cancelled")
            raise
        except PipelineError as exc:
            _record(job, state=JobState.FAILED, error=str(exc))
            emit(JobState.FAILED, message=str(exc))
            raise
        except Exception as exc:
            # A fault below us (CTranslate2, the disk): one clear line for the user, the details in the log.
            log.debug("job %s failed", job.id, exc_info=True)
            if disk_full(exc):
                error: PipelineError = CheckpointError(
                    f"{job.dir.parent}: the disk is full ({getattr(exc, 'strerror', None) or exc}); free some space, "
                    f"then resume the job with `video2srt --resume {job.id}`: its finished segments are kept"
                )
            else:
                error = TranscriptionError(
                    f"{input_path}: transcription failed ({type(exc).__name__}: {exc}); "
                    "run again with --debug for details"
                )
            _record(job, state=JobState.FAILED, error=str(error))
            emit(JobState.FAILED, message=str(error))
            raise error from exc
        finally:
            self._active -= 1
            # The producer, if still running, ends at its next step. A job that fails early (its model cannot
            # be had) must not leave it decoding while the process exits: PyAV and onnxruntime threads torn
            # down mid-call crashed the interpreter's exit.
            stop.stop(join_s=30.0)

    @staticmethod
    def _audio_source(job: Job, meta: dict, input_path: Path) -> Path:
        """Where a (resumed) job reads its audio: its own complete audio.wav, else the original input.

        The input is referenced, not copied. Whenever it is still there its hash must match; when it is
        gone, a job whose audio.wav was complete carries on from that, and any other job is refused.
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

    def _run(
        self,
        job: Job,
        input_path: Path,
        source: Path,
        s: Settings,
        meta: dict,
        done: dict[int, SegmentResult],
        emit: _Emitter,
        cancel: _Stop,
        started: float,
    ) -> JobResult:
        # Bounded: decoding runs far ahead of transcription, and unbounded it would hold a whole
        # two-hour file's samples in memory. Two batches' worth keeps the model fed.
        q: queue.Queue[object] = queue.Queue(maxsize=max(4, 2 * s.transcribe.batch_size))
        produced = _Produced()
        vad_cache = VadCache(s.jobs.jobs_dir)
        vad_key = vad_cache.key(meta["input_sha256"], dataclasses.asdict(s.audio), dataclasses.asdict(s.vad))
        stored_plan = meta.get("segment_plan")
        if stored_plan is not None:
            plan_in: list[Segment] | None = [Segment.from_dict(d) for d in stored_plan]
        else:
            plan_in = vad_cache.get(vad_key) if s.vad.enabled else None
        write_wav = source != job.audio_path
        producer = threading.Thread(
            target=self._produce,
            args=(job, source, s, q, produced, cancel, plan_in, write_wav, stored_plan is None),
            name=f"decode-{job.id}",
            daemon=True,
        )
        producer.start()
        cancel.producer = producer
        t = time.monotonic()
        # Decoding and VAD go on while the cluster starts (or is reached) and the model loads.
        backend = self.backend()
        try:
            state = job.read_checkpoint()
        except CheckpointError:
            state = {}  # killed before its first checkpoint: nothing was decided yet
        language = s.transcribe.language
        if done and language is None:
            language = next(iter(done.values())).language
        if language is None and state.get("language"):
            language = state["language"]  # detected before an interruption: a resume keeps it
        guess: LanguageGuess | None = None
        if language is not None and state.get("language_probability") is not None:
            guess = LanguageGuess(
                language, float(state["language_probability"]), int(state.get("language_windows") or 0)
            )
        # ``auto``: the model follows the language. Unknown yet, the multilingual base detects it first (its
        # load overlaps decoding and VAD); the job's own model is picked once the language is known.
        job_model, model_reason = self._pick_model(s, language, state.get("model_name"), state.get("model_identity"))
        detect_model = self._detection_model(s) if language is None else None
        wanted = detect_model or job_model
        model_future = self.models.request(resolve(s.replace(model=wanted))[0].model) if backend is None else None
        model_name = job_model.name
        if model_future is not None:
            if not model_future.done():
                job.update_checkpoint(state=JobState.WAITING_FOR_MODEL)
                waiting_for = resolve(s.replace(model=wanted))[0].model
                emit(
                    JobState.WAITING_FOR_MODEL, message=f"waiting for the model: {self.models.message_for(waiting_for)}"
                )
            loaded = model_future.result()
            model_name = loaded.spec.name
            translating = s.transcribe.task == "translate" or s.transcribe.translate
            if translating and language != "en" and s.model.name != AUTO_MODEL:
                check_multilingual(loaded)  # ``auto`` picks a multilingual model for any language but English
        else:
            assert backend is not None

            def waiting(message: str) -> None:
                job.update_checkpoint(state=JobState.WAITING_FOR_MODEL)
                emit("waiting_for_workers", message=message)

            backend.wait_for_workers(s.cluster.worker_timeout_s, waiting)
        model_wait = time.monotonic() - t
        job.update_checkpoint(state=JobState.RUNNING, error=None)
        emit(JobState.RUNNING, len(done))

        results: dict[int, SegmentResult] = dict(done)
        plan: list[Segment] = []
        calls: list[dict[str, Any]] = []  # each Whisper call's figures (SegmentResult.stats)
        split_parts: dict[int, list[SegmentResult | None]] = {}  # segments split over calls: their parts so far
        clock = _Clock()
        flight = _Flight(self, backend, job, s, cancel)
        flight.model = job_model
        source_q = _Lookahead(q)
        first_result_at: float | None = None
        last_partial, partial_every = 0.0, PARTIAL_EVERY_S
        shown = 0  # segments in the partial SRT: it holds the finished prefix, which results complete in order

        def prefix() -> int:
            i = shown  # the prefix only grows
            while i in results:
                i += 1
            return i

        def write_partial() -> None:
            nonlocal shown
            self._write_partial(job, results, s, produced.spans, language)
            shown = prefix()

        def collect(wait: bool = True) -> None:
            nonlocal first_result_at, last_partial, partial_every, model_name
            got = flight.collect(wait)
            if got is None:
                return
            batch_results, name, items = got
            model_name = name
            calls.extend(r.stats for r in batch_results if r.stats)
            for r in _join_parts(batch_results, items, split_parts):
                if r.index not in done:
                    job.save_result(r)
                    results[r.index] = r
            if first_result_at is None:
                first_result_at = time.monotonic() - started
            job.update_checkpoint(segments_done=len(results))
            if prefix() > shown and time.monotonic() - last_partial >= partial_every:
                t = time.monotonic()
                write_partial()
                last_partial = time.monotonic()
                # Rebuilding grows with the transcript: never spend more than ~5% of the time on it.
                partial_every = max(PARTIAL_EVERY_S, 20 * (last_partial - t))
            emit(JobState.RUNNING, len(results), None, _contiguous_end(results, plan))

        finished: object = False
        try:
            # While the next batch gathers, finished ones are saved at once: the first subtitles show early.
            for batch, ended in _batches(source_q, s.transcribe.batch_size, cancel, lambda: collect(wait=False)):
                finished = ended  # the producer's exception, if it failed, is raised once the batches are in
                if cancel.is_set():
                    raise CancelledError(f"{input_path}: cancelled")
                plan.extend(item.segment for item in batch if item.part == 0)
                if all(item.segment.index in done for item in batch):
                    continue
                # A group that is partly done (a kill between two result writes) runs whole again, so every
                # segment is computed beside the same neighbours as in an uninterrupted run; stored results
                # are kept and their files are not touched.
                if language is None and guess is None:
                    # The first speech window decides when it is clear; otherwise up to DETECT_WINDOWS windows,
                    # spread over the ones decoded so far, vote (one encoder pass each: English stays cheap).
                    first = spread([w for item in batch for w in item.windows], 1)
                    guess = flight.detect(first, detect_model or job_model)
                    if guess.probability < CLEAR_LANGUAGE:
                        windows = [w for item in batch for w in item.windows] + source_q.more_windows(
                            LOOKAHEAD_WINDOWS, cancel
                        )
                        more = [w for w in spread(windows, DETECT_WINDOWS) if not any(w is f for f in first)]
                        guess = guess.combine(
                            flight.detect(more[: DETECT_WINDOWS - len(first)], detect_model or job_model)
                        )
                    language = guess.language
                    if guess.warning and guess.language is not None:
                        log.warning("%s: %s", input_path.name, guess.warning)
                    else:
                        log.info("%s: language %s (p=%.2f)", input_path.name, language, guess.probability)
                    job_model, model_reason = self._pick_model(s, language, None)
                    flight.model = job_model
                    model_name = job_model.name
                    job.update_checkpoint(
                        language=language,
                        language_probability=guess.probability,
                        language_windows=guess.windows,
                        language_warning=guess.warning,
                    )
                if "model_name" not in state:
                    # The model this job runs on, by name and weights: a resume must find the same.
                    state["model_name"] = job_model.name
                    job.update_checkpoint(
                        model_name=job_model.name,
                        model_identity=model_identity(job_model.name),
                        model_reason=model_reason,
                    )
                if language is None:
                    language = "en"  # windows too short to hear anything: decoded as the model's default
                clock.start()
                flight.launch(batch, language)
                while flight.full():
                    collect()
            while flight.busy():
                collect()
        except BaseException:
            # What finished before the failure stays readable in the partial SRT, however recently it was written.
            if prefix() > shown:
                try:
                    write_partial()
                except OSError as exc:
                    log.info("job %s: cannot update partial.srt (%s)", job.id, exc)
            raise
        finally:
            flight.cancel()
        transcribe_s = clock.stop()
        producer.join()
        if isinstance(finished, BaseException):
            raise finished
        if produced.vad.mode == "silero":
            vad_cache.put(vad_key, plan)
        total = len(plan)
        job.update_checkpoint(segments_total=total, segments_done=len(results))

        emit("writing", len(results), total, produced.audio_seconds)
        t = time.monotonic()
        text_segments = [seg for i in sorted(results) for seg in results[i].segments]
        # Lines repeated across windows (each window already removed its own), then word times refined
        # with the speech edges (pipeline.asr.timing).
        text_segments = [seg for seg in drop_repeated_lines(text_segments, s.guard)[0] if seg is not None]
        speech = speech_edges(produced.spans, s.vad.speech_pad_ms / 1000, produced.audio_seconds)
        text_segments = refine_words(text_segments, speech, s.timing)
        task = s.transcribe.task
        written_language = "en" if task == "translate" else language  # None: no speech, no language forced
        if s.transcribe.align != "off" and text_segments:
            text_segments = self._align(job, source, text_segments, written_language or "en", s)
        extra: dict[str, Any] = {}
        script, note = cjk.script_for(s.subtitles.chinese, written_language)
        if note:
            log.warning("%s: %s", input_path.name, note)
            extra["chinese_note"] = note
        if cjk.is_chinese(written_language):
            # Tokens joined into words and the script converted before cues: lines break between words only,
            # and their lengths are the lengths shown.
            text_segments = cjk.prepare(text_segments, script)
            extra["chinese"] = script or "keep"
        cues = subtitles.build_cues(text_segments, s.subtitles, produced.spans)
        translation: Transcript | None = None
        if s.transcribe.translate and task == "transcribe":
            translation = self._translation(results, speech, s, produced, model_name, written_language)
        subtitles_s = time.monotonic() - t
        if guess is None and language is None:
            guess = LanguageGuess(None, 0.0, 0)  # no speech at all: no language is forced
            log.info("%s: %s", input_path.name, guess.warning)  # said in the JSON and the job status
            job.update_checkpoint(language_warning=guess.warning)
        elif s.transcribe.language is not None and "language" not in state:
            job.update_checkpoint(language=language)
        if produced.vad.fallback:
            extra["vad_fallback"] = produced.vad.fallback
        recovered = [entry for i in sorted(results) for entry in results[i].recovered]
        if recovered:
            extra["recovered"] = recovered
        transcript = Transcript(
            language=written_language,
            duration=round(produced.audio_seconds, 3),
            model=model_name,
            segments=text_segments,
            cues=cues,
            language_probability=guess.probability if guess is not None and guess.language else None,
            language_warning=guess.warning if guess is not None else None,
            model_reason=model_reason,
            task=task,
            extra=extra,
        )
        finish_metrics(produced.vad, plan)
        transcript.timings = {
            "decode": round(produced.decode_s, 3),
            "vad": round(produced.vad_s, 3),
            "model_wait": round(model_wait, 3),
            "transcribe": round(transcribe_s, 3),
            "subtitles": round(subtitles_s, 3),
            "first_result": round(first_result_at or 0.0, 3),
        }
        transcript.timings.update(call_figures(calls, lanes=backend is None))
        # The JSON output holds the timings, so its own writing comes after "total" (and goes to the checkpoint).
        transcript.timings["total"] = round(time.monotonic() - started, 3)
        t = time.monotonic()
        outputs = self._write_outputs(job, input_path, transcript, s, translation)
        transcript.timings["write"] = round(time.monotonic() - t, 3)
        job.update_checkpoint(
            state=JobState.DONE, segments_done=total, timings=transcript.timings, vad=produced.vad.to_dict()
        )
        if not s.jobs.keep_checkpoints:
            job.cleanup_intermediates()
        emit(JobState.DONE, total, total, produced.audio_seconds)
        return JobResult(job.id, input_path, transcript, outputs, produced.vad, job.dir)

    def _pick_model(
        self, s: Settings, language: str | None, recorded: str | None, recorded_identity: str | None = None
    ) -> tuple[ModelSettings, str]:
        """The job's model and why: as asked; for ``auto``, the one recorded when the job started (a resume
        gives the same output), else :func:`pipeline.asr.models.choose_model` for ``language``."""
        if s.model.name != AUTO_MODEL:
            return s.model, f"{s.model.name} as requested"
        if recorded:
            if recorded_identity and model_identity(recorded) != recorded_identity:
                raise CheckpointError(
                    f"the model {recorded} this job started with has changed since ({recorded_identity}); "
                    "start the job again"
                )
            return dataclasses.replace(s.model, name=recorded), f"{recorded}: chosen when the job started"
        resolved, reasons = resolve(s, language=language, pick_model=True)
        return dataclasses.replace(s.model, name=resolved.model.name), reasons["model.name"]

    @staticmethod
    def _detection_model(s: Settings) -> ModelSettings:
        """The model that detects the language: the job's own when named; for ``auto`` the multilingual base."""
        if s.model.name != AUTO_MODEL:
            return s.model
        name = PACKAGED if usable(PACKAGED) else choose_model("xx", placement_for(s.model).device)[0]
        return dataclasses.replace(s.model, name=name)

    @staticmethod
    def _translation(
        results: dict[int, SegmentResult],
        speech: list[SpeechSpan],
        s: Settings,
        produced: _Produced,
        model_name: str,
        language: str | None,
    ) -> Transcript | None:
        """The English translation decoded beside the transcription, as a transcript of its own."""
        if language in (None, "en"):
            log.warning("--translate: the speech is English already (or there is none); no translation written")
            return None
        segments = [seg for i in sorted(results) for seg in results[i].translation]
        segments = [seg for seg in drop_repeated_lines(segments, s.guard)[0] if seg is not None]
        segments = refine_words(segments, speech, s.timing)
        cues = subtitles.build_cues(segments, s.subtitles, produced.spans)
        return Transcript(
            language="en",
            duration=round(produced.audio_seconds, 3),
            model=model_name,
            segments=segments,
            cues=cues,
            task="translate",
        )

    @staticmethod
    def _align(job: Job, source: Path, segments: list[TextSegment], language: str, s: Settings) -> list[TextSegment]:
        """Optional WhisperX alignment (``--align``); its note goes to the log, the transcript is never lost."""
        from pipeline.asr.align import align_segments, find_model

        name, note = find_model(language, s.transcribe.align)
        if name is None:
            (log.info if s.transcribe.align == "auto" else log.warning)("%s", note)
            return segments
        wav = job.audio_path if job.audio_path.exists() else source
        with audio_mod.MemoryMappedAudio(wav) as audio:
            samples = audio.read(0.0, None)
        aligned, note = align_segments(segments, samples, language, name, placement_for(s.model).device)
        job.update_checkpoint(alignment=note)
        return aligned

    def _produce(
        self,
        job: Job,
        source: Path,
        s: Settings,
        q: queue.Queue[object],
        produced: _Produced,
        cancel: _Stop,
        plan: list[Segment] | None,
        write_wav: bool,
        save_plan: bool,
    ) -> None:
        """Decode → audio.wav + VAD → segments with their samples, onto ``q``. Runs on its own thread."""
        writer = job.audio_writer(s.audio.sample_rate) if write_wav else None
        rolling = RollingAudio()
        ok = False
        try:
            started = time.monotonic()
            decode_s = 0.0

            def tee() -> Iterator[np.ndarray]:
                nonlocal decode_s
                # The job's own audio.wav is already 16 kHz mono: no track choice applies to it.
                chunks = audio_mod.decode(source, s.audio if write_wav else AudioSettings())
                while True:
                    if cancel.is_set():
                        return
                    t = time.monotonic()
                    chunk = next(chunks, None)
                    decode_s += time.monotonic() - t
                    if chunk is None:
                        return
                    if writer is not None:
                        writer.write(chunk)
                    rolling.append(chunk)
                    produced.audio_seconds += chunk.size / SAMPLE_RATE
                    yield chunk

            vad_model = None if plan is not None else self._vad_model(s)
            cut: list[Segment] = []
            waited = 0.0  # blocked on the full queue: transcription is behind, not VAD
            for seg in segment_stream(tee(), s.vad, vad_model, produced.vad, plan):
                produced.spans.extend(seg.spans)
                cut.append(seg)
                item = SegmentAudio.read(seg, rolling.read)
                t = time.monotonic()
                if not _put(q, item, cancel):
                    return
                waited += time.monotonic() - t
                rolling.drop_before(seg.end)
            if cancel.is_set():
                raise CancelledError(f"{source}: cancelled")
            produced.decode_s = decode_s
            produced.vad_s = max(0.0, time.monotonic() - started - decode_s - waited)
            if writer is not None:
                writer.close(keep=True)
                writer = None
            # The exact cuts, saved as soon as they are known: a resume cuts the same way.
            if save_plan:
                job.save_plan(cut)
            ok = True
            _put(q, _DONE, cancel)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            # A full disk (writing audio.wav) is not the input's fault: the consumer says what it is.
            passed = isinstance(exc, PipelineError) or disk_full(exc)
            _put(q, exc if passed else InputError(f"{source}: decoding failed: {exc}"), cancel)
            if not isinstance(exc, PipelineError):
                log.debug("producer failed", exc_info=True)
        finally:
            if writer is not None:
                writer.close(keep=ok)

    def _write_partial(
        self,
        job: Job,
        results: dict[int, SegmentResult],
        s: Settings,
        spans: list[SpeechSpan],
        language: str | None = None,
    ) -> None:
        prefix: list[TextSegment] = []
        i = 0
        while i in results:
            prefix.extend(results[i].segments)
            i += 1
        if s.transcribe.task == "transcribe" and cjk.is_chinese(language):
            prefix = cjk.prepare(prefix, cjk.script_for(s.subtitles.chinese, language)[0])
        cues = subtitles.build_cues(prefix, s.subtitles, spans)
        partial = Transcript("", 0.0, "", prefix, cues)
        job.write_output("partial.srt", writers.render(partial, "srt"))

    def _write_outputs(
        self, job: Job, input_path: Path, transcript: Transcript, s: Settings, translation: Transcript | None = None
    ) -> dict[str, Path]:
        """Write the result files; returns them by key: ``srt`` ..., ``en.srt`` ... (translation) and
        ``bilingual.srt`` ... (original above English).

        File names are ``<stem>.<fmt>``, or ``<stem>.<lang>.<fmt>`` with the language named
        (``OutputSettings.name_language``; by default when a translation is written); the bilingual file is
        ``<stem>.<lang>-en.<fmt>``.
        """
        out_dir = s.output.output_dir or input_path.parent
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PipelineError(f"cannot create output folder {out_dir}: {exc.strerror or exc}") from exc
        several = translation is not None
        named = s.output.name_language if s.output.name_language is not None else several
        stem = f"{input_path.stem}.{transcript.language}" if named and transcript.language else input_path.stem
        if job.edited():
            # A resume of a reviewed job never undoes the review: the edited cues are what gets written.
            transcript = with_cues(transcript, transcript_from_dict(job.read_transcript()).cues)
        video_size = None
        if "ass" in s.output.formats:
            try:
                info = probe_media(input_path)
                video_size = (info.width, info.height) if info.has_video else None
            except PipelineError:
                video_size = None  # the input is gone (a resume from audio.wav): a 16:9 canvas
        files: list[tuple[str, str, str, Path | None]] = []  # (key, job file, text, target or None)
        # The job folder always keeps the JSON: the transcript with its words, which review edits start from.
        for fmt in (*s.output.formats, *(() if "json" in s.output.formats else ("json",))):
            target = out_dir / f"{stem}.{fmt}" if fmt in s.output.formats else None
            files.append((fmt, f"result.{fmt}", writers.render(transcript, fmt, s.export, video_size), target))
        if translation is not None:
            en_stem = f"{input_path.stem}.en"
            for fmt in s.output.formats:
                text = writers.render(translation, fmt, s.export, video_size)
                files.append((f"en.{fmt}", f"result.en.{fmt}", text, out_dir / f"{en_stem}.{fmt}"))
            if s.output.bilingual:
                both = subtitles.bilingual(transcript, translation, s.subtitles)
                for fmt in s.output.formats:
                    if fmt == "json":
                        continue  # the two JSON files hold both texts with their times
                    target = out_dir / f"{input_path.stem}.{transcript.language}-en.{fmt}"
                    text = writers.render(both, fmt, s.export, video_size)
                    files.append((f"bilingual.{fmt}", f"result.bilingual.{fmt}", text, target))
        outputs: dict[str, Path] = {}
        for key, name, text, target in files:
            job.write_output(name, text)
            if target is None:
                continue
            try:
                atomic_write_text(target, text)
            except OSError as exc:
                raise PipelineError(f"cannot write {target}: {exc.strerror or exc}; check the folder") from exc
            outputs[key] = target
        (job.output_dir / "partial.srt").unlink(missing_ok=True)
        return outputs

    def cluster_status(self) -> dict[str, Any]:
        """Where jobs run, for the UI and the API.

        Returns:
            ``{"mode", "scheduler", "dashboard", "workers": [{"name", "address", "state", "nthreads",
            "resources", "models", ...}]}``; ``mode`` is ``in-process``, ``local``, ``remote`` or
            ``starting`` (a cluster not up yet). Cluster workers also report ``model_state``, ``tasks``,
            ``cpu_percent``, ``memory_mb`` and ``usage`` (:func:`pipeline.system.monitor.sample_usage`).
        """
        if self._use_cluster:
            backend = self._ready_backend()
            if backend is None:
                error = self._backend_error
                return {
                    "mode": "starting" if error is None else "unreachable",
                    "scheduler": self.settings.cluster.scheduler,
                    "dashboard": None,
                    "workers": [],
                    "error": str(error) if error else None,
                }
            return backend.status()
        return {
            "mode": "in-process",
            "scheduler": None,
            "dashboard": None,
            "workers": [
                {
                    "name": "in-process",
                    "address": "local",
                    "state": "running",
                    "nthreads": placement_for(self.settings.model).cpu_threads or 0,
                    "resources": {},
                    "models": self.models.names(),
                    "jobs": self._active,
                }
            ],
        }

    def close(self) -> None:
        """Stop the model manager (when this runner made it) and the cluster (when this runner started it)."""
        if self._owns_models:
            self.models.close()
        with self._backend_lock:
            if self._backend is not None:
                self._backend.close()
                self._backend = None


#: Speech windows the language is detected on at most (each one encoder pass of the detecting model).
DETECT_WINDOWS = 3
#: A first window this sure decides alone.
CLEAR_LANGUAGE = 0.9
#: Windows of the next segments looked at to spread the detection windows (the first ~3 minutes of speech):
#: transcription streams, so the end of a long file is not decoded yet when its language must be known.
LOOKAHEAD_WINDOWS = 8


def spread(windows: list[np.ndarray], count: int) -> list[np.ndarray]:
    """Up to ``count`` of the windows with speech, spread evenly from the first to the last."""
    speech = [w for w in windows if w.size >= SAMPLE_RATE // 10]
    if len(speech) <= count:
        return speech
    if count <= 1:
        return speech[:count]
    step = (len(speech) - 1) / (count - 1)
    return [speech[round(i * step)] for i in range(count)]


class _Lookahead:
    """The producer's queue with a look ahead: language detection peeks at the windows of the next segments
    without taking them out of their order."""

    def __init__(self, q: queue.Queue[object]) -> None:
        self._q = q
        self._held: deque[object] = deque()

    def get(self, timeout: float | None = None) -> object:
        if self._held:
            return self._held.popleft()
        return self._q.get(timeout=timeout)

    def more_windows(self, count: int, stop: _Stop) -> list[np.ndarray]:
        """The windows of the next queued segments, until ``count`` windows or the end of the input."""
        out: list[np.ndarray] = [w for item in self._held if isinstance(item, SegmentAudio) for w in item.windows]
        if not count:
            return out
        while len(out) < count and not stop.is_set():
            if self._held and not isinstance(self._held[-1], SegmentAudio):
                break  # the end (or the producer's error) is already held
            try:
                item = self._q.get(timeout=0.1)
            except queue.Empty:
                continue
            self._held.append(item)
            if not isinstance(item, SegmentAudio):
                break
            out.extend(item.windows)
        return out


def use_cluster(settings: Settings) -> bool:
    """Whether jobs go to Dask: a scheduler or a worker count was given, or the optimizer plans several
    workers (one per GPU, or several CPU workers) for this machine. One planned worker runs in-process:
    measured on a 2-core CPU, a one-worker cluster only adds process start-up to the same work."""
    cs = settings.cluster
    if cs.scheduler:
        return True
    if cs.workers is not None:
        return cs.workers > 0
    if cs.adaptive is not None:
        return True
    return optimize(settings).concurrency > 1


class _Emitter:
    def __init__(
        self, job_id: str, input_path: Path, duration: float, started: float, cb: EventCallback | None
    ) -> None:
        self.job_id, self.input, self.duration, self.started, self.cb = job_id, str(input_path), duration, started, cb

    def __call__(
        self, stage: str, done: int = 0, total: int | None = None, audio_done: float = 0.0, message: str = ""
    ) -> None:
        if self.cb is None:
            return
        self.cb(
            JobEvent(
                self.job_id,
                self.input,
                stage,
                done,
                total,
                audio_done,
                self.duration,
                time.monotonic() - self.started,
                message,
            )
        )


def _put(q: queue.Queue[object], item: object, stop: _Stop) -> bool:
    """Put with back-pressure, giving up when the job stops; True when the item went in."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


class _Stop:
    """Set when the caller cancels or the job ends for any reason; the producer thread watches it."""

    def __init__(self, cancel: threading.Event | None) -> None:
        self._cancel = cancel
        self._stopped = threading.Event()
        #: The job's producer thread, joined when the job ends.
        self.producer: threading.Thread | None = None

    def stop(self, join_s: float = 0.0) -> None:
        """Ask the producer to stop; with ``join_s``, wait that long for it to end."""
        self._stopped.set()
        if join_s and self.producer is not None and self.producer is not threading.current_thread():
            self.producer.join(join_s)

    def is_set(self) -> bool:
        return self._stopped.is_set() or (self._cancel is not None and self._cancel.is_set())


def _batches(
    q: queue.Queue[object] | _Lookahead, batch_size: int, stop: _Stop, idle: Callable[[], None] | None = None
) -> Iterator[tuple[list[SegmentAudio], object]]:
    """Group the queued segments' windows so each Whisper call gets ``batch_size`` windows.

    Segments are split into their windows (:meth:`SegmentAudio.split`), so a call is a small unit of
    equal size whatever the segments' lengths: lanes that pull the next call as they free up then end
    within about one call of each other. The first group is the first window alone, so the first
    subtitles appear after one short call rather than a full batch (figures in docs/benchmarks.md). The
    groups depend only on the segment plan, never on timing: batched word alignment is not exactly independent of what shares the batch, so the
    same grouping is what makes a resumed (or distributed) job give byte-identical output. Yields
    (batch, finished) where finished is False, True (producer done, nothing left) or the producer's
    exception. ``idle`` is called while waiting for the producer.
    """
    finished: object = False
    first = True
    parts: deque[SegmentAudio] = deque()
    while True:
        batch: list[SegmentAudio] = []
        while len(batch) < (1 if first else batch_size):
            if parts:
                batch.append(parts.popleft())
                continue
            if finished is not False:
                break
            try:
                item = q.get(timeout=0.1)
            except queue.Empty:
                # A stopped producer may never put anything again: do not wait for it.
                if stop.is_set():
                    finished = CancelledError("cancelled")
                    break
                if idle is not None:
                    idle()
                continue
            if item is _DONE:
                finished = True
                break
            if isinstance(item, BaseException):
                finished = item
                break
            assert isinstance(item, SegmentAudio)
            parts.extend(item.split())
        first = first and not batch
        if isinstance(finished, BaseException):
            parts.clear()
        yield batch, (False if parts else finished)
        if finished is not False and not parts:
            return


class _Clock:
    """Wall time from the first batch sent to the last result in: the transcription stage."""

    def __init__(self) -> None:
        self._t0: float | None = None

    def start(self) -> None:
        if self._t0 is None:
            self._t0 = time.monotonic()

    def stop(self) -> float:
        return 0.0 if self._t0 is None else time.monotonic() - self._t0


@dataclass
class _Batch:
    items: list[SegmentAudio]
    language: str
    settings: TranscribeSettings
    attempt: int = 0
    future: Future | None = None


class _Flight:
    """The batches of one job in flight, in-process or on a cluster, with retries and back-pressure.

    At most ``max_inflight`` batches are out at once: enough to keep every worker busy while results are
    saved, few enough that a second job's batches interleave (fair sharing) and memory stays bounded.
    """

    def __init__(self, runner: Runner, backend: DaskBackend | None, job: Job, s: Settings, stop: _Stop) -> None:
        self.runner, self.backend, self.job, self.s, self.stop = runner, backend, job, s, stop
        if backend is not None:
            self.max_inflight = s.cluster.max_inflight or max(2, INFLIGHT_PER_WORKER * backend.alive())
        else:
            # One batch more than the model has replicas, so a freed replica never waits for the next batch.
            self.max_inflight = s.cluster.max_inflight or max(2, placement_for(s.model).replicas + 1)
        #: The job's model (for ``auto``: the one picked for its language).
        self.model = s.model
        self._out: dict[int, _Batch] = {}
        self._settled: queue.Queue[_Batch] = queue.Queue()
        self._no_workers_since: float | None = None
        self._failure: PipelineError | None = None

    def full(self) -> bool:
        # After a failure nothing more is sent: the caller collects until the failure is raised.
        return len(self._out) >= self.max_inflight or self._failure is not None

    def busy(self) -> bool:
        return bool(self._out) or self._failure is not None

    def detect(self, windows: list[np.ndarray], model: ModelSettings) -> LanguageGuess:
        if self.backend is not None:
            return self.backend.detect_language(windows, model)
        return detect_with(self.runner.models, windows, resolve(self.s.replace(model=model))[0].model)

    def launch(self, items: list[SegmentAudio], language: str) -> None:
        self._send(_Batch(items, language, self.s.transcribe))

    def _send(self, batch: _Batch) -> None:
        if self.backend is not None:
            # Among a job's queued batches the longest starts first (longest-processing-time order), so the
            # last wave ends evenly; the job's first batch goes before all (its subtitles show first). The
            # fraction never outranks a higher job priority. Measured with the simulated transcriber on 16
            # workers, 2-hour input: 88% efficiency in submission order with 2 batches per worker in flight,
            # 94% in this order with 4.
            audio_s = sum(w.size for item in batch.items for w in item.windows) / SAMPLE_RATE
            first = batch.items[0].segment.index == 0
            priority = self.s.jobs.priority + (0.95 if first else min(0.9, audio_s / 1000.0))
            batch.future = self.backend.submit(
                batch.items, batch.settings, batch.language, self.model, priority=priority, guard=self.s.guard
            )
        else:
            batch.future = batch_future(
                self.runner.models, batch.items, batch.settings, batch.language, self.model, self.s.guard
            )
        self._out[id(batch)] = batch
        batch.future.add_done_callback(lambda _f: self._settled.put(batch))

    def collect(self, wait: bool = True) -> tuple[list[SegmentResult], str, list[SegmentAudio]] | None:
        """Wait for the next finished batch and return its results, model name and items (None when nothing is out).

        With ``wait`` false, return None at once when no batch has finished yet.

        Raises:
            CancelledError: The job was cancelled.
            TranscriptionError: A batch failed for good (not transient, or out of retries); raised once the
                batches still in flight have settled, so that their results are returned first and saved.
            ClusterError: No worker was connected for longer than the cluster's worker timeout.
        """
        while self._out:
            if self.stop.is_set():
                raise CancelledError(f"{self.job.id}: cancelled")
            try:
                batch = self._settled.get(timeout=0.2) if wait else self._settled.get_nowait()
            except queue.Empty:
                if not wait:
                    return None
                self._watch_workers()
                continue
            del self._out[id(batch)]
            assert batch.future is not None
            try:
                results, name = batch.future.result()
                return results, name, batch.items
            except Exception as exc:  # noqa: BLE001 - classified below; permanent ones are re-raised
                try:
                    self._retry(batch, exc)
                except PipelineError as failure:
                    self._failure = self._failure or failure
        if self._failure is not None:
            raise self._failure
        return None

    def _watch_workers(self) -> None:
        if self.backend is None:
            return
        if self.backend.alive():
            self._no_workers_since = None
            return
        now = time.monotonic()
        if self._no_workers_since is None:
            self._no_workers_since = now
            log.warning("%s: no Dask worker is connected; waiting for one", self.job.id)
        elif now - self._no_workers_since > self.s.cluster.worker_timeout_s:
            self.backend.wait_for_workers(0)  # raises ClusterError with the advice

    def _retry(self, batch: _Batch, exc: Exception) -> None:
        """Send ``batch`` again after a transient failure (out of memory: half the batch), else raise."""
        transient = is_transient(exc)
        batch.attempt += 1
        self.job.append_history(
            [
                {
                    "segment": item.segment.index,
                    "attempt": batch.attempt,
                    "error": f"{type(exc).__name__}: {exc}",
                    "transient": transient,
                    "time": time.time(),
                }
                for item in batch.items
            ]
        )
        if isinstance(exc, UsageError):
            raise exc  # the job asks for what the model cannot do (translation, English-only): no retry helps
        if isinstance(exc, ClusterError):
            # The cluster itself is gone (its scheduler): no retry can help, and the segments are not at fault.
            raise ClusterError(
                f"{self.job.id}: {exc}; its finished segments are kept: resume it with `video2srt --resume "
                f"{self.job.id}` once the scheduler is back, or add --workers 0 to finish it in this process"
            ) from exc
        if not transient or batch.attempt > self.s.jobs.max_retries:
            indexes = ", ".join(str(item.segment.index) for item in batch.items)
            raise TranscriptionError(
                f"{self.job.id}: segment(s) {indexes} failed"
                + (f" after {batch.attempt - 1} retries" if transient else "")
                + f": {exc}"
            ) from exc
        if _out_of_memory(exc):
            batch.settings = dataclasses.replace(batch.settings, batch_size=max(1, batch.settings.batch_size // 2))
        log.warning("segment(s) failed (%s); retry %d of %d", exc, batch.attempt, self.s.jobs.max_retries)
        time.sleep(RETRY_BACKOFF_S * 2 ** (batch.attempt - 1))
        self._send(batch)

    def cancel(self) -> None:
        """Drop what is still out (the job ended early)."""
        if not self._out:
            return
        futures = [b.future for b in self._out.values() if b.future is not None]
        if self.backend is not None:
            self.backend.cancel(futures)
        else:
            for f in futures:
                f.cancel()
        self._out.clear()


def _join_parts(
    results: list[SegmentResult], items: list[SegmentAudio], waiting: dict[int, list[SegmentResult | None]]
) -> list[SegmentResult]:
    """The whole segments among ``results``: a segment split over calls is returned once all its parts are in.

    ``waiting`` keeps the parts that came so far, by segment index.
    """
    whole: list[SegmentResult] = []
    for r, item in zip(results, items, strict=True):
        if item.parts == 1:
            whole.append(r)
            continue
        parts = waiting.setdefault(r.index, [None] * item.parts)
        parts[item.part] = r
        if any(p is None for p in parts):
            continue
        del waiting[r.index]
        got = [p for p in parts if p is not None]
        whole.append(
            SegmentResult(
                index=r.index,
                language=r.language,
                segments=tuple(seg for p in got for seg in p.segments),
                dropped=tuple(d for p in got for d in p.dropped),
                translation=tuple(seg for p in got for seg in p.translation),
                recovered=tuple(x for p in got for x in p.recovered),
            )
        )
    return whole


def call_figures(calls: list[dict[str, Any]], lanes: bool = True) -> dict[str, float]:
    """Totals over a job's Whisper calls, for its ``timings``.

    ``windows``, ``audio_fed_s`` (the windows' own audio), ``padded_s`` (what the encoder sees: 30 s a
    window), ``infer_s`` (wall time of the calls, summed over lanes), ``guard_redecodes`` and ``guard_s``,
    ``calls``, and when the calls ran on lanes in this process, ``lanes`` and ``lane_tail_s``: how long the
    last lane ran on after the first one had finished its last call (0 when the lanes end together).
    ``lanes`` false (calls on cluster workers, whose clocks differ) leaves those two out.
    """
    out: dict[str, float] = {}
    for key in ("windows", "calls", "guard_redecodes", "coverage_redecodes"):
        out[key] = int(sum(c.get(key, 0) for c in calls))
    for key in ("audio_fed_s", "padded_s", "infer_s", "guard_s"):
        out[key] = round(sum(float(c.get(key, 0.0)) for c in calls), 3)
    ends: dict[str, float] = {}
    for c in calls if lanes else ():
        if "lane" in c:
            ends[c["lane"]] = max(ends.get(c["lane"], 0.0), float(c["ended"]))
    if ends:
        out["lanes"] = len(ends)
        out["lane_tail_s"] = round(max(ends.values()) - min(ends.values()), 3)
    return out


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the file system is full (or over quota)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _record(job: Job, **fields: Any) -> None:
    """Record a job's end in its checkpoint; on a full disk that may fail too, and the job then stays listed as
    interrupted (resumable) rather than losing the error that ended it."""
    try:
        job.update_checkpoint(**fields)
    except OSError as exc:
        log.info("job %s: cannot record %s (%s)", job.id, fields.get("state"), exc)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying may help: out of memory, a lost worker, a timeout, an I/O hiccup."""
    if isinstance(exc, PipelineError):
        return exc.transient
    if isinstance(exc, (MemoryError, TimeoutError, ConnectionError, OSError)):
        return True
    return _out_of_memory(exc)


def _out_of_memory(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "cuda error" in text


def _contiguous_end(results: dict[int, SegmentResult], plan: list) -> float:
    """Audio seconds covered by the finished prefix of segments."""
    by_index = {seg.index: seg for seg in plan}
    i, end = 0, 0.0
    while i in results and i in by_index:
        end = by_index[i].end
        i += 1
    return end
