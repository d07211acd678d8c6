"""Words as the cue builder sees them: Whisper's tokens joined into words with times in whole milliseconds,
how each word joins its neighbours on a line, and whether it ends a clause or a sentence.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pipeline.core.settings import SubtitleSettings
from pipeline.core.types import TextSegment

#: Chinese, Japanese and Korean characters, their punctuation and full-width forms: they count against
#: ``cjk_line_width``.
CJK = re.compile(
    "[\u1100-\u11ff\u2e80-\u2fdf\u3000-\u9fff\ua960-\ua97f\uac00-\ud7ff"
    "\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\U00020000-\U0003ffff]"
)
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff]")
# Korean separates words with spaces; every other CJK character is written without them.
_HANGUL = re.compile("[\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7ff]")
# Scripts written without spaces between words, where Whisper's own leading space is the only word
# separator to trust (Thai, Lao, Myanmar, Khmer).
_SEA = re.compile("[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff]")
# Punctuation that clings to the word before it / after it when tokens are joined.
_GLUE_LEFT = set(",.;:!?)]}%")
_GLUE_RIGHT = set("([{\u201c\u2018\u00bf\u00a1")

CLOSERS = "\"'\u201d\u2019\u300d\u300f\uff09)\\]\u3011\u300b"
_SENTENCE_END = re.compile(f"(?<!\\.)[.?!\u3002\uff1f\uff01\u203c\u2047\u2048\u2049][{CLOSERS}]*$")
_CLAUSE_END = re.compile(f"(?:[,;:\u2014\u2013\uff0c\u3001\uff1b\uff1a\u2026]|\\.\\.\\.)[{CLOSERS}]*$")
# Abbreviations whose full stop does not end a sentence (lower-cased, without the stop).
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "e.g", "i.e", "mt", "fig"})

#: How a word ends: no break, a clause (comma, colon ...) or a sentence.
NO_BREAK, CLAUSE, SENTENCE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Token:
    """One word as shown: its text, its times in ms, and how it joins its neighbours."""

    text: str
    start: int
    end: int
    lead_space: bool


class Words:
    """The whole file's words as flat arrays with prefix sums, so any run's width is O(1)."""

    def __init__(self, tokens: Sequence[Token], settings: SubtitleSettings) -> None:
        self.texts = [t.text for t in tokens]
        self.starts = [t.start for t in tokens]
        self.ends = [t.end for t in tokens]
        self.breaks = [_break_kind(t.text) for t in tokens]
        self.weak = [len(t.text) <= 3 and t.text.isascii() and t.text.isalpha() for t in tokens]
        self.seps = [""] + [_separator(a, b) for a, b in zip(tokens, tokens[1:])]
        self.width = settings.max_line_width
        self.cjk_width = settings.cjk_line_width
        self._len = prefix_sums(len(t) for t in self.texts)
        self._sep = prefix_sums(len(s) for s in self.seps)
        self._cjk = prefix_sums(1 if CJK.search(t) else 0 for t in self.texts)

    def __len__(self) -> int:
        return len(self.texts)

    def text_len(self, a: int, b: int) -> int:
        """Characters of words ``[a, b)`` written on one line."""
        return self._len[b] - self._len[a] + self._sep[b] - self._sep[a + 1]

    def limit(self, a: int, b: int) -> int:
        """The line width for words ``[a, b)``: the CJK width as soon as one CJK character is among them."""
        return self.cjk_width if self.has_cjk(a, b) else self.width

    def has_cjk(self, a: int, b: int) -> bool:
        """Whether a CJK character is among words ``[a, b)``."""
        return self._cjk[b] > self._cjk[a]

    def fits_line(self, a: int, b: int) -> bool:
        """Whether words ``[a, b)`` fit on one line; a single word always does (it cannot be broken)."""
        return b - a == 1 or self.text_len(a, b) <= self.limit(a, b)

    def line(self, a: int, b: int) -> str:
        parts = [self.texts[a]]
        for k in range(a + 1, b):
            parts.append(self.seps[k])
            parts.append(self.texts[k])
        return "".join(parts).strip()

    def line_count(self, a: int, b: int) -> int:
        """Fewest lines words ``[a, b)`` need: greedy filling is optimal because any part of a line fits."""
        lines, line_start = 1, a
        for k in range(a + 1, b):
            if not self.fits_line(line_start, k + 1):
                lines += 1
                line_start = k
        return lines


def prefix_sums(values: Iterable[int]) -> list[int]:
    out = [0]
    for v in values:
        out.append(out[-1] + v)
    return out


def to_ms(seconds: float) -> int | None:
    if not math.isfinite(seconds):
        return None
    return max(0, round(seconds * 1000))


def tokenize(segments: Sequence[TextSegment]) -> list[Token]:
    """All words of all segments as tokens with monotonic ms times (Whisper's can overlap slightly)."""
    out: list[Token] = []
    prev_start = prev_end = 0
    for seg in segments:
        raw = [(w.word, w.start, w.end) for w in seg.words] if seg.words else _spread(seg)
        for text, start_s, end_s in raw:
            clean = " ".join(text.split())
            if not clean:
                continue
            start = to_ms(start_s)
            end = to_ms(end_s)
            start = max(prev_start if start is None else start, prev_start)
            end = max(start if end is None else end, start, prev_end)
            out.append(Token(clean, start, end, text[:1].isspace()))
            prev_start, prev_end = start, end
    return out


def _spread(seg: TextSegment) -> list[tuple[str, float, float]]:
    """A segment without word times: its words share its time in proportion to their lengths."""
    parts = _split_text(seg.text)
    total = sum(len(p.strip()) for p in parts)
    if not total:
        return []
    span = max(0.0, seg.end - seg.start)
    out, done = [], 0
    for part in parts:
        start = seg.start + span * done / total
        done += len(part.strip())
        out.append((part, start, seg.start + span * done / total))
    return out


def _split_text(text: str) -> list[str]:
    """Split text into words: at spaces, and between CJK characters (punctuation stays with its word).

    A word that began after a space keeps one leading space, as Whisper writes it.
    """
    out: list[str] = []
    for chunk in text.split():
        if _HAN.search(chunk):
            # Chinese: words from the segmenter, so a line never breaks inside a word.
            from pipeline.text.cjk import split_words

            parts = split_words(chunk)
            out.extend([" " + parts[0], *parts[1:]] if parts else [])
            continue
        cur, prefix, first = "", "", True
        for ch in chunk:
            cat = unicodedata.category(ch)
            nospace_cur = bool(cur) and _nospace(cur[-1])
            if cat in ("Ps", "Pi") and (not cur or nospace_cur):
                # An opening bracket or quote belongs to the word after it.
                if cur:
                    out.append(cur)
                    cur = ""
                prefix += ch
            elif cat.startswith("P") and cur:
                cur += ch
            elif _nospace(ch) or not cur or nospace_cur:
                if cur:
                    out.append(cur)
                cur = (" " if first else "") + prefix + ch
                prefix, first = "", False
            else:
                cur += ch
        if cur or prefix:
            out.append(cur + prefix if cur else (" " if first else "") + prefix)
    return out


def _nospace(ch: str) -> bool:
    return bool(CJK.match(ch)) and not _HANGUL.match(ch)


def _separator(a: Token, b: Token) -> str:
    """What goes between two words on a line: nothing around CJK and clinging punctuation, else a space."""
    last, first = a.text[-1], b.text[0]
    if _nospace(last) or _nospace(first):
        return ""
    if (first in _GLUE_LEFT and _is_punctuation(b.text)) or (last in _GLUE_RIGHT and _is_punctuation(a.text)):
        return ""
    if _SEA.match(last) and _SEA.match(first) and not b.lead_space:
        return ""
    # Whisper marks a new word with a leading space; a piece without one that starts with punctuation
    # continues the previous word ("www" + ".example" + ".org", "3" + ",000").
    if not b.lead_space and not first.isalnum():
        return ""
    return " "


def _is_punctuation(text: str) -> bool:
    return all(unicodedata.category(ch).startswith("P") for ch in text)


def _break_kind(text: str) -> int:
    if _CLAUSE_END.search(text):
        return CLAUSE
    if _SENTENCE_END.search(text):
        if text.endswith(".") and text[:-1].lower().strip(CLOSERS) in _ABBREVIATIONS:
            return NO_BREAK
        if len(text) == 2 and text[0].isupper() and text[0] != "I" and text[1] == ".":
            return NO_BREAK  # an initial, as in "John F. Kennedy"
        return SENTENCE
    return NO_BREAK
