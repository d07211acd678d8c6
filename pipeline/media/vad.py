"""VAD: silero-vad speech spans, streamed (the cutting into segments is :mod:`pipeline.media.segments`).

The model is the torch-free *sequence* ONNX export that ships in the ``silero-vad`` pip package: one
ONNX call covers up to 512 frames (16 s) instead of one call per 32 ms frame, with the LSTM state carried
across calls so it streams. :class:`SpanTracker` turns the frame probabilities into speech spans as they
close, and :func:`pad_spans` pads them without crossing their neighbours.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np

from pipeline.core.constants import SAMPLE_RATE
from pipeline.core.settings import VadSettings
from pipeline.core.types import SpeechSpan

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


#: The audio before a first span counts as speech when at most this much quieter than the span's start.
LEAD_IN_GAP_DB = 10.0


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
