"""Tuning sweeps: how VAD settings change accuracy, and how batch size, workers and threads change speed.

The notebooks in ``notebooks/`` are thin: every measurement, recommendation and chart they show comes from
here, so the same sweeps run from a script or a test. Everything runs the real pipeline
(:class:`pipeline.jobs.engine.Runner`) on real recordings (:mod:`pipeline.lab.evaluation`), nothing is simulated.

- :func:`vad_sweep` transcribes the same inputs under each :class:`~pipeline.core.settings.VadSettings` of a
  grid (:func:`vad_grid`) and reports WER, segment count and lengths, speech ratio and skipped silence.
- :func:`throughput_sweep` runs one input under each batch size × workers × threads combination, each in
  a fresh process whose memory (with its children) is sampled, and reports real-time factor, peak memory
  and time to first cue; :func:`compare_with_optimizer` sets the optimizer's choice
  (:mod:`pipeline.system.hardware`) beside the best measured one.
- :func:`open_runner` and :func:`watch_jobs` run several jobs in-process or on a Dask cluster (local or
  remote) and record their progress and every worker's memory (and GPU memory) over time.
- :func:`language_accuracy` transcribes the German, Spanish and Mandarin test clips with a multilingual model
  and scores them per language (WER, or CER for Chinese; :func:`pipeline.lab.evaluation.score_language`).
- :func:`recommend` picks settings from either kind of sweep rows; the ``*_figure`` functions draw
  everything with plotly, :func:`table` and the :class:`Report` values render as Markdown.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.core.constants import SAMPLE_RATE
from pipeline.core.errors import ClusterError, PipelineError, UsageError
from pipeline.core.settings import (
    ClusterSettings,
    JobSettings,
    ModelSettings,
    OutputSettings,
    Settings,
    TranscribeSettings,
    VadSettings,
)
from pipeline.lab.evaluation import Clip, corpus_wer, language_clips, language_metric, score_language, transcript_text

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

    from pipeline.jobs.engine import JobResult

log = logging.getLogger(__name__)

MIB = 1024 * 1024
#: How often a measured process tree's memory is sampled.
SAMPLE_EVERY_S = 0.05
#: VAD rows whose WER is within this (absolute) of the best count as equally accurate.
WER_TOLERANCE = 0.005
#: Throughput rows whose real-time factor is within this share of the best count as equally fast.
RTF_TOLERANCE = 0.05
#: The VAD fields a sweep varies (the rest come from the base settings).
VAD_FIELDS = ("threshold", "min_silence_ms", "min_segment_s", "max_segment_s", "target_segment_s")

Progress = Callable[[str], None]


# --------------------------------------------------------------------------------------------------------------
# Reports: Markdown that Jupyter renders and a script prints.


@dataclass
class Report:
    """A short Markdown text: rendered in Jupyter, printed as is elsewhere; ``rows`` holds the figures."""

    text: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def _repr_markdown_(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text


@dataclass
class Recommendation(Report):
    """Settings picked from sweep rows, with the figures behind the choice.

    Attributes:
        kind: ``vad`` or ``throughput``.
        row: The chosen row.
        baseline: The row of the current defaults (VAD) or of the optimizer's choice (throughput), if measured.
        settings: For ``vad`` the :class:`VadSettings` to use; for ``throughput`` a dict of ``batch_size``,
            ``cpu_threads`` and ``workers``.
        reason: One line saying why.
    """

    kind: str = ""
    row: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] | None = None
    settings: Any = None
    reason: str = ""


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, digits: int = 3) -> Report:
    """A Markdown table of ``rows`` (lists and dicts left out unless named in ``columns``).

    Args:
        rows: Sweep rows.
        columns: Which keys, in order (default: every scalar key of the first row).
        digits: Decimals for floats.
    """
    if not rows:
        return Report("(no rows)")
    cols = list(columns) if columns else [k for k, v in rows[0].items() if not isinstance(v, (list, dict))]

    def cell(value: Any) -> str:
        if value is None:
            return "—"
        if isinstance(value, bool):
            return "yes" if value else ""
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        if isinstance(value, dict):
            return ", ".join(f"{k} {cell(v)}" for k, v in value.items())
        return str(value)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in cols) + " |" for row in rows]
    return Report("\n".join(lines), [dict(r) for r in rows])


# --------------------------------------------------------------------------------------------------------------
# Inputs and settings


def scratch_dir(path: str | Path | None = None) -> Path:
    """Where a sweep writes its inputs, job folders and outputs: ``path`` (created), or a new temporary folder."""
    if path:
        folder = Path(path).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return Path(tempfile.mkdtemp(prefix="video2srt-tuning-"))


def mix_clips(
    clips: Sequence[Clip],
    out_dir: Path,
    *,
    seconds: float = 0.0,
    pause_s: tuple[float, float] = (0.4, 1.5),
    long_pause_s: float = 6.0,
    long_pause_every_s: float = 20.0,
    seed: int = 0,
    name: str = "mix",
) -> Clip:
    """One longer recording made of ``clips`` in order, like a talk: short pauses and now and then a long one.

    Whole clips are taken in order (looping when needed) until there are ``seconds`` of audio, or each
    once when ``seconds`` is 0, so the reference stays exact. Between clips goes a pause drawn from
    ``pause_s`` (fixed ``seed``); after every ``long_pause_every_s`` seconds a silence of ``long_pause_s``,
    which segmentation should skip. The file is a 16 kHz WAV in ``out_dir``, reused while the recipe is
    unchanged.

    Returns:
        The mix as a :class:`Clip` of set ``name``.

    Raises:
        UsageError: No clips.
    """
    import soundfile

    from pipeline.media.decode import decode_all

    if not clips:
        raise UsageError("no clips to mix: choose at least one data set")
    recipe = json.dumps(
        [[str(c.path) for c in clips], seconds, list(pause_s), long_pause_s, long_pause_every_s, seed], sort_keys=True
    )
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    wav, ref_path = out_dir / f"{name}-{digest}.wav", out_dir / f"{name}-{digest}.txt"
    if wav.exists() and ref_path.exists():
        return Clip(name, wav, ref_path.read_text())
    rng = random.Random(seed)
    pieces: list[np.ndarray] = [np.zeros(SAMPLE_RATE // 2, np.float32)]
    refs: list[str] = []
    total = since_long = pieces[0].size / SAMPLE_RATE
    decoded: dict[Path, np.ndarray] = {}
    i = 0
    while (total < seconds) if seconds > 0 else (i < len(clips)):
        clip = clips[i % len(clips)]
        i += 1
        if clip.path not in decoded:
            decoded[clip.path] = decode_all(clip.path)
        pieces.append(decoded[clip.path])
        refs.append(clip.ref)
        length = decoded[clip.path].size / SAMPLE_RATE
        if long_pause_s > 0 and since_long + length >= long_pause_every_s:
            pause, since_long = long_pause_s, 0.0
        else:
            pause, since_long = round(rng.uniform(*pause_s), 2), since_long + length
        pieces.append(np.zeros(int(pause * SAMPLE_RATE), np.float32))
        total += length + pause
    out_dir.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(wav), np.concatenate(pieces), SAMPLE_RATE, subtype="PCM_16")
    ref_path.write_text(" ".join(refs))
    return Clip(name, wav, " ".join(refs))


def base_settings(
    scratch: Path,
    *,
    model: str = "tiny.en",
    device: str = "auto",
    compute_type: str = "auto",
    language: str | None = "en",
    align: str = "off",
    batch_size: int = 0,
    workers: int = 0,
    scheduler: str = "",
    dashboard_address: str = ":8787",
    segment_bounds: tuple[float, float] | None = None,
) -> Settings:
    """Settings for tuning runs: outputs and job folders under ``scratch``, everything else the defaults.

    Jobs run in this process unless ``workers`` (a local Dask cluster of that many worker processes) or
    ``scheduler`` (the address of a running one) say otherwise. ``segment_bounds`` (shortest, longest
    segment in seconds) replaces the default 30–90 s. Alignment is off by default: it only moves word
    times, costs the same under every setting swept here, and would only slow the sweep down.
    """
    vad = VadSettings() if segment_bounds is None else with_segment_bounds(VadSettings(), *segment_bounds)
    cluster = ClusterSettings(
        scheduler=scheduler.strip() or None,
        workers=None if scheduler.strip() else workers,
        dashboard_address=dashboard_address,
    )
    return Settings(
        model=ModelSettings(name=model, device=device, compute_type=compute_type),
        transcribe=TranscribeSettings(language=language, align=align, batch_size=batch_size),
        vad=vad,
        output=OutputSettings(output_dir=scratch / "out", formats=("srt",)),
        cluster=cluster,
        jobs=JobSettings(jobs_dir=scratch / "jobs"),
    )


def with_segment_bounds(vad: VadSettings, low: float, high: float) -> VadSettings:
    """``vad`` with segments of ``low``–``high`` seconds, cut preferably at the midpoint (as ``--segment-length``).

    Raises:
        UsageError: Not a range of positive lengths.
    """
    if not 0 < low <= high:
        raise UsageError(f"segment bounds ({low}, {high}) are not a range: use (shortest, longest) seconds")
    return dataclasses.replace(
        vad, min_segment_s=float(low), max_segment_s=float(high), target_segment_s=(low + high) / 2
    )


def vad_grid(
    thresholds: Iterable[float],
    min_silence_ms: Iterable[int],
    segment_bounds: Iterable[tuple[float, float]],
    *,
    base: VadSettings | None = None,
    include_default: bool = True,
) -> list[VadSettings]:
    """Every combination of speech threshold × minimum silence × segment length bounds.

    Args:
        thresholds: Speech probabilities above which a frame is speech (0–1).
        min_silence_ms: How long a pause must last to end a speech span.
        segment_bounds: (shortest, longest) segment in seconds; the preferred cut is the midpoint, as
            with ``--segment-length MIN-MAX``.
        base: The other VAD fields (default: the library defaults).
        include_default: Add the library defaults when the grid does not hold them, so every sweep shows
            how the defaults compare.

    Raises:
        UsageError: A value is out of range.
    """
    base = base or VadSettings()
    grid: list[VadSettings] = []
    for threshold, silence, (low, high) in itertools.product(thresholds, min_silence_ms, segment_bounds):
        if not 0.0 < threshold < 1.0:
            raise UsageError(f"VAD threshold {threshold} is out of range: use a probability between 0 and 1")
        if silence < 0:
            raise UsageError(f"minimum silence {silence} ms is negative: use 0 or more")
        grid.append(
            with_segment_bounds(
                dataclasses.replace(base, threshold=float(threshold), min_silence_ms=int(silence)), low, high
            )
        )
    if include_default and VadSettings() not in grid:
        grid.append(VadSettings())
    return grid


# --------------------------------------------------------------------------------------------------------------
# VAD sweep


def vad_label(vad: VadSettings) -> str:
    """A short name for a VAD setting, for legends and tables."""
    return (
        f"thr {vad.threshold:g} · silence {vad.min_silence_ms} ms · "
        f"segments {vad.min_segment_s:g}–{vad.max_segment_s:g} s"
    )


def vad_sweep(
    clips: Sequence[Clip],
    grid: Sequence[VadSettings],
    settings: Settings,
    *,
    on_progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Transcribe every clip under every VAD setting of ``grid``, with one model for all.

    Args:
        clips: The inputs with their references.
        grid: VAD settings to compare (see :func:`vad_grid`).
        settings: Everything else (see :func:`base_settings`).
        on_progress: Called with one line per finished setting.

    Returns:
        One row per setting: the swept fields, ``wer`` (corpus WER over all clips), ``wer_by_set``,
        ``segments``, ``segment_mean_s``/``min``/``max`` and ``segment_lengths``, ``windows`` (Whisper
        calls' worth of audio), ``speech_ratio``, ``silence_skipped_s``, ``audio_s``, ``wall_s``, ``rtf``,
        ``default`` (the library defaults) and ``label``.
    """
    from pipeline.jobs.engine import Runner

    if not clips or not grid:
        raise UsageError("nothing to sweep: give at least one clip and one VAD setting")
    runner = Runner(settings)
    rows: list[dict[str, Any]] = []
    try:
        for vad in grid:
            s = settings.replace(vad=vad)
            started = time.perf_counter()
            results = [runner.run(clip.path, s) for clip in clips]
            rows.append(_vad_row(vad, clips, results, time.perf_counter() - started))
            row = rows[-1]
            _progress(on_progress, f"{row['label']}: WER {_pct(row['wer'])}, {row['segments']} segment(s)")
    finally:
        runner.close()
    return rows


def _vad_row(vad: VadSettings, clips: Sequence[Clip], results: Sequence[JobResult], wall_s: float) -> dict[str, Any]:
    hyps = [transcript_text(r.transcript) for r in results]
    lengths = [x for r in results for x in r.vad.segment_lengths]
    duration = sum(r.vad.duration for r in results)
    by_set: dict[str, float | None] = {}
    for name in dict.fromkeys(c.set for c in clips):
        idx = [i for i, c in enumerate(clips) if c.set == name]
        by_set[name] = corpus_wer([clips[i].ref for i in idx], [hyps[i] for i in idx])
    default = VadSettings()
    return {
        "kind": "vad",
        "label": vad_label(vad),
        **{name: getattr(vad, name) for name in VAD_FIELDS},
        "default": vad == default,
        "wer": corpus_wer([c.ref for c in clips], hyps),
        "wer_by_set": by_set,
        "segments": len(lengths),
        "segment_mean_s": statistics.fmean(lengths) if lengths else 0.0,
        "segment_min_s": min(lengths, default=0.0),
        "segment_max_s": max(lengths, default=0.0),
        "windows": sum(r.vad.window_count for r in results),
        "speech_ratio": sum(r.vad.speech_seconds for r in results) / duration if duration else 0.0,
        "silence_skipped_s": sum(r.vad.silence_skipped for r in results),
        "audio_s": duration,
        "wall_s": wall_s,
        "rtf": wall_s / duration if duration else 0.0,
        "segment_lengths": [round(x, 2) for x in lengths],
        "vad": dataclasses.asdict(vad),
    }


# --------------------------------------------------------------------------------------------------------------
# Memory of a process tree


class MemorySampler:
    """Samples, on a background thread, the resident memory of a process and all its descendants.

    GPU memory is the NVIDIA devices' used memory above what was used when sampling began (NVML through
    nvidia-ml-py; 0 without a GPU). Use as a context manager; afterwards ``peak_rss_mb``, ``peak_gpu_mb``
    and ``series`` (``(seconds, rss_mb, gpu_mb)`` samples) hold the figures.

    Args:
        pid: The root process (default: this one).
        every_s: Sampling interval.
    """

    def __init__(self, pid: int | None = None, every_s: float = SAMPLE_EVERY_S) -> None:
        self.pid = pid if pid is not None else os.getpid()
        self.every_s = every_s
        self.peak_rss_mb = 0.0
        self.peak_gpu_mb = 0.0
        self.series: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nvml: Any = None
        self._gpu_base = 0.0

    def __enter__(self) -> MemorySampler:
        self._nvml = _nvml()
        self._gpu_base = self._gpu_used_mb()
        self._started = time.perf_counter()
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001 - NVML errors are classes built at run time; shutdown is best effort
                pass

    def sample(self) -> None:
        """Take one sample now."""
        rss = tree_rss_bytes(self.pid) / MIB
        gpu = max(0.0, self._gpu_used_mb() - self._gpu_base)
        self.peak_rss_mb = max(self.peak_rss_mb, rss)
        self.peak_gpu_mb = max(self.peak_gpu_mb, gpu)
        self.series.append((round(time.perf_counter() - self._started, 3), round(rss, 1), round(gpu, 1)))

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def _gpu_used_mb(self) -> float:
        if self._nvml is None:
            return 0.0
        try:
            count = self._nvml.nvmlDeviceGetCount()
            return (
                sum(
                    self._nvml.nvmlDeviceGetMemoryInfo(self._nvml.nvmlDeviceGetHandleByIndex(i)).used
                    for i in range(count)
                )
                / MIB
            )
        except Exception:  # noqa: BLE001 - NVML errors are classes built at run time; no GPU figure then
            return 0.0


def _nvml() -> Any:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no NVIDIA driver is the normal case on a CPU machine
        return None
    return pynvml


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` and all its descendants, in bytes (0 when it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in tree:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass  # it ended between listing and reading
    return total


# --------------------------------------------------------------------------------------------------------------
# Throughput sweep


def cluster_available() -> bool:
    """Whether transcription can run on Dask workers here (``pipeline.backends.dask`` is part of this install)."""
    import importlib.util

    return importlib.util.find_spec("pipeline.backends.dask") is not None


def default_thread_counts(cores: int | None = None) -> list[int]:
    """CTranslate2 thread counts worth trying: 1, half the cores and all of them."""
    import psutil

    n = cores or psutil.cpu_count(logical=False) or os.cpu_count() or 1
    return sorted({1, max(1, n // 2), n})


def optimizer_choice(settings: Settings) -> dict[str, Any]:
    """What the optimizer (:mod:`pipeline.system.hardware`) picks on this machine for ``settings``' model and device.

    Returns:
        ``batch_size``, ``cpu_threads``, ``workers`` (0 when it plans one model, i.e. in-process),
        ``concurrency``, ``device``, ``model``, ``compute_type`` and ``reasons`` (one line per field).
    """
    from pipeline.system.hardware import hardware_report

    report = hardware_report(
        settings.jobs.jobs_dir,
        device=settings.model.device,
        compute_type=settings.model.compute_type,
        model=settings.model.name,
        cpu_affinity=settings.cluster.cpu_affinity,
    )
    opt = report["optimized"]
    return {
        "batch_size": opt["batch_size"],
        "cpu_threads": opt["cpu_threads"],
        "workers": 0 if opt["concurrency"] <= 1 else opt["concurrency"],
        "concurrency": opt["concurrency"],
        "device": opt["device"],
        "model": opt["model"],
        "compute_type": opt["compute_type"],
        "reasons": opt["reasons"],
        "summary": report["summary"],
    }


def throughput_grid(
    batch_sizes: Iterable[int],
    threads: Iterable[int] | None = None,
    workers: Iterable[int] = (0,),
    *,
    optimizer: Mapping[str, Any] | None = None,
) -> list[dict[str, int]]:
    """Every batch size × workers × threads combination, plus the optimizer's choice when given and missing.

    Args:
        batch_sizes: Windows per Whisper call.
        threads: CTranslate2 threads per worker; empty or None: :func:`default_thread_counts`.
        workers: Dask workers; 0 runs in-process.
        optimizer: The optimizer's choice (:func:`optimizer_choice`), added when the grid lacks it.

    Raises:
        UsageError: A value is out of range, or workers are asked for where there is no cluster support.
    """
    threads = list(threads or []) or default_thread_counts()
    combos = [
        {"batch_size": int(b), "workers": int(w), "cpu_threads": int(t)}
        for w, t, b in itertools.product(workers, threads, batch_sizes)
    ]
    for c in combos:
        if c["batch_size"] < 1 or c["cpu_threads"] < 1 or c["workers"] < 0:
            raise UsageError(f"bad throughput combination {c}: batch size and threads from 1, workers from 0")
    if any(c["workers"] > 0 for c in combos) and not cluster_available():
        raise UsageError(
            "workers > 0 needs the Dask cluster support (pipeline.backends.dask), which this install lacks: use workers 0"
        )
    if optimizer is not None:
        choice = {k: int(optimizer[k]) for k in ("batch_size", "workers", "cpu_threads")}
        if choice["workers"] > 0 and not cluster_available():
            choice["workers"] = 0
        if choice not in combos:
            combos.append(choice)
    return combos


def throughput_sweep(
    clip: Clip,
    settings: Settings,
    combos: Sequence[Mapping[str, int]],
    *,
    repeats: int = 1,
    optimizer: Mapping[str, Any] | None = None,
    timeout_s: float = 600.0,
    on_progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Run ``clip`` once per combination (``repeats`` times), each in a fresh process, and measure it.

    Each run starts a new Python process, loads the model there, then times one job from start
    to finish, so no run profits from another's caches and the peak memory is that of a real job process
    (with every child it starts, such as Dask workers).

    Args:
        clip: The input.
        settings: Everything else (see :func:`base_settings`).
        combos: From :func:`throughput_grid`.
        repeats: Runs per combination; the median run (by real-time factor) is kept.
        optimizer: The optimizer's choice (:func:`optimizer_choice`), to mark its row.
        timeout_s: A run taking longer is stopped and reported as failed.
        on_progress: Called with one line per finished run.

    Returns:
        One row per combination: ``batch_size``, ``workers``, ``cpu_threads``, ``rtf`` (job wall time over
        audio duration), ``wall_s``, ``first_cue_s`` (job start to first transcribed segment),
        ``model_load_s``, ``peak_rss_mb``, ``peak_gpu_mb``, ``audio_s``, ``wer``, ``optimizer``, ``label``
        and ``error`` (None, or why the run failed).
    """
    rows: list[dict[str, Any]] = []
    mark = {k: int(optimizer[k]) for k in ("batch_size", "workers", "cpu_threads")} if optimizer else None
    if mark and mark["workers"] > 0 and not cluster_available():
        mark["workers"] = 0
    for index, combo in enumerate(combos):
        runs = []
        for r in range(max(1, repeats)):
            s = settings.replace(
                transcribe=dataclasses.replace(settings.transcribe, batch_size=int(combo["batch_size"])),
                model=dataclasses.replace(settings.model, cpu_threads=int(combo["cpu_threads"])),
                cluster=dataclasses.replace(settings.cluster, workers=int(combo["workers"])),
                # A fresh jobs folder per run: a VAD-cache hit would make later runs look faster.
                jobs=dataclasses.replace(settings.jobs, jobs_dir=settings.jobs.jobs_dir / f"throughput-{index}-{r}"),
            )
            runs.append(measure_job(clip, s, timeout_s=timeout_s))
        ok = [x for x in runs if x["error"] is None]
        run = sorted(ok, key=lambda x: x["rtf"])[len(ok) // 2] if ok else runs[0]
        row = {
            "kind": "throughput",
            "label": f"batch {combo['batch_size']} · workers {combo['workers']} · {combo['cpu_threads']} threads",
            "batch_size": int(combo["batch_size"]),
            "workers": int(combo["workers"]),
            "cpu_threads": int(combo["cpu_threads"]),
            **run,
            "optimizer": mark is not None and {k: int(combo[k]) for k in mark} == mark,
            "repeats": len(runs),
        }
        rows.append(row)
        if row["error"]:
            _progress(on_progress, f"{row['label']}: failed ({row['error']})")
        else:
            _progress(
                on_progress,
                f"{row['label']}: RTF {row['rtf']:.3f}, peak {row['peak_rss_mb']:.0f} MB, "
                f"first cue {row['first_cue_s']:.1f} s",
            )
    return rows


def measure_job(clip: Clip, settings: Settings, *, timeout_s: float = 600.0) -> dict[str, Any]:
    """Run one job in a fresh Python process and measure it; see :func:`throughput_sweep`.

    The process is a plain ``python -c`` (not multiprocessing), so this works the same from a notebook,
    a script without a ``__main__`` guard, or a test.

    Returns:
        ``rtf``, ``wall_s``, ``first_cue_s``, ``model_load_s``, ``peak_rss_mb``, ``peak_gpu_mb``,
        ``audio_s``, ``wer`` and ``error`` (None when the job finished).
    """
    with tempfile.TemporaryDirectory(prefix="video2srt-measure-") as tmp:
        out, err = Path(tmp) / "result.json", Path(tmp) / "stderr.txt"
        request = json.dumps({"input": str(clip.path), "settings": settings.to_dict(), "out": str(out)})
        code = "import sys; from pipeline.lab.tuning import job_main; sys.exit(job_main(sys.argv[1]))"
        with open(err, "wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-c", code, request],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            with MemorySampler(proc.pid) as mem:
                try:
                    proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if out.exists():
            message = json.loads(out.read_text())
        else:
            tail = err.read_text(errors="replace").strip().splitlines()[-1:] or [""]
            killed = proc.returncode is not None and proc.returncode < 0
            why = f"stopped after {timeout_s:.0f} s" if killed else f"exit code {proc.returncode}"
            message = {"error": f"the job process ended without a result ({why}) {tail[0]}".strip()}
    result: dict[str, Any] = {
        "rtf": None,
        "wall_s": None,
        "first_cue_s": None,
        "model_load_s": None,
        "audio_s": None,
        "wer": None,
        "peak_rss_mb": round(mem.peak_rss_mb, 1),
        "peak_gpu_mb": round(mem.peak_gpu_mb, 1),
        "error": None,
    }
    result.update(message)
    text = result.pop("text", None)
    if result["error"] is None and clip.ref and text is not None:
        result["wer"] = corpus_wer([clip.ref], [text])
    return result


def job_main(request: str) -> int:
    """The body of :func:`measure_job`'s process: load the model, then time one job; the figures go to a file.

    Args:
        request: JSON with ``input`` (the media file), ``settings`` (:meth:`Settings.to_dict`) and ``out``.

    Returns:
        The exit code: 0 when a result (figures or an error line) was written.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    req = json.loads(request)
    settings = Settings.from_dict(req["settings"])
    message: dict[str, Any]
    try:
        runner, load_s = open_runner(settings)
        try:
            started = time.perf_counter()
            result = runner.run(Path(req["input"]), settings)
            wall = time.perf_counter() - started
        finally:
            runner.close()
        duration = result.transcript.duration or 0.0
        message = {
            "rtf": wall / duration if duration else None,
            "wall_s": wall,
            "first_cue_s": result.transcript.timings.get("first_result"),
            "model_load_s": load_s,
            "audio_s": duration,
            "text": transcript_text(result.transcript),
        }
    except PipelineError as exc:
        message = {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - reported as the row's error; the sweep goes on
        message = {"error": f"{type(exc).__name__}: {exc}"}
    Path(req["out"]).write_text(json.dumps(message))
    return 0


def open_runner(settings: Settings, *, timeout_s: float = 300.0) -> tuple[Any, float]:
    """A :class:`~pipeline.jobs.engine.Runner` for ``settings``, with its model loaded (in-process) or its cluster
    up and every worker's model loaded (``workers`` > 0 or a scheduler address).

    Returns:
        (the runner, seconds it took to get ready). Close it when done.

    Raises:
        ClusterError: Workers or a scheduler are asked for and this install has no cluster support, the
            cluster cannot be reached, or its workers are not ready within ``timeout_s``.
        ModelError: The model cannot be loaded.
    """
    from pipeline.jobs.engine import Runner

    cluster = settings.cluster
    if (cluster.scheduler or (cluster.workers or 0) > 0) and not cluster_available():
        raise ClusterError(
            "running on Dask workers needs pipeline.backends.dask, which this install lacks: use workers 0"
        )
    started = time.perf_counter()
    runner = Runner(settings)
    try:
        wait_until_ready(runner, settings, timeout_s=timeout_s)
    except BaseException:
        runner.close()
        raise
    return runner, time.perf_counter() - started


def wait_until_ready(runner: Any, settings: Settings, *, timeout_s: float = 300.0) -> None:  # noqa: ANN401
    """Block until ``runner`` can transcribe at once: its model loaded, or on a cluster every worker's.

    Raises:
        ClusterError: The cluster cannot be reached, or is not ready within ``timeout_s``.
        ModelError: A model failed to load.
    """
    from pipeline.core.errors import ModelError

    if not getattr(runner, "on_cluster", False):
        runner.preload(settings).result()
        return
    runner.backend()  # starts or reaches the cluster; raises ClusterError when it cannot
    wanted = settings.cluster.workers or 1
    deadline = time.monotonic() + timeout_s
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = runner.model_status()
        if status.get("state") == "failed":
            raise ModelError(f"a worker could not load the model: {status.get('error') or status.get('message')}")
        if status.get("state") == "ready" and status.get("total_workers", 0) >= wanted:
            return
        time.sleep(0.25)
    raise ClusterError(
        f"the cluster was not ready after {timeout_s:.0f} s ({status.get('message') or 'no worker answered'}); "
        "check the dashboard, or start workers with `dask worker <scheduler address>`"
    )


def compare_with_optimizer(rows: Sequence[Mapping[str, Any]], optimizer: Mapping[str, Any]) -> Report:
    """The optimizer's choice beside the fastest measured combination, with the optimizer's reasons.

    Args:
        rows: From :func:`throughput_sweep`.
        optimizer: From :func:`optimizer_choice`.
    """
    ok = [r for r in rows if not r.get("error")]
    ours = next((r for r in ok if r.get("optimizer")), None)
    best = min(ok, key=lambda r: r["rtf"], default=None)
    lines = [
        f"**Optimizer's choice** on this machine ({optimizer.get('device')}, {optimizer.get('model')}, "
        f"{optimizer.get('compute_type')}): batch size {optimizer['batch_size']}, "
        f"{optimizer['concurrency']} worker(s) × {optimizer['cpu_threads']} threads.",
        "",
    ]
    for name in ("batch_size", "concurrency", "cpu_threads"):
        reason = (optimizer.get("reasons") or {}).get(name)
        if reason:
            lines.append(f"- {name}: {reason}")
    lines.append("")
    if ours is None or best is None:
        lines.append("The optimizer's combination was not measured (or failed), so there is nothing to compare.")
        return Report("\n".join(lines))
    cols = ["label", "rtf", "peak_rss_mb", "peak_gpu_mb", "first_cue_s", "wer"]
    shown = [dict(ours, label=f"optimizer: {ours['label']}")]
    if best is not ours:
        shown.append(dict(best, label=f"fastest: {best['label']}"))
    lines.append(table(shown, cols).text)
    lines.append("")
    ratio = ours["rtf"] / best["rtf"] if best["rtf"] else 1.0
    if best is ours or ratio <= 1 + RTF_TOLERANCE:
        lines.append(
            f"The optimizer's choice is as fast as the fastest measured combination (within {RTF_TOLERANCE:.0%})."
        )
    else:
        lines.append(
            f"The fastest measured combination took {1 / ratio:.0%} of the optimizer's time "
            f"({ratio:.2f}× faster). On a busy machine repeat the sweep (``repeats``) before trusting a small gap."
        )
    return Report("\n".join(lines))


# --------------------------------------------------------------------------------------------------------------
# Watching jobs on a cluster


@dataclass
class JobWatch:
    """What :func:`watch_jobs` saw: each job's figures, its progress over time, and the workers' load.

    Attributes:
        jobs: One row per job: ``input``, ``job_id``, ``audio_s``, ``wall_s``, ``rtf``, ``first_cue_s``,
            ``wer``, ``error``.
        progress: ``t`` (seconds since the first job was submitted), ``input``, ``stage``, ``fraction`` (of
            its audio transcribed), one per progress event.
        workers: ``t``, ``worker``, ``memory_mb`` (resident memory of the worker process), ``cpu_percent``,
            ``tasks``, one per worker per sample.
        gpus: ``t``, ``worker``, ``gpu`` (index), ``used_mb``, one per GPU a worker reports per sample.
        status: The last cluster status (:meth:`pipeline.jobs.engine.Runner.cluster_status`).
    """

    jobs: list[dict[str, Any]] = field(default_factory=list)
    progress: list[dict[str, Any]] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)
    gpus: list[dict[str, Any]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)


def watch_jobs(
    runner: Any,  # noqa: ANN401 - pipeline.jobs.engine.Runner, imported lazily
    clips: Sequence[Clip],
    settings: Settings,
    *,
    every_s: float = 0.5,
    on_progress: Progress | None = None,
) -> JobWatch:
    """Queue one job per clip on ``runner`` and sample progress and every worker's memory until all are done.

    Jobs run one after another, as the app's queue runs them; on a cluster each job's batches are spread
    over the workers. A failed job is reported in its row and the others go on.

    Args:
        runner: From :func:`open_runner`.
        clips: The inputs (with references, for WER).
        settings: The jobs' settings.
        every_s: Sampling interval of the workers' load.
        on_progress: Called with one line per finished job.
    """
    watch = JobWatch()
    started = time.perf_counter()

    def on_event(event: Any) -> None:  # noqa: ANN401 - pipeline.jobs.engine.JobEvent
        fraction = event.audio_done / event.duration if event.duration else 0.0
        watch.progress.append(
            {
                "t": round(time.perf_counter() - started, 3),
                "input": Path(event.input).name,
                "stage": event.stage,
                "fraction": 1.0 if event.stage == "done" else min(1.0, fraction),
            }
        )

    def work() -> None:
        for clip in clips:
            t = time.perf_counter()
            row: dict[str, Any] = {
                "input": clip.path.name,
                "job_id": None,
                "audio_s": None,
                "wall_s": None,
                "rtf": None,
                "first_cue_s": None,
                "wer": None,
                "error": None,
            }
            try:
                result = runner.run(clip.path, settings, on_event)
            except PipelineError as exc:
                row["error"] = str(exc)
            else:
                wall = time.perf_counter() - t
                duration = result.transcript.duration or 0.0
                row.update(
                    job_id=result.job_id,
                    audio_s=duration,
                    wall_s=wall,
                    rtf=wall / duration if duration else None,
                    first_cue_s=result.transcript.timings.get("first_result"),
                    wer=corpus_wer([clip.ref], [transcript_text(result.transcript)]) if clip.ref else None,
                )
            watch.jobs.append(row)
            _progress(
                on_progress,
                f"{row['input']}: "
                + (
                    f"failed ({row['error']})"
                    if row["error"]
                    else f"{row['audio_s']:.0f} s of audio in {row['wall_s']:.1f} s, WER {_pct(row['wer'])}"
                ),
            )

    worker = threading.Thread(target=work, name="watched-jobs", daemon=True)
    worker.start()
    while True:
        _sample_cluster(runner, watch, time.perf_counter() - started)
        worker.join(every_s)
        if not worker.is_alive():
            break
    _sample_cluster(runner, watch, time.perf_counter() - started)
    return watch


def _sample_cluster(runner: Any, watch: JobWatch, t: float) -> None:  # noqa: ANN401 - pipeline.jobs.engine.Runner
    status = runner.cluster_status()
    watch.status = status
    for w in status.get("workers", []):
        memory = w.get("memory_mb")
        if memory is None and status.get("mode") == "in-process":
            memory = tree_rss_bytes(os.getpid()) / MIB
        watch.workers.append(
            {
                "t": round(t, 3),
                "worker": w.get("name"),
                "memory_mb": memory,
                "cpu_percent": w.get("cpu_percent"),
                "tasks": w.get("tasks", w.get("jobs")),
            }
        )
        usage = w.get("usage") or {}
        for gpu in usage.get("gpus", []):
            watch.gpus.append(
                {"t": round(t, 3), "worker": w.get("name"), "gpu": gpu.get("index"), "used_mb": gpu.get("used_mb")}
            )
    if status.get("mode") == "in-process":
        nvml = _nvml()
        if nvml is not None:
            try:
                for i in range(nvml.nvmlDeviceGetCount()):
                    used = nvml.nvmlDeviceGetMemoryInfo(nvml.nvmlDeviceGetHandleByIndex(i)).used / MIB
                    watch.gpus.append({"t": round(t, 3), "worker": "in-process", "gpu": i, "used_mb": round(used)})
            except Exception:  # noqa: BLE001 - NVML errors are classes built at run time; no GPU figure then
                pass


def cluster_report(status: Mapping[str, Any]) -> Report:
    """Where jobs run: mode, scheduler, a link to the Dask dashboard, and one line per worker."""
    mode = status.get("mode", "?")
    lines = [f"**Jobs run:** {'in this process' if mode == 'in-process' else f'on a {mode} Dask cluster'}"]
    if status.get("scheduler"):
        lines.append(f"- scheduler: `{status['scheduler']}`")
    if status.get("dashboard"):
        link = status["dashboard"]
        lines.append(f"- dashboard: [{link}]({link}) (task stream, worker memory, progress)")
    if status.get("error"):
        lines.append(f"- error: {status['error']}")
    lines.append("")
    shown = [
        {
            "name": w.get("name"),
            "state": w.get("state"),
            "threads": w.get("nthreads"),
            "resources": w.get("resources") or {},
            "model": ", ".join(w.get("models") or []) or "—",
            "memory_mb": w.get("memory_mb"),
        }
        for w in status.get("workers", [])
    ]
    lines.append(table(shown, ["name", "state", "threads", "resources", "model", "memory_mb"], digits=0).text)
    return Report("\n".join(lines))


def job_progress_figure(watch: JobWatch) -> Figure:
    """Each job's share of audio transcribed over time: when it started, how fast it went, when it ended."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for n, name in enumerate(dict.fromkeys(p["input"] for p in watch.progress)):
        points = [p for p in watch.progress if p["input"] == name]
        fig.add_scatter(
            x=[p["t"] for p in points],
            y=[p["fraction"] for p in points],
            mode="lines+markers",
            name=name,
            line={"color": _color(n), "shape": "hv"},
            hovertemplate="%{x:.1f} s: %{y:.0%}<extra>" + name + "</extra>",
        )
    fig.update_layout(
        title="Job progress",
        xaxis_title="seconds since the first job was submitted",
        yaxis={"title": "audio transcribed", "tickformat": ".0%", "range": [0, 1.05]},
        height=380,
    )
    return fig


def cluster_memory_figure(watch: JobWatch) -> Figure:
    """Memory of every worker process over time and, when there are GPUs, each GPU's used memory."""
    from plotly.subplots import make_subplots

    panels = ["Worker memory (MB, resident)"] + (["GPU memory used (MB)"] if watch.gpus else [])
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=panels)
    for n, name in enumerate(dict.fromkeys(w["worker"] for w in watch.workers)):
        points = [w for w in watch.workers if w["worker"] == name and w["memory_mb"] is not None]
        fig.add_scatter(
            x=[w["t"] for w in points],
            y=[w["memory_mb"] for w in points],
            mode="lines",
            name=str(name),
            line={"color": _color(n)},
            row=1,
            col=1,
        )
    # GPUs seen by several workers on one machine are the same device: one line per (worker, GPU) keeps
    # remote machines apart and costs nothing locally.
    for n, key in enumerate(dict.fromkeys((g["worker"], g["gpu"]) for g in watch.gpus)):
        points = [g for g in watch.gpus if (g["worker"], g["gpu"]) == key]
        fig.add_scatter(
            x=[g["t"] for g in points],
            y=[g["used_mb"] for g in points],
            mode="lines",
            name=f"{key[0]} · GPU {key[1]}",
            line={"color": _color(n + 5), "dash": "dot"},
            row=1,
            col=2,
        )
    for col in range(1, len(panels) + 1):
        fig.update_xaxes(title_text="seconds", row=1, col=col)
        fig.update_yaxes(rangemode="tozero", row=1, col=col)
    fig.update_layout(title="Memory over time", height=400)
    return fig


# --------------------------------------------------------------------------------------------------------------
# Recommendations


def recommend(
    rows: Sequence[Mapping[str, Any]],
    *,
    tolerance: float | None = None,
    memory_limit_mb: float | None = None,
) -> Recommendation:
    """Pick settings from sweep rows (all from :func:`vad_sweep`, or all from :func:`throughput_sweep`).

    VAD: the lowest WER; every row within ``tolerance`` (absolute, default 0.5 points) of it counts as
    equally accurate, and among those the library defaults win when present (no change for noise), else
    the one with the fewest windows (the least transcription work). Throughput: the lowest real-time factor
    among rows under ``memory_limit_mb``; within ``tolerance`` (relative, default 5 %) the one using the
    least memory.

    Raises:
        UsageError: No rows, rows of mixed kinds, or no row that finished.
    """
    kinds = {r.get("kind") for r in rows}
    if not rows or len(kinds) != 1:
        raise UsageError("recommend needs the rows of one sweep (all VAD rows or all throughput rows)")
    kind = kinds.pop()
    if kind == "vad":
        return _recommend_vad(rows, WER_TOLERANCE if tolerance is None else tolerance)
    if kind == "throughput":
        return _recommend_throughput(rows, RTF_TOLERANCE if tolerance is None else tolerance, memory_limit_mb)
    raise UsageError(f"unknown kind of rows {kind!r}: use rows from vad_sweep or throughput_sweep")


def _recommend_vad(rows: Sequence[Mapping[str, Any]], tolerance: float) -> Recommendation:
    scored = [r for r in rows if r.get("wer") is not None]
    if not scored:
        raise UsageError("no VAD row has a WER: the clips need reference transcripts")
    best_wer = min(r["wer"] for r in scored)
    close = [r for r in scored if r["wer"] <= best_wer + tolerance]
    default = next((r for r in scored if r.get("default")), None)
    if default is not None and default in close:
        chosen = default
        reason = (
            f"the current defaults are within {tolerance * 100:.1f} WER points of the best setting "
            f"({_pct(default['wer'])} vs {_pct(best_wer)}): keep them"
        )
    else:
        chosen = min(close, key=lambda r: (r["windows"], r["wer"]))
        reason = (
            f"lowest WER ({_pct(chosen['wer'])})"
            if chosen["wer"] == best_wer
            else (
                f"WER {_pct(chosen['wer'])}, within {tolerance * 100:.1f} points of the best ({_pct(best_wer)}), "
                f"with the fewest windows to transcribe ({chosen['windows']})"
            )
        )
        if default is not None:
            reason += f"; the current defaults score {_pct(default['wer'])}"
    vad = (
        VadSettings(**chosen["vad"])
        if isinstance(chosen.get("vad"), dict)
        else dataclasses.replace(VadSettings(), **{k: chosen[k] for k in VAD_FIELDS})
    )
    changed = {k: getattr(vad, k) for k in VAD_FIELDS if getattr(vad, k) != getattr(VadSettings(), k)}
    code = "VadSettings(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"
    text = "\n".join(
        [
            f"**Recommended VAD settings:** {chosen['label']}",
            "",
            f"Why: {reason}.",
            "",
            table(
                [chosen] + ([default] if default is not None and default is not chosen else []),
                ["label", "wer", "segments", "segment_mean_s", "windows", "speech_ratio", "silence_skipped_s"],
            ).text,
            "",
            f"In code: `Settings(vad={code})`"
            + (
                f"; on the command line: `--segment-length {vad.min_segment_s:g}-{vad.max_segment_s:g}`"
                if (vad.min_segment_s, vad.max_segment_s) != (VadSettings().min_segment_s, VadSettings().max_segment_s)
                else ""
            ),
        ]
    )
    return Recommendation(
        text,
        list(map(dict, rows)),
        kind="vad",
        row=dict(chosen),
        baseline=dict(default) if default else None,
        settings=vad,
        reason=reason,
    )


def _recommend_throughput(
    rows: Sequence[Mapping[str, Any]], tolerance: float, memory_limit_mb: float | None
) -> Recommendation:
    ok = [r for r in rows if not r.get("error") and r.get("rtf")]
    if memory_limit_mb is not None:
        ok = [r for r in ok if r["peak_rss_mb"] <= memory_limit_mb]
    if not ok:
        raise UsageError("no throughput run finished" + (" within the memory limit" if memory_limit_mb else ""))
    best_rtf = min(r["rtf"] for r in ok)
    close = [r for r in ok if r["rtf"] <= best_rtf * (1 + tolerance)]
    chosen = min(close, key=lambda r: (r["peak_rss_mb"], r["rtf"]))
    optimizer = next((r for r in rows if r.get("optimizer")), None)
    reason = f"real-time factor {chosen['rtf']:.3f}" + (
        " (the fastest)"
        if chosen["rtf"] == best_rtf
        else f", within {tolerance:.0%} of the fastest ({best_rtf:.3f}), with the least memory"
    )
    if optimizer is not None and not optimizer.get("error"):
        reason += f"; the optimizer's choice measured {optimizer['rtf']:.3f}"
    settings = {k: chosen[k] for k in ("batch_size", "cpu_threads", "workers")}
    text = "\n".join(
        [
            f"**Recommended:** {chosen['label']}",
            "",
            f"Why: {reason}.",
            "",
            f"On the command line: `--batch-size {chosen['batch_size']} --cpu-threads {chosen['cpu_threads']} "
            f"--workers {chosen['workers']}`",
        ]
    )
    return Recommendation(
        text,
        list(map(dict, rows)),
        kind="throughput",
        row=dict(chosen),
        baseline=dict(optimizer) if optimizer else None,
        settings=settings,
        reason=reason,
    )


def check_against_defaults(
    clips: Sequence[Clip],
    vad: VadSettings,
    settings: Settings,
    *,
    on_progress: Progress | None = None,
) -> Report:
    """Transcribe ``clips`` (each file on its own) with ``vad`` and with the library defaults; WER per set.

    This is the check before a sweep's winner may become a default: it must not lose on material it was
    not tuned on.

    Returns:
        A table with one column per data set (and ``all``), one line per setting; ``rows`` holds the sweep rows.
    """
    candidates = list(dict.fromkeys([vad, VadSettings()]))
    rows = vad_sweep(clips, candidates, settings, on_progress=on_progress)
    sets = list(dict.fromkeys(name for r in rows for name in r["wer_by_set"]))
    shown = [
        {
            "label": r["label"] + (" (defaults)" if r["default"] else ""),
            **{n: r["wer_by_set"].get(n) for n in sets},
            "all": r["wer"],
            "windows": r["windows"],
        }
        for r in rows
    ]
    lines = [table(shown, ["label", *sets, "all", "windows"]).text, ""]
    if len(rows) == 1:
        lines.append("The recommendation is the library defaults: nothing to compare.")
    else:
        diff = (rows[0]["wer"] or 0.0) - (rows[1]["wer"] or 0.0)
        verdict = "better than" if diff < -WER_TOLERANCE else "worse than" if diff > WER_TOLERANCE else "as good as"
        lines.append(
            f"On these files the recommendation is **{verdict}** the defaults ({diff * 100:+.1f} WER points over all)."
        )
    return Report("\n".join(lines), rows)


def language_accuracy(
    languages: Sequence[str],
    settings: Settings,
    *,
    data_dir: str | Path | None = None,
    clips_per_language: int = 0,
    on_progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Transcribe each language's test clips with that language given, and score them.

    Each language's clips (:func:`pipeline.lab.evaluation.language_clips`) go through the pipeline with
    ``settings`` (its model must be multilingual) and ``transcribe.language`` set to the language; the text
    is scored by :func:`pipeline.lab.evaluation.score_language` (WER after Whisper's basic normaliser, CER for
    Chinese, Japanese, Korean and Cantonese). One model serves every language.

    Args:
        languages: Language codes with test data (``de``, ``es``, ``zh``).
        settings: Everything else (see :func:`base_settings`).
        data_dir: The test data folder (default: ``VIDEO2SRT_DATA_DIR``, else the repository's ``tests/data``).
        clips_per_language: At most this many clips per language (the first ones); 0 for all.
        on_progress: Called with one line per finished language.

    Returns:
        One row per language: ``language``, ``metric`` (``WER`` or ``CER``), ``error`` (0.0 is perfect),
        ``clips``, ``audio_s``, ``wall_s``, ``rtf`` and ``texts`` (reference and hypothesis per clip).

    Raises:
        UsageError: No language given.
        InputError: A language has no clips in the data folder.
    """
    from pipeline.jobs.engine import Runner

    if not languages:
        raise UsageError("no language to score: give at least one of de, es, zh")
    runner = Runner(settings)
    rows: list[dict[str, Any]] = []
    try:
        for language in languages:
            clips = language_clips(language, data_dir, limit=clips_per_language)
            s = settings.replace(transcribe=dataclasses.replace(settings.transcribe, language=language))
            started = time.perf_counter()
            results = [runner.run(clip.path, s) for clip in clips]
            wall_s = time.perf_counter() - started
            hyps = [transcript_text(r.transcript) for r in results]
            duration = sum(r.vad.duration for r in results)
            rows.append(
                {
                    "kind": "language",
                    "language": language,
                    "metric": language_metric(language),
                    "error": score_language(language, hyps, [c.ref for c in clips]),
                    "clips": len(clips),
                    "audio_s": duration,
                    "wall_s": wall_s,
                    "rtf": wall_s / duration if duration else 0.0,
                    "texts": [{"clip": c.path.name, "ref": c.ref, "hyp": h} for c, h in zip(clips, hyps)],
                }
            )
            row = rows[-1]
            _progress(on_progress, f"{language}: {row['metric']} {_pct(row['error'])} on {len(clips)} clip(s)")
    finally:
        runner.close()
    return rows


# --------------------------------------------------------------------------------------------------------------
# Charts


def use_offline_charts() -> None:
    """Make plotly figures render in Jupyter without a network: the MIME bundle (JupyterLab, VS Code) plus
    inline HTML with plotly.js embedded (classic notebook, nbconvert exports)."""
    import plotly.io as pio

    pio.renderers.default = "plotly_mimetype+notebook"


def vad_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Four panels against the speech threshold: WER, segment count, speech ratio, skipped silence.

    One line per (minimum silence, segment bounds); the library defaults are the star.
    """
    from plotly.subplots import make_subplots

    panels = [
        ("wer", "WER (lower is better)", ".1%"),
        ("segments", "Segments", "d"),
        ("speech_ratio", "Speech ratio (speech / audio)", ".0%"),
        ("silence_skipped_s", "Silence skipped (s)", ".1f"),
    ]
    fig = make_subplots(rows=2, cols=2, subplot_titles=[p[1] for p in panels], horizontal_spacing=0.1)
    groups: dict[tuple[int, float, float], list[Mapping[str, Any]]] = {}
    for r in sorted(rows, key=lambda r: r["threshold"]):
        groups.setdefault((r["min_silence_ms"], r["min_segment_s"], r["max_segment_s"]), []).append(r)
    for n, ((silence, low, high), members) in enumerate(groups.items()):
        name = f"silence {silence} ms · segments {low:g}–{high:g} s"
        for i, (key, _title, fmt) in enumerate(panels):
            fig.add_scatter(
                x=[r["threshold"] for r in members],
                y=[r[key] for r in members],
                mode="lines+markers",
                name=name,
                legendgroup=name,
                showlegend=i == 0,
                line={"color": _color(n)},
                hovertemplate=f"threshold %{{x}}<br>{key} %{{y:{fmt}}}<extra>{name}</extra>",
                row=i // 2 + 1,
                col=i % 2 + 1,
            )
    defaults = [r for r in rows if r.get("default")]
    for i, (key, _title, _fmt) in enumerate(panels):
        fig.add_scatter(
            x=[r["threshold"] for r in defaults],
            y=[r[key] for r in defaults],
            mode="markers",
            marker={"symbol": "star", "size": 14, "color": "black"},
            name="current defaults",
            legendgroup="defaults",
            showlegend=i == 0,
            row=i // 2 + 1,
            col=i % 2 + 1,
        )
        fig.update_xaxes(title_text="speech threshold", row=i // 2 + 1, col=i % 2 + 1)
    fig.update_yaxes(tickformat=".0%", row=1, col=1)
    fig.update_yaxes(tickformat=".0%", row=2, col=1)
    fig.update_layout(height=650, title="VAD sweep", legend={"orientation": "h", "y": -0.12})
    return fig


def segment_lengths_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Segment lengths of each VAD setting as box plots: how the length bounds shape the work units."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for n, r in enumerate(rows):
        fig.add_box(
            y=r["segment_lengths"],
            name=r["label"] + (" (defaults)" if r.get("default") else ""),
            boxpoints="all",
            marker={"color": _color(n)},
        )
    fig.update_layout(
        title="Segment lengths per setting",
        yaxis_title="seconds",
        showlegend=False,
        height=450,
        xaxis={"tickangle": -30},
    )
    return fig


def throughput_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Real-time factor, peak memory (and GPU memory when used) and time to first cue against batch size.

    One line per (workers, threads); the optimizer's choice is the star.
    """
    from plotly.subplots import make_subplots

    ok = [r for r in rows if not r.get("error")]
    panels = [
        ("rtf", "Real-time factor (lower is faster)", ".3f"),
        ("peak_rss_mb", "Peak memory, process tree (MB)", ".0f"),
        ("first_cue_s", "Time to first cue (s)", ".1f"),
    ]
    if any((r.get("peak_gpu_mb") or 0) > 0 for r in ok):
        panels.append(("peak_gpu_mb", "Peak GPU memory (MB)", ".0f"))
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[1] for p in panels])
    groups: dict[tuple[int, int], list[Mapping[str, Any]]] = {}
    for r in sorted(ok, key=lambda r: r["batch_size"]):
        groups.setdefault((r["workers"], r["cpu_threads"]), []).append(r)
    for n, ((workers, threads), members) in enumerate(sorted(groups.items())):
        name = f"{'in-process' if workers == 0 else f'{workers} workers'} · {threads} threads"
        for i, (key, _title, fmt) in enumerate(panels):
            fig.add_scatter(
                x=[str(r["batch_size"]) for r in members],
                y=[r[key] for r in members],
                mode="lines+markers",
                name=name,
                legendgroup=name,
                showlegend=i == 0,
                line={"color": _color(n)},
                hovertemplate=f"batch %{{x}}<br>%{{y:{fmt}}}<extra>{name}</extra>",
                row=1,
                col=i + 1,
            )
    chosen = [r for r in ok if r.get("optimizer")]
    for i, (key, _title, _fmt) in enumerate(panels):
        fig.add_scatter(
            x=[str(r["batch_size"]) for r in chosen],
            y=[r[key] for r in chosen],
            mode="markers",
            marker={"symbol": "star", "size": 14, "color": "black"},
            name="optimizer's choice",
            legendgroup="optimizer",
            showlegend=i == 0,
            row=1,
            col=i + 1,
        )
        fig.update_xaxes(title_text="batch size", type="category", row=1, col=i + 1)
        fig.update_yaxes(rangemode="tozero", row=1, col=i + 1)
    fig.update_layout(height=430, title="Throughput sweep", legend={"orientation": "h", "y": -0.25})
    return fig


def language_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """One bar per language: its error rate (WER or CER, as the bar's label says), from :func:`language_accuracy`."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_bar(
        x=[f"{r['language']} ({r['metric']})" for r in rows],
        y=[r["error"] for r in rows],
        text=[_pct(r["error"]) for r in rows],
        marker={"color": [_color(n) for n in range(len(rows))]},
        hovertemplate="%{x}<br>%{y:.1%}<extra></extra>",
    )
    fig.update_yaxes(title_text="error rate (lower is better)", tickformat=".0%", rangemode="tozero")
    fig.update_layout(height=380, title="Accuracy per language")
    return fig


# --------------------------------------------------------------------------------------------------------------
# Helpers


_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def _color(n: int) -> str:
    return _PALETTE[n % len(_PALETTE)]


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _progress(callback: Progress | None, line: str) -> None:
    if callback is not None:
        callback(line)
    else:
        log.info("%s", line)


__all__ = [
    "MemorySampler",
    "Recommendation",
    "Report",
    "base_settings",
    "compare_with_optimizer",
    "default_thread_counts",
    "JobWatch",
    "cluster_memory_figure",
    "cluster_report",
    "job_main",
    "job_progress_figure",
    "language_accuracy",
    "language_figure",
    "measure_job",
    "open_runner",
    "wait_until_ready",
    "mix_clips",
    "optimizer_choice",
    "recommend",
    "scratch_dir",
    "segment_lengths_figure",
    "table",
    "throughput_figure",
    "throughput_grid",
    "throughput_sweep",
    "tree_rss_bytes",
    "use_offline_charts",
    "check_against_defaults",
    "vad_figure",
    "vad_grid",
    "vad_label",
    "vad_sweep",
    "watch_jobs",
    "with_segment_bounds",
]
