"""Styled ASS subtitles (pysubs2): font, size and margins from the export settings; karaoke from the word times."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pysubs2

from pipeline.core.settings import ExportSettings
from pipeline.core.types import Transcript, Word
from pipeline.text.cues import writable_cues

#: The ASS canvas height; the width follows the video's aspect ratio (16:9 without a video).
PLAY_RES_Y = 1080
#: Font names per language for ``font="auto"``; a missing font is replaced by fontconfig's best match.
AUTO_FONTS = {
    "zh": "Noto Sans CJK SC",
    "yue": "Noto Sans CJK TC",
    "ja": "Noto Sans CJK JP",
    "ko": "Noto Sans CJK KR",
}
DEFAULT_FONT = "Noto Sans"


def ass_style(settings: ExportSettings, language: str | None, play_res_y: int = PLAY_RES_Y) -> pysubs2.SSAStyle:
    """The readable default style: a sans font, white with a black outline and soft shadow, bottom centre."""
    font = settings.font if settings.font != "auto" else AUTO_FONTS.get((language or "").lower(), DEFAULT_FONT)
    scale = play_res_y / PLAY_RES_Y
    return pysubs2.SSAStyle(
        fontname=font,
        fontsize=round(settings.font_size * scale, 1),
        primarycolor=pysubs2.Color(255, 255, 255, 0),
        # Karaoke: words not yet spoken are drawn in the secondary colour, spoken ones in the primary.
        secondarycolor=pysubs2.Color(170, 170, 170, 0),
        outlinecolor=pysubs2.Color(0, 0, 0, 0),
        backcolor=pysubs2.Color(0, 0, 0, 128),
        bold=False,
        borderstyle=1,
        outline=round(3.0 * scale, 1),
        shadow=round(1.0 * scale, 1),
        alignment=pysubs2.Alignment.BOTTOM_CENTER,
        marginl=round(80 * scale),
        marginr=round(80 * scale),
        marginv=round(settings.margin_v * scale),
    )


def ass_text(
    transcript: Transcript,
    settings: ExportSettings | None = None,
    video_size: tuple[int, int] | None = None,
) -> str:
    """The transcript's cues as a styled ASS file, one event per cue.

    Args:
        transcript: The cues to write (and the words, for karaoke).
        settings: Font, size, margin and ``karaoke`` (per-word ``\\k`` tags from the word times).
        video_size: The video's width and height: the canvas takes its aspect ratio, so text is not stretched.

    Returns:
        The ASS file's text.
    """
    settings = settings or ExportSettings()
    width, height = video_size if video_size and video_size[0] > 0 and video_size[1] > 0 else (16, 9)
    subs = pysubs2.SSAFile()
    subs.info["PlayResY"] = str(PLAY_RES_Y)
    subs.info["PlayResX"] = str(round(PLAY_RES_Y * width / height))
    subs.info["ScaledBorderAndShadow"] = "yes"
    subs.info["Title"] = "video2srt"
    subs.styles["Default"] = ass_style(settings, transcript.language)
    words = sorted(transcript.words, key=lambda w: w.start) if settings.karaoke else []
    for start, end, lines in writable_cues(transcript.cues):
        lines = tuple(line.replace("{", "(").replace("}", ")") for line in lines)
        if settings.karaoke:
            text = karaoke_text(lines, start, end, words_in(words, start / 1000, end / 1000))
        else:
            text = r"\N".join(lines)
        subs.append(pysubs2.SSAEvent(start=start, end=end, text=text, style="Default"))
    return subs.to_string("ass")


def words_in(words: Sequence[Word], start: float, end: float) -> list[Word]:
    """The words whose middle falls in ``[start, end)`` (words sorted by start)."""
    return [w for w in words if start <= (w.start + w.end) / 2 < end]


def karaoke_text(lines: Sequence[str], start_ms: int, end_ms: int, words: Sequence[Word]) -> str:
    """One cue's ASS text with a ``{\\kN}`` tag (centiseconds) before each word.

    When the cue's text is exactly its recognised words (spaces aside), each word lights up at its own
    time; an edited cue's words share its time in proportion to their length.
    """
    text = "\n".join(lines)
    letters = "".join(text.split())
    pieces = [(w.word.strip(), w.start * 1000, w.end * 1000) for w in words if w.word.strip()]
    if pieces and "".join(p for p, _, _ in pieces) == letters:
        units = [(len(p), max(s, start_ms), min(max(e, s), end_ms)) for p, s, e in pieces]
    else:
        tokens = text.split() if " " in text.strip() or "\n" in text.strip() else list(letters)
        total = sum(len(t) for t in tokens) or 1
        units, done = [], 0
        for token in tokens:
            s = start_ms + (end_ms - start_ms) * done / total
            done += len(token)
            units.append((len(token), s, start_ms + (end_ms - start_ms) * done / total))
    # Each word's \k runs from its start to the next word's start; times are rounded cumulatively so
    # that rounding never drifts over a long cue.
    starts = [u[1] for u in units]
    marks = [round((t - start_ms) / 10) for t in starts] + [math.ceil((units[-1][2] - start_ms) / 10)]
    out: list[str] = []
    if marks[0] > 0:
        out.append(f"{{\\k{marks[0]}}}")
    unit, left = 0, units[0][0]
    pending = True
    for ch in text:
        if ch == "\n":
            out.append(r"\N")
            continue
        if ch.isspace():
            out.append(ch)
            continue
        if pending:
            out.append(f"{{\\k{max(0, marks[unit + 1] - marks[unit])}}}")
            pending = False
        out.append(ch)
        left -= 1
        if left == 0 and unit + 1 < len(units):
            unit += 1
            left, pending = units[unit][0], True
    return "".join(out)
