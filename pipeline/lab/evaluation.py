"""Reference recordings and scoring: the test data sets with their transcripts, SRT reading, WER and CER.

The data lives in the repository's ``tests/data`` (see its README), or wherever
``VIDEO2SRT_DATA_DIR`` points; nothing is downloaded. Every English WER here normalises both sides with
Whisper's English text normaliser before jiwer counts errors, because the references differ in casing,
punctuation and number style. Other languages (:func:`language_clips`, :func:`score_language`) use Whisper's
basic normaliser for WER, and CER for languages written without spaces between words. The benchmarks and the
tuning notebooks both score through this module.
"""

from __future__ import annotations

import functools
import os
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.errors import InputError

if TYPE_CHECKING:
    from pipeline.core.types import Transcript

#: Default location of the test data: the repository's ``tests/data`` (not in the wheel).
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "tests" / "data"
#: The data sets, in the order the benchmarks use them.
SET_NAMES = ("jfk", "fleurs_en", "ljspeech", "harvard", "mfa", "manifesto")
#: Languages with clips and references in the test data (besides English): FLEURS German and Spanish, Mandarin.
LANGUAGES = ("de", "es", "zh")
#: Languages scored by character error rate: their writing puts no spaces between words, so WER is meaningless.
CER_LANGUAGES = frozenset({"zh", "ja", "ko", "yue"})


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


def data_dir(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The test data folder: ``path`` when given, else ``VIDEO2SRT_DATA_DIR``, else the repository's ``tests/data``.

    Raises:
        InputError: The folder does not exist.
    """
    env = os.environ if env is None else env
    chosen = Path(path or env.get("VIDEO2SRT_DATA_DIR") or DEFAULT_DATA_DIR).expanduser()
    if not chosen.is_dir():
        raise InputError(
            f"data folder {chosen} not found: pass the folder that holds jfk/, fleurs_en/, … or set VIDEO2SRT_DATA_DIR"
        )
    return chosen


#: :func:`data_dir` under another name, for functions whose ``data_dir`` argument hides it.
_data_folder = data_dir


def load_sets(data_dir: Path = DEFAULT_DATA_DIR) -> dict[str, list[Clip]]:
    """Read every data set and its references.

    Args:
        data_dir: The test data folder.

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
    sets["harvard"] = [
        Clip("harvard", harvard.with_suffix(".mp3"), " ".join(harvard.with_suffix(".txt").read_text().split()))
    ]
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


def select_clips(names: str | Sequence[str], data_dir: Path = DEFAULT_DATA_DIR, limit: int = 0) -> list[Clip]:
    """The clips of the named sets, in the order named.

    Args:
        names: Set names, as a list or comma-separated (``"jfk,harvard"``); ``"all"`` means every set.
        data_dir: The test data folder.
        limit: At most this many clips (the first ones); 0 for all.

    Raises:
        InputError: A name is not a known set.
    """
    items = names.split(",") if isinstance(names, str) else list(names)
    wanted = [n.strip() for n in items if n.strip()]
    if wanted == ["all"]:
        wanted = list(SET_NAMES)
    unknown = [n for n in wanted if n not in SET_NAMES]
    if unknown or not wanted:
        raise InputError(
            f"unknown data set(s) {', '.join(unknown) or '(none given)'}: use {', '.join(SET_NAMES)} or all"
        )
    sets = load_sets(data_dir)
    clips = [clip for name in wanted for clip in sets[name]]
    return clips[:limit] if limit > 0 else clips


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


def transcript_text(transcript: Transcript) -> str:
    """The plain text of a transcript: its segments' texts joined with spaces (what WER is computed on)."""
    return " ".join(seg.text.strip() for seg in transcript.segments)


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


def language_clips(language: str, data_dir: str | Path | None = None, limit: int | None = None) -> list[Clip]:
    """The clips of one language of the test data, with their references.

    German and Spanish come from ``fleurs_multi`` (``fleurs-<lang>-NNN.ogg`` beside its ``.txt``), Mandarin from
    ``zh`` (a Kaldi ``text`` file: recording id, then the transcript; the audio is ``<id>.wav``).

    Args:
        language: A code of :data:`LANGUAGES`.
        data_dir: The test data folder (default: :func:`data_dir`'s choice).
        limit: At most this many clips (the first ones in name order); None or 0 for all.

    Returns:
        The clips in name order; each clip's ``set`` is the language code.

    Raises:
        InputError: No clips for ``language`` in the data folder.
        FileNotFoundError: A clip named in the ``zh`` transcript file is missing.
    """
    root = _data_folder(data_dir)
    if language == "zh":
        text = root / "zh" / "text"
        lines = text.read_text(encoding="utf-8").splitlines() if text.is_file() else []
        refs = dict(line.split(maxsplit=1) for line in lines if len(line.split(maxsplit=1)) == 2)
        clips = [Clip("zh", root / "zh" / f"{key}.wav", ref.strip()) for key, ref in sorted(refs.items())]
    else:
        clips = [
            Clip(language, path, path.with_suffix(".txt").read_text(encoding="utf-8").strip())
            for path in sorted((root / "fleurs_multi").glob(f"fleurs-{language}-*.ogg"))
        ]
    if not clips:
        raise InputError(f"no {language!r} clips in {root}: the test data has {', '.join(LANGUAGES)}")
    for clip in clips:
        if not clip.path.exists():
            raise FileNotFoundError(clip.path)
    return clips[:limit] if limit else clips


@functools.lru_cache(maxsize=1)
def basic_normalizer() -> Callable[[str], str]:
    """Whisper's basic (language-independent) text normaliser: lower case, no punctuation or symbols.

    Returns:
        A function from raw text to normalised text.
    """
    from whisper_normalizer.basic import BasicTextNormalizer

    return BasicTextNormalizer()


def language_metric(language: str) -> str:
    """``"CER"`` for the languages of :data:`CER_LANGUAGES`, else ``"WER"``."""
    return "CER" if language in CER_LANGUAGES else "WER"


def _characters(text: str) -> str:
    """The text without whitespace and punctuation: what CER compares."""
    return "".join(ch for ch in text if not ch.isspace() and not unicodedata.category(ch).startswith("P"))


def score_language(language: str, hyps: Sequence[str], refs: Sequence[str]) -> float | None:
    """Corpus error rate of ``hyps`` against ``refs`` in ``language`` (see :func:`language_metric`).

    WER after Whisper's basic normaliser on both sides, or, for :data:`CER_LANGUAGES`, CER with spaces and
    punctuation removed on both sides. References that are empty after normalising are left out.

    Args:
        language: The language code of the texts.
        hyps: Hypothesis texts, one per reference.
        refs: Reference texts.

    Returns:
        The error rate (0.0 is perfect), or None when no reference is left to score.
    """
    import jiwer

    if language_metric(language) == "CER":
        pairs = [(_characters(r), _characters(h)) for r, h in zip(refs, hyps, strict=True)]
    else:
        norm = basic_normalizer()
        pairs = [(norm(r).strip(), norm(h).strip()) for r, h in zip(refs, hyps, strict=True)]
    pairs = [(r, h) for r, h in pairs if r]
    if not pairs:
        return None
    measure = jiwer.cer if language_metric(language) == "CER" else jiwer.wer
    return float(measure([r for r, _ in pairs], [h for _, h in pairs]))
