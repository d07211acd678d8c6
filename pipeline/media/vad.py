"""VAD: silero-vad speech spans, streamed, and the cutting of spans into segments of 30–90 s.

The model is the torch-free *sequence* ONNX export that ships in the ``silero-vad`` pip package: one
ONNX call covers up to 512 frames (16 s) instead of one call per 32 ms frame, with the LSTM state carried
across calls so it streams. Decoded chunks go in, :class:`~pipeline.core.types.Segment` objects come out as
soon as each cut is certain, so transcription starts long before decoding ends.

Cuts fall in pauses, chosen so the segment's Whisper windows are well filled, preferring longer pauses
and lengths near the target; a continuous stretch of speech longer than a Whisper window is split at its
quietest frame. Silence outside the speech spans is never transcribed. When VAD is off or fails, fixed
60 s cuts are used and the reason is logged.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.core.constants import SAMPLE_RATE
from pipeline.core.settings import VadSettings
from pipeline.core.types import Segment, SpeechSpan, Window

log = logging.getLogger(__name__)

FRAME = 512  # samples per VAD frame at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous frame the model sees
FRAME_S = FRAME / SAMPLE_RATE
MAX_FRAMES_PER_CALL = 512
MODEL_FILE = "silero_vad_16k_sequence.onnx"


def model_path() -> Path:
    """Path of the sequence ONNX model inside the installed ``silero-vad`` package.

    Found without importing the package, whose ``__init__`` imports torch.
    """
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the silero-vad package is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the silero-vad package")
    return path


class SileroVad:
    """A loaded silero-vad model. Owned by the caller and reusable across files (not across threads)."""

    def __init__(self, path: Path | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # One thread: VAD runs beside transcription, which owns the other cores.
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(path or model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
        )

    def stream(self) -> VadStream:
        """A new stream with fresh state, for one file."""
        return VadStream(self)


class VadStream:
    """Per-frame speech probabilities of audio fed in arbitrary chunks."""

    def __init__(self, model: SileroVad) -> None:
        self._session = model.session
        self._hidden = np.zeros((1, 1, 128), dtype=np.float32)
        self._cell = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._rest = np.zeros(0, dtype=np.float32)

    def feed(self, samples: np.ndarray) -> np.ndarray:
        """Add float32 samples; return the probabilities of every frame now complete."""
        audio = np.concatenate((self._rest, samples.astype(np.float32, copy=False)))
        n = audio.size // FRAME
        self._rest = audio[n * FRAME :]
        return self._run(audio[: n * FRAME])

    def finish(self) -> np.ndarray:
        """Flush the last partial frame, zero-padded, and return its probability."""
        if not self._rest.size:
            return np.zeros(0, dtype=np.float32)
        last = np.zeros(FRAME, dtype=np.float32)
        last[: self._rest.size] = self._rest
        self._rest = np.zeros(0, dtype=np.float32)
        return self._run(last)

    def _run(self, audio: np.ndarray) -> np.ndarray:
        frames_total = audio.size // FRAME
        out: list[np.ndarray] = []
        for first in range(0, frames_total, MAX_FRAMES_PER_CALL):
            frames = audio[first * FRAME : min(frames_total, first + MAX_FRAMES_PER_CALL) * FRAME].reshape(-1, FRAME)
            contexts = np.empty((frames.shape[0], CONTEXT), dtype=np.float32)
            contexts[0] = self._context
            contexts[1:] = frames[:-1, -CONTEXT:]
            self._context = frames[-1, -CONTEXT:].copy()
            block = np.concatenate((contexts, frames), axis=1)
            probs, self._hidden, self._cell = self._session.run(
                ["speech_probs", "hn", "cn"], {"input": block, "h": self._hidden, "c": self._cell}
            )
            out.append(np.asarray(probs, dtype=np.float32).reshape(-1))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


class SpanTracker:
    """Turns per-frame probabilities into speech spans (silero's hysteresis), as frames arrive.

    A span ends after ``min_silence_ms`` below the lower threshold; spans shorter than ``min_speech_ms``
    are dropped; a span reaching ``max_span_s`` is split at its quietest frame in the second half.
    Spans are returned unpadded, in seconds.
    """

    def __init__(self, settings: VadSettings) -> None:
        self.threshold = settings.threshold
        self.neg_threshold = max(settings.threshold - 0.15, 0.01)
        self.min_silence = max(1, int(settings.min_silence_ms / 1000 / FRAME_S))
        self.min_speech = max(1, int(settings.min_speech_ms / 1000 / FRAME_S))
        self.max_span = max(4, int(settings.window_s / FRAME_S) - int(2 * settings.speech_pad_ms / 1000 / FRAME_S))
        self.frame = 0
        self._start: int | None = None
        self._temp_end: int | None = None
        self._probs: list[float] = []

    def push(self, probs: np.ndarray) -> list[SpeechSpan]:
        """Consume frame probabilities; return the spans that closed."""
        done: list[SpeechSpan] = []
        for p in probs.tolist():
            i = self.frame
            self.frame += 1
            if self._start is None:
                if p >= self.threshold:
                    self._start, self._temp_end, self._probs = i, None, [p]
                continue
            self._probs.append(p)
            if p >= self.threshold:
                self._temp_end = None
            elif p < self.neg_threshold:
                if self._temp_end is None:
                    self._temp_end = i
                if i - self._temp_end >= self.min_silence:
                    self._close(self._temp_end, done)
                    continue
            if i + 1 - self._start >= self.max_span:
                self._split(done)
        return done

    def finish(self) -> list[SpeechSpan]:
        """Close the span still open at the end of the audio."""
        done: list[SpeechSpan] = []
        if self._start is not None:
            self._close(self._temp_end if self._temp_end is not None else self.frame, done)
        return done

    def _emit(self, start: int, end: int, done: list[SpeechSpan]) -> None:
        if end - start >= self.min_speech:
            done.append(SpeechSpan(round(start * FRAME_S, 3), round(end * FRAME_S, 3)))

    def _close(self, end: int, done: list[SpeechSpan]) -> None:
        assert self._start is not None
        self._emit(self._start, end, done)
        self._start, self._temp_end, self._probs = None, None, []

    def _split(self, done: list[SpeechSpan]) -> None:
        assert self._start is not None
        half = len(self._probs) // 2
        cut = half + int(np.argmin(self._probs[half:]))
        split_at = self._start + cut
        done.append(SpeechSpan(round(self._start * FRAME_S, 3), round(split_at * FRAME_S, 3)))
        self._probs = self._probs[cut:]
        self._start = split_at
        self._temp_end = None


@dataclass
class VadMetrics:
    """What segmentation found in one file (its quality metrics)."""

    mode: str = "silero"
    reason: str = ""
    duration: float = 0.0
    speech_seconds: float = 0.0
    span_count: int = 0
    segment_lengths: list[float] = field(default_factory=list)
    window_count: int = 0
    silence_skipped: float = 0.0
    #: What was done when VAD found no speech in a file that is not silent ("" when nothing was needed).
    fallback: str = ""

    @property
    def speech_ratio(self) -> float:
        return self.speech_seconds / self.duration if self.duration else 0.0

    @property
    def segment_count(self) -> int:
        return len(self.segment_lengths)

    def to_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "reason": self.reason,
            "duration": round(self.duration, 3),
            "speech_ratio": round(self.speech_ratio, 4),
            "speech_seconds": round(self.speech_seconds, 3),
            "span_count": self.span_count,
            "segment_count": self.segment_count,
            "segment_lengths": [round(x, 2) for x in self.segment_lengths],
            "window_count": self.window_count,
            "silence_skipped": round(self.silence_skipped, 3),
            "fallback": self.fallback,
        }


#: The audio before a first span counts as speech when at most this much quieter than the span's start.
LEAD_IN_GAP_DB = 10.0


def _level(x: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def pad_spans(
    spans: list[SpeechSpan], pad: float, limit: float | None = None, lead_in: float = 0.0
) -> list[SpeechSpan]:
    """Pad each span by ``pad`` seconds on both sides without crossing its neighbours' midpoints.

    A span starting within ``lead_in`` seconds of the file's start starts at 0 (see ``VadSettings.lead_in_s``).
    """
    out: list[SpeechSpan] = []
    for i, s in enumerate(spans):
        lo = 0.0 if i == 0 else (spans[i - 1].end + s.start) / 2
        hi = limit if i == len(spans) - 1 else (s.end + spans[i + 1].start) / 2
        start = 0.0 if s.start <= lead_in else max(lo, s.start - pad)
        end = s.end + pad if hi is None else min(hi, s.end + pad)
        out.append(SpeechSpan(round(start, 3), round(end, 3)))
    return out


def pack_windows(spans: Iterable[SpeechSpan], window_s: float, keep_pause_s: float) -> tuple[Window, ...]:
    """Pack consecutive spans into windows of at most ``window_s`` seconds of audio.

    Pauses up to ``keep_pause_s`` stay as they are; a longer silence is cut down to ``keep_pause_s``
    (half after the span before it, half before the span after it).
    """
    windows: list[Window] = []
    pieces: list[SpeechSpan] = []
    length = 0.0
    half = keep_pause_s / 2
    for s in spans:
        if pieces:
            gap = s.start - pieces[-1].end
            kept = min(gap, keep_pause_s)
            if length + kept + s.duration <= window_s + 1e-9:
                if gap <= keep_pause_s:
                    pieces[-1] = SpeechSpan(pieces[-1].start, s.end)
                else:
                    pieces[-1] = SpeechSpan(pieces[-1].start, round(pieces[-1].end + half, 3))
                    pieces.append(SpeechSpan(round(s.start - half, 3), s.end))
                length += kept + s.duration
                continue
            windows.append(Window(tuple(pieces)))
        pieces, length = [s], s.duration
    if pieces:
        windows.append(Window(tuple(pieces)))
    return tuple(windows)


class Segmenter:
    """Groups spans into segments of ``min_segment_s``–``max_segment_s``, cutting in pauses, as they come.

    The first window of the first segment becomes a segment of its own (``first_window_alone``): the first
    segment is transcribed alone, so its length is how long the first subtitles take. The windows are
    packed exactly as without the split, so the work is the same.
    """

    def __init__(self, settings: VadSettings) -> None:
        self.s = settings
        self._pending: list[SpeechSpan] = []
        self._index = 0

    def push(self, spans: list[SpeechSpan], position: float) -> list[Segment]:
        """Add closed spans; ``position`` is how far the audio has been analysed, in seconds."""
        out: list[Segment] = []
        for span in spans:
            # A long silence before this span is a natural cut, once the segment is long enough.
            if (
                self._pending
                and span.start - self._pending[-1].end >= self.s.skip_silence_s
                and self._pending[-1].end - self._pending[0].start >= self.s.min_segment_s
            ):
                out.extend(self._make(len(self._pending)))
            self._pending.append(span)
        while self._pending and max(position, self._pending[-1].end) - self._pending[0].start > self.s.max_segment_s:
            out.extend(self._make(self._choose_cut()))
        return out

    def finish(self) -> list[Segment]:
        """Emit what is left at the end of the audio."""
        out: list[Segment] = []
        while self._pending and self._pending[-1].end - self._pending[0].start > self.s.max_segment_s:
            out.extend(self._make(self._choose_cut()))
        if self._pending:
            out.extend(self._make(len(self._pending)))
        return out

    def _choose_cut(self) -> int:
        """How many pending spans go into the next segment.

        Every Whisper window costs a full 30 s of compute however little speech it holds, so the cut that
        fills its windows best wins; among those, a longer pause and a length near the target.
        """
        s = self.s
        origin = self._pending[0].start
        best, best_score = 1, -1e9
        fallback = 1
        for i in range(1, len(self._pending)):
            end = self._pending[i - 1].end - origin
            if end > s.max_segment_s:
                break
            fallback = i
            if end < s.min_segment_s:
                continue
            gap = self._pending[i].start - self._pending[i - 1].end
            windows = pack_windows(self._pending[:i], s.window_s, s.keep_pause_s)
            fill = sum(w.duration for w in windows) / (len(windows) * s.window_s)
            score = 4.0 * fill + min(gap, 3.0) / 3.0 - 0.5 * abs(end - s.target_segment_s) / 30.0
            if score > best_score:
                best, best_score = i, score
        return best if best_score > -1e9 else fallback

    def _make(self, count: int) -> list[Segment]:
        spans, self._pending = self._pending[:count], self._pending[count:]
        windows = pack_windows(spans, self.s.window_s, self.s.keep_pause_s)
        parts = [(spans, windows)]
        if self._index == 0 and self.s.first_window_alone and len(windows) > 1:
            # Greedy packing restarts at every window, so the rest packs into the same windows.
            k = sum(1 for span in spans if span.start < windows[0].end)
            parts = [(spans[:k], windows[:1]), (spans[k:], windows[1:])]
        out = []
        for part, packed in parts:
            out.append(
                Segment(index=self._index, start=part[0].start, end=part[-1].end, spans=tuple(part), windows=packed)
            )
            self._index += 1
        return out


def fixed_segments(duration: float, settings: VadSettings, first_index: int = 0, start: float = 0.0) -> list[Segment]:
    """Fixed cuts of ``fixed_segment_s`` from ``start`` to ``duration``: the fallback without VAD."""
    out: list[Segment] = []
    t, index = start, first_index
    while duration - t > 0.05:
        end = min(duration, t + settings.fixed_segment_s)
        span = SpeechSpan(round(t, 3), round(end, 3))
        windows = []
        w = t
        while end - w > 0.05:
            windows.append(Window((SpeechSpan(round(w, 3), round(min(end, w + settings.window_s), 3)),)))
            w += settings.window_s
        out.append(Segment(index, span.start, span.end, (span,), tuple(windows)))
        t, index = end, index + 1
    return out


class _SileroCutter:
    """Cuts with the VAD model: probabilities → spans (padded once the next span is known) → segments."""

    mode = "silero"

    def __init__(self, settings: VadSettings, model: SileroVad) -> None:
        self.settings = settings
        self.stream = model.stream()
        self.tracker = SpanTracker(settings)
        self.segmenter = Segmenter(settings)
        self.spans: list[SpeechSpan] = []  # raw spans, for the metrics
        self._held: list[SpeechSpan] = []  # raw spans not yet padded: the last waits for its successor
        self.emitted_until = 0.0
        self.next_index = 0
        self.fallback = ""
        # Until the first span, the probabilities and the level are kept: a file where nothing passes the
        # threshold is looked at again at a lower one (a few floats per second of audio).
        self._probs: list[np.ndarray] | None = []
        self._square_sum = 0.0
        self._samples = 0
        self._head: list[np.ndarray] = []  # the file's first second, for the lead-in
        self._head_size = 0

    def _release(self, new: list[SpeechSpan], end: float | None) -> list[SpeechSpan]:
        self.spans.extend(new)
        self._held.extend(new)
        keep = 0 if end is not None else 1
        count = max(0, len(self._held) - keep)
        lead_in = self.settings.lead_in_s if self._held and self._speech_before(self._held[0].start) else 0.0
        padded = pad_spans(self._held, self.settings.speech_pad_ms / 1000, end, lead_in)[:count]
        self._held = self._held[count:]
        return padded

    def _emitted(self, segments: list[Segment]) -> list[Segment]:
        if segments:
            self.emitted_until, self.next_index = segments[-1].end, segments[-1].index + 1
        return segments

    def _speech_before(self, start: float) -> bool:
        """Whether the audio before a span starting at ``start`` (within the lead-in) sounds like the span:
        its level within ``LEAD_IN_GAP_DB`` of the half second after ``start``. Silence before the first
        word (jfk: 44 dB below it) keeps its own edge, so the first word's time stays where it is."""
        if start > self.settings.lead_in_s or start <= 0:
            return False
        head = np.concatenate(self._head) if self._head else np.zeros(0, np.float32)
        cut = int(start * SAMPLE_RATE)
        before, after = head[:cut], head[cut : cut + SAMPLE_RATE // 2]
        if not before.size or not after.size:
            return False
        return _level(before) >= _level(after) - LEAD_IN_GAP_DB

    def _track(self, probs: np.ndarray, x: np.ndarray) -> list[SpeechSpan]:
        if self._head_size < int((self.settings.lead_in_s + 0.5) * SAMPLE_RATE):
            self._head.append(x)
            self._head_size += x.size
        if self._probs is not None:
            self._probs.append(probs)
            self._square_sum += float(np.dot(x.astype(np.float64), x.astype(np.float64)))
            self._samples += x.size
        spans = self.tracker.push(probs)
        if spans:
            self._probs = None
        return spans

    def feed(self, x: np.ndarray, position: float) -> list[Segment]:
        spans = self._release(self._track(self.stream.feed(x), x), None)
        # Spans close min_silence after they end, so nothing new can start before this point.
        return self._emitted(self.segmenter.push(spans, position - self.settings.min_silence_ms / 1000))

    def finish(self, duration: float) -> list[Segment]:
        # The last partial frame can close a span (its silence ends one): those spans are speech too.
        closed = self._track(self.stream.finish(), np.zeros(0, np.float32))
        found = closed + self.tracker.finish()
        if not found and self._probs is not None and self._samples:
            rms = math.sqrt(self._square_sum / self._samples)
            level = 20 * math.log10(rms) if rms > 0 else -math.inf
            if level > self.settings.fallback_level_db:
                return self._fall_back(level, duration)
        spans = self._release(found, duration)
        return self._emitted(self.segmenter.push(spans, duration) + self.segmenter.finish())

    def _fall_back(self, level: float, duration: float) -> list[Segment]:
        """No span in a file that is not silent: a lower threshold, then fixed cuts; logged and kept."""
        assert self._probs is not None
        s = self.settings
        retry = SpanTracker(dataclasses.replace(s, threshold=s.retry_threshold))
        probs = np.concatenate(self._probs) if self._probs else np.zeros(0, np.float32)
        found = retry.push(probs) + retry.finish()
        if found:
            self.fallback = (
                f"no speech at threshold {s.threshold} in audio at {level:.0f} dBFS; cut at {s.retry_threshold}"
            )
            # Said in the JSON (``vad_fallback``); the CLI's stderr keeps to one error line per failing input.
            log.info("VAD: %s", self.fallback)
            spans = self._release(found, duration)
            return self._emitted(self.segmenter.push(spans, duration) + self.segmenter.finish())
        self.fallback = (
            f"no speech at thresholds {s.threshold} and {s.retry_threshold} in audio at {level:.0f} dBFS; "
            f"fixed {s.fixed_segment_s:.0f} s windows"
        )
        log.info("VAD: %s", self.fallback)
        self.mode = "fixed"
        segments = fixed_segments(duration, s, self.next_index, self.emitted_until)
        self.spans = [span for seg in segments for span in seg.spans]
        return self._emitted(segments)

    def pending_start(self) -> float:
        """Where audio not yet in an emitted segment begins (the fallback re-cuts from here)."""
        return self.emitted_until


class _FixedCutter:
    """Fixed cuts of ``fixed_segment_s``: VAD off, or VAD failed (from where it failed)."""

    mode = "fixed"

    def __init__(self, settings: VadSettings, start: float = 0.0, first_index: int = 0) -> None:
        self.settings = settings
        self.emitted_until = start
        self.next_index = first_index
        self.spans: list[SpeechSpan] = []

    def feed(self, x: np.ndarray, position: float) -> list[Segment]:
        out: list[Segment] = []
        while position - self.emitted_until >= self.settings.fixed_segment_s:
            end = self.emitted_until + self.settings.fixed_segment_s
            out += fixed_segments(end, self.settings, self.next_index, self.emitted_until)
            self.emitted_until, self.next_index = end, out[-1].index + 1
        return out

    def finish(self, duration: float) -> list[Segment]:
        return fixed_segments(duration, self.settings, self.next_index, self.emitted_until)


class _PlanCutter:
    """Replays a known segment plan (a cache hit, or a resumed job), each segment once its audio is in."""

    mode = "plan"

    def __init__(self, plan: Sequence[Segment]) -> None:
        self.plan = list(plan)
        self.spans = [span for seg in self.plan for span in seg.spans]
        self._next = 0

    def feed(self, x: np.ndarray, position: float) -> list[Segment]:
        start = self._next
        while self._next < len(self.plan) and self.plan[self._next].end <= position:
            self._next += 1
        return self.plan[start : self._next]

    def finish(self, duration: float) -> list[Segment]:
        rest, self._next = self.plan[self._next :], len(self.plan)
        return rest


def segment_stream(
    chunks: Iterable[np.ndarray],
    settings: VadSettings,
    model: SileroVad | None,
    metrics: VadMetrics | None = None,
    plan: Sequence[Segment] | None = None,
) -> Iterator[Segment]:
    """Cut streamed 16 kHz int16/float32 chunks into segments, yielding each as soon as it is certain.

    Args:
        chunks: Decoded audio, in order.
        settings: VAD and segment-length settings.
        model: The VAD model; None (or ``settings.enabled`` false) cuts at fixed lengths.
        metrics: Filled with what segmentation found (mode, reason, spans, speech).
        plan: Known segments (from the VAD cache or a resumed job): replayed instead of running VAD.

    When the model fails mid-file, the rest is cut at fixed lengths and the reason is logged and kept in
    ``metrics``.
    """
    metrics = metrics if metrics is not None else VadMetrics()
    cutter: _SileroCutter | _FixedCutter | _PlanCutter
    if plan is not None:
        cutter = _PlanCutter(plan)
        metrics.reason = "segment plan reused"
    elif settings.enabled and model is not None:
        cutter = _SileroCutter(settings, model)
    else:
        cutter = _FixedCutter(settings)
        metrics.reason = "VAD disabled" if not settings.enabled else "no VAD model"
        log.info("segmentation: fixed %.0f s cuts (%s)", settings.fixed_segment_s, metrics.reason)
    samples = 0
    for chunk in chunks:
        x = chunk.astype(np.float32) / 32768.0 if chunk.dtype == np.int16 else chunk.astype(np.float32, copy=False)
        samples += x.size
        try:
            yield from cutter.feed(x, samples / SAMPLE_RATE)
        except Exception as exc:  # noqa: BLE001 - any model failure falls back to fixed cuts
            if not isinstance(cutter, _SileroCutter):
                raise
            log.warning("VAD failed (%s); falling back to fixed %.0f s cuts", exc, settings.fixed_segment_s)
            metrics.reason = f"VAD failed: {exc}"
            cutter = _FixedCutter(settings, cutter.pending_start(), cutter.next_index)
            yield from cutter.feed(np.zeros(0, np.float32), samples / SAMPLE_RATE)
    duration = samples / SAMPLE_RATE
    yield from cutter.finish(duration)
    metrics.mode = cutter.mode
    metrics.fallback = getattr(cutter, "fallback", "")
    metrics.duration = duration
    metrics.span_count = len(cutter.spans)
    metrics.speech_seconds = (
        sum(s.duration for s in cutter.spans) if cutter.spans or cutter.mode != "fixed" else duration
    )


def segment_audio(
    samples: np.ndarray, settings: VadSettings, model: SileroVad | None
) -> tuple[list[Segment], VadMetrics]:
    """Segment a whole in-memory signal (tests, notebooks). Returns the segments and their metrics."""
    metrics = VadMetrics()
    chunks = (samples[i : i + 32000] for i in range(0, samples.size, 32000))
    segments = list(segment_stream(chunks, settings, model, metrics))
    finish_metrics(metrics, segments)
    return segments, metrics


def finish_metrics(metrics: VadMetrics, segments: list[Segment]) -> None:
    """Fill the per-segment figures of ``metrics`` from the final segment list."""
    metrics.segment_lengths = [s.duration for s in segments]
    metrics.window_count = sum(len(s.windows) for s in segments)
    metrics.silence_skipped = max(0.0, metrics.duration - sum(w.duration for s in segments for w in s.windows))
