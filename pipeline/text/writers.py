"""Writers: a transcript as SRT, VTT, JSON or ASS text (its cues from :func:`~pipeline.text.cues.writable_cues`)."""

from __future__ import annotations

import html
import json
from typing import Any

import pysubs2

from pipeline.core.errors import UsageError
from pipeline.core.settings import ExportSettings
from pipeline.core.types import Transcript
from pipeline.text.ass import ass_text
from pipeline.text.cues import writable_cues

#: Formats :func:`render` writes.
RENDER_FORMATS = ("srt", "vtt", "json", "ass")


def render(
    transcript: Transcript,
    fmt: str,
    style: ExportSettings | None = None,
    video_size: tuple[int, int] | None = None,
) -> str:
    """Write a transcript as subtitle text.

    Args:
        transcript: The finished transcript; its cues are written in time order.
        fmt: ``srt``, ``vtt``, ``json`` or ``ass``.
        style: ASS only: font, size, karaoke (:func:`pipeline.text.ass.ass_text`).
        video_size: ASS only: the video's width and height, for the canvas's aspect ratio.

    Returns:
        The file's text (UTF-8 when saved).

    Raises:
        UsageError: The format is unknown.
    """
    fmt = fmt.strip().lower().lstrip(".")
    if fmt == "json":
        return json.dumps(transcript_to_dict(transcript), ensure_ascii=False, indent=2) + "\n"
    if fmt not in RENDER_FORMATS:
        raise UsageError(f"unknown subtitle format {fmt!r}: use one of {', '.join(RENDER_FORMATS)}")
    if fmt == "ass":
        return ass_text(transcript, style, video_size)
    subs = pysubs2.SSAFile()
    for start, end, lines in writable_cues(transcript.cues):
        subs.append(pysubs2.SSAEvent(start=start, end=end, text=_event_text(lines, fmt)))
    # keep_ssa_tags: write the text as it is; otherwise pysubs2 would treat "{...}" as override tags.
    return subs.to_string(fmt, keep_ssa_tags=True)


def _event_text(lines: tuple[str, ...], fmt: str) -> str:
    if fmt == "vtt":
        # WebVTT cue text is markup: "&", "<" and ">" (as in "-->") must be escaped.
        lines = tuple(html.escape(line, quote=False) for line in lines)
    # pysubs2 keeps line breaks as "\N" and turns them into real newlines when writing SRT and VTT.
    return r"\N".join(lines)


def transcript_to_dict(transcript: Transcript) -> dict[str, Any]:
    """The JSON document of a transcript; times in seconds, rounded to the millisecond.

    The cues carry exactly the times and numbers the SRT and VTT files get.
    """
    return {
        "language": transcript.language,
        "language_probability": transcript.language_probability,
        "language_warning": transcript.language_warning,
        "duration": round(float(transcript.duration), 3),
        "model": transcript.model,
        "model_reason": transcript.model_reason,
        "segments": [
            {
                "start": round(seg.start, 3),
                "end": round(seg.end, 3),
                "text": seg.text.strip(),
                "words": [
                    {
                        "word": w.word,
                        "start": round(w.start, 3),
                        "end": round(w.end, 3),
                        "probability": round(w.probability, 4),
                    }
                    for w in seg.words
                ],
            }
            for seg in transcript.segments
        ],
        "cues": [
            {"index": i + 1, "start": start / 1000, "end": end / 1000, "lines": list(lines)}
            for i, (start, end, lines) in enumerate(writable_cues(transcript.cues))
        ],
        "timings": {k: round(float(v), 3) for k, v in transcript.timings.items()},
        "task": transcript.task,
        **transcript.extra,
    }
