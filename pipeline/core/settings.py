"""Settings: one frozen dataclass per stage and one root :class:`Settings`.

This is the only module that parses values from the command line, the UI or the environment. Each stage
receives only its own part (``settings.vad`` for VAD, ``settings.transcribe`` for Whisper, …).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.errors import UsageError

FORMATS = ("srt", "vtt", "json", "ass")
DEVICES = ("auto", "cpu", "cuda")
COMPUTE_TYPES = ("auto", "int8", "int8_float16", "float16", "float32")
AFFINITY_RE = re.compile(r"^(half|all|none|auto|\d+(-\d+)?(,\d+(-\d+)?)*)$")
#: Warm-up after loading a model: ``auto`` warms up on CUDA only.
WARMUP_MODES = ("auto", "on", "off")
#: The model name that means "let the optimizer choose".
AUTO_MODEL = "auto"
#: Whisper's tasks: text in the spoken language, or its translation into English.
TASKS = ("transcribe", "translate")
#: ``--chinese`` values (the stored default ``auto`` means Simplified for Chinese).
CHINESE_SCRIPTS = ("simplified", "traditional", "keep")


@dataclass(frozen=True)
class AudioSettings:
    """Decoding: which audio track, and the rate Whisper wants."""

    audio_track: int | None = None
    sample_rate: int = 16000


@dataclass(frozen=True)
class VadSettings:
    """Speech detection and cutting into segments.

    Attributes:
        enabled: Run silero-vad; when off, cut at fixed ``fixed_segment_s`` lengths.
        threshold: Speech probability above which a frame is speech.
        min_speech_ms: Shorter bursts are ignored.
        min_silence_ms: A pause must last this long to end a speech span.
        speech_pad_ms: Padding added on both sides of each span (keeps word onsets and tails).
        min_segment_s: A segment is at least this long, unless the file is shorter.
        max_segment_s: A segment is at most this long.
        target_segment_s: Where a cut is preferred; the longest pause near it wins.
        first_window_alone: The first segment's first window is a segment of its own.
        skip_silence_s: A silence this long ends a segment early (once it is at least ``min_segment_s``).
        keep_pause_s: Pauses up to this long stay inside a window; longer silence is cut down to it.
        fixed_segment_s: Segment length when VAD is off or fails.
        lead_in_s: A speech span starting this close to the file's start begins at its start.
        retry_threshold: Threshold of the second VAD pass over a file that is not silent but had no speech.
        fallback_level_db: RMS level (dBFS) above which a file without speech spans is not taken as silent.
        window_s: Longest stretch given to Whisper at once (its context is 30 s).
    """

    enabled: bool = True
    #: Above silero's usual 0.5: with the windows below, 0.55 is the nearby value that keeps every shared data
    #: set within 0.5 WER points of faster-whisper (mfa flips by one word between them; benchmarks/README.md).
    threshold: float = 0.55
    min_speech_ms: int = 250
    min_silence_ms: int = 500
    speech_pad_ms: int = 200
    min_segment_s: float = 30.0
    max_segment_s: float = 90.0
    target_segment_s: float = 60.0
    #: The first segment is transcribed alone, and its length is how long the first subtitles take: one
    #: window instead of two halved the wait on the 10-minute input (benchmarks/README.md, "First cue").
    first_window_alone: bool = True
    #: Only a long silence ends a segment early; shorter pauses are left to the cut choice, which fills
    #: windows (at 2 s, segments ended at every pause after 30 s and left half-empty windows behind).
    skip_silence_s: float = 20.0
    #: Each window costs a full 30 s encoder pass (about half the CPU time on the 10-minute input), so long
    #: silence is cut down to 5 s; shorter pauses stay, Whisper reads sentences by them (at 2 s it dropped
    #: utterances again).
    keep_pause_s: float = 5.0
    fixed_segment_s: float = 60.0
    #: A file where VAD finds no speech at ``threshold`` although its RMS level is above ``fallback_level_db``
    #: (dBFS; the hallucination guard calls -60 silence) is cut again at ``retry_threshold``, and when that
    #: finds nothing either, at fixed lengths: a quiet or unusual voice is never dropped as a whole.
    #: silero starts each file from a cold state and scores its first few hundred ms low: a word right at the
    #: start ("好" before a Mandarin sentence) was cut off, and base then misread the rest of the sentence.
    #: A first span starting within this many seconds of the start begins at 0, when what comes before it is
    #: about as loud as its start (pipeline.media.vad.LEAD_IN_GAP_DB); silence before a first word is left out.
    lead_in_s: float = 0.5
    retry_threshold: float = 0.25
    fallback_level_db: float = -50.0
    #: Whisper's full context. 24 s windows were more accurate only until quiet spans were levelled
    #: (TranscribeSettings.level_boost_db): what tiny.en dropped from full windows was a quiet speaker beside
    #: a loud one. With these defaults the 10-minute input takes 19 windows at WER 16.2%; 24 s windows with
    #: levelling took 28 at 16.5% (benchmarks/windows.py).
    window_s: float = 30.0


@dataclass(frozen=True)
class ModelSettings:
    """Which Whisper model, on which device, in which precision."""

    name: str = AUTO_MODEL
    device: str = "auto"
    compute_type: str = "auto"
    #: CTranslate2 threads per worker; 0 leaves it to the optimizer.
    cpu_threads: int = 0
    #: Model replicas per worker that transcribe batches side by side, sharing its ``cpu_threads`` and its
    #: weights; 0: automatic (:func:`pipeline.asr.models.auto_replicas`).
    replicas: int = 0
    #: Allow downloading a standard model from the Hugging Face hub when it is not cached.
    allow_download: bool = False


@dataclass(frozen=True)
class ModelManagerSettings:
    """The model manager of each worker (pipeline.asr.manager): preload, warm-up, cache, memory guard.

    Attributes:
        preload: Models to load at start, first one selected for new jobs; ``None`` means the default model
            (``ModelSettings.name``, the optimizer's choice for ``auto``), ``()`` nothing (``--no-preload``).
        warmup: Run a short real clip through each model right after loading it: ``on``, ``off``, or
            ``auto`` (on CUDA only: on the CPU the first job was measured to pay no lazy initialization
            worth the clip's cost, see benchmarks/README.md).
        max_cached: Models kept loaded per worker; the least recently used one is evicted.
        headroom_mb: Memory (RAM, or GPU memory on CUDA) that must stay free after a model is loaded.
        memory_limit_mb: At most this much for the loaded models of one worker together (0: no limit
            beyond free memory).
    """

    preload: tuple[str, ...] | None = None
    warmup: str = "auto"
    #: Two: ``auto`` holds the multilingual base (language detection, other languages) beside tiny.en.
    max_cached: int = 2
    headroom_mb: int = 512
    memory_limit_mb: int = 0


@dataclass(frozen=True)
class TranscribeSettings:
    """Decoding options for Whisper."""

    language: str | None = None
    #: Windows per Whisper call; 0 leaves it to the optimizer (pipeline.system.hardware.tune_settings).
    batch_size: int = 0
    beam_size: int = 5
    word_timestamps: bool = True
    #: Speech spans quieter than the loudest span of their window by more than ``level_gap_db`` are raised
    #: to its level, by at most ``level_boost_db`` (0 turns this off). tiny.en drops whole utterances of a
    #: quiet speaker that shares a window with a loud one; see pipeline.asr.transcribe.level_window.
    level_boost_db: float = 40.0
    level_gap_db: float = 10.0
    #: Optional WhisperX alignment: ``auto`` (when a local model exists), ``off``, or a model path.
    align: str = "auto"
    #: ``transcribe`` (text in the spoken language) or ``translate`` (Whisper's translation into English).
    task: str = "transcribe"
    #: Besides transcribing, translate the same windows into English (a second decoding pass).
    translate: bool = False


@dataclass(frozen=True)
class SubtitleSettings:
    """Readability rules for cues."""

    max_line_width: int = 42
    max_lines: int = 2
    #: Netflix's Simplified and Traditional Chinese style guides: 16 characters per line (docs/languages.md).
    cjk_line_width: int = 16
    max_cps: float = 20.0
    #: Reading speed of cues with CJK characters: 9 characters per second, Netflix's Simplified Chinese
    #: Timed Text Style Guide for adult programmes (docs/languages.md).
    cjk_max_cps: float = 9.0
    #: Script of Chinese text: ``auto`` (Simplified for Chinese), ``simplified``, ``traditional`` (Taiwan,
    #: OpenCC s2twp) or ``keep`` (as Whisper writes it); ignored, with a note, for other languages.
    chinese: str = "auto"
    min_duration: float = 0.8
    max_duration: float = 7.0
    #: How long a cue stays after its last word, when the next speech leaves room.
    tail: float = 0.3


@dataclass(frozen=True)
class OutputSettings:
    """Where results go and in which formats."""

    output_dir: Path | None = None
    formats: tuple[str, ...] = ("srt",)
    #: Also write one SRT/VTT with each original line above its English translation (needs
    #: ``TranscribeSettings.translate``).
    bilingual: bool = False
    #: Put the language code in file names (``talk.zh.srt``): ``None`` does so when several languages are
    #: written (translation, bilingual), and not otherwise.
    name_language: bool | None = None


@dataclass(frozen=True)
class ExportSettings:
    """The styled ASS file and the video exports (pipeline.text.export).

    Attributes:
        karaoke: Per-word ``\\k`` timing in the ASS file (and the burned video), from the word times.
        embed: Also write ``<stem>.subtitled.mkv`` (``.mp4`` for an MP4 input, ``.mka`` without video).
        burn: Also write ``<stem>.burned.mp4`` with the subtitles rendered into the picture.
        font: The ASS font name; ``auto``: Noto Sans, or Noto Sans CJK for Chinese, Japanese and Korean
            (fontconfig substitutes the closest installed font, glyph by glyph).
        font_size: Font size on a 1080-line canvas (it scales with the video).
        margin_v: Distance of the bottom line from the bottom edge on that canvas.
        crf: libx264 quality of a burned video (lower: better and bigger).
        preset: libx264 speed preset of a burned video.
    """

    karaoke: bool = False
    embed: bool = False
    burn: bool = False
    font: str = "auto"
    font_size: float = 54.0
    margin_v: int = 60
    crf: int = 20
    preset: str = "veryfast"


@dataclass(frozen=True)
class ClusterSettings:
    """Where transcription runs: in-process (``workers=0``), a local cluster, or a remote scheduler.

    Attributes:
        scheduler: Address of a running Dask scheduler (``tcp://host:8786``); ``None`` starts nothing remote.
        workers: Local worker processes to start; ``0`` runs in-process; ``None`` lets the optimizer decide
            (a local cluster when it plans several workers, e.g. one per GPU; else in-process).
        cpu_affinity: Core binding of each transcription worker (``auto``, ``half``, ``all``, ``none``, a list).
        adaptive: ``(minimum, maximum)`` workers for an adaptive local cluster; ``None``: a fixed size.
        dashboard_address: Where a local cluster serves the Dask dashboard (``:0``: any free port).
        connect_timeout_s: How long to try reaching ``scheduler``.
        worker_timeout_s: How long a job waits while no worker is connected before it fails (resumable).
        max_inflight: Batches of one job out at once (0: four per worker); bounds memory, shares the cluster.
        fallback_local: When the scheduler is unreachable, run in-process with a warning instead of failing.
    """

    scheduler: str | None = None
    workers: int | None = None
    cpu_affinity: str = "auto"
    adaptive: tuple[int, int] | None = None
    dashboard_address: str = ":8787"
    connect_timeout_s: float = 10.0
    worker_timeout_s: float = 120.0
    max_inflight: int = 0
    fallback_local: bool = False


@dataclass(frozen=True)
class JobSettings:
    """The job folder and what to keep of it."""

    jobs_dir: Path = field(default_factory=lambda: default_jobs_dir())
    keep_checkpoints: bool = False
    #: Transient failures of a segment are retried this many times, with backoff.
    max_retries: int = 3
    #: Unfinished jobs older than this are removed when a runner starts (0 keeps them forever).
    expire_days: float = 7.0
    #: Dask priority of the job's tasks: higher runs first (a short urgent job ahead of a long one).
    priority: int = 0


@dataclass(frozen=True)
class Settings:
    """Everything one job needs, one part per stage."""

    audio: AudioSettings = field(default_factory=AudioSettings)
    vad: VadSettings = field(default_factory=VadSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    models: ModelManagerSettings = field(default_factory=ModelManagerSettings)
    transcribe: TranscribeSettings = field(default_factory=TranscribeSettings)
    subtitles: SubtitleSettings = field(default_factory=SubtitleSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    jobs: JobSettings = field(default_factory=JobSettings)
    debug: bool = False

    def replace(self, **parts: Any) -> Settings:
        """Return a copy with whole parts replaced, e.g. ``replace(vad=VadSettings(enabled=False))``."""
        return dataclasses.replace(self, **parts)

    def to_dict(self) -> dict[str, Any]:
        """Every part as plain JSON values (paths as strings), for the job folder."""
        return json_safe(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], jobs_dir: Path | None = None) -> Settings:
        """Rebuild settings stored by :meth:`to_dict`; unknown keys are ignored, missing ones take defaults.

        Raises:
            UsageError: A stored value is of the wrong kind.
        """
        parts: dict[str, Any] = {}
        try:
            for f in dataclasses.fields(cls):
                value = data.get(f.name)
                if f.name == "debug":
                    parts["debug"] = bool(value)
                    continue
                part_cls = type(getattr(cls(), f.name)) if f.name != "jobs" else JobSettings
                if not isinstance(value, Mapping):
                    continue
                known = {k.name for k in dataclasses.fields(part_cls)}
                kwargs = {k: v for k, v in value.items() if k in known}
                if f.name == "output":
                    kwargs["output_dir"] = Path(kwargs["output_dir"]) if kwargs.get("output_dir") else None
                    kwargs["formats"] = tuple(kwargs.get("formats") or ("srt",))
                if f.name == "jobs":
                    kwargs["jobs_dir"] = Path(jobs_dir or kwargs.get("jobs_dir") or default_jobs_dir())
                if f.name == "models" and kwargs.get("preload") is not None:
                    kwargs["preload"] = tuple(kwargs["preload"])
                if f.name == "cluster" and kwargs.get("adaptive") is not None:
                    kwargs["adaptive"] = tuple(kwargs["adaptive"])
                parts[f.name] = part_cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"stored settings are not readable: {exc}") from exc
        return cls(**parts)

    def fingerprint_fields(self) -> dict[str, Any]:
        """The settings that change a job's result (not where files go), as plain JSON values."""
        return {
            "audio": dataclasses.asdict(self.audio),
            "vad": dataclasses.asdict(self.vad),
            "model": {"name": self.model.name, "compute_type": self.model.compute_type},
            "transcribe": dataclasses.asdict(self.transcribe),
            "subtitles": dataclasses.asdict(self.subtitles),
        }


def json_safe(value: Any) -> Any:
    """Paths to strings and tuples to lists, recursively, so ``value`` can be written as JSON."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def default_jobs_dir(env: Mapping[str, str] | None = None) -> Path:
    """The jobs folder: ``VIDEO2SRT_JOBS_DIR``, else the user cache folder (platformdirs)."""
    env = os.environ if env is None else env
    if env.get("VIDEO2SRT_JOBS_DIR"):
        return Path(env["VIDEO2SRT_JOBS_DIR"]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("video2srt")) / "jobs"


def parse_formats(value: str | Sequence[str]) -> tuple[str, ...]:
    """Parse ``"srt,vtt"`` (or a list) into a tuple of known formats, in the given order, deduplicated."""
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
    """Check a CPU-affinity strategy: ``auto``, ``half``, ``all``, ``none`` or a list like ``0-3,8``."""
    value = value.strip().lower().replace(" ", "")
    if not AFFINITY_RE.match(value):
        raise UsageError(f"bad --cpu-affinity {value!r}: use half, all, none, or a core list like 0-3,8")
    return value


def parse_language(value: str | None) -> str | None:
    """A Whisper language code from a code or a name (``zh``, ``Chinese``, ``Mandarin``, ``Deutsch``); blank or
    ``auto`` means "detect". The one validator of the CLI, the HTTP API and the UI.

    Raises:
        UsageError: Not a Whisper language (the message names the nearest ones).
    """
    from pipeline.core.languages import normalize_language

    return normalize_language(value)


def check_model_language(model: str, language: str | None) -> None:
    """Refuse an English-only model (``tiny.en``, a ``.en`` folder) asked to write another language.

    ``auto`` picks a multilingual model itself, so it always passes.

    Raises:
        UsageError: The model is English-only and ``language`` is not English; names the multilingual models.
    """
    if model == AUTO_MODEL or language in (None, "en"):
        return
    from pipeline.asr.catalogue import is_multilingual

    if is_multilingual(model):
        return
    from pipeline.asr.models import multilingual_models
    from pipeline.core.languages import english_name

    offline = ", ".join(multilingual_models()) or "none installed"
    raise UsageError(
        f"--model {model} is English-only and cannot write {english_name(language)} ({language}): drop --model "
        f"(auto picks a multilingual one) or name a multilingual model (available offline: {offline})"
    )


def _positive(name: str, value: int | float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise UsageError(f"{name} must be {'at least 0' if allow_zero else 'positive'}, got {value}")


def add_model_manager_args(p: argparse.ArgumentParser) -> None:
    """The model manager's flags besides ``--no-preload``: preload list, warm-up, cache size, memory guard."""
    d = ModelManagerSettings()
    p.add_argument("--preload", metavar="NAMES", help="comma-separated models to load at start (default: --model)")
    p.add_argument(
        "--warmup",
        choices=WARMUP_MODES,
        default=d.warmup,
        help="run a short clip through each model after loading it (default: auto, on CUDA only)",
    )
    p.add_argument(
        "--max-cached-models",
        type=int,
        default=d.max_cached,
        metavar="N",
        help=f"models kept loaded per worker, least recently used evicted (default: {d.max_cached})",
    )
    p.add_argument(
        "--memory-headroom",
        type=int,
        default=d.headroom_mb,
        metavar="MB",
        help=f"RAM / GPU memory that must stay free after loading a model (default: {d.headroom_mb})",
    )
    p.add_argument(
        "--model-memory-limit",
        type=int,
        default=d.memory_limit_mb,
        metavar="MB",
        help="at most this much memory for the loaded models of a worker (default: 0, no limit)",
    )


def model_manager_from_args(ns: argparse.Namespace) -> ModelManagerSettings:
    """The :class:`ModelManagerSettings` of flags added by :func:`add_model_manager_args` (and ``--no-preload``).

    Raises:
        UsageError: A value is out of range, or --preload names nothing.
    """
    _positive("--max-cached-models", ns.max_cached_models)
    _positive("--memory-headroom", ns.memory_headroom, allow_zero=True)
    _positive("--model-memory-limit", ns.model_memory_limit, allow_zero=True)
    preload: tuple[str, ...] | None = None
    if getattr(ns, "no_preload", False):
        preload = ()
    elif ns.preload is not None:
        preload = tuple(name.strip() for name in ns.preload.split(",") if name.strip())
        if not preload:
            raise UsageError("--preload names no model: give names such as tiny.en,small, or use --no-preload")
    return ModelManagerSettings(
        preload=preload,
        warmup=ns.warmup,
        max_cached=ns.max_cached_models,
        headroom_mb=ns.memory_headroom,
        memory_limit_mb=ns.model_memory_limit,
    )


def add_cluster_args(p: argparse.ArgumentParser) -> None:
    """The Dask flags shared by the CLI and the app: where work runs, scaling, waiting, priority."""
    p.add_argument("--scheduler", metavar="ADDRESS", help="address of a running Dask scheduler (tcp://host:8786)")
    p.add_argument(
        "--workers",
        metavar="N",
        help="local Dask worker processes to start; 0 runs in-process (default: the optimizer's choice)",
    )
    p.add_argument(
        "--adapt", metavar="MIN-MAX", help="let the local cluster grow and shrink between MIN and MAX workers"
    )
    p.add_argument(
        "--dashboard-address",
        default=":8787",
        metavar="[HOST]:PORT",
        help="where a local cluster serves the Dask dashboard (default :8787; :0 for any free port)",
    )
    p.add_argument(
        "--worker-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="fail a job (resumable) when no worker is connected for this long (default 120)",
    )
    p.add_argument("--priority", type=int, default=0, help="Dask priority of this run's jobs: higher runs first")


def cluster_from_args(ns: argparse.Namespace, fallback_local: bool = False) -> ClusterSettings:
    """The :class:`ClusterSettings` of the flags added by :func:`add_cluster_args`.

    Raises:
        UsageError: A malformed worker count, range or timeout.
    """
    workers: int | None = None
    raw = (ns.workers or "").strip().lower()
    if raw and raw != "auto":
        if not raw.isdigit():
            raise UsageError(f"bad --workers {ns.workers!r}: give a number of workers (0 runs in-process) or auto")
        workers = int(raw)
    adaptive: tuple[int, int] | None = None
    if ns.adapt:
        m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", ns.adapt)
        if not m or int(m.group(1)) > int(m.group(2)) or int(m.group(2)) < 1:
            raise UsageError(f"bad --adapt {ns.adapt!r}: use MIN-MAX workers, e.g. 1-8")
        adaptive = (int(m.group(1)), int(m.group(2)))
        if workers == 0 or ns.scheduler:
            raise UsageError("--adapt scales a local cluster: drop --workers 0 / --scheduler, or drop --adapt")
    _positive("--worker-timeout", ns.worker_timeout)
    return ClusterSettings(
        scheduler=(ns.scheduler or "").strip() or None,
        workers=workers,
        cpu_affinity=parse_affinity(ns.cpu_affinity) if getattr(ns, "cpu_affinity", None) else "auto",
        adaptive=adaptive,
        dashboard_address=ns.dashboard_address,
        worker_timeout_s=ns.worker_timeout,
        fallback_local=fallback_local,
    )


def add_language_output_args(p: argparse.ArgumentParser) -> None:
    """Flags for what is written in which language: task, translation, bilingual file, Chinese script."""
    p.add_argument(
        "--task",
        choices=TASKS,
        default="transcribe",
        help="transcribe (text in the spoken language) or translate (English text; multilingual model)",
    )
    p.add_argument(
        "--translate",
        action="store_true",
        help="also write an English translation beside the transcription (<stem>.en.srt; multilingual model)",
    )
    p.add_argument(
        "--bilingual",
        action="store_true",
        help="also write one file with each original line above its English line (<stem>.<lang>-en.srt)",
    )
    p.add_argument(
        "--name-language",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="put the language code in file names, talk.zh.srt (default: when a translation is written)",
    )
    p.add_argument(
        "--chinese",
        choices=CHINESE_SCRIPTS,
        default=None,
        help="script of Chinese subtitles (default: simplified); ignored for other languages",
    )


def language_output_from_args(ns: argparse.Namespace) -> tuple[str, bool, bool, str]:
    """(task, translate, bilingual, chinese) of the flags added by :func:`add_language_output_args`.

    ``--bilingual`` implies ``--translate``.

    Raises:
        UsageError: The flags contradict each other or the model is English-only.
    """
    task = getattr(ns, "task", "transcribe") or "transcribe"
    if task not in TASKS:
        raise UsageError(f"bad --task {task!r}: use transcribe or translate")
    bilingual = bool(getattr(ns, "bilingual", False))
    translate = bool(getattr(ns, "translate", False)) or bilingual
    if task == "translate" and translate:
        raise UsageError(
            "--task translate already writes English; --translate/--bilingual add English beside a transcription: "
            "drop one of them"
        )
    model = (getattr(ns, "model", "") or "").strip()
    if (task == "translate" or translate) and model.lower().endswith(".en"):
        raise UsageError(
            f"translation needs a multilingual model, and {model} is English-only: use --model base "
            "(or small, medium, a multilingual CTranslate2 folder)"
        )
    chinese = getattr(ns, "chinese", None) or "auto"
    if chinese not in (*CHINESE_SCRIPTS, "auto"):
        raise UsageError(f"bad --chinese {chinese!r}: use {', '.join(CHINESE_SCRIPTS)}")
    return task, translate, bilingual, chinese


def build_parser() -> argparse.ArgumentParser:
    """The ``video2srt`` command line."""
    p = argparse.ArgumentParser(
        prog="video2srt",
        description="Turn video and audio files into readable, well-timed subtitles with Whisper.",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="video or audio files")
    p.add_argument("-o", "--output-dir", type=Path, help="where to write results (default: beside each input)")
    p.add_argument("-f", "--formats", default="srt", help="comma-separated: srt,vtt,json,ass (default: srt)")
    p.add_argument("--karaoke", action="store_true", help="ASS (and --burn): per-word \\k timing from the word times")
    p.add_argument(
        "--embed",
        action="store_true",
        help="also write <stem>.subtitled.mkv (.mp4 for MP4 input, .mka for audio): streams copied, a subtitle track added",
    )
    p.add_argument(
        "--burn", action="store_true", help="also write <stem>.burned.mp4: subtitles rendered into the picture (H.264)"
    )
    p.add_argument("--font", default="auto", help="ASS and --burn font name (default: auto, Noto Sans / Noto Sans CJK)")
    p.add_argument(
        "--model",
        default=AUTO_MODEL,
        help="auto (default: tiny.en for English, a multilingual model for other languages), tiny.en (bundled), "
        "base (packaged), a Whisper name, or a CTranslate2 folder; see --list-models",
    )
    p.add_argument("--language", help="language code or name, e.g. en, zh, German; detected when omitted")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--compute-type", default="auto", choices=COMPUTE_TYPES)
    p.add_argument("--batch-size", type=int, help="windows per Whisper call (default: optimizer's choice)")
    p.add_argument("--beam-size", type=int, default=TranscribeSettings.beam_size)
    p.add_argument("--cpu-threads", type=int, default=0, help="CTranslate2 threads per worker (0: automatic)")
    p.add_argument(
        "--replicas", type=int, default=0, help="model replicas per worker running batches side by side (0: automatic)"
    )
    p.add_argument("--no-vad", action="store_true", help="cut at fixed 60 s instead of at pauses")
    p.add_argument(
        "--segment-length",
        default=None,
        metavar="MIN-MAX",
        help="segment length range in seconds, cut at pauses (default: 30-90)",
    )
    p.add_argument("--max-line-width", type=int, default=SubtitleSettings.max_line_width)
    p.add_argument("--max-lines", type=int, default=SubtitleSettings.max_lines)
    p.add_argument("--max-cps", type=float, default=SubtitleSettings.max_cps, help="reading speed, chars/s")
    p.add_argument("--min-duration", type=float, default=SubtitleSettings.min_duration)
    p.add_argument("--max-duration", type=float, default=SubtitleSettings.max_duration)
    p.add_argument(
        "--cjk-max-cps",
        type=float,
        default=SubtitleSettings.cjk_max_cps,
        help="reading speed of Chinese/Japanese/Korean cues, chars/s",
    )
    add_language_output_args(p)
    p.add_argument("--audio-track", type=int, help="which audio track to use, from 0 (default: the first)")
    p.add_argument("--align", default="auto", help="WhisperX alignment: auto, off, or a local model folder")
    p.add_argument("--cpu-affinity", default=os.environ.get("VIDEO2SRT_CPU_AFFINITY", "auto"))
    add_cluster_args(p)
    p.add_argument("--jobs-dir", type=Path, help="job folders (default: $VIDEO2SRT_JOBS_DIR or the user cache)")
    resume = p.add_mutually_exclusive_group()
    resume.add_argument("--resume", metavar="JOB_ID", help="resume an unfinished job")
    resume.add_argument("--resume-all", action="store_true", help="resume every unfinished job")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep audio.wav and segment results")
    p.add_argument("--hardware", action="store_true", help="print hardware and optimized settings as JSON")
    p.add_argument("--list-jobs", action="store_true", help="list jobs and their states")
    p.add_argument("--allow-download", action="store_true", help="let a standard model be downloaded")
    p.add_argument(
        "--list-models", action="store_true", help="list the models: languages, size, present or not, expected speed"
    )
    p.add_argument(
        "--download-model", metavar="NAME", help="download a standard model into the Hugging Face cache, then exit"
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    return p


def settings_from_args(ns: argparse.Namespace, env: Mapping[str, str] | None = None) -> Settings:
    """Turn parsed command-line values into :class:`Settings`, checking every value.

    Raises:
        UsageError: A value is out of range or unknown.
    """
    env = os.environ if env is None else env
    formats = parse_formats(ns.formats)
    for name in ("max_line_width", "max_lines", "beam_size"):
        _positive(f"--{name.replace('_', '-')}", getattr(ns, name))
    for name in ("max_cps", "cjk_max_cps", "min_duration", "max_duration"):
        _positive(f"--{name.replace('_', '-')}", getattr(ns, name))
    if ns.min_duration > ns.max_duration:
        raise UsageError("--min-duration must not exceed --max-duration")
    if ns.batch_size is not None:
        _positive("--batch-size", ns.batch_size)
    _positive("--cpu-threads", ns.cpu_threads, allow_zero=True)
    _positive("--replicas", ns.replicas, allow_zero=True)
    if ns.audio_track is not None:
        _positive("--audio-track", ns.audio_track, allow_zero=True)
    language = parse_language(ns.language)
    check_model_language(ns.model.strip() or AUTO_MODEL, language)
    jobs_dir = ns.jobs_dir.expanduser() if ns.jobs_dir else default_jobs_dir(env)
    align = ns.align.strip()
    if align.lower() in ("auto", "off"):
        align = align.lower()
    task, translate, bilingual, chinese = language_output_from_args(ns)
    transcribe = TranscribeSettings(
        language=language, beam_size=ns.beam_size, align=align, task=task, translate=translate
    )
    if ns.batch_size is not None:
        transcribe = dataclasses.replace(transcribe, batch_size=ns.batch_size)
    vad = VadSettings(enabled=not ns.no_vad)
    if ns.segment_length:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*", ns.segment_length)
        low, high = (float(m.group(1)), float(m.group(2))) if m else (0.0, 0.0)
        if not m or not 5 <= low <= high or high < vad.window_s:
            raise UsageError(
                f"bad --segment-length {ns.segment_length!r}: use MIN-MAX seconds with 5 <= MIN <= MAX and MAX >= 30"
            )
        vad = dataclasses.replace(vad, min_segment_s=low, max_segment_s=high, target_segment_s=(low + high) / 2)
    return Settings(
        audio=AudioSettings(audio_track=ns.audio_track),
        vad=vad,
        model=ModelSettings(
            name=ns.model.strip() or AUTO_MODEL,
            device=ns.device,
            compute_type=ns.compute_type,
            cpu_threads=ns.cpu_threads,
            replicas=ns.replicas,
            allow_download=ns.allow_download or env.get("VIDEO2SRT_ALLOW_DOWNLOAD") == "1",
        ),
        transcribe=transcribe,
        subtitles=SubtitleSettings(
            max_line_width=ns.max_line_width,
            max_lines=ns.max_lines,
            max_cps=ns.max_cps,
            cjk_max_cps=ns.cjk_max_cps,
            chinese=chinese,
            min_duration=ns.min_duration,
            max_duration=ns.max_duration,
        ),
        output=OutputSettings(
            output_dir=ns.output_dir, formats=formats, bilingual=bilingual, name_language=ns.name_language
        ),
        export=ExportSettings(karaoke=ns.karaoke, embed=ns.embed, burn=ns.burn, font=ns.font.strip() or "auto"),
        cluster=cluster_from_args(ns),
        jobs=JobSettings(jobs_dir=jobs_dir, keep_checkpoints=ns.keep_checkpoints, priority=ns.priority),
        debug=ns.debug,
    )
