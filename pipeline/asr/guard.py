"""Hallucination guard: finds Whisper output that is not speech, per window, from what decoding returned.

Whisper invents text for audio without speech ("you", ". .") and can loop ("I feel the pain in my heart."
over and over), most often in noise, music or babble. faster-whisper's batched pipeline has no fallback
of its own, so each window's result is judged here:

- **no speech**: ``no_speech_prob`` above 0.6 with ``avg_logprob`` below -1.0 (Whisper's own skip rule),
  or above 0.6 over audio that is silent (RMS under -60 dBFS: VAD off, or a silent stretch inside a
  window, where Whisper answers a confident "you"); re-decoding would not help, so the window is dropped
  at once;
- **compression**: a gzip compression ratio above 2.4 (Whisper's threshold): the text repeats itself;
- **repetition**: the same line (sentence) three or more times in a row, or a run of one n-gram repeated
  at least three times and ten words long.

A window with compression or repetition is decoded once more with fallback settings (see
``pipeline.asr.transcribe``); when that fails too it is dropped. A window whose words leave a long stretch of
its VAD speech uncovered (``coverage_gap_s``: Whisper skipped a sentence) gets that stretch decoded again
on its own, and the result, if the guard accepts it, joins the window's text. Judging costs a few string operations per
window and nothing else, so the normal path pays nothing measurable. Lines repeated across windows are
removed by :func:`drop_repeated_lines`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from pipeline.core.settings import GuardSettings
from pipeline.core.types import TextSegment, Word

_SENTENCE_END = re.compile(r"[.?!\u3002\uff1f\uff01]+[\"'\u201d\u2019)\]]*$")
_PUNCT = re.compile(r"[^\w\s']+")


@dataclass(frozen=True)
class Problem:
    """Why a window's text is not trusted.

    Attributes:
        reason: For the log and ``SegmentResult.dropped``.
        retry: Whether decoding again with fallback settings may help (loops), or not (no speech).
    """

    reason: str
    retry: bool


def judge(
    segments: Sequence[TextSegment], settings: GuardSettings, samples: np.ndarray | None = None
) -> Problem | None:
    """Judge one window's decoded text.

    Args:
        segments: What Whisper returned for the window (usually one segment).
        settings: The thresholds.
        samples: The window's audio (int16 or float32); its level is measured only when Whisper's
            no-speech probability is high, so the normal path never touches it.

    Returns:
        The problem found, or None when the text looks like speech.
    """
    if not settings.enabled or not segments:
        return None
    if all(s.no_speech_prob > settings.no_speech_prob for s in segments):
        worst = max(segments, key=lambda s: s.no_speech_prob)
        probs = f"no_speech_prob {worst.no_speech_prob:.2f}, avg_logprob {worst.avg_logprob:.2f}"
        if all(s.avg_logprob < settings.log_prob for s in segments):
            return Problem(f"no speech ({probs})", False)
        level = level_db(samples) if samples is not None else 0.0
        if level < settings.silence_db:
            return Problem(f"no speech in silence ({probs}, level {level:.0f} dBFS)", False)
    ratio = max(s.compression_ratio for s in segments)
    if ratio > settings.compression_ratio:
        return Problem(f"compression ratio {ratio:.2f} > {settings.compression_ratio}", True)
    text = " ".join(s.text for s in segments)
    line, count = _longest_line_run(_lines(text))
    if count > settings.max_line_repeats:
        return Problem(f"line {line!r} {count} times in a row", True)
    loop = _loop(normalise(text).split(), settings)
    if loop is not None:
        return Problem(f"{loop[0]!r} repeated {loop[1]} times", True)
    return None


def drop_repeated_lines(
    segments: Sequence[TextSegment], settings: GuardSettings, before: Sequence[str] = ()
) -> tuple[list[TextSegment | None], list[tuple[int, str]]]:
    """Remove every line that would be the same line a third (``max_line_repeats`` + 1) time in a row.

    Lines are sentences, followed across segment boundaries in order. A segment with word times loses the
    words of its removed lines; one without loses their text.

    Args:
        segments: Text segments in file order.
        settings: ``max_line_repeats`` and ``enabled``.
        before: Normalised lines just before ``segments`` (the last few of earlier windows), oldest first.

    Returns:
        The segments, each one kept, shortened, or None when nothing of it is left; and (segment position,
        reason) for each segment that lost something.
    """
    if not settings.enabled:
        return list(segments), []
    history = list(before)
    out: list[TextSegment | None] = []
    notes: list[tuple[int, str]] = []
    for k, seg in enumerate(segments):
        kept_lines: list[tuple[int, int, str]] = []
        removed: list[str] = []
        for a, b, text in _segment_lines(seg):
            key = normalise(text)
            if (
                key
                and len(history) >= settings.max_line_repeats
                and all(h == key for h in history[-settings.max_line_repeats :])
            ):
                removed.append(text)
                continue
            if key:
                history.append(key)
            kept_lines.append((a, b, text))
        if not removed:
            out.append(seg)
            continue
        notes.append((k, f"line {removed[0]!r} repeated more than {settings.max_line_repeats} times in a row"))
        out.append(_keep_lines(seg, kept_lines))
    return out, notes


def level_db(samples: np.ndarray) -> float:
    """RMS level of int16 or float32 samples in dB below full scale (-inf for digital silence)."""
    if not samples.size:
        return -math.inf
    x = samples.astype(np.float32) / (32768.0 if samples.dtype == np.int16 else 1.0)
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def normalise(text: str) -> str:
    """Lower case, no punctuation, single spaces: what two lines must share to count as the same."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def _lines(text: str) -> list[str]:
    """Sentences of ``text``: runs of words up to sentence punctuation."""
    out, cur = [], []
    for token in text.split():
        cur.append(token)
        if _SENTENCE_END.search(token):
            out.append(" ".join(cur))
            cur = []
    if cur:
        out.append(" ".join(cur))
    return out


def _segment_lines(seg: TextSegment) -> list[tuple[int, int, str]]:
    """A segment's lines as (first word, end word, text); word positions are 0, 0 without word times."""
    if not seg.words:
        return [(0, 0, line) for line in _lines(seg.text)]
    out, start = [], 0
    for k, w in enumerate(seg.words):
        if _SENTENCE_END.search(w.word.strip()) or k == len(seg.words) - 1:
            out.append((start, k + 1, "".join(x.word for x in seg.words[start : k + 1]).strip()))
            start = k + 1
    return out


def _keep_lines(seg: TextSegment, lines: list[tuple[int, int, str]]) -> TextSegment | None:
    if not lines:
        return None
    if not seg.words:
        return replace(seg, text=" ".join(text for _, _, text in lines))
    words: list[Word] = [w for a, b, _ in lines for w in seg.words[a:b]]
    text = "".join(w.word for w in words).strip()
    return replace(seg, text=text, words=tuple(words), start=words[0].start, end=words[-1].end)


def _longest_line_run(lines: list[str]) -> tuple[str, int]:
    best, best_count, prev, count = "", 0, None, 0
    for line in lines:
        key = normalise(line)
        count = count + 1 if key and key == prev else 1
        prev = key
        if key and count > best_count:
            best, best_count = line, count
    return best, best_count


def _loop(tokens: list[str], settings: GuardSettings) -> tuple[str, int] | None:
    """The first n-gram repeated back to back ``loop_repeats`` times over ``loop_words`` words, if any."""
    size = len(tokens)
    for n in range(1, settings.loop_max_n + 1):
        need = max(settings.loop_repeats, -(-settings.loop_words // n))  # repeats, rounded up
        if need * n > size:
            break
        i = 0
        while i + need * n <= size:
            reps = 1
            while tokens[i + reps * n : i + (reps + 1) * n] == tokens[i : i + n]:
                reps += 1
            if reps >= need:
                return " ".join(tokens[i : i + n]), reps
            i += 1
    return None
