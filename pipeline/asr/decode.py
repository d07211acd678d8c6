"""One batched decoding call: windows laid end to end in one buffer, given to faster-whisper's
``BatchedInferencePipeline`` as explicit clip timestamps, and each result moved back to file time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.asr.inputs import to_float
from pipeline.asr.models import LoadedModel
from pipeline.core.constants import SAMPLE_RATE
from pipeline.core.settings import TranscribeSettings
from pipeline.core.types import TextSegment, Window, Word

#: Silence laid between windows in the shared buffer. faster-whisper's word timing treats a first word
#: differently when less than ~2.8 s (4 × the median word) separates it from the previous speech; with
#: this gap every window is "after a pause", so a window's result never depends on which windows were
#: batched with it — the same cuts give the same output in process, on a cluster, or after a resume.
_GAP = np.zeros(3 * SAMPLE_RATE, dtype=np.float32)
_FRAME = SAMPLE_RATE // 100  # one Whisper feature frame (10 ms)
_NUDGE = 8  # samples (0.5 ms) past the frame boundary where each window starts


def decode_windows(
    model: LoadedModel,
    audio: Sequence[np.ndarray],
    windows: Sequence[Window],
    settings: TranscribeSettings,
    language: str,
    no_repeat_ngram_size: int = 0,
    task: str = "transcribe",
    encoded: EncoderCache | None = None,
) -> list[list[TextSegment]]:
    """Decode windows (their samples, and where they lie in the file) in batched calls; text segments in file time.

    ``encoded`` keeps the encoder's output of each window decoded through it, so that decoding the same window
    again with it (the translation pass, a guard retry) runs no second encoder pass.
    """
    from faster_whisper import BatchedInferencePipeline

    placed: list[tuple[float, float]] = []  # (buffer start s, length s)
    parts: list[np.ndarray] = []
    pos = 0
    for samples in audio:
        # Every window starts after a gap, just past a 10 ms frame boundary (_NUDGE samples), so that
        # faster-whisper's float arithmetic lands on that frame whatever the position.
        lead = _GAP.size + (-pos % _FRAME) + _NUDGE
        pos += lead
        parts.append(np.zeros(lead, np.float32))
        placed.append((pos / SAMPLE_RATE, samples.size / SAMPLE_RATE))
        parts.append(to_float(samples))
        pos += samples.size
    out: list[list[TextSegment]] = [[] for _ in placed]
    if not parts:
        return out
    buffer = np.concatenate(parts)
    # Half a sample in, so int(v * rate) inside faster-whisper gives back exactly our sample index.
    clips = [{"start": start + 0.5 / SAMPLE_RATE, "end": start + length} for start, length in placed]
    # On the CPU the windows of a call are encoded and word-timed one by one (see CallModel); on a GPU
    # batched passes are the throughput, and their memory is sized by the batch size.
    whisper = CallModel(model.model, per_window=model.placement.device == "cpu", encoded=encoded)
    pipeline = BatchedInferencePipeline(whisper)
    segments, _ = pipeline.transcribe(
        buffer,
        language=language if model.multilingual else "en",
        task=task if model.multilingual else "transcribe",
        clip_timestamps=clips,
        batch_size=settings.batch_size,
        beam_size=settings.beam_size,
        no_repeat_ngram_size=no_repeat_ngram_size,
        word_timestamps=settings.word_timestamps,
        without_timestamps=True,
        vad_filter=False,
        log_progress=False,
    )
    # faster-whisper tags each segment with its clip's offset in frames ("seek"): that names the window.
    frames_per_second = model.model.frames_per_second
    by_seek = {
        int(int(clip["start"] * SAMPLE_RATE) / SAMPLE_RATE * frames_per_second): w for w, clip in enumerate(clips)
    }
    for seg in segments:
        w = by_seek[seg.seek]
        # faster-whisper reports times from seek / frames_per_second (the window's start, to within the
        # 0.5 ms nudge); times inside the window are whole centiseconds.
        text_segment = _to_file_time(seg, seg.seek / frames_per_second, windows[w])
        if text_segment is not None:
            out[w].append(text_segment)
    return out


class EncoderCache:
    """The encoder's output for windows already encoded in one call, by their features.

    A window's features are a function of its samples alone (each window is cut from the call's buffer on a
    frame boundary), so the same window decoded again gives the same features and finds its output here.
    """

    def __init__(self) -> None:
        self._outputs: dict[bytes, Any] = {}
        #: Windows encoded through this cache (each a full 30 s encoder pass); found ones are not counted.
        self.windows = 0

    @staticmethod
    def _key(features: np.ndarray) -> bytes:
        digest = hashlib.blake2b(str(features.shape).encode(), digest_size=16)
        digest.update(np.ascontiguousarray(features).tobytes())
        return digest.digest()

    def get(self, features: np.ndarray) -> Any:  # noqa: ANN401 - a numpy view or a ctranslate2.StorageView
        """The stored output for ``features``, or None."""
        return self._outputs.get(self._key(features))

    def put(self, features: np.ndarray, output: Any) -> None:  # noqa: ANN401 - as get returns it
        """Keep ``output``, the encoder's output for ``features``."""
        self._outputs[self._key(features)] = output
        self.windows += 1 if features.ndim == 2 else features.shape[0]


class CallModel:
    """A faster-whisper ``WhisperModel`` as one decoding call uses it.

    With ``encoded``, a window (or, batched, a whole batch) encoded before is not encoded again: the
    translation pass decodes the windows the transcription pass just encoded, and a guard retry decodes a
    window again with other options, and the encoder is the largest part of a window's cost (docs/benchmarks.md,
    "Cost of a Whisper call").

    With ``per_window`` (on the CPU), the encoder and word timing take the windows of a batch one at a time.
    Both passes take memory for every window they are given at once: the encoder for its self-attention scores
    (heads × 1500 × 1500 a window), word timing (CTranslate2's ``align``) more the more windows it aligns
    together. These are the largest allocations of a CPU call, while their CPU time per window is the same or
    less one at a time (``python benchmarks/call_costs.py``; the figures are in docs/benchmarks.md). The
    outputs are the same numbers, so the decoder between the two passes still runs the whole batch at once.
    On a GPU the batched passes are the throughput, and their memory is what the batch size is chosen for.
    """

    def __init__(
        self,
        model: Any,  # noqa: ANN401 - a faster_whisper.WhisperModel
        per_window: bool = True,
        encoded: EncoderCache | None = None,
    ) -> None:
        self._model = model
        self._per_window = per_window
        self._encoded = encoded

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - everything else is the model's
        return getattr(self._model, name)

    def encode(self, features: np.ndarray) -> Any:  # noqa: ANN401 - a ctranslate2.StorageView
        import ctranslate2

        if not self._per_window or features.ndim == 2 or (features.shape[0] == 1 and self._encoded is None):
            return self._encode(features)
        rows = [features[i : i + 1] for i in range(features.shape[0])]
        found = [self._encoded.get(row) if self._encoded is not None else None for row in rows]
        # np.asarray views each output; concatenate copies them into one array that the StorageView keeps alive.
        joined = np.concatenate(
            [np.asarray(self._model.encode(row)) if out is None else out for row, out in zip(rows, found)]
        )
        if self._encoded is not None:
            for i, row in enumerate(rows):
                if found[i] is None:
                    self._encoded.put(row, joined[i : i + 1])  # a view: the cache holds nothing the call does not
        return ctranslate2.StorageView.from_array(joined)

    def _encode(self, features: np.ndarray) -> Any:  # noqa: ANN401 - a ctranslate2.StorageView
        """The whole batch at once, through the cache when there is one."""
        if self._encoded is None:
            return self._model.encode(features)
        output = self._encoded.get(features)
        if output is None:
            output = self._model.encode(features)
            self._encoded.put(features, output)
        return output

    def add_word_timestamps(self, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401 - faster-whisper's own
        from faster_whisper import WhisperModel

        # faster-whisper's method, run on this proxy so that the find_alignment it calls is the one below.
        return WhisperModel.add_word_timestamps(self, *args, **kwargs)

    def find_alignment(
        self,
        tokenizer: Any,  # noqa: ANN401 - a faster_whisper Tokenizer
        text_tokens: list[list[int]],
        encoder_output: Any,  # noqa: ANN401 - a ctranslate2.StorageView
        num_frames: int | list[int],
        median_filter_width: int = 7,
    ) -> list[list[dict[str, Any]]]:
        """faster-whisper's ``find_alignment``, one window at a time when ``per_window``."""
        import ctranslate2

        if not self._per_window or len(text_tokens) <= 1:
            return self._model.find_alignment(tokenizer, text_tokens, encoder_output, num_frames, median_filter_width)
        frames = num_frames if isinstance(num_frames, list) else [num_frames] * len(text_tokens)
        encoded = np.asarray(encoder_output)
        out: list[list[dict[str, Any]]] = []
        for i, tokens in enumerate(text_tokens):
            if not tokens:
                out.append([])  # what faster-whisper gives a window with no text
                continue
            one = ctranslate2.StorageView.from_array(np.ascontiguousarray(encoded[i : i + 1]))
            out += self._model.find_alignment(tokenizer, [tokens], one, [frames[i]], median_filter_width)
        return out


def _to_file_time(seg: object, origin: float, window: Window) -> TextSegment | None:
    """Move a faster-whisper segment into file time through its window's pieces.

    Times are rebuilt from the time within the window rounded to the centisecond, so the same window gives
    the same file times wherever it sat in the batch buffer.
    """

    def place(t: float) -> float:
        return round(window.to_file(round(float(t) - origin, 2)), 3)

    words: list[Word] = []
    for w in getattr(seg, "words", None) or []:
        start = place(w.start)
        end = max(place(w.end), start)
        words.append(Word(w.word, start, end, round(float(w.probability), 4)))
    text = seg.text.strip()  # type: ignore[attr-defined]
    if not text:
        return None
    start = words[0].start if words else place(seg.start)  # type: ignore[attr-defined]
    end = words[-1].end if words else max(place(seg.end), start)  # type: ignore[attr-defined]
    return TextSegment(
        start=start,
        end=end,
        text=text,
        words=tuple(words),
        avg_logprob=round(float(seg.avg_logprob), 4),  # type: ignore[attr-defined]
        no_speech_prob=round(float(seg.no_speech_prob), 4),  # type: ignore[attr-defined]
        compression_ratio=round(float(seg.compression_ratio), 4),  # type: ignore[attr-defined]
    )


def window_time(window: Window, t: float) -> float:
    """Seconds into ``window`` of file time ``t`` (a time between pieces maps to the next piece's start)."""
    done = 0.0
    for p in window.pieces:
        if t < p.end:
            return done + max(0.0, t - p.start)
        done += p.duration
    return done
