"""Settings: one frozen dataclass per stage and one root :class:`Settings` that holds them all.

Each stage receives only its own part (``settings.vad`` for VAD, ``settings.transcribe`` for Whisper,
``settings.guard`` for the hallucination guard, ``settings.timing`` for word times, …). Values are checked by
:mod:`pipeline.core.validate`, read from flags, the environment and requests by :mod:`pipeline.parse`, and
``auto`` values become concrete ones in :func:`pipeline.resolve.resolve`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.errors import UsageError

FORMATS = ("srt", "vtt", "json", "ass")
#: What every edge (CLI, HTTP API, UI) writes when no format is named: the one default.
DEFAULT_FORMATS: tuple[str, ...] = ("srt",)
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
    #: The first segment is transcribed alone, and its length is how long the first subtitles take, so it is
    #: one window (benchmarks/README.md, "First cue").
    first_window_alone: bool = True
    #: Only a long silence ends a segment early; shorter pauses are left to the cut choice, which fills
    #: windows (at 2 s, segments ended at every pause after 30 s and left half-empty windows behind).
    skip_silence_s: float = 20.0
    #: Each window costs a full 30 s encoder pass, so long silence is cut down; shorter pauses stay because
    #: Whisper reads sentences by them (a shorter cut dropped utterances; docs/benchmarks.md).
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
    #: Whisper's full context. Shorter windows were more accurate only until quiet spans were levelled
    #: (TranscribeSettings.level_boost_db): what tiny.en dropped from full windows was a quiet speaker beside
    #: a loud one. Full windows are fewer encoder passes at the same accuracy (benchmarks/windows.py and
    #: docs/benchmarks.md have the figures).
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
    #: Windows per Whisper call; 0 leaves it to the optimizer (pipeline.resolve.resolve).
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
class GuardSettings:
    """Thresholds of the hallucination guard (pipeline.asr.guard).

    Attributes:
        enabled: Judge windows at all.
        compression_ratio: A window whose text compresses better than this is a loop.
        no_speech_prob: Above this, with ``log_prob`` below its threshold, a window holds no speech.
        log_prob: See ``no_speech_prob``.
        silence_db: A window quieter than this (RMS, dBFS) holds no speech when Whisper also says so.
        max_line_repeats: The same line may appear this many times in a row, no more.
        loop_repeats: An n-gram repeated this many times in a row ...
        loop_words: ... over at least this many words is a loop ("words, words, words, words" is not).
        loop_max_n: Longest n-gram looked for.
        coverage_gap_s: Seconds of speech after a window's last word that make its tail decoded again.
    """

    enabled: bool = True
    compression_ratio: float = 2.4
    no_speech_prob: float = 0.6
    log_prob: float = -1.0
    silence_db: float = -60.0
    max_line_repeats: int = 2
    loop_repeats: int = 3
    loop_words: int = 10
    loop_max_n: int = 8
    #: Speech (by VAD) this long inside a window with no word on it, while the window has words elsewhere,
    #: is decoded again on its own: tiny.en now and then skips a whole sentence of a window, and which one
    #: changes with the numerics of the batch the window shares. 0 turns this off.
    coverage_gap_s: float = 3.0


@dataclass(frozen=True)
class TimingSettings:
    """How Whisper's word times are refined (pipeline.asr.timing).

    Attributes:
        enabled: Refine at all; off keeps Whisper's times as they are.
        shift_s: Moved earlier by this much: Whisper's systematic lateness (measured with tiny.en).
        clamp: Move word starts and ends out of the silences between speech spans.
        snap_s: The first word after a silence starting at most this long after the speech onset starts
            at the onset; 0 turns this off.
        min_word_s: A word whose start moved to a speech onset lasts at least this long.
        cjk_char_max_s: Longest plausible time of one CJK character; a longer one starts later.
    """

    enabled: bool = True
    shift_s: float = 0.09
    clamp: bool = True
    snap_s: float = 0.3
    min_word_s: float = 0.05
    #: A CJK character is spoken in about 0.2-0.3 s; one timed longer than this took a pause into its time
    #: (the first character after a pause starts where the previous speech ended) and starts this long
    #: before its end instead (per character of the token). 0 turns this off.
    cjk_char_max_s: float = 0.7


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
    formats: tuple[str, ...] = DEFAULT_FORMATS
    #: Also write one SRT/VTT with each original line above its English translation (needs
    #: ``TranscribeSettings.translate``).
    bilingual: bool = False
    #: Put the language code in file names (``talk.zh.srt``): ``None`` does so when several languages are
    #: written (translation, bilingual), and not otherwise.
    name_language: bool | None = None


@dataclass(frozen=True)
class ExportSettings:
    """The styled ASS file and the video exports (pipeline.text.ass, pipeline.text.mux).

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
    guard: GuardSettings = field(default_factory=GuardSettings)
    timing: TimingSettings = field(default_factory=TimingSettings)
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
                    kwargs["formats"] = tuple(kwargs.get("formats") or DEFAULT_FORMATS)
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
        """The settings that change a job's result (not where files go, nor how fast), as plain JSON values.

        ``audio``, ``vad``, ``model``, ``transcribe`` and ``guard`` change what a segment's stored result holds;
        ``timing`` and ``subtitles`` change what is made of the stored results when the job is assembled.
        """
        return {
            "audio": dataclasses.asdict(self.audio),
            "vad": dataclasses.asdict(self.vad),
            "model": {"name": self.model.name, "compute_type": self.model.compute_type},
            "transcribe": dataclasses.asdict(self.transcribe),
            "guard": dataclasses.asdict(self.guard),
            "timing": dataclasses.asdict(self.timing),
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
