"""The producer side of a job: decoding streams into VAD on a thread of its own, and each segment is handed
over with its samples, through a bounded queue, as soon as it is cut."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.asr.inputs import SegmentAudio
from pipeline.core.constants import SAMPLE_RATE
from pipeline.core.errors import CancelledError, InputError, PipelineError
from pipeline.core.settings import AudioSettings, Settings
from pipeline.core.types import Segment, SpeechSpan
from pipeline.jobs.store import Job
from pipeline.media import decode as audio_mod
from pipeline.media.segments import VadMetrics, segment_stream
from pipeline.media.vad import SileroVad

log = logging.getLogger(__name__)

#: Put on the queue after the last segment.
DONE = object()


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
class Produced:
    """What the producer thread reports back besides segments."""

    vad: VadMetrics = field(default_factory=VadMetrics)
    spans: list[SpeechSpan] = field(default_factory=list)
    decode_s: float = 0.0
    vad_s: float = 0.0
    audio_seconds: float = 0.0


class Stop:
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


def put(q: queue.Queue[object], item: object, stop: Stop) -> bool:
    """Put with back-pressure, giving up when the job stops; True when the item went in."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


class Lookahead:
    """The producer's queue with a look ahead: language detection peeks at the windows of the next segments
    without taking them out of their order."""

    def __init__(self, q: queue.Queue[object]) -> None:
        self._q = q
        self._held: deque[object] = deque()

    def get(self, timeout: float | None = None) -> object:
        if self._held:
            return self._held.popleft()
        return self._q.get(timeout=timeout)

    def more_windows(self, count: int, stop: Stop) -> list[np.ndarray]:
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


class VadModel:
    """The one silero-vad model of a runner, loaded on first use and shared by its jobs."""

    def __init__(self) -> None:
        self._vad: SileroVad | None = None
        self._lock = threading.Lock()

    def get(self, settings: Settings) -> SileroVad | None:
        """The model, or None when VAD is off or cannot load (the job then cuts at fixed lengths)."""
        if not settings.vad.enabled:
            return None
        with self._lock:
            if self._vad is None:
                try:
                    self._vad = SileroVad()
                except Exception as exc:  # noqa: BLE001 - VAD failure falls back to fixed cuts
                    log.warning("silero-vad could not be loaded (%s); cutting at fixed lengths", exc)
                    return None
            return self._vad


@dataclass
class Feed:
    """One job's producer: what it reads, where it puts segments, and what it was told to do.

    Args:
        job: The job folder (its audio.wav is written when ``write_wav``; its plan saved when ``save_plan``).
        source: The input, or the job's own complete audio.wav.
        settings: The job's settings.
        q: Where segments (then :data:`DONE`, or the producer's exception) go.
        produced: Filled in as it goes.
        stop: Watched at every step.
        plan: The stored segment plan (or the VAD cache's), replayed instead of running VAD.
        vad: The runner's VAD model.
    """

    job: Job
    source: Path
    settings: Settings
    q: queue.Queue[object]
    produced: Produced
    stop: Stop
    plan: list[Segment] | None
    vad: VadModel
    write_wav: bool
    save_plan: bool

    def start(self) -> threading.Thread:
        """Run :meth:`run` on a thread of its own (``stop`` joins it when the job ends)."""
        thread = threading.Thread(target=self.run, name=f"decode-{self.job.id}", daemon=True)
        thread.start()
        self.stop.producer = thread
        return thread

    def run(self) -> None:
        """Decode → audio.wav + VAD → segments with their samples, onto the queue."""
        s, produced, stop = self.settings, self.produced, self.stop
        writer = self.job.audio_writer(s.audio.sample_rate) if self.write_wav else None
        rolling = RollingAudio()
        ok = False
        try:
            started = time.monotonic()
            decode_s = 0.0

            def tee() -> Iterator[np.ndarray]:
                nonlocal decode_s
                # The job's own audio.wav is already 16 kHz mono: no track choice applies to it.
                chunks = audio_mod.decode(self.source, s.audio if self.write_wav else AudioSettings())
                while True:
                    if stop.is_set():
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

            vad_model = None if self.plan is not None else self.vad.get(s)
            cut: list[Segment] = []
            waited = 0.0  # blocked on the full queue: transcription is behind, not VAD
            for seg in segment_stream(tee(), s.vad, vad_model, produced.vad, self.plan):
                produced.spans.extend(seg.spans)
                cut.append(seg)
                item = SegmentAudio.read(seg, rolling.read)
                t = time.monotonic()
                if not put(self.q, item, stop):
                    return
                waited += time.monotonic() - t
                rolling.drop_before(seg.end)
            if stop.is_set():
                raise CancelledError(f"{self.source}: cancelled")
            produced.decode_s = decode_s
            produced.vad_s = max(0.0, time.monotonic() - started - decode_s - waited)
            if writer is not None:
                writer.close(keep=True)
                writer = None
            # The exact cuts, saved as soon as they are known: a resume cuts the same way.
            if self.save_plan:
                self.job.save_plan(cut)
            ok = True
            put(self.q, DONE, stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            # A full disk (writing audio.wav) is not the input's fault: the consumer says what it is.
            passed = isinstance(exc, PipelineError) or disk_full(exc)
            put(self.q, exc if passed else InputError(f"{self.source}: decoding failed: {exc}"), stop)
            if not isinstance(exc, PipelineError):
                log.debug("producer failed", exc_info=True)
        finally:
            if writer is not None:
                writer.close(keep=ok)


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the file system is full (or over quota)."""
    import errno

    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
