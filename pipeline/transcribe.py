"""Transcription: batched Whisper (faster-whisper) over the windows of one or more segments.

The windows of several segments are laid end to end in one buffer and given to faster-whisper's
``BatchedInferencePipeline`` as explicit clip timestamps, so one call fills whole batches even when each
segment has only two or three windows. Each window's text and cross-attention word times are then moved
back to file time and regrouped per segment.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipeline.errors import UsageError
from pipeline.guard import GuardSettings, Problem, drop_repeated_lines, judge, level_db
from pipeline.hardware import trim_heap
from pipeline.models import LoadedModel
from pipeline.settings import ModelSettings, TranscribeSettings
from pipeline.types import Segment, SegmentResult, SpeechSpan, TextSegment, Window, Word

if TYPE_CHECKING:
    from pipeline.model_manager import ModelManager

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
        """Read each window's pieces with ``reader`` and lay them end to end."""
        windows = []
        for w in segment.windows:
            parts = [reader(p.start, p.end) for p in w.pieces]
            windows.append(parts[0] if len(parts) == 1 else np.concatenate(parts))
        return cls(segment, tuple(windows))


@dataclass(frozen=True)
class LanguageGuess:
    """The language of some speech, its probability, and how many windows it was decided on (0: no speech)."""

    language: str | None
    probability: float
    windows: int
    #: Each language's probability summed over the windows (the best few), to combine guesses.
    totals: tuple[tuple[str, float], ...] = ()

    #: Below this, the guess is reported as unsure (log, JSON, UI).
    UNSURE = 0.5

    def combine(self, other: LanguageGuess) -> LanguageGuess:
        """The guess over both sets of windows: probability vectors averaged over all windows."""
        if not other.windows:
            return self
        if not self.windows:
            return other
        sums: dict[str, float] = dict(self.totals)
        for language, p in other.totals:
            sums[language] = sums.get(language, 0.0) + p
        return _guess(sums, self.windows + other.windows)

    @property
    def warning(self) -> str | None:
        """One line when the guess should not be trusted blindly; None when it is sure."""
        if self.language is None:
            return "no speech found: no language detected"
        if self.probability < self.UNSURE:
            return (
                f"language detection is unsure: {self.language} with probability {self.probability:.2f}; "
                "pass --language if it is wrong"
            )
        return None


def to_float(samples: np.ndarray) -> np.ndarray:
    """float32 samples in [-1, 1] (Whisper's input) from int16 or float samples."""
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / 32768.0
    return samples.astype(np.float32, copy=False)


def detect_language(model: LoadedModel, windows: np.ndarray | Sequence[np.ndarray]) -> LanguageGuess:
    """The language of up to a few windows of speech (each up to 30 s), their probabilities averaged.

    Each window gets its own pass of the encoder; the per-language probability vectors are averaged and the
    most probable language wins. English-only models answer ``en`` with probability 1.

    Args:
        model: A loaded model.
        windows: One window's samples, or several (int16 or float32; int16 is scaled to [-1, 1] first).
    """
    items = [windows] if isinstance(windows, np.ndarray) else list(windows)
    items = [w[: 30 * SAMPLE_RATE] for w in items if w.size >= SAMPLE_RATE // 10]
    if not items:
        return LanguageGuess(None, 0.0, 0)
    if not model.multilingual:
        return LanguageGuess("en", 1.0, len(items))
    totals: dict[str, float] = {}
    for samples in items:
        _, _, probabilities = model.model.detect_language(audio=to_float(samples), language_detection_segments=1)
        for language, p in probabilities:
            totals[language] = totals.get(language, 0.0) + float(p)
    return _guess(totals, len(items))


def _guess(totals: dict[str, float], windows: int) -> LanguageGuess:
    best = sorted(totals.items(), key=lambda kv: -kv[1])[:8]
    return LanguageGuess(best[0][0], round(best[0][1] / windows, 4), windows, tuple(best))


def level_window(
    samples: np.ndarray, window: Window, spans: Sequence[SpeechSpan], boost_db: float, gap_db: float
) -> np.ndarray:
    """Raise the speech spans of one window that are much quieter than its loudest span to that span's level.

    tiny.en skips whole utterances of a quiet speaker that shares a window with a loud one, although it
    transcribes each of them well alone: what hurts is the jump in level, not the level. On the 10-minute
    benchmark input (clips up to 40 dB apart) levelling took WER from 23.2% to 16.5% with the same windows.
    A span whose RMS is more than ``gap_db`` below the loudest span of the window is scaled up to the
    loudest level, by at most ``boost_db``; everything else, and the pauses, stay as they are. Only the
    window's own samples count, so the result never depends on which windows share a batch.

    Args:
        samples: The window's samples (its pieces laid end to end), int16 or float32.
        window: Where the pieces lie in the file.
        spans: The speech spans of the segment, in file time.
        boost_db: The largest gain; 0 returns ``samples`` unchanged.
        gap_db: Spans within this many dB of the loudest are left alone.

    Returns:
        ``samples``, or a float32 copy with the quiet spans raised.
    """
    if boost_db <= 0:
        return samples
    regions: list[tuple[int, int]] = []
    offset = 0
    for piece in window.pieces:
        length = round(piece.duration * SAMPLE_RATE)
        for span in spans:
            a, b = max(span.start, piece.start), min(span.end, piece.end)
            if b - a >= 0.1:
                lo = offset + round((a - piece.start) * SAMPLE_RATE)
                regions.append((lo, min(offset + round((b - piece.start) * SAMPLE_RATE), samples.size)))
        offset += length
    if len(regions) < 2:
        return samples
    levels = [level_db(samples[lo:hi]) for lo, hi in regions]
    loudest = max(levels)
    if not math.isfinite(loudest) or all(loudest - level <= gap_db for level in levels):
        return samples
    out = samples.astype(np.float32) / 32768.0 if samples.dtype == np.int16 else samples.astype(np.float32, copy=True)
    for (lo, hi), level in zip(regions, levels):
        if loudest - level > gap_db:
            out[lo:hi] *= 10 ** (min(loudest - level, boost_db) / 20)
    return np.clip(out, -1.0, 1.0, out=out)


def transcribe_segments(
    model: LoadedModel,
    items: Sequence[SegmentAudio],
    settings: TranscribeSettings,
    language: str,
    guard: GuardSettings | None = None,
) -> list[SegmentResult]:
    """Transcribe the windows of ``items`` in full batches and return one result per segment, in order.

    Each window's result passes the hallucination guard (:mod:`pipeline.guard`): a window that loops is
    decoded once more with fallback settings, all such windows in one more batched call; what still fails
    is dropped, logged and listed in ``SegmentResult.dropped``.

    Args:
        model: The loaded Whisper model.
        items: Segments with their window samples.
        settings: Batch size, beam size, word timing.
        language: The language to decode in (detect it first with :func:`detect_language`).
        guard: Hallucination guard thresholds; defaults to :class:`~pipeline.guard.GuardSettings`.
    """
    guard = guard or GuardSettings()
    owner: list[int] = []  # the item of each window
    placed: list[Window] = []  # each window, for its mapping to file time
    audio: list[np.ndarray] = []
    for i, item in enumerate(items):
        for window, samples in zip(item.segment.windows, item.windows):
            samples = samples[: 30 * SAMPLE_RATE]
            if samples.size < SAMPLE_RATE // 10:
                continue  # under 0.1 s: nothing Whisper could read
            owner.append(i)
            placed.append(window)
            item_spans = item.segment.spans
            audio.append(level_window(samples, window, item_spans, settings.level_boost_db, settings.level_gap_db))
    # English speech needs no translation pass, so an English-only model may serve it.
    translating = settings.translate and settings.task != "translate" and language != "en"
    if (settings.task == "translate" and language != "en") or translating:
        check_multilingual(model)
    spans: list[Sequence[SpeechSpan]] = [items[i].segment.spans for i in owner]
    dropped: list[list[str]] = [[] for _ in items]
    recovered: list[list[str]] = [[] for _ in items]
    passes = [settings.task] + (["translate"] if translating else [])
    per_pass: list[list[list[TextSegment]]] = []
    for task in passes:
        decoded = _decode(model, audio, placed, settings, language, task=task)
        _apply_guard(model, audio, placed, decoded, settings, language, guard, [dropped[i] for i in owner], task)
        _cover_tails(
            model, audio, placed, spans, decoded, settings, language, guard, [recovered[i] for i in owner], task
        )
        # Lines repeated inside each window. Repeats across windows are removed by the runner over the whole
        # file: doing it per call would make a window's result depend on which windows shared its batch.
        per_item: list[list[TextSegment]] = [[] for _ in items]
        for w, segs in enumerate(decoded):
            kept, notes = drop_repeated_lines(segs, guard)
            for k, reason in notes:
                _note(dropped[owner[w]], segs[k], reason)
            per_item[owner[w]].extend(seg for seg in kept if seg is not None)
        per_pass.append(per_item)
    return [
        SegmentResult(
            index=item.segment.index,
            language=language,
            segments=tuple(per_pass[0][i]),
            dropped=tuple(dropped[i]),
            translation=tuple(per_pass[1][i]) if len(per_pass) > 1 else (),
            recovered=tuple(recovered[i]),
        )
        for i, item in enumerate(items)
    ]


def check_multilingual(model: LoadedModel) -> None:
    """Translation needs a multilingual model.

    Raises:
        UsageError: ``model`` is English-only.
    """
    if not model.multilingual:
        raise UsageError(
            f"translation needs a multilingual model, and {model.spec.name} is English-only: "
            "use --model base (or small, medium, a multilingual CTranslate2 folder)"
        )


def _cover_tails(
    model: LoadedModel,
    audio: list[np.ndarray],
    windows: list[Window],
    spans: list[Sequence[SpeechSpan]],
    decoded: list[list[TextSegment]],
    settings: TranscribeSettings,
    language: str,
    guard: GuardSettings,
    recovered: list[list[str]],
    task: str,
) -> None:
    """Decode again, on its own, the speech after a window's last word when there is much of it.

    Whisper (base more than tiny.en) sometimes ends a window's text early and skips the rest of the window,
    seconds of clear speech. A window whose words end more than ``coverage_gap_s`` of VAD speech before its
    end has that tail (from the first speech span after its last word) decoded once more, all such tails in
    one batched call; what the tail gives is appended when the guard accepts it.
    """
    if guard.coverage_gap_s <= 0 or not guard.enabled:
        return
    tails: list[tuple[int, float, Window, np.ndarray]] = []
    for w, segs in enumerate(decoded):
        words = [word for seg in segs for word in seg.words]
        if not words:
            continue  # nothing at all: the guard judged the window, decoding it again would repeat that
        last = words[-1].end
        window = windows[w]
        inside = [
            SpeechSpan(max(sp.start, window.start), min(sp.end, window.end))
            for sp in spans[w]
            if sp.end > last and sp.start < window.end and sp.end > window.start
        ]
        start = next((sp.start for sp in inside if sp.start >= last), last)
        left = sum(max(0.0, sp.end - max(sp.start, start)) for sp in inside)
        if left <= guard.coverage_gap_s:
            continue
        pieces = tuple(SpeechSpan(max(p.start, start), p.end) for p in window.pieces if p.end > start + 0.1)
        if not pieces:
            continue
        offset = round(_window_time(window, start) * SAMPLE_RATE)
        tails.append((w, left, Window(pieces), audio[w][offset:]))
    if not tails:
        return
    again = _decode(model, [t[3] for t in tails], [t[2] for t in tails], settings, language, task=task)
    for (w, left, tail, _), segs in zip(tails, again):
        problem = judge(segs, guard)
        last = max(word.end for seg in decoded[w] for word in seg.words)
        added = [seg for seg in segs if seg.start >= last - 0.05]
        entry = f"{tail.start:.2f}-{tail.end:.2f} s: {left:.1f} s of speech after the last word"
        if problem is not None or not added:
            log.info("coverage: %s; decoding it again gave nothing usable", entry)
            recovered[w].append(f"{entry}: nothing usable")
            continue
        log.info("coverage: %s decoded again: %r", entry, _text(added)[:80])
        recovered[w].append(f"{entry}: {_text(added)[:120]!r}")
        decoded[w].extend(added)


def _window_time(window: Window, t: float) -> float:
    """Seconds into ``window`` of file time ``t`` (a time between pieces maps to the next piece's start)."""
    done = 0.0
    for p in window.pieces:
        if t < p.end:
            return done + max(0.0, t - p.start)
        done += p.duration
    return done


def _apply_guard(
    model: LoadedModel,
    audio: list[np.ndarray],
    windows: list[Window],
    decoded: list[list[TextSegment]],
    settings: TranscribeSettings,
    language: str,
    guard: GuardSettings,
    dropped: list[list[str]],
    task: str = "transcribe",
) -> None:
    """Judge each window's result in place: keep it, replace it by a fallback decoding, or drop it."""
    retry: list[tuple[int, Problem]] = []
    for w, segs in enumerate(decoded):
        problem = judge(segs, guard, audio[w])
        if problem is None:
            continue
        if problem.retry:
            retry.append((w, problem))
        else:
            for seg in segs:
                _note(dropped[w], seg, problem.reason)
            decoded[w] = []
    if not retry:
        return
    # The fallback may not repeat any 3-gram. Tried on looping windows (reversed speech, babble, slowed
    # and looped speech): greedy decoding looped as much or more, and sampling at a temperature is no
    # option (the batched pipeline decodes with top-k 1, where the temperature changes nothing); the same
    # beam with 3-grams blocked ended every loop and left real speech as it was.
    again = _decode(
        model,
        [audio[w] for w, _ in retry],
        [windows[w] for w, _ in retry],
        settings,
        language,
        no_repeat_ngram_size=3,
        task=task,
    )
    for (w, problem), segs in zip(retry, again):
        second = judge(segs, guard, audio[w])
        if second is None:
            log.info("window at %.2f s re-decoded (%s): %r", windows[w].start, problem.reason, _text(segs)[:80])
            decoded[w] = segs
            continue
        for seg in decoded[w]:
            _note(dropped[w], seg, f"{problem.reason}; after re-decoding: {second.reason}")
        decoded[w] = []


def _note(dropped: list[str], seg: TextSegment, reason: str) -> None:
    entry = f"{seg.start:.2f}-{seg.end:.2f} s: {reason}: {seg.text[:120]!r}"
    log.info("hallucination guard dropped %s", entry)
    dropped.append(entry)


def _text(segs: Sequence[TextSegment]) -> str:
    return " ".join(s.text for s in segs)


def _decode(
    model: LoadedModel,
    audio: Sequence[np.ndarray],
    windows: Sequence[Window],
    settings: TranscribeSettings,
    language: str,
    no_repeat_ngram_size: int = 0,
    task: str = "transcribe",
) -> list[list[TextSegment]]:
    """Decode windows (their samples, and where they lie in the file) in batched calls; text segments in file time."""
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
    pipeline = BatchedInferencePipeline(model.model)
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


def batch_future(
    models: ModelManager,
    items: list[SegmentAudio],
    settings: TranscribeSettings,
    language: str,
    model: ModelSettings,
) -> Future[tuple[list[SegmentResult], str]]:
    """Start transcribing one batch with ``models``' model for ``model``, on one of its inference lanes.

    The same call serves the in-process runner and every Dask worker (:func:`pipeline.cluster.transcribe_task`),
    which imports this module and not the runner's.

    Returns:
        A future of the segments' results, in order, and the model's name.
    """

    def run(loaded: LoadedModel) -> tuple[list[SegmentResult], str]:
        try:
            return transcribe_segments(loaded, items, settings, language), loaded.spec.name
        finally:
            trim_heap()

    return models.infer(model, run)


def detect_with(models: ModelManager, windows: Sequence[np.ndarray], model: ModelSettings) -> LanguageGuess:
    """The language of ``windows`` with ``models``' model for ``model``, on one of its inference lanes."""
    return models.infer(model, lambda loaded: detect_language(loaded, windows)).result()
