"""A job's settings from a request: the app's settings plus the few a client may choose per job (formats,
language, task, Chinese script, VAD, line width and count, batch and beam size), each checked.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.core.errors import UsageError
from pipeline.core.settings import (
    FORMATS,
    OutputSettings,
    Settings,
    check_model_language,
    language_output_from_args,
    parse_formats,
    parse_language,
)

#: Formats an API job writes when the request names none: all of them, so every result route works.
DEFAULT_FORMATS = FORMATS

#: Whole-number job settings a request may set: (part, field, lowest, highest, example).
_INT_SETTINGS = {
    "max_line_width": ("subtitles", "max_line_width", 1, 1000, 42),
    "max_lines": ("subtitles", "max_lines", 1, 10, 2),
    "batch_size": ("transcribe", "batch_size", 1, 256, 8),
    "beam_size": ("transcribe", "beam_size", 1, 20, 5),
}
_SETTING_NAMES = ("formats", "language", "vad", "task", "chinese", *_INT_SETTINGS)


def job_settings(base: Settings, overrides: Mapping[str, Any] | None, output_dir: Path) -> Settings:
    """Settings for one uploaded job: ``base`` plus the request's ``formats``, ``language``, ``vad`` (on/off),
    ``task`` (transcribe/translate), ``chinese`` (simplified/traditional/keep), ``max_line_width``, ``max_lines``, ``batch_size`` and ``beam_size``.

    Raises:
        UsageError: A value is unknown or out of range.
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None and str(v).strip() != ""}
    unknown = sorted(set(overrides) - set(_SETTING_NAMES))
    if unknown:
        raise UsageError(f"unknown setting(s) {', '.join(unknown)}: use {', '.join(_SETTING_NAMES)}")
    formats = parse_formats(overrides.get("formats", DEFAULT_FORMATS))
    parts: dict[str, Any] = {"transcribe": base.transcribe, "subtitles": base.subtitles, "vad": base.vad}
    if "language" in overrides:
        raw = str(overrides["language"])
        language = parse_language(raw)
        check_model_language(base.model.name, language)
        parts["transcribe"] = dataclasses.replace(parts["transcribe"], language=language)
    if "task" in overrides or "chinese" in overrides:
        ns = argparse.Namespace(
            task=str(overrides.get("task", parts["transcribe"].task)).strip().lower(),
            chinese=str(overrides["chinese"]).strip().lower() if "chinese" in overrides else None,
            model=base.model.name,
        )
        task, _, _, chinese = language_output_from_args(ns)
        parts["transcribe"] = dataclasses.replace(parts["transcribe"], task=task)
        if "chinese" in overrides:
            parts["subtitles"] = dataclasses.replace(parts["subtitles"], chinese=chinese)
    if "vad" in overrides:
        flag = str(overrides["vad"]).strip().lower()
        if flag not in ("true", "false", "1", "0", "on", "off"):
            raise UsageError(f"bad vad {overrides['vad']!r}: use on or off")
        parts["vad"] = dataclasses.replace(parts["vad"], enabled=flag in ("true", "1", "on"))
    for name, (part, attr, low, high, example) in _INT_SETTINGS.items():
        if name not in overrides:
            continue
        try:
            value = int(str(overrides[name]).strip())
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise UsageError(
                f"bad {name} {overrides[name]!r}: use a whole number from {low} to {high}, such as {example}"
            )
        parts[part] = dataclasses.replace(parts[part], **{attr: value})
    return base.replace(output=OutputSettings(output_dir=output_dir, formats=formats), **parts)
