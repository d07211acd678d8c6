"""Transcription: batched Whisper (faster-whisper) over the windows of one or more segments.

The windows of several segments are laid end to end in one buffer and given to faster-whisper's
``BatchedInferencePipeline`` as explicit clip timestamps, so one call fills whole batches even when each
segment has only two or three windows. Each window's text and cross-attention word times are then moved
back to file time and regrouped per segment.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipeline.asr.guard import Problem, drop_repeated_lines, judge, level_db
from pipeline.asr.models import LoadedModel
from pipeline.core.constants import SAMPLE_RATE
from pipeline.core.errors import UsageError
from pipeline.core.settings import GuardSettings, ModelSettings, TranscribeSettings
from pipeline.core.types import Segment, SegmentResult, SpeechSpan, TextSegment, Window, Word
from pipeline.system.hardware import trim_heap

if TYPE_CHECKING:
    from pipeline.asr.manager import ModelManager

log = logging.getLogger(__name__)


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
    #: Which of the segment's windows these are: from ``first``; part ``part`` of ``parts`` (see :meth:`split`).
    first: int = 0
    part: int = 0
    parts: int = 1

    def split(self) -> list[SegmentAudio]:
        """One part per window, so calls can take a window at a time; the runner joins the parts' results."""
        if len(self.windows) <= 1:
            return [self]
        n = len(self.windows)
        return [SegmentAudio(self.segment, (w,), self.first + k, k, n) for k, w in enumerate(self.windows)]

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

    Each window's result passes the hallucination guard (:mod:`pipeline.asr.guard`): a window that loops is
    decoded once more with fallback settings, all such windows in one more batched call; what still fails
    is dropped, logged and listed in ``SegmentResult.dropped``.

    Args:
        model: The loaded Whisper model.
        items: Segments with their window samples.
        settings: Batch size, beam size, word timing.
        language: The language to decode in (detect it first with :func:`detect_language`).
        guard: Hallucination guard thresholds (``Settings.guard``); defaults to :class:`GuardSettings`.
    """
    guard = guard or GuardSettings()
    owner: list[int] = []  # the item of each window
    placed: list[Window] = []  # each window, for its mapping to file time
    speech: list[Sequence[SpeechSpan]] = []  # the speech spans of each window's segment
    audio: list[np.ndarray] = []
    for i, item in enumerate(items):
        for window, samples in zip(item.segment.windows[item.first :], item.windows):
            samples = samples[: 30 * SAMPLE_RATE]
            if samples.size < SAMPLE_RATE // 10:
                continue  # under 0.1 s: nothing Whisper could read
            owner.append(i)
            placed.append(window)
            item_spans = item.segment.spans
            speech.append(item_spans)
            audio.append(level_window(samples, window, item_spans, settings.level_boost_db, settings.level_gap_db))
    # English speech needs no translation pass, so an English-only model may serve it.
    translating = settings.translate and settings.task != "translate" and language != "en"
    if (settings.task == "translate" and language != "en") or translating:
        check_multilingual(model)
    dropped: list[list[str]] = [[] for _ in items]
    recovered: list[list[str]] = [[] for _ in items]
    passes = [settings.task] + (["translate"] if translating else [])
    per_pass: list[list[list[TextSegment]]] = []
    redecoded = covered = 0
    infer_s = 0.0
    t0 = time.perf_counter()
    for task in passes:
        t = time.perf_counter()
        decoded = _decode(model, audio, placed, settings, language, task=task)
        infer_s += time.perf_counter() - t
        redecoded += _apply_guard(
            model, audio, placed, decoded, settings, language, guard, [dropped[i] for i in owner], task
        )
        covered += _cover_skipped_speech(
            model, audio, placed, speech, decoded, settings, language, guard, [recovered[i] for i in owner], task
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
    fed = sum(a.size for a in audio) / SAMPLE_RATE
    stats = {
        "windows": len(audio),
        "calls": 1,
        # What the encoder sees: every window is padded to Whisper's 30 s context.
        "audio_fed_s": round(fed, 3),
        "padded_s": round(30.0 * (len(audio) * len(passes) + redecoded + covered), 3),
        "infer_s": round(infer_s, 4),
        "guard_redecodes": redecoded + covered,
        "coverage_redecodes": covered,
        "guard_s": round(time.perf_counter() - t0 - infer_s, 4),
    }
    return [
        SegmentResult(
            index=item.segment.index,
            language=language,
            segments=tuple(per_pass[0][i]),
            dropped=tuple(dropped[i]),
            translation=tuple(per_pass[1][i]) if len(per_pass) > 1 else (),
            recovered=tuple(recovered[i]),
            # The call's figures go with its first result only, so that summing over results counts each once.
            stats=stats if i == 0 else {},
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
) -> int:
    """Judge each window's result in place: keep it, replace it by a fallback decoding, or drop it.

    Returns the number of windows decoded again."""
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
        return 0
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
    return len(retry)


#: Speech this close to a word counts as covered by it (word times are approximate).
_COVER_TOLERANCE_S = 0.5


def _uncovered(a: float, b: float, words: Sequence[Word], tolerance: float) -> list[tuple[float, float]]:
    """The parts of [a, b] more than ``tolerance`` away from every word (words sorted by start)."""
    out: list[tuple[float, float]] = []
    pos = a
    for word in words:
        lo, hi = word.start - tolerance, word.end + tolerance
        if hi <= pos:
            continue
        if lo >= b:
            break
        if lo > pos:
            out.append((pos, lo))
        pos = max(pos, hi)
    if pos < b:
        out.append((pos, b))
    return out


def _skipped_stretches(
    window: Window, spans: Sequence[SpeechSpan], words: Sequence[Word]
) -> list[tuple[float, float, float]]:
    """The window's speech that no word covers, as (start, end, seconds of speech) in file time.

    Uncovered parts of consecutive speech spans join into one stretch while no word lies between them, so a
    window whose text stops early shows its whole unheard tail as one stretch (words sorted by start).
    """
    out: list[tuple[float, float, float]] = []
    for piece in window.pieces:
        for span in spans:
            a, b = max(span.start, piece.start), min(span.end, piece.end)
            if b <= a:
                continue
            for lo, hi in _uncovered(a, b, words, _COVER_TOLERANCE_S):
                if out and not any(out[-1][1] <= (w.start + w.end) / 2 <= lo for w in words):
                    out[-1] = (out[-1][0], hi, out[-1][2] + hi - lo)
                else:
                    out.append((lo, hi, hi - lo))
    return out


def _cover_skipped_speech(
    model: LoadedModel,
    audio: list[np.ndarray],
    windows: list[Window],
    speech: list[Sequence[SpeechSpan]],
    decoded: list[list[TextSegment]],
    settings: TranscribeSettings,
    language: str,
    guard: GuardSettings,
    recovered: list[list[str]],
    task: str = "transcribe",
) -> int:
    """Decode again, on its own, any long stretch of a window's speech that its words skipped.

    Whisper now and then ends a window's text early or skips a sentence in it (which one changes with the
    numerics of the batch the window shares). Only windows that have words elsewhere are looked at (a window
    without words was judged as a whole), and only stretches of at least ``guard.coverage_gap_s`` of VAD
    speech with no word within :data:`_COVER_TOLERANCE_S`. All such stretches of the call go in one batched
    call; a result the guard rejects is ignored. Each stretch is noted in ``recovered`` (for the log and the
    JSON). Returns the number of stretches decoded again.
    """
    if not guard.enabled or guard.coverage_gap_s <= 0 or not settings.word_timestamps:
        return 0
    todo: list[tuple[int, float, Window, np.ndarray]] = []
    for w, segs in enumerate(decoded):
        words = sorted((word for seg in segs for word in seg.words), key=lambda x: x.start)
        if not words:
            continue
        window = windows[w]
        for lo, hi, amount in _skipped_stretches(window, speech[w], words):
            if amount < guard.coverage_gap_s:
                continue
            pieces = tuple(
                SpeechSpan(round(max(p.start, lo), 3), round(min(p.end, hi), 3))
                for p in window.pieces
                if p.end > lo and p.start < hi
            )
            first = round(_window_time(window, lo) * SAMPLE_RATE)
            last = min(round(_window_time(window, hi) * SAMPLE_RATE), audio[w].size)
            if pieces and last - first >= SAMPLE_RATE // 10:
                todo.append((w, amount, Window(pieces), audio[w][first:last]))
    if not todo:
        return 0
    again = _decode(model, [x[3] for x in todo], [x[2] for x in todo], settings, language, task=task)
    for (w, amount, stretch, samples), segs in zip(todo, again):
        entry = f"{stretch.start:.2f}-{stretch.end:.2f} s: {amount:.1f} s of speech without words"
        if not segs or judge(segs, guard, samples) is not None:
            log.info("coverage: %s; decoding it again gave nothing usable", entry)
            recovered[w].append(f"{entry}: nothing usable")
            continue
        log.info("coverage: %s decoded again: %r", entry, _text(segs)[:80])
        recovered[w].append(f"{entry}: {_text(segs)[:120]!r}")
        decoded[w] = sorted([*decoded[w], *segs], key=lambda seg: seg.start)
    return len(todo)


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
    guard: GuardSettings | None = None,
) -> Future[tuple[list[SegmentResult], str]]:
    """Start transcribing one batch with ``models``' model for ``model``, on one of its inference lanes.

    The same call serves the in-process runner and every Dask worker (:func:`pipeline.backends.dask.transcribe_task`),
    which imports this module and not the runner's.

    Returns:
        A future of the segments' results, in order, and the model's name.
    """

    def run(loaded: LoadedModel) -> tuple[list[SegmentResult], str]:
        started = time.monotonic()
        try:
            results = transcribe_segments(loaded, items, settings, language, guard)
        finally:
            trim_heap()
        if results and results[0].stats:
            # Which lane ran the call and when: the runner reports how evenly the lanes finished.
            results[0].stats.update(lane=threading.current_thread().name, started=started, ended=time.monotonic())
        return results, loaded.spec.name

    return models.infer(model, run)


def detect_with(models: ModelManager, windows: Sequence[np.ndarray], model: ModelSettings) -> LanguageGuess:
    """The language of ``windows`` with ``models``' model for ``model``, on one of its inference lanes."""
    return models.infer(model, lambda loaded: detect_language(loaded, windows)).result()
