"""Timed words → readable cues: the readability rules (line width, lines, duration, reading speed, timing).

The writers (:mod:`pipeline.text.writers`) turn the cues into SRT, VTT, JSON and ASS text.

The cue builder works in whole milliseconds, the unit every subtitle format stores, so what is checked here
is exactly what gets written: no rounding can later make two cues overlap or a cue vanish.

Building cues is linear in the number of words: the words are cut into sentences (sentence punctuation,
long pauses), each sentence is cut into cues by a small dynamic programme whose candidates are bounded by
what fits on screen, tiny fragments are merged with short neighbours, and each cue's lines are balanced.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Sequence

from pipeline.core.settings import SubtitleSettings
from pipeline.core.types import Cue, SpeechSpan, TextSegment, Transcript
from pipeline.text.words import CLAUSE, NO_BREAK, SENTENCE, Words, to_ms, tokenize

#: A pause between two words longer than this always ends a cue (ms).
MAX_PAUSE_MS = 1000
#: Gaps between cues shorter than one video frame flicker; they are closed (ms).
FRAME_MS = 40

# Cue-cutting weights (dimensionless). One cue costs _CUE; an emptier cue costs up to _FILL more, which
# makes the split of a long sentence balanced; a cut away from punctuation costs _CUT[kind], less when it
# falls in a pause; a 1–2-word cue inside a longer sentence costs _ORPHAN; reading too fast costs _CPS.
_CUE = 0.5
_FILL = 2.0
_CUT = {NO_BREAK: 1.0, CLAUSE: 0.3, SENTENCE: 0.0}
_PAUSE_BONUS_S = 0.5
_ORPHAN = 1.0
_CPS = 0.5
# Ending a cue or a line on a short word ("the", "of", "for") splits a phrase; it costs _WEAK more, or
# _WEAK_CHARS characters of imbalance for a line.
_WEAK = 0.4
_WEAK_CHARS = 8.0
# Line balancing: a top line shorter than the bottom one costs this much more per character than the other
# way round; a break at punctuation wins when the top line is at least _MIN_TOP of the bottom one and the
# bottom at least 1/_MIN_BOTTOM of the top; with three or more lines it is worth this share of a line.
_TOP_SHORT = 2.5
_MIN_TOP = 0.6
_MIN_BOTTOM = 3
_BREAK_BONUS = {NO_BREAK: 0.0, CLAUSE: 0.35, SENTENCE: 0.6}


def build_cues(
    segments: Sequence[TextSegment],
    settings: SubtitleSettings,
    speech: Sequence[SpeechSpan] = (),
) -> list[Cue]:
    """Turn Whisper's timed text into readable cues (the rules of ``SubtitleSettings``).

    Hard rules hold for every cue: line width (``cjk_line_width`` for lines with CJK characters),
    ``max_lines``, ``max_duration``, time order without overlap, whole words, every word once and in order.
    The soft rules (``min_duration``, ``max_cps``) are met by extending a cue into the pause after it, as far
    as the next cue and the next speech allow.

    Args:
        segments: Whisper text segments in file time; segments without word times have their text spread
            over their time by character count.
        settings: The subtitle rules.
        speech: VAD speech spans in file time; a cue is not extended into the next one.

    Returns:
        The cues, numbered from 1, with times in whole milliseconds.
    """
    words = Words(tokenize(segments), settings)
    if not len(words):
        return []
    ranges = _merge_fragments(words, _cut_all(words, settings), settings)
    times = _cue_times(words, ranges, settings, _speech_starts(speech))
    return [
        Cue(index=i + 1, start=start / 1000, end=end / 1000, lines=_layout(words, a, b))
        for i, ((a, b), (start, end)) in enumerate(zip(ranges, times))
    ]


def _max_ms(settings: SubtitleSettings) -> int:
    # Rounded down, so that a cue of this many ms never exceeds the limit in seconds.
    return math.floor(settings.max_duration * 1000 + 1e-6)


# --- cutting into cues ---------------------------------------------------------------------------------


def _sentences(words: Words) -> list[tuple[int, int]]:
    """Runs of words ending at a sentence end or before a long pause."""
    out, a = [], 0
    for k in range(len(words) - 1):
        if words.breaks[k] == SENTENCE or words.starts[k + 1] - words.ends[k] > MAX_PAUSE_MS:
            out.append((a, k + 1))
            a = k + 1
    out.append((a, len(words)))
    return out


def _cut_all(words: Words, settings: SubtitleSettings) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in _sentences(words):
        out.extend(_cut_sentence(words, a, b, settings))
    return out


def _cut_sentence(words: Words, s: int, e: int, settings: SubtitleSettings) -> list[tuple[int, int]]:
    """Cut one sentence into cues at the least cost; each start tries only the cues that fit on screen."""
    max_ms = _max_ms(settings)
    best = [math.inf] * (e - s + 1)
    back = [0] * (e - s + 1)
    best[0] = 0.0
    for i in range(s, e):
        base = best[i - s]
        lines, line_start = 1, i
        for j in range(i + 1, e + 1):
            if j > i + 1:
                if not words.fits_line(line_start, j):
                    lines += 1
                    line_start = j - 1
                if lines > settings.max_lines or words.ends[j - 1] - words.starts[i] > max_ms:
                    break
            cost = base + _cue_cost(words, i, j, e - s, settings)
            if cost < best[j - s]:
                best[j - s] = cost
                back[j - s] = i
    out, j = [], e
    while j > s:
        i = back[j - s]
        out.append((i, j))
        j = i
    out.reverse()
    return out


def _cue_cost(words: Words, i: int, j: int, sentence_words: int, settings: SubtitleSettings) -> float:
    """The cost of words ``[i, j)`` as one cue of a sentence; ``j`` may be the sentence's end."""
    chars = words.text_len(i, j)
    capacity = settings.max_lines * words.limit(i, j)
    cost = _CUE + _FILL * (1.0 - min(1.0, chars / capacity)) ** 2
    if words.breaks[j - 1] != SENTENCE and j < len(words):
        pause_s = (words.starts[j] - words.ends[j - 1]) / 1000
        if pause_s * 1000 <= MAX_PAUSE_MS:
            cut = _CUT[words.breaks[j - 1]] + (_WEAK if words.weak[j - 1] else 0.0)
            cost += max(0.0, cut - min(pause_s, _PAUSE_BONUS_S))
    if j - i <= 2 < sentence_words:
        cost += _ORPHAN
    shown_s = max((words.ends[j - 1] - words.starts[i]) / 1000 + settings.tail, settings.min_duration, 1e-3)
    cost += _CPS * max(0.0, chars / shown_s / _cps(words, i, j, settings) - 1.0)
    return cost


def _cps(words: Words, a: int, b: int, settings: SubtitleSettings) -> float:
    """The reading speed for words ``[a, b)``: CJK text is read by the character, more slowly."""
    return settings.cjk_max_cps if words.has_cjk(a, b) else settings.max_cps


def _fits(words: Words, a: int, b: int, settings: SubtitleSettings) -> bool:
    """The hard rules for words ``[a, b)`` as one cue: lines and duration (a single word always fits)."""
    if b - a == 1:
        return True
    if words.ends[b - 1] - words.starts[a] > _max_ms(settings):
        return False
    return words.line_count(a, b) <= settings.max_lines


def _merge_fragments(words: Words, ranges: list[tuple[int, int]], settings: SubtitleSettings) -> list[tuple[int, int]]:
    """Join a 1–2-word cue with a neighbour that is short (fits one line) when the result still fits."""
    out: list[tuple[int, int]] = []
    for a, b in ranges:
        if out:
            pa, pb = out[-1]
            tiny_prev, tiny_cur = pb - pa <= 2, b - a <= 2
            joinable = (
                (tiny_prev and (tiny_cur or words.fits_line(a, b))) or (tiny_cur and words.fits_line(pa, pb))
            ) and words.starts[a] - words.ends[pb - 1] <= MAX_PAUSE_MS
            if joinable and _fits(words, pa, b, settings):
                out[-1] = (pa, b)
                continue
        out.append((a, b))
    return out


# --- timing ----------------------------------------------------------------------------------------


def _speech_starts(speech: Sequence[SpeechSpan]) -> list[int]:
    return sorted(ms for ms in (to_ms(s.start) for s in speech) if ms is not None)


def _cue_times(
    words: Words, ranges: list[tuple[int, int]], settings: SubtitleSettings, speech_starts: list[int]
) -> list[tuple[int, int]]:
    """Start at the first word; end after the last word plus the tail, extended toward the soft rules.

    The tail may reach the next cue; a longer extension (minimum duration, reading speed) stops at the next
    cue and at the next speech. A cue never lasts more than ``max_duration``.
    """
    max_ms = _max_ms(settings)
    min_ms = round(settings.min_duration * 1000)
    tail_ms = round(settings.tail * 1000)
    starts = [words.starts[a] for a, _ in ranges]
    out: list[tuple[int, int]] = []
    for k, (a, b) in enumerate(ranges):
        start, last_end = starts[k], words.ends[b - 1]
        next_start = starts[k + 1] if k + 1 < len(ranges) else math.inf
        read_ms = math.ceil(words.text_len(a, b) * 1000 / _cps(words, a, b, settings))
        target = max(last_end + tail_ms, start + min_ms, start + read_ms)
        i = bisect.bisect_right(speech_starts, last_end)
        next_speech = speech_starts[i] if i < len(speech_starts) else math.inf
        end = min(target, max(last_end + tail_ms, next_speech), next_start, start + max_ms)
        if 0 < next_start - end < FRAME_MS and next_start - start <= max_ms:
            end = next_start
        out.append((start, int(end)))
    return _monotonic(out)


def _monotonic(times: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Give every cue at least 1 ms and keep order; only words with zero or equal times need this."""
    out: list[tuple[int, int]] = []
    prev_end = 0
    for start, end in times:
        start = max(start, prev_end)
        end = max(end, start + 1)
        out.append((start, end))
        prev_end = end
    return out


# --- lines -----------------------------------------------------------------------------------------


def _layout(words: Words, a: int, b: int) -> tuple[str, ...]:
    """Break words ``[a, b)`` into as few lines as they need, balanced and at punctuation where possible."""
    count = words.line_count(a, b)
    if count == 1:
        return (words.line(a, b),)
    if count == 2:
        return _layout_two(words, a, b)
    return tuple(words.line(x, y) for x, y in _layout_many(words, a, b, count))


def _layout_two(words: Words, a: int, b: int) -> tuple[str, str]:
    """Two lines: the strongest punctuation among breaks whose lines are not too uneven, then balance.

    "Not too uneven": the top line at least 60% of the bottom one and the bottom at least a third of the
    top. Among equals the most balanced break wins, a top line shorter than the bottom counting extra, and
    a top line ending on a short word too.
    """
    best_k, best = a + 1, (math.inf, math.inf)
    for k in range(a + 1, b):
        if not (words.fits_line(a, k) and words.fits_line(k, b)):
            continue
        top, bottom = words.text_len(a, k), words.text_len(k, b)
        even = top >= _MIN_TOP * bottom and bottom * _MIN_BOTTOM >= top
        key = (-words.breaks[k - 1] if even else 1, _imbalance(top, bottom) + _WEAK_CHARS * words.weak[k - 1])
        if key < best:
            best_k, best = k, key
    return words.line(a, best_k), words.line(best_k, b)


def _imbalance(top: int, bottom: int) -> float:
    return float(top - bottom) if top >= bottom else _TOP_SHORT * (bottom - top)


def _layout_many(words: Words, a: int, b: int, count: int) -> list[tuple[int, int]]:
    """Three or more lines: least squared distance from equal lines, less punctuation bonuses."""
    target = words.text_len(a, b) / count
    bonus_unit = words.limit(a, b)
    # cost[l][k]: best cost of words [a, k) on l lines; prev[l][k]: where the l-th line starts.
    cost = [[math.inf] * (b + 1) for _ in range(count + 1)]
    prev = [[a] * (b + 1) for _ in range(count + 1)]
    cost[0][a] = 0.0
    for lines in range(1, count + 1):
        for start in range(a, b):
            base = cost[lines - 1][start]
            if base == math.inf:
                continue
            for k in range(start + 1, b + 1):
                if not words.fits_line(start, k):
                    break
                c = base + (words.text_len(start, k) - target) ** 2
                if k < b:
                    c -= _BREAK_BONUS[words.breaks[k - 1]] * bonus_unit * target / 4
                if c < cost[lines][k]:
                    cost[lines][k] = c
                    prev[lines][k] = start
    out, k = [], b
    for lines in range(count, 0, -1):
        start = prev[lines][k]
        out.append((start, k))
        k = start
    out.reverse()
    return out


# --- bilingual ------------------------------------------------------------------------------------


def bilingual(original: Transcript, english: Transcript, settings: SubtitleSettings) -> Transcript:
    """One cue list with each original line above its English translation, timed on the original.

    The original is cut again into one-line cues; each translated word goes to the cue its time overlaps
    most (the nearest cue when it overlaps none), so the English follows the speech it translates.
    A translated segment without word times goes whole to the cue it overlaps most.
    """
    one_line = dataclasses.replace(settings, max_lines=1)
    cues = build_cues(original.segments, one_line)
    if not cues:
        return dataclasses.replace(original, cues=[])
    pieces: list[list[str]] = [[] for _ in cues]
    at = 0  # words stay in order: a word never goes to a cue before the previous word's
    for seg in english.segments:
        items = [(w.word, w.start, w.end) for w in seg.words] if seg.words else [(" " + seg.text, seg.start, seg.end)]
        for text, start, end in items:
            at = max(at, _best_cue(cues, start, end))
            pieces[at].append(text)
    out = []
    for cue, texts in zip(cues, pieces):
        english_line = " ".join("".join(texts).split())
        lines = (" ".join(cue.lines),) + ((english_line,) if english_line else ())
        out.append(dataclasses.replace(cue, lines=lines))
    return dataclasses.replace(original, cues=out)


def _best_cue(cues: Sequence[Cue], start: float, end: float) -> int:
    """The cue overlapping [start, end] most; without overlap, the one nearest its middle."""
    starts = [c.start for c in cues]
    i = max(0, bisect.bisect_right(starts, start) - 1)
    best, best_overlap = i, -math.inf
    for k in range(max(0, i - 1), min(len(cues), bisect.bisect_right(starts, end) + 1)):
        overlap = min(end, cues[k].end) - max(start, cues[k].start)
        if overlap > best_overlap:
            best, best_overlap = k, overlap
    if best_overlap > 0:
        return best
    middle = (start + end) / 2
    return min(range(len(cues)), key=lambda k: min(abs(cues[k].start - middle), abs(cues[k].end - middle)))


def writable_cues(cues: Sequence[Cue]) -> list[tuple[int, int, tuple[str, ...]]]:
    """Cues as whole milliseconds, in order, none empty, none overlapping, none of zero length."""
    out: list[tuple[int, int, tuple[str, ...]]] = []
    prev_end = 0
    for cue in sorted(cues, key=lambda c: c.start):
        lines = tuple(part.strip() for line in cue.lines for part in line.splitlines() if part.strip())
        start, end = to_ms(cue.start), to_ms(cue.end)
        if not lines or start is None or end is None:
            continue
        start = max(start, prev_end)
        end = max(end, start + 1)
        out.append((start, end, lines))
        prev_end = end
    return out
