"""Chinese text for subtitles: Whisper's sub-word tokens joined into words (jieba), and the script (OpenCC).

faster-whisper returns CJK text as tokens, not words: "经" "历", "小" "伙" "伴". A subtitle line may break
only between words, so the tokens of each segment are joined into the words of the jieba segmenter, each
keeping the real times of its first and last token. Latin words and numbers in mixed text stay whole and
punctuation clings to the word before it, so a line never starts with "，". Script conversion (Simplified
or Traditional Chinese) is applied word by word before cues are built, so line lengths are the lengths
shown.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pipeline.core.types import TextSegment, Word

log = logging.getLogger(__name__)

#: Languages whose text is Chinese characters (Mandarin, Cantonese).
CHINESE = frozenset({"zh", "yue"})
#: ``--chinese`` values, and the OpenCC configuration of each (``None``: no conversion).
SCRIPTS = {"simplified": "t2s", "traditional": "s2twp", "keep": None}
#: The stored value meaning "the default": Simplified for Chinese, nothing for other languages.
AUTO = "auto"

_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff]")


def is_chinese(language: str | None) -> bool:
    """Whether ``language`` (an ISO 639-1 code) is written in Chinese characters."""
    return (language or "").lower() in CHINESE


def script_for(chinese: str, language: str | None) -> tuple[str | None, str]:
    """Which conversion applies to a transcript, and the note for the log and JSON.

    Args:
        chinese: ``auto``, ``simplified``, ``traditional`` or ``keep``.
        language: The transcript's language.

    Returns:
        (the script to convert to, or None for none; a note, blank when nothing needs saying).
    """
    if not is_chinese(language):
        if chinese not in (AUTO, "keep"):
            return None, f"--chinese {chinese} ignored: the language is {language or 'unknown'}, not Chinese"
        return None, ""
    script = "simplified" if chinese == AUTO else chinese
    return (None if script == "keep" else script), ""


@functools.lru_cache(maxsize=4)
def _converter(config: str) -> Any:  # noqa: ANN401 - opencc.OpenCC
    import opencc

    return opencc.OpenCC(config)


def convert(text: str, script: str) -> str:
    """``text`` in the Simplified or Traditional (Taiwan, with its words) script."""
    config = SCRIPTS[script]
    return text if config is None else _converter(config).convert(text)


@functools.lru_cache(maxsize=1)
def _jieba() -> Any:  # noqa: ANN401 - the jieba module
    import jieba

    # jieba prints its dictionary loading at INFO on stderr; the user sees our own warnings only.
    jieba.setLogLevel(logging.WARNING)
    return jieba


def _punct(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P")


def _latin(ch: str) -> bool:
    return ch.isascii() and not ch.isspace()


def _boundaries(text: str) -> set[int]:
    """Character offsets where a new word may start in ``text``: jieba's word starts, less those that would
    split a Latin word or number ("GPT-4", "3.5") or start a word with punctuation."""
    starts, pos = set(), 0
    for piece in _jieba().cut(text, HMM=True):
        starts.add(pos)
        pos += len(piece)
    out = set()
    for k in sorted(starts):
        if k == 0 or k >= len(text):
            continue
        prev, ch = text[k - 1], text[k]
        if ch.isspace() or prev.isspace():
            out.add(k)
            continue
        if _punct(ch) and ch not in "(\uff08\u300c\u300e\u201c\u3010\u300a":
            continue
        if _latin(prev) and _latin(ch):
            continue
        out.add(k)
    # Between Han characters jieba decides; a space always separates.
    return out


def split_words(text: str) -> list[str]:
    """Split Chinese (or mixed) text into words for line breaking; joined they give ``text`` back.

    A word after a space keeps that space in front, as Whisper writes words.
    """
    if not text:
        return []
    cuts = [0, *sorted(_boundaries(text)), len(text)]
    out: list[str] = []
    for a, b in zip(cuts, cuts[1:]):
        piece = text[a:b]
        if piece.strip():
            out.append(piece)
        elif out:
            out[-1] += piece
    return out


def merge_words(words: Sequence[Word]) -> list[Word]:
    """Join Whisper's tokens into words: a new word starts only where jieba starts one *and* a token starts.

    Tokens are never split, so every word keeps real times: the start of its first token and the end of
    its last; its probability is the lowest of its tokens'.
    """
    if not words:
        return []
    text = "".join(w.word for w in words)
    if not _HAN.search(text):
        return list(words)
    allowed = _boundaries(text)
    out: list[Word] = []
    group: list[Word] = []
    pos = 0
    for w in words:
        if group and (pos in allowed or w.word[:1].isspace()):
            out.append(_join(group))
            group = []
        group.append(w)
        pos += len(w.word)
    out.append(_join(group))
    return out


def _join(group: list[Word]) -> Word:
    if len(group) == 1:
        return group[0]
    return Word(
        word="".join(w.word for w in group),
        start=group[0].start,
        end=max(w.end for w in group),
        probability=min(w.probability for w in group),
    )


def prepare(segments: Sequence[TextSegment], script: str | None) -> list[TextSegment]:
    """Chinese segments ready for cues: tokens joined into words, then each word in ``script`` (if any)."""
    out: list[TextSegment] = []
    for seg in segments:
        if seg.words:
            words = merge_words(seg.words)
            if script is not None:
                words = [replace(w, word=convert(w.word, script)) for w in words]
            seg = replace(seg, words=tuple(words), text="".join(w.word for w in words).strip())
        elif script is not None:
            seg = replace(seg, text=convert(seg.text, script))
        out.append(seg)
    return out
