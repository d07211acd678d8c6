"""Settings from the outside: command-line flags, the environment and HTTP/UI requests, into :class:`Settings`.

Every value goes through its one validator in :mod:`pipeline.core.validate`, so the CLI, the HTTP API and the
UI accept the same values, fall back to the same defaults and refuse with the same words. It sits above
``pipeline.core`` because one check needs to know the installed models: an English-only model asked to
write another language.

Precedence on the command line: the dataclass defaults, then the environment (``VIDEO2SRT_GUARD_<FIELD>``,
``VIDEO2SRT_TIMING_<FIELD>``, …), then the flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.core.errors import UsageError
from pipeline.core.settings import (
    AUTO_MODEL,
    CHINESE_SCRIPTS,
    COMPUTE_TYPES,
    DEFAULT_FORMATS,
    DEVICES,
    TASKS,
    WARMUP_MODES,
    AudioSettings,
    ClusterSettings,
    ExportSettings,
    GuardSettings,
    JobSettings,
    ModelManagerSettings,
    ModelSettings,
    OutputSettings,
    Settings,
    SubtitleSettings,
    TimingSettings,
    TranscribeSettings,
    VadSettings,
    default_jobs_dir,
)
from pipeline.core.validate import (
    RULES,
    check,
    check_durations,
    check_translation,
    parse_affinity,
    parse_chinese,
    parse_formats,
    parse_language,
    parse_segment_length,
    parse_switch,
    parse_task,
)

#: Parts of :class:`Settings` that the environment may set, field by field: ``VIDEO2SRT_<PART>_<FIELD>``.
ENV_PARTS: dict[str, type] = {"guard": GuardSettings, "timing": TimingSettings}

#: What a job request (HTTP form, UI) may set, each name the setting's field; see :func:`settings_from_request`.
REQUEST_FIELDS = (
    "formats",
    "language",
    "vad",
    "task",
    "chinese",
    "max_line_width",
    "max_lines",
    "batch_size",
    "beam_size",
)
_REQUEST_NUMBERS = {
    "max_line_width": "subtitles.max_line_width",
    "max_lines": "subtitles.max_lines",
    "batch_size": "transcribe.batch_size",
    "beam_size": "transcribe.beam_size",
}


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


def settings_from_env(base: Settings, env: Mapping[str, str] | None = None) -> Settings:
    """``base`` with what the environment sets: ``VIDEO2SRT_GUARD_<FIELD>`` and ``VIDEO2SRT_TIMING_<FIELD>``
    (e.g. ``VIDEO2SRT_GUARD_COMPRESSION_RATIO=2.2``, ``VIDEO2SRT_TIMING_ENABLED=off``).

    Raises:
        UsageError: A value is bad (the message names the variable).
    """
    env = os.environ if env is None else env
    parts: dict[str, Any] = {}
    for part in ENV_PARTS:
        current = getattr(base, part)
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(current):
            name = f"VIDEO2SRT_{part.upper()}_{f.name.upper()}"
            raw = env.get(name)
            if raw is None or not raw.strip():
                continue
            if isinstance(getattr(current, f.name), bool):
                changes[f.name] = parse_switch(name, raw)
                continue
            try:
                changes[f.name] = check(f"{part}.{f.name}", raw)
            except UsageError as exc:
                raise UsageError(f"{name}: {exc}") from None
        if changes:
            parts[part] = dataclasses.replace(current, **changes)
    return base.replace(**parts) if parts else base


def _number(ns: argparse.Namespace, attr: str, key: str, default: Any) -> Any:  # noqa: ANN401 - int or float
    """The flag's value checked by its rule, or ``default`` when the flag was not given."""
    raw = getattr(ns, attr, None)
    return default if raw is None else check(key, raw)


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
        metavar="N",
        help=f"models kept loaded per worker, least recently used evicted (default: {d.max_cached})",
    )
    p.add_argument(
        "--memory-headroom",
        metavar="MB",
        help=f"RAM / GPU memory that must stay free after loading a model (default: {d.headroom_mb})",
    )
    p.add_argument(
        "--model-memory-limit",
        metavar="MB",
        help="at most this much memory for the loaded models of a worker (default: 0, no limit)",
    )


def model_manager_from_args(ns: argparse.Namespace) -> ModelManagerSettings:
    """The :class:`ModelManagerSettings` of flags added by :func:`add_model_manager_args` (and ``--no-preload``).

    Raises:
        UsageError: A value is out of range, or --preload names nothing.
    """
    d = ModelManagerSettings()
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
        max_cached=_number(ns, "max_cached_models", "models.max_cached", d.max_cached),
        headroom_mb=_number(ns, "memory_headroom", "models.headroom_mb", d.headroom_mb),
        memory_limit_mb=_number(ns, "model_memory_limit", "models.memory_limit_mb", d.memory_limit_mb),
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
        default=ClusterSettings.dashboard_address,
        metavar="[HOST]:PORT",
        help="where a local cluster serves the Dask dashboard (default :8787; :0 for any free port)",
    )
    p.add_argument(
        "--worker-timeout",
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
    return ClusterSettings(
        scheduler=(ns.scheduler or "").strip() or None,
        workers=workers,
        cpu_affinity=parse_affinity(ns.cpu_affinity) if getattr(ns, "cpu_affinity", None) else "auto",
        adaptive=adaptive,
        dashboard_address=ns.dashboard_address,
        worker_timeout_s=_number(ns, "worker_timeout", "cluster.worker_timeout_s", ClusterSettings.worker_timeout_s),
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
    task = parse_task(getattr(ns, "task", None))
    bilingual = bool(getattr(ns, "bilingual", False))
    translate = bool(getattr(ns, "translate", False)) or bilingual
    check_translation(task, translate, getattr(ns, "model", "") or "")
    return task, translate, bilingual, parse_chinese(getattr(ns, "chinese", None))


def build_parser() -> argparse.ArgumentParser:
    """The ``video2srt`` command line.

    Numeric flags are read as text and checked by :mod:`pipeline.core.validate` (not by argparse), so their
    errors read as the HTTP API's and the UI's do; a flag not given takes the setting's default.
    """
    p = argparse.ArgumentParser(
        prog="video2srt",
        description="Turn video and audio files into readable, well-timed subtitles with Whisper.",
    )
    sub, tr, guard = SubtitleSettings(), TranscribeSettings(), GuardSettings()
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="video or audio files")
    p.add_argument("-o", "--output-dir", type=Path, help="where to write results (default: beside each input)")
    p.add_argument(
        "-f",
        "--formats",
        default=",".join(DEFAULT_FORMATS),
        help=f"comma-separated: srt,vtt,json,ass (default: {','.join(DEFAULT_FORMATS)})",
    )
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
    p.add_argument("--batch-size", help="windows per Whisper call, 1-256 (default: the optimizer's choice)")
    p.add_argument("--beam-size", help=f"beam search width, 1-20 (default: {tr.beam_size})")
    p.add_argument("--cpu-threads", help="CTranslate2 threads per worker (0: automatic)")
    p.add_argument("--replicas", help="model replicas per worker running batches side by side (0: automatic)")
    p.add_argument("--no-vad", action="store_true", help="cut at fixed 60 s instead of at pauses")
    p.add_argument(
        "--segment-length",
        default=None,
        metavar="MIN-MAX",
        help="segment length range in seconds, cut at pauses (default: 30-90)",
    )
    p.add_argument(
        "--compression-ratio-threshold",
        metavar="RATIO",
        help=f"hallucination guard: a window whose text compresses better than this is a loop (default: "
        f"{guard.compression_ratio}; every guard threshold also as VIDEO2SRT_GUARD_<NAME>)",
    )
    p.add_argument(
        "--no-speech-threshold",
        metavar="P",
        help=f"hallucination guard: Whisper's no-speech probability above which a window may be dropped "
        f"(default: {guard.no_speech_prob})",
    )
    p.add_argument("--max-line-width", help=f"characters per line (default: {sub.max_line_width})")
    p.add_argument("--max-lines", help=f"lines per cue (default: {sub.max_lines})")
    p.add_argument("--max-cps", help=f"reading speed, chars/s (default: {sub.max_cps:g})")
    p.add_argument("--min-duration", help=f"shortest cue, seconds (default: {sub.min_duration:g})")
    p.add_argument("--max-duration", help=f"longest cue, seconds (default: {sub.max_duration:g})")
    p.add_argument(
        "--cjk-max-cps",
        help=f"reading speed of Chinese/Japanese/Korean cues, chars/s (default: {sub.cjk_max_cps:g})",
    )
    add_language_output_args(p)
    p.add_argument("--audio-track", help="which audio track to use, from 0 (default: the first)")
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
    """Turn parsed command-line values (and the environment) into :class:`Settings`, checking every value.

    Raises:
        UsageError: A value is out of range or unknown.
    """
    env = os.environ if env is None else env
    base = settings_from_env(Settings(jobs=JobSettings(jobs_dir=default_jobs_dir(env))), env)
    formats = parse_formats(ns.formats)
    sub, tr = base.subtitles, base.transcribe
    subtitles = dataclasses.replace(
        sub,
        max_line_width=_number(ns, "max_line_width", "subtitles.max_line_width", sub.max_line_width),
        max_lines=_number(ns, "max_lines", "subtitles.max_lines", sub.max_lines),
        max_cps=_number(ns, "max_cps", "subtitles.max_cps", sub.max_cps),
        cjk_max_cps=_number(ns, "cjk_max_cps", "subtitles.cjk_max_cps", sub.cjk_max_cps),
        min_duration=_number(ns, "min_duration", "subtitles.min_duration", sub.min_duration),
        max_duration=_number(ns, "max_duration", "subtitles.max_duration", sub.max_duration),
    )
    check_durations(subtitles.min_duration, subtitles.max_duration)
    language = parse_language(ns.language)
    model_name = ns.model.strip() or AUTO_MODEL
    check_model_language(model_name, language)
    jobs_dir = ns.jobs_dir.expanduser() if ns.jobs_dir else base.jobs.jobs_dir
    align = ns.align.strip()
    if align.lower() in ("auto", "off"):
        align = align.lower()
    task, translate, bilingual, chinese = language_output_from_args(ns)
    transcribe = dataclasses.replace(
        tr,
        language=language,
        batch_size=_number(ns, "batch_size", "transcribe.batch_size", tr.batch_size),
        beam_size=_number(ns, "beam_size", "transcribe.beam_size", tr.beam_size),
        align=align,
        task=task,
        translate=translate,
    )
    guard = dataclasses.replace(
        base.guard,
        compression_ratio=_number(
            ns, "compression_ratio_threshold", "guard.compression_ratio", base.guard.compression_ratio
        ),
        no_speech_prob=_number(ns, "no_speech_threshold", "guard.no_speech_prob", base.guard.no_speech_prob),
    )
    vad = VadSettings(enabled=not ns.no_vad)
    if ns.segment_length:
        vad = parse_segment_length(ns.segment_length, vad)
    m = ModelSettings()
    return base.replace(
        audio=AudioSettings(audio_track=_number(ns, "audio_track", "audio.audio_track", None)),
        vad=vad,
        model=ModelSettings(
            name=model_name,
            device=ns.device,
            compute_type=ns.compute_type,
            cpu_threads=_number(ns, "cpu_threads", "model.cpu_threads", m.cpu_threads),
            replicas=_number(ns, "replicas", "model.replicas", m.replicas),
            allow_download=ns.allow_download or env.get("VIDEO2SRT_ALLOW_DOWNLOAD") == "1",
        ),
        transcribe=transcribe,
        guard=guard,
        subtitles=dataclasses.replace(subtitles, chinese=chinese),
        output=OutputSettings(
            output_dir=ns.output_dir, formats=formats, bilingual=bilingual, name_language=ns.name_language
        ),
        export=ExportSettings(karaoke=ns.karaoke, embed=ns.embed, burn=ns.burn, font=ns.font.strip() or "auto"),
        cluster=cluster_from_args(ns),
        jobs=JobSettings(jobs_dir=jobs_dir, keep_checkpoints=ns.keep_checkpoints, priority=ns.priority),
        debug=ns.debug,
    )


def settings_from_request(base: Settings, overrides: Mapping[str, Any] | None, output_dir: Path) -> Settings:
    """Settings for one job asked for over HTTP or in the UI: ``base`` plus the request's values.

    A request may set ``formats``, ``language``, ``vad`` (on/off), ``task`` (transcribe/translate), ``chinese``
    (simplified/traditional/keep), ``max_line_width``, ``max_lines``, ``batch_size`` and ``beam_size``; blank
    values are left out. Formats default to :data:`~pipeline.core.settings.DEFAULT_FORMATS`, as on the CLI.

    Raises:
        UsageError: A value is unknown or out of range (the same words as the CLI's).
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None and str(v).strip() != ""}
    unknown = sorted(set(overrides) - set(REQUEST_FIELDS))
    if unknown:
        raise UsageError(f"unknown setting(s) {', '.join(unknown)}: use {', '.join(REQUEST_FIELDS)}")
    formats = parse_formats(overrides.get("formats", DEFAULT_FORMATS))
    parts: dict[str, Any] = {"transcribe": base.transcribe, "subtitles": base.subtitles, "vad": base.vad}
    if "language" in overrides:
        language = parse_language(str(overrides["language"]))
        check_model_language(base.model.name, language)
        parts["transcribe"] = dataclasses.replace(parts["transcribe"], language=language)
    if "task" in overrides:
        task = parse_task(str(overrides["task"]))
        check_translation(task, False, base.model.name)
        parts["transcribe"] = dataclasses.replace(parts["transcribe"], task=task)
    if "chinese" in overrides:
        parts["subtitles"] = dataclasses.replace(parts["subtitles"], chinese=parse_chinese(str(overrides["chinese"])))
    if "vad" in overrides:
        parts["vad"] = dataclasses.replace(parts["vad"], enabled=parse_switch("vad", overrides["vad"]))
    for name, key in _REQUEST_NUMBERS.items():
        if name in overrides:
            part = RULES[key].part
            parts[part] = dataclasses.replace(parts[part], **{RULES[key].field: check(key, overrides[name])})
    return base.replace(output=OutputSettings(output_dir=output_dir, formats=formats), **parts)
