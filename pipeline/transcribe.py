"""Transcription: batched Whisper (faster-whisper) over the windows of one or more segments.

The windows of several segments are laid end to end in one buffer and given to faster-whisper's
``BatchedInferencePipeline`` as explicit clip timestamps, so one call fills whole batches even when each
segment has only two or three windows. Each window's text and cross-attention word times are then moved
back to file time and regrouped per segment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from pipeline.models import LoadedModel
from pipeline.settings import TranscribeSettings
from pipeline.types import Segment, SegmentResult, TextSegment, Word

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000

#: Silence laid between windows in the shared buffer. faster-whisper's word timing treats a first word
#: differently when less than ~2.8 s (4 × the median word) separates it from the previous speech; with
#: this gap every window is "after a pause", so a window's result never depends on which windows were
#: batched with it — the same cuts give the same output in process, on a cluster, or after a resume.
_GAP = np.zeros(3 * SAMPLE_RATE, dtype=np.float32)
_FRAME = SAMPLE_RATE // 100  # one Whisper feature frame (10 ms)
_NUDGE = 8  # samples (0.5 ms) past the frame boundary where each window starts

#: Reads float32 samples of [start, end) seconds of the file.
AudioReader = Callable[[float, float], np.ndarray]


@dataclass(frozen=True)
class SegmentAudio:
    """A segment and the samples of each of its windows: everything a worker needs, no shared disk.

    Samples are 16 kHz mono, int16 (half the memory and bytes on the wire) or float32 in [-1, 1].
    """

    segment: Segment
    windows: tuple[np.ndarray, ...]

    @classmethod
    def read(cls, segment: Segment, reader: AudioReader) -> SegmentAudio:
        return cls(segment, tuple(reader(w.start, w.end) for w in segment.windows))


def detect_language(model: LoadedModel, samples: np.ndarray) -> tuple[str, float]:
    """The language of up to 30 s of speech; ``en`` for English-only models."""
    if not model.multilingual:
        return "en", 1.0
    language, probability, _ = model.model.detect_language(audio=samples[: 30 * SAMPLE_RATE])
    return language, float(probability)


def transcribe_segments(
    model: LoadedModel,
    items: Sequence[SegmentAudio],
    settings: TranscribeSettings,
    language: str,
) -> list[SegmentResult]:
    """Transcribe the windows of ``items`` in full batches and return one result per segment, in order.

    Args:
        model: The loaded Whisper model.
        items: Segments with their window samples.
        settings: Batch size, beam size, word timing.
        language: The language to decode in (detect it first with :func:`detect_language`).
    """
    from faster_whisper import BatchedInferencePipeline

    placed: list[tuple[int, float, float, float]] = []  # (item index, buffer start s, length s, file start s)
    parts: list[np.ndarray] = []
    pos = 0
    for i, item in enumerate(items):
        for window, samples in zip(item.segment.windows, item.windows):
            samples = samples[: 30 * SAMPLE_RATE]
            if samples.size < SAMPLE_RATE // 10:
                continue  # under 0.1 s: nothing Whisper could read
            # Every window starts after a gap, just past a 10 ms frame boundary (_NUDGE samples), so that
            # faster-whisper's float arithmetic lands on that frame whatever the position.
            lead = _GAP.size + (-pos % _FRAME) + _NUDGE
            pos += lead
            parts.append(np.zeros(lead, np.float32))
            placed.append((i, pos / SAMPLE_RATE, samples.size / SAMPLE_RATE, window.start))
            parts.append(samples.astype(np.float32) / 32768.0 if samples.dtype == np.int16 else samples.astype(np.float32, copy=False))
            pos += samples.size
    per_item: list[list[TextSegment]] = [[] for _ in items]
    if parts:
        buffer = np.concatenate(parts)
        # Half a sample in, so int(v * rate) inside faster-whisper gives back exactly our sample index.
        clips = [{"start": start + 0.5 / SAMPLE_RATE, "end": start + length} for _, start, length, _ in placed]
        pipeline = BatchedInferencePipeline(model.model)
        segments, _ = pipeline.transcribe(
            buffer,
            language=language if model.multilingual else "en",
            clip_timestamps=clips,
            batch_size=settings.batch_size,
            beam_size=settings.beam_size,
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
            item_index, _, length, file_start = placed[w]
            # faster-whisper reports times from seek / frames_per_second (the window's start, to within the
            # 0.5 ms nudge); times inside the window are whole centiseconds.
            text_segment = _to_file_time(seg, seg.seek / frames_per_second, file_start, file_start + length)
            if text_segment is not None:
                per_item[item_index].append(text_segment)
    return [
        SegmentResult(index=item.segment.index, language=language, segments=tuple(per_item[i]))
        for i, item in enumerate(items)
    ]


def _to_file_time(seg: object, origin: float, lo: float, hi: float) -> TextSegment | None:
    """Move a faster-whisper segment into file time (its window starts at ``lo``), clipped to the window.

    Times are rebuilt as window start + time within the window rounded to the centisecond, so the same
    window gives the same file times wherever it sat in the batch buffer.
    """

    def place(t: float) -> float:
        return min(max(round(lo + round(float(t) - origin, 2), 3), lo), hi)

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
