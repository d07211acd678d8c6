"""One run of a job: plan → submit → collect → assemble, with the job's state held between the steps.

Decoding streams into VAD on a producer thread (:mod:`pipeline.jobs.feed`); the segments are grouped into
calls (:mod:`pipeline.jobs.plan`) and sent to the backend (:mod:`pipeline.jobs.flight`); every finished
segment is stored in the job folder and the partial SRT grows in order; at the end the results become the
transcript and its files (:mod:`pipeline.jobs.assemble`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.asr.catalogue import model_identity
from pipeline.asr.detect import LanguageGuess
from pipeline.asr.inputs import SegmentAudio
from pipeline.backends.base import Backend
from pipeline.core.errors import CancelledError, CheckpointError
from pipeline.core.settings import AUTO_MODEL, ModelSettings, Settings
from pipeline.core.states import JobState
from pipeline.core.types import Segment, SegmentResult, Transcript
from pipeline.jobs.assemble import assemble, call_figures, write_outputs, write_partial
from pipeline.jobs.events import Emitter, JobResult
from pipeline.jobs.feed import Feed, Lookahead, Produced, Stop, VadModel
from pipeline.jobs.flight import Flight
from pipeline.jobs.plan import (
    CLEAR_LANGUAGE,
    DETECT_WINDOWS,
    LOOKAHEAD_WINDOWS,
    batches,
    contiguous_end,
    detection_model,
    join_parts,
    pick_model,
    spread,
)
from pipeline.jobs.store import Job, VadCache
from pipeline.media.segments import finish_metrics
from pipeline.resolve import resolve

log = logging.getLogger(__name__)

#: Seconds between rewrites of the partial SRT while a job runs.
PARTIAL_EVERY_S = 2.0


class JobRun:
    """One run (or continuation) of a job; call :meth:`run` once.

    Args:
        job: The job folder.
        input_path: The job's input, as recorded.
        source: Where its audio is read: the input, or the job's own complete audio.wav.
        s: The job's settings.
        meta: The job's ``job.json``.
        done: Results stored by an earlier run, by segment index (kept, never recomputed).
        emit: The job's event sender.
        stop: Set on cancel, and when the run ends for any reason.
        started: ``time.monotonic()`` when the job was started.
        vad: The runner's VAD model.
        backend: The runner's backend, started or reached on the call (decoding overlaps that).
    """

    def __init__(
        self,
        job: Job,
        input_path: Path,
        source: Path,
        s: Settings,
        meta: dict[str, Any],
        done: dict[int, SegmentResult],
        emit: Emitter,
        stop: Stop,
        started: float,
        vad: VadModel,
        backend: Callable[[], Backend],
    ) -> None:
        self.job, self.input_path, self.source, self.s, self.meta = job, input_path, source, s, meta
        self.done, self.emit, self.stop, self.started = done, emit, stop, started
        self._vad, self._backend = vad, backend
        self.produced = Produced()
        # Bounded: decoding runs far ahead of transcription, and unbounded it would hold a whole two-hour
        # file's samples in memory. Two batches' worth keeps the model fed.
        self.queue: queue.Queue[object] = queue.Queue(maxsize=max(4, 2 * s.transcribe.batch_size))
        self.results: dict[int, SegmentResult] = dict(done)
        self.plan: list[Segment] = []
        self.calls: list[dict[str, Any]] = []  # each Whisper call's figures (SegmentResult.stats)
        self.split_parts: dict[int, list[SegmentResult | None]] = {}  # segments split over calls: parts so far
        self.first_result_at: float | None = None
        self.last_partial = 0.0
        self.partial_every = PARTIAL_EVERY_S
        self.shown = 0  # segments in the partial SRT: the finished prefix, which results complete in order
        self.state: dict[str, Any] = {}  # the checkpoint as the run found it
        self.language: str | None = s.transcribe.language
        self.guess: LanguageGuess | None = None
        self.job_model = s.model
        self.model_reason = ""
        self.detect_model: ModelSettings | None = None
        self.model_name = s.model.name
        self._transcribe_from: float | None = None

    # -- the steps ---------------------------------------------------------------------------------------------
    def run(self) -> JobResult:
        """Transcribe what is left of the job and write its files.

        Raises:
            CancelledError, TranscriptionError, ModelError, ClusterError, InputError: as the job ends.
        """
        vad_cache, vad_key, producer = self._start_feed()
        t = time.monotonic()
        backend = self._backend()  # decoding and VAD go on while the cluster starts (or is reached)
        self._restore()
        self._prepare(backend)
        model_wait = time.monotonic() - t
        self.job.update_checkpoint(state=JobState.RUNNING.value, error=None)
        self.emit("running", len(self.done))
        finished = self._transcribe(Flight(backend, self.job, self.s, self.stop))
        transcribe_s = 0.0 if self._transcribe_from is None else time.monotonic() - self._transcribe_from
        producer.join()
        if isinstance(finished, BaseException):
            raise finished
        if self.produced.vad.mode == "silero":
            vad_cache.put(vad_key, self.plan)
        return self._finish(model_wait, transcribe_s, lanes=not backend.distributed)

    def _start_feed(self) -> tuple[VadCache, str, threading.Thread]:
        """Start the producer: the stored segment plan (or the VAD cache's) replayed, else VAD on the audio."""
        s, job = self.s, self.job
        meta = self.meta
        vad_cache = VadCache(s.jobs.jobs_dir)
        vad_key = vad_cache.key(meta["input_sha256"], dataclasses.asdict(s.audio), dataclasses.asdict(s.vad))
        stored_plan = meta.get("segment_plan")
        if stored_plan is not None:
            plan: list[Segment] | None = [Segment.from_dict(d) for d in stored_plan]
        else:
            plan = vad_cache.get(vad_key) if s.vad.enabled else None
        write_wav = self.source != job.audio_path
        feed = Feed(
            job, self.source, s, self.queue, self.produced, self.stop, plan, self._vad, write_wav, stored_plan is None
        )
        return vad_cache, vad_key, feed.start()

    def _restore(self) -> None:
        """What an earlier run decided: the language (given, detected, or of the stored results) and the model."""
        try:
            self.state = self.job.read_checkpoint()
        except CheckpointError:
            self.state = {}  # killed before its first checkpoint: nothing was decided yet
        state = self.state
        if self.done and self.language is None:
            self.language = next(iter(self.done.values())).language
        if self.language is None and state.get("language"):
            self.language = state["language"]  # detected before an interruption: a resume keeps it
        if self.language is not None and state.get("language_probability") is not None:
            self.guess = LanguageGuess(
                self.language, float(state["language_probability"]), int(state.get("language_windows") or 0)
            )
        # ``auto``: the model follows the language. Unknown yet, the multilingual base detects it first (its
        # load overlaps decoding and VAD); the job's own model is picked once the language is known.
        self.job_model, self.model_reason = pick_model(
            self.s, self.language, state.get("model_name"), state.get("model_identity")
        )
        self.detect_model = detection_model(self.s) if self.language is None else None
        self.model_name = self.job_model.name

    def _resolved(self, model: ModelSettings) -> ModelSettings:
        """``model`` with the parts left to the optimizer filled in for this machine."""
        return resolve(self.s.replace(model=model))[0].model

    def _prepare(self, backend: Backend) -> None:
        """Wait until the first batch can go: its model loaded, or a worker connected."""

        def waiting(stage: str, message: str) -> None:
            self.job.update_checkpoint(state=JobState.WAITING_FOR_MODEL.value)
            self.emit(stage, message=message)

        s = self.s
        translating = s.transcribe.task == "translate" or s.transcribe.translate
        # ``auto`` picks a multilingual model for any language but English.
        multilingual = translating and self.language != "en" and s.model.name != AUTO_MODEL
        wanted = self._resolved(self.detect_model or self.job_model)
        self.model_name = backend.prepare(wanted, waiting, multilingual=multilingual)

    def _transcribe(self, flight: Flight) -> object:
        """Send the batches as the producer cuts them and collect the results as they come; returns how the
        producer finished (True, or its exception)."""
        flight.model = self._resolved(self.job_model)
        source = Lookahead(self.queue)
        finished: object = False
        try:
            # While the next batch gathers, finished ones are saved at once: the first subtitles show early.
            idle = functools.partial(self._collect, flight, False)
            for batch, ended in batches(source, self.s.transcribe.batch_size, self.stop, idle):
                finished = ended  # the producer's exception, if it failed, is raised once the batches are in
                if self.stop.is_set():
                    raise CancelledError(f"{self.input_path}: cancelled")
                self.plan.extend(item.segment for item in batch if item.part == 0)
                if all(item.segment.index in self.done for item in batch):
                    continue
                # A group that is partly done (a kill between two result writes) runs whole again, so every
                # segment is computed beside the same neighbours as in an uninterrupted run; stored results
                # are kept and their files are not touched.
                if self.language is None and self.guess is None:
                    self._detect(flight, source, batch)
                self._record_model()
                if self.language is None:
                    self.language = "en"  # windows too short to hear anything: decoded as the model's default
                if self._transcribe_from is None:
                    self._transcribe_from = time.monotonic()
                flight.launch(batch, self.language)
                while flight.full():
                    self._collect(flight)
            while flight.busy():
                self._collect(flight)
        except BaseException:
            # What finished before the failure stays readable in the partial SRT, however recently it was written.
            if self._prefix() > self.shown:
                try:
                    self._write_partial()
                except OSError as exc:
                    log.info("job %s: cannot update partial.srt (%s)", self.job.id, exc)
            raise
        finally:
            flight.cancel()
        return finished

    def _detect(self, flight: Flight, source: Lookahead, batch: list[SegmentAudio]) -> None:
        """Decide the language: the first speech window when it is clear; otherwise up to DETECT_WINDOWS
        windows, spread over the ones decoded so far, vote (one encoder pass each: English stays cheap)."""
        model = self._resolved(self.detect_model or self.job_model)
        first = spread([w for item in batch for w in item.windows], 1)
        guess = flight.detect(first, model)
        if guess.probability < CLEAR_LANGUAGE:
            windows = [w for item in batch for w in item.windows] + source.more_windows(LOOKAHEAD_WINDOWS, self.stop)
            more = [w for w in spread(windows, DETECT_WINDOWS) if not any(w is f for f in first)]
            guess = guess.combine(flight.detect(more[: DETECT_WINDOWS - len(first)], model))
        self.guess, self.language = guess, guess.language
        name = self.input_path.name
        if guess.warning and guess.language is not None:
            log.warning("%s: %s", name, guess.warning)
        else:
            log.info("%s: language %s (p=%.2f)", name, self.language, guess.probability)
        self.job_model, self.model_reason = pick_model(self.s, self.language, None)
        flight.model = self._resolved(self.job_model)
        self.model_name = self.job_model.name
        self.job.update_checkpoint(
            language=self.language,
            language_probability=guess.probability,
            language_windows=guess.windows,
            language_warning=guess.warning,
        )

    def _record_model(self) -> None:
        """The model this job runs on, by name and weights, recorded once: a resume must find the same."""
        if "model_name" in self.state:
            return
        self.state["model_name"] = self.job_model.name
        self.job.update_checkpoint(
            model_name=self.job_model.name,
            model_identity=model_identity(self.job_model.name),
            model_reason=self.model_reason,
        )

    def _prefix(self) -> int:
        i = self.shown  # the prefix only grows
        while i in self.results:
            i += 1
        return i

    def _write_partial(self) -> None:
        write_partial(self.job, self.results, self.s, self.produced.spans, self.language)
        self.shown = self._prefix()

    def _collect(self, flight: Flight, wait: bool = True) -> None:
        """Take the next finished batch (with ``wait``, wait for one): save its whole segments, update the
        partial SRT now and then, and tell the progress."""
        got = flight.collect(wait)
        if got is None:
            return
        batch_results, self.model_name, items = got
        self.calls.extend(r.stats for r in batch_results if r.stats)
        for r in join_parts(batch_results, items, self.split_parts):
            if r.index not in self.done:
                self.job.save_result(r)
                self.results[r.index] = r
        if self.first_result_at is None:
            self.first_result_at = time.monotonic() - self.started
        self.job.update_checkpoint(segments_done=len(self.results))
        if self._prefix() > self.shown and time.monotonic() - self.last_partial >= self.partial_every:
            t = time.monotonic()
            self._write_partial()
            self.last_partial = time.monotonic()
            # Rebuilding grows with the transcript: never spend more than ~5% of the time on it.
            self.partial_every = max(PARTIAL_EVERY_S, 20 * (self.last_partial - t))
        self.emit("running", len(self.results), None, contiguous_end(self.results, self.plan))

    def _finish(self, model_wait: float, transcribe_s: float, lanes: bool) -> JobResult:
        """The transcript from the results, its files, and the job marked done."""
        job, s, produced, results = self.job, self.s, self.produced, self.results
        total = len(self.plan)
        job.update_checkpoint(segments_total=total, segments_done=len(results))
        self.emit("writing", len(results), total, produced.audio_seconds)
        t = time.monotonic()
        parts = assemble(job, self.source, results, s, produced, self.language, self.model_name, self.input_path.name)
        subtitles_s = time.monotonic() - t
        guess = self.guess
        if guess is None and self.language is None:
            guess = LanguageGuess(None, 0.0, 0)  # no speech at all: no language is forced
            log.info("%s: %s", self.input_path.name, guess.warning)  # said in the JSON and the job status
            job.update_checkpoint(language_warning=guess.warning)
        elif s.transcribe.language is not None and "language" not in self.state:
            job.update_checkpoint(language=self.language)
        extra = parts.extra
        if produced.vad.fallback:
            extra["vad_fallback"] = produced.vad.fallback
        recovered = [entry for i in sorted(results) for entry in results[i].recovered]
        if recovered:
            extra["recovered"] = recovered
        transcript = Transcript(
            language=parts.language,
            duration=round(produced.audio_seconds, 3),
            model=self.model_name,
            segments=parts.segments,
            cues=parts.cues,
            language_probability=guess.probability if guess is not None and guess.language else None,
            language_warning=guess.warning if guess is not None else None,
            model_reason=self.model_reason,
            task=s.transcribe.task,
            extra=extra,
        )
        finish_metrics(produced.vad, self.plan)
        transcript.timings = {
            "decode": round(produced.decode_s, 3),
            "vad": round(produced.vad_s, 3),
            "model_wait": round(model_wait, 3),
            "transcribe": round(transcribe_s, 3),
            "subtitles": round(subtitles_s, 3),
            "first_result": round(self.first_result_at or 0.0, 3),
        }
        transcript.timings.update(call_figures(self.calls, lanes=lanes))
        # The JSON output holds the timings, so its own writing comes after "total" (and goes to the checkpoint).
        transcript.timings["total"] = round(time.monotonic() - self.started, 3)
        t = time.monotonic()
        outputs = write_outputs(job, self.input_path, transcript, s, parts.translation)
        transcript.timings["write"] = round(time.monotonic() - t, 3)
        job.update_checkpoint(
            state=JobState.DONE.value, segments_done=total, timings=transcript.timings, vad=produced.vad.to_dict()
        )
        if not s.jobs.keep_checkpoints:
            job.cleanup_intermediates()
        self.emit("done", total, total, produced.audio_seconds)
        return JobResult(job.id, self.input_path, transcript, outputs, produced.vad, job.dir)
