"""Reviewing and correcting cues: the rules an edited cue list must keep, and the flags that point a reviewer
at the cues worth a look.

An edit is a full list of ``{start, end, text}``. It is checked cue by cue, in order, and the first cue
that breaks a rule is reported (:class:`~pipeline.core.errors.CueEditError`) with the reason: times that do not
increase, an overlap with the cue before, empty text, or text that does not fit the line limits. A line
longer than the limit is wrapped at spaces first (an edit typed as one line is fine as long as it fits the
cue's lines). The same check serves the HTTP API, the workbench and any script.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from pipeline.core.errors import CueEditError, UsageError
from pipeline.core.settings import SubtitleSettings
from pipeline.core.types import Cue, TextSegment, Transcript, Word
from pipeline.text.cues import writable_cues
from pipeline.text.words import CJK

#: Words the model was less sure of than this are flagged for review.
LOW_CONFIDENCE = 0.5
#: Flag names, in the order they are listed.
FLAGS = ("low_confidence", "line_too_long", "too_many_lines", "too_fast", "too_short", "too_long")


def _width(line: str, settings: SubtitleSettings) -> int:
    return settings.cjk_line_width if CJK.search(line) else settings.max_line_width


def wrap_text(text: str, settings: SubtitleSettings) -> tuple[str, ...]:
    """Break ``text`` into lines: its own line breaks kept, a line over the width wrapped at spaces (balanced).

    A CJK line without spaces is cut at the CJK width.
    """
    out: list[str] = []
    for raw in text.replace("\r", "").split("\n"):
        line = " ".join(raw.split())
        if not line:
            continue
        width = _width(line, settings)
        if len(line) <= width:
            out.append(line)
        elif " " not in line and CJK.search(line):
            out.extend(line[i : i + width] for i in range(0, len(line), width))
        else:
            out.extend(_balanced(line.split(" "), width))
    return tuple(out)


def _balanced(words: list[str], width: int) -> list[str]:
    # The fewest lines that fit (greedy), then each line filled to about the same length.
    count, current = 1, 0
    for w in words:
        need = len(w) if current == 0 else current + 1 + len(w)
        if need > width and current:
            count, current = count + 1, len(w)
        else:
            current = need
    target = math.ceil(len(" ".join(words)) / count)
    lines: list[str] = []
    cur: list[str] = []
    for w in words:
        candidate = " ".join([*cur, w])
        if cur and (len(candidate) > width or (len(candidate) > target + 2 and len(lines) + 1 < count)):
            lines.append(" ".join(cur))
            cur = [w]
        else:
            cur.append(w)
    if cur:
        lines.append(" ".join(cur))
    return lines


def _number(value: Any, index: int, name: str) -> float:  # noqa: ANN401 - JSON
    if isinstance(value, bool):
        raise CueEditError(index, f"{name} must be a number of seconds, not {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise CueEditError(index, f"{name} must be a number of seconds, not {str(value)[:20]!r}") from None
    if not math.isfinite(out) or out < 0:
        raise CueEditError(index, f"{name} must be a time of 0 s or more, not {value!r}")
    return out


def validate_cues(items: Sequence[Mapping[str, Any]], settings: SubtitleSettings) -> list[Cue]:
    """Check an edited cue list and turn it into cues (numbered from 1, times in whole milliseconds).

    Args:
        items: Each ``{"start": s, "end": s, "text": str}`` (``lines`` instead of ``text`` is taken too).
        settings: The line limits (``max_line_width``, ``cjk_line_width``, ``max_lines``).

    Raises:
        CueEditError: The first cue that breaks a rule, with the reason.
        UsageError: Not a list of cues at all.
    """
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        raise UsageError("send the cues as a JSON list of {start, end, text}")
    if not items:
        raise UsageError("the cue list is empty: send at least one cue (Restore brings the original back)")
    out: list[Cue] = []
    prev_end = -1.0
    for i, item in enumerate(items, 1):
        if not isinstance(item, Mapping):
            raise CueEditError(i, "must be an object {start, end, text}")
        start = round(_number(item.get("start"), i, "start"), 3)
        end = round(_number(item.get("end"), i, "end"), 3)
        if end <= start:
            raise CueEditError(i, f"ends at {end:.3f} s, not after its start {start:.3f} s")
        if start < prev_end:
            raise CueEditError(
                i, f"starts at {start:.3f} s, before cue {i - 1} ends ({prev_end:.3f} s): cues may not overlap"
            )
        raw = item.get("text")
        if raw is None and isinstance(item.get("lines"), Sequence):
            raw = "\n".join(str(x) for x in item["lines"])
        if not isinstance(raw, str):
            raise CueEditError(i, "text must be a string")
        lines = wrap_text(raw, settings)
        if not lines:
            raise CueEditError(i, "has no text: delete the cue or merge it with a neighbour")
        for line in lines:
            if len(line) > _width(line, settings):
                raise CueEditError(
                    i, f"the line {line[:30]!r} has {len(line)} characters, over the limit of {_width(line, settings)}"
                )
        if len(lines) > settings.max_lines:
            raise CueEditError(
                i, f"needs {len(lines)} lines, over the limit of {settings.max_lines}: shorten it or split the cue"
            )
        out.append(Cue(index=i, start=start, end=end, lines=lines))
        prev_end = end
    return out


def cue_flags(cue: Cue, words: Sequence[Word], settings: SubtitleSettings) -> list[str]:
    """Why a reviewer may want to look at ``cue``: low-confidence words, broken readability rules."""
    flags: list[str] = []
    if any(w.probability < LOW_CONFIDENCE for w in words):
        flags.append("low_confidence")
    if any(len(line) > _width(line, settings) for line in cue.lines):
        flags.append("line_too_long")
    if len(cue.lines) > settings.max_lines:
        flags.append("too_many_lines")
    duration = cue.end - cue.start
    chars = sum(len(line) for line in cue.lines)
    if duration > 0 and chars / duration > settings.max_cps:
        flags.append("too_fast")
    if duration < settings.min_duration - 1e-6:
        flags.append("too_short")
    if duration > settings.max_duration + 1e-6:
        flags.append("too_long")
    return flags


def review_cues(transcript: Transcript, settings: SubtitleSettings) -> list[dict[str, Any]]:
    """The cues as the reviewer sees them: index, start, end, text, lines, words (with probability), flags.

    Each word belongs to the cue its middle falls in.
    """
    words = sorted(transcript.words, key=lambda w: w.start)
    out: list[dict[str, Any]] = []
    k = 0
    for i, (start_ms, end_ms, lines) in enumerate(writable_cues(transcript.cues), 1):
        start, end = start_ms / 1000, end_ms / 1000
        while k < len(words) and (words[k].start + words[k].end) / 2 < start:
            k += 1
        mine: list[Word] = []
        while k < len(words) and (words[k].start + words[k].end) / 2 < end:
            mine.append(words[k])
            k += 1
        cue = Cue(i, start, end, lines)
        out.append(
            {
                "index": i,
                "start": start,
                "end": end,
                "text": "\n".join(lines),
                "lines": list(lines),
                "words": [
                    {
                        "word": w.word,
                        "start": round(w.start, 3),
                        "end": round(w.end, 3),
                        "probability": round(w.probability, 4),
                    }
                    for w in mine
                ],
                "flags": cue_flags(cue, mine, settings),
            }
        )
    return out


def transcript_from_dict(data: Mapping[str, Any]) -> Transcript:
    """Rebuild a transcript from its JSON document (:func:`pipeline.text.writers.transcript_to_dict`).

    Raises:
        UsageError: The document is not a transcript.
    """
    try:
        segments = [
            TextSegment(
                start=float(s["start"]),
                end=float(s["end"]),
                text=str(s["text"]),
                words=tuple(
                    Word(str(w["word"]), float(w["start"]), float(w["end"]), float(w["probability"]))
                    for w in s.get("words", [])
                ),
            )
            for s in data.get("segments", [])
        ]
        cues = [
            Cue(int(c["index"]), float(c["start"]), float(c["end"]), tuple(str(x) for x in c["lines"]))
            for c in data.get("cues", [])
        ]
        return Transcript(
            language=str(data.get("language") or "en"),
            duration=float(data.get("duration") or 0.0),
            model=str(data.get("model") or ""),
            segments=segments,
            cues=cues,
            timings={k: float(v) for k, v in (data.get("timings") or {}).items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"not a video2srt transcript JSON ({type(exc).__name__}: {exc})") from exc


def with_cues(transcript: Transcript, cues: Sequence[Cue]) -> Transcript:
    """A copy of ``transcript`` whose cues are ``cues`` (the recognised segments and words stay)."""
    return replace(transcript, cues=list(cues), timings=dict(transcript.timings))


# --- helpers for editors (split and merge) -------------------------------------------------------------


def split_row(rows: Sequence[Mapping[str, Any]], index: int) -> list[dict[str, Any]]:
    """Split row ``index`` (from 0) in two at the middle of its words; the time is shared by text length.

    Raises:
        UsageError: No such row, or a single word that cannot be split.
    """
    if not 0 <= index < len(rows):
        raise UsageError(f"no cue {index + 1} to split: there are {len(rows)}")
    row = dict(rows[index])
    words = " ".join(str(row.get("text") or "").split()).split(" ")
    if len(words) < 2:
        raise UsageError(f"cue {index + 1} has one word: nothing to split")
    half = len(words) // 2
    first, second = " ".join(words[:half]), " ".join(words[half:])
    start, end = float(row["start"]), float(row["end"])
    cut = round(start + (end - start) * len(first) / (len(first) + len(second)), 3)
    out = [dict(r) for r in rows]
    out[index : index + 1] = [
        {**row, "start": start, "end": cut, "text": first},
        {**row, "start": cut, "end": end, "text": second},
    ]
    return out


def merge_rows(rows: Sequence[Mapping[str, Any]], index: int) -> list[dict[str, Any]]:
    """Merge row ``index`` (from 0) with the next one: first start, last end, texts joined.

    Raises:
        UsageError: No such row or no next row.
    """
    if not 0 <= index < len(rows) - 1:
        raise UsageError(f"cue {index + 1} has no next cue to merge with")
    a, b = rows[index], rows[index + 1]
    merged = {
        **dict(a),
        "end": b["end"],
        "text": f"{' '.join(str(a['text']).split())} {' '.join(str(b['text']).split())}",
    }
    out = [dict(r) for r in rows]
    out[index : index + 2] = [merged]
    return out
