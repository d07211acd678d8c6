"""Second decodings inside one call: windows the hallucination guard rejects get a fallback decoding, and
long stretches of speech a window's words skipped are decoded again on their own (coverage).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from pipeline.asr.decode import EncoderCache, decode_windows, window_time
from pipeline.asr.guard import Problem, judge
from pipeline.asr.models import LoadedModel
from pipeline.core.constants import SAMPLE_RATE
from pipeline.core.settings import GuardSettings, TranscribeSettings
from pipeline.core.types import SpeechSpan, TextSegment, Window, Word

log = logging.getLogger(__name__)


def apply_guard(
    model: LoadedModel,
    audio: list[np.ndarray],
    windows: list[Window],
    decoded: list[list[TextSegment]],
    settings: TranscribeSettings,
    language: str,
    guard: GuardSettings,
    dropped: list[list[str]],
    task: str = "transcribe",
    encoded: EncoderCache | None = None,
) -> int:
    """Judge each window's result in place: keep it, replace it by a fallback decoding, or drop it.

    ``encoded``: the encoder outputs of the first decoding, so a window decoded again is not encoded again.
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
                note_dropped(dropped[w], seg, problem.reason)
            decoded[w] = []
    if not retry:
        return 0
    # The fallback may not repeat any 3-gram. Tried on looping windows (reversed speech, babble, slowed
    # and looped speech): greedy decoding looped as much or more, and sampling at a temperature is no
    # option (the batched pipeline decodes with top-k 1, where the temperature changes nothing); the same
    # beam with 3-grams blocked ended every loop and left real speech as it was.
    again = decode_windows(
        model,
        [audio[w] for w, _ in retry],
        [windows[w] for w, _ in retry],
        settings,
        language,
        no_repeat_ngram_size=3,
        task=task,
        encoded=encoded,
    )
    for (w, problem), segs in zip(retry, again):
        second = judge(segs, guard, audio[w])
        if second is None:
            log.info("window at %.2f s re-decoded (%s): %r", windows[w].start, problem.reason, _text(segs)[:80])
            decoded[w] = segs
            continue
        for seg in decoded[w]:
            note_dropped(dropped[w], seg, f"{problem.reason}; after re-decoding: {second.reason}")
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


def cover_skipped_speech(
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
    encoded: EncoderCache | None = None,
) -> int:
    """Decode again, on its own, any long stretch of a window's speech that its words skipped.

    Whisper now and then ends a window's text early or skips a sentence in it (which one changes with the
    numerics of the batch the window shares). Only windows that have words elsewhere are looked at (a window
    without words was judged as a whole), and only stretches of at least ``guard.coverage_gap_s`` of VAD
    speech with no word within :data:`_COVER_TOLERANCE_S`. All such stretches of the call go in one batched
    call; a result the guard rejects is ignored. Each stretch is noted in ``recovered`` (for the log and the
    JSON). ``encoded`` is the call's encoder cache (the translation pass finds the same stretches again).
    Returns the number of stretches decoded again.
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
            first = round(window_time(window, lo) * SAMPLE_RATE)
            last = min(round(window_time(window, hi) * SAMPLE_RATE), audio[w].size)
            if pieces and last - first >= SAMPLE_RATE // 10:
                todo.append((w, amount, Window(pieces), audio[w][first:last]))
    if not todo:
        return 0
    again = decode_windows(
        model, [x[3] for x in todo], [x[2] for x in todo], settings, language, task=task, encoded=encoded
    )
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


def note_dropped(dropped: list[str], seg: TextSegment, reason: str) -> None:
    entry = f"{seg.start:.2f}-{seg.end:.2f} s: {reason}: {seg.text[:120]!r}"
    log.info("hallucination guard dropped %s", entry)
    dropped.append(entry)


def _text(segs: Sequence[TextSegment]) -> str:
    return " ".join(s.text for s in segs)
