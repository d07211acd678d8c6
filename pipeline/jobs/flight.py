"""The batches of one job in flight on its backend: back-pressure, retries and cancel."""

from __future__ import annotations

import dataclasses
import logging
import queue
import time
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from pipeline.asr.detect import LanguageGuess
from pipeline.asr.inputs import SegmentAudio
from pipeline.backends.base import Backend
from pipeline.core.errors import CancelledError, ClusterError, PipelineError, TranscriptionError, UsageError
from pipeline.core.settings import ModelSettings, Settings, TranscribeSettings
from pipeline.core.types import SegmentResult
from pipeline.jobs.feed import Stop
from pipeline.jobs.plan import priority
from pipeline.jobs.store import Job

log = logging.getLogger(__name__)

#: First retry waits this long; each further one twice as long.
RETRY_BACKOFF_S = 0.5


@dataclass
class Batch:
    """One call's worth of segment windows, and how often it was tried."""

    items: list[SegmentAudio]
    language: str
    settings: TranscribeSettings
    attempt: int = 0
    future: Future | None = None


class Flight:
    """The batches of one job in flight, with retries and back-pressure.

    At most ``max_inflight`` batches are out at once: enough to keep every lane or worker busy while results
    are saved, few enough that a second job's batches interleave (fair sharing) and memory stays bounded.

    Args:
        backend: Where the batches run.
        job: The job folder (failures go to its history).
        s: The job's settings.
        stop: Watched while waiting.
    """

    def __init__(self, backend: Backend, job: Job, s: Settings, stop: Stop) -> None:
        self.backend, self.job, self.s, self.stop = backend, job, s, stop
        self.max_inflight = s.cluster.max_inflight or max(2, backend.inflight(s.model))
        #: The job's model (for ``auto``: the one picked for its language), resolved for this machine.
        self.model = s.model
        self._out: dict[int, Batch] = {}
        self._settled: queue.Queue[Batch] = queue.Queue()
        self._no_workers_since: float | None = None
        self._failure: PipelineError | None = None

    def full(self) -> bool:
        """Whether no more batches should go out now (after a failure none do: the caller collects until the
        failure is raised)."""
        return len(self._out) >= self.max_inflight or self._failure is not None

    def busy(self) -> bool:
        """Whether batches are out (or a failure waits to be raised)."""
        return bool(self._out) or self._failure is not None

    def detect(self, windows: list[np.ndarray], model: ModelSettings) -> LanguageGuess:
        """The language of ``windows`` on ``model``."""
        return self.backend.detect_language(windows, model)

    def launch(self, items: list[SegmentAudio], language: str) -> None:
        """Send one batch."""
        self._send(Batch(items, language, self.s.transcribe))

    def _send(self, batch: Batch) -> None:
        batch.future = self.backend.submit(
            batch.items,
            batch.settings,
            batch.language,
            self.model,
            priority(batch.items, self.s.jobs.priority),
            self.s.guard,
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
        if self.backend.alive():
            self._no_workers_since = None
            return
        now = time.monotonic()
        if self._no_workers_since is None:
            self._no_workers_since = now
            log.warning("%s: no Dask worker is connected; waiting for one", self.job.id)
        elif now - self._no_workers_since > self.s.cluster.worker_timeout_s:
            self.backend.wait_for_workers(0)  # raises ClusterError with the advice

    def _retry(self, batch: Batch, exc: Exception) -> None:
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
        if out_of_memory(exc):
            batch.settings = dataclasses.replace(batch.settings, batch_size=max(1, batch.settings.batch_size // 2))
        log.warning("segment(s) failed (%s); retry %d of %d", exc, batch.attempt, self.s.jobs.max_retries)
        time.sleep(RETRY_BACKOFF_S * 2 ** (batch.attempt - 1))
        self._send(batch)

    def cancel(self) -> None:
        """Drop what is still out (the job ended early)."""
        if not self._out:
            return
        self.backend.cancel([b.future for b in self._out.values() if b.future is not None])
        self._out.clear()


def is_transient(exc: BaseException) -> bool:
    """Whether retrying may help: out of memory, a lost worker, a timeout, an I/O hiccup."""
    if isinstance(exc, PipelineError):
        return exc.transient
    if isinstance(exc, (MemoryError, TimeoutError, ConnectionError, OSError)):
        return True
    return out_of_memory(exc)


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says a device or the host ran out of memory."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "cuda error" in text
