"""One validator per setting, shared by every edge: the CLI, the HTTP API, the UI and the environment.

Each checked value has one :class:`Rule` (range, example, the flag that names it in messages), so a bad
batch size reads the same wherever it was typed: ``bad --batch-size '0': use a whole number from 1 to 256,
such as 8``. Messages name the CLI flag, as the language validator always did; the HTTP field and the UI
control carry the same name with underscores.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.core.errors import UsageError
from pipeline.core.settings import AFFINITY_RE, CHINESE_SCRIPTS, FORMATS, TASKS, VadSettings

_SWITCH_ON = ("true", "1", "on", "yes")
_SWITCH_OFF = ("false", "0", "off", "no")


@dataclass(frozen=True)
class Rule:
    """How one numeric setting is checked.

    Attributes:
        part: The :class:`~pipeline.core.settings.Settings` part that holds it (``transcribe``).
        field: Its field there (``batch_size``).
        flag: The name messages use (``--batch-size``).
        kind: ``int`` (a whole number) or ``float``.
        low: The smallest value allowed.
        high: The largest value allowed, or None for no limit.
        example: A good value, shown in the message.
        above: ``low`` itself is not allowed (a float that must be more than ``low``).
    """

    part: str
    field: str
    flag: str
    kind: type
    low: float
    high: float | None
    example: float
    above: bool = False

    def check(self, raw: object) -> int | float:
        """The value of ``raw`` (a number or its text) when it is in range.

        Raises:
            UsageError: Not a number of the right kind, or out of range; the same text for every edge.
        """
        text = str(raw).strip()
        try:
            if isinstance(raw, bool):
                raise ValueError(text)
            value: int | float = int(text) if self.kind is int else float(text)
            if self.kind is float and value != value:  # NaN
                raise ValueError(text)
        except ValueError:
            raise UsageError(self.message(text)) from None
        too_low = value <= self.low if self.above else value < self.low
        if too_low or (self.high is not None and value > self.high):
            raise UsageError(self.message(text))
        return value

    def message(self, text: str) -> str:
        """``bad --flag 'text': use ...``: what a bad value is told."""
        what = "a whole number" if self.kind is int else "a number"
        low = _number(self.low)
        if self.high is not None:
            span = (
                f"from {low} to {_number(self.high)}" if not self.above else f"above {low}, up to {_number(self.high)}"
            )
        else:
            span = f"above {low}" if self.above else f"of at least {low}"
        return f"bad {self.flag} {text!r}: use {what} {span}, such as {_number(self.example)}"


def _number(value: float) -> str:
    return f"{value:g}"


def _rule(part: str, name: str, kind: type, low: float, high: float | None, example: float, **kw: object) -> Rule:
    return Rule(part, name, "--" + name.replace("_", "-"), kind, low, high, example, **kw)  # type: ignore[arg-type]


#: Every numeric setting an edge can set, by ``part.field``. The flag is the field's name unless it is told.
RULES: dict[str, Rule] = {
    f"{r.part}.{r.field}": r
    for r in (
        _rule("transcribe", "batch_size", int, 1, 256, 8),
        _rule("transcribe", "beam_size", int, 1, 20, 5),
        _rule("subtitles", "max_line_width", int, 1, 1000, 42),
        _rule("subtitles", "max_lines", int, 1, 10, 2),
        _rule("subtitles", "max_cps", float, 0, None, 20, above=True),
        _rule("subtitles", "cjk_max_cps", float, 0, None, 9, above=True),
        _rule("subtitles", "min_duration", float, 0, None, 0.8, above=True),
        _rule("subtitles", "max_duration", float, 0, None, 7, above=True),
        Rule("model", "cpu_threads", "--cpu-threads", int, 0, None, 4),
        Rule("model", "replicas", "--replicas", int, 0, None, 2),
        Rule("audio", "audio_track", "--audio-track", int, 0, None, 1),
        Rule("models", "max_cached", "--max-cached-models", int, 1, None, 2),
        Rule("models", "headroom_mb", "--memory-headroom", int, 0, None, 512),
        Rule("models", "memory_limit_mb", "--model-memory-limit", int, 0, None, 4000),
        Rule("cluster", "worker_timeout_s", "--worker-timeout", float, 0, None, 120, above=True),
        # The hallucination guard (pipeline.asr.guard): flags for the two thresholds users tune, the
        # environment (VIDEO2SRT_GUARD_<FIELD>) for every one.
        Rule("guard", "compression_ratio", "--compression-ratio-threshold", float, 0, None, 2.4, above=True),
        Rule("guard", "no_speech_prob", "--no-speech-threshold", float, 0, 1, 0.6),
        Rule("guard", "log_prob", "VIDEO2SRT_GUARD_LOG_PROB", float, -100, 0, -1),
        Rule("guard", "silence_db", "VIDEO2SRT_GUARD_SILENCE_DB", float, -200, 0, -60),
        Rule("guard", "max_line_repeats", "VIDEO2SRT_GUARD_MAX_LINE_REPEATS", int, 1, None, 2),
        Rule("guard", "loop_repeats", "VIDEO2SRT_GUARD_LOOP_REPEATS", int, 2, None, 3),
        Rule("guard", "loop_words", "VIDEO2SRT_GUARD_LOOP_WORDS", int, 1, None, 10),
        Rule("guard", "loop_max_n", "VIDEO2SRT_GUARD_LOOP_MAX_N", int, 1, None, 8),
        Rule("guard", "coverage_gap_s", "VIDEO2SRT_GUARD_COVERAGE_GAP_S", float, 0, None, 3),
        # Word timing refinement (pipeline.asr.timing): the environment (VIDEO2SRT_TIMING_<FIELD>).
        Rule("timing", "shift_s", "VIDEO2SRT_TIMING_SHIFT_S", float, -1, 1, 0.09),
        Rule("timing", "snap_s", "VIDEO2SRT_TIMING_SNAP_S", float, 0, 5, 0.3),
        Rule("timing", "min_word_s", "VIDEO2SRT_TIMING_MIN_WORD_S", float, 0, 1, 0.05),
        Rule("timing", "cjk_char_max_s", "VIDEO2SRT_TIMING_CJK_CHAR_MAX_S", float, 0, 10, 0.7),
    )
}


def check(key: str, raw: object) -> int | float:
    """Check the numeric setting ``key`` (``part.field``, e.g. ``transcribe.batch_size``) by its :data:`RULES`.

    Raises:
        UsageError: Bad or out of range (one line naming the flag, the range and an example).
    """
    return RULES[key].check(raw)


def parse_switch(flag: str, raw: object) -> bool:
    """An on/off value (``on``, ``off``, ``true``, ``false``, ``1``, ``0``, ``yes``, ``no``).

    Raises:
        UsageError: Anything else.
    """
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _SWITCH_ON:
        return True
    if text in _SWITCH_OFF:
        return False
    raise UsageError(f"bad {flag} {str(raw).strip()!r}: use on or off")


def parse_formats(value: str | Sequence[str]) -> tuple[str, ...]:
    """Parse ``"srt,vtt"`` (or a list) into a tuple of known formats, in the given order, deduplicated.

    Raises:
        UsageError: An unknown format, or none at all.
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        fmt = item.strip().lower().lstrip(".")
        if not fmt:
            continue
        if fmt not in FORMATS:
            raise UsageError(f"unknown output format {fmt!r}: use one or more of {', '.join(FORMATS)}")
        if fmt not in out:
            out.append(fmt)
    if not out:
        raise UsageError(f"no output format given: use one or more of {', '.join(FORMATS)}")
    return tuple(out)


def parse_affinity(value: str) -> str:
    """Check a CPU-affinity strategy: ``auto``, ``half``, ``all``, ``none`` or a list like ``0-3,8``.

    Raises:
        UsageError: Anything else.
    """
    value = value.strip().lower().replace(" ", "")
    if not AFFINITY_RE.match(value):
        raise UsageError(f"bad --cpu-affinity {value!r}: use half, all, none, or a core list like 0-3,8")
    return value


def parse_language(value: str | None) -> str | None:
    """A Whisper language code from a code or a name (``zh``, ``Chinese``, ``Mandarin``, ``Deutsch``); blank or
    ``auto`` means "detect".

    Raises:
        UsageError: Not a Whisper language (the message names the nearest ones).
    """
    from pipeline.core.languages import normalize_language

    return normalize_language(value)


def parse_task(value: str | None) -> str:
    """``transcribe`` (the default for blank) or ``translate``.

    Raises:
        UsageError: Anything else.
    """
    task = (value or "transcribe").strip().lower() or "transcribe"
    if task not in TASKS:
        raise UsageError(f"bad --task {task!r}: use transcribe or translate")
    return task


def parse_chinese(value: str | None) -> str:
    """A Chinese script (``simplified``, ``traditional``, ``keep``); blank is ``auto`` (Simplified for Chinese).

    Raises:
        UsageError: Anything else.
    """
    chinese = (value or "auto").strip().lower() or "auto"
    if chinese not in (*CHINESE_SCRIPTS, "auto"):
        raise UsageError(f"bad --chinese {chinese!r}: use {', '.join(CHINESE_SCRIPTS)}")
    return chinese


def check_translation(task: str, translate: bool, model: str) -> None:
    """Refuse contradicting translation flags, and translation on an English-only (``.en``) model.

    Raises:
        UsageError: ``--task translate`` with ``--translate``, or a ``.en`` model asked to translate.
    """
    if task == "translate" and translate:
        raise UsageError(
            "--task translate already writes English; --translate/--bilingual add English beside a transcription: "
            "drop one of them"
        )
    model = model.strip()
    if (task == "translate" or translate) and model.lower().endswith(".en"):
        raise UsageError(
            f"translation needs a multilingual model, and {model} is English-only: use --model base "
            "(or small, medium, a multilingual CTranslate2 folder)"
        )


def check_durations(min_duration: float, max_duration: float) -> None:
    """A cue's shortest duration must not exceed its longest.

    Raises:
        UsageError: ``min_duration`` > ``max_duration``.
    """
    if min_duration > max_duration:
        raise UsageError("--min-duration must not exceed --max-duration")


def parse_segment_length(value: str, vad: VadSettings) -> VadSettings:
    """``vad`` with the segment length range ``MIN-MAX`` (seconds), cut at pauses, target in the middle.

    Raises:
        UsageError: Not ``MIN-MAX`` with 5 <= MIN <= MAX and MAX at least one Whisper window.
    """
    import dataclasses

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*", value)
    low, high = (float(m.group(1)), float(m.group(2))) if m else (0.0, 0.0)
    if not m or not 5 <= low <= high or high < vad.window_s:
        raise UsageError(f"bad --segment-length {value!r}: use MIN-MAX seconds with 5 <= MIN <= MAX and MAX >= 30")
    return dataclasses.replace(vad, min_segment_s=low, max_segment_s=high, target_segment_s=(low + high) / 2)
