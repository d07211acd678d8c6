"""Sweeps: how VAD settings change accuracy, and how batch size, workers and threads change speed.

:func:`vad_sweep` transcribes the same inputs under each :class:`~pipeline.core.settings.VadSettings` of a
grid (:func:`vad_grid`) and reports WER, segment count and lengths, speech ratio and skipped silence.
:func:`throughput_sweep` runs one input under each batch size × workers × threads combination, each in a fresh
process (:mod:`pipeline.lab.measure`), and :func:`compare_with_optimizer` sets the optimizer's choice
(:mod:`pipeline.optimize.optimizer`) beside the best measured one. Everything runs the real pipeline on real
recordings (:mod:`pipeline.lab.evaluation`); nothing is simulated.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipeline.core.errors import UsageError
from pipeline.core.settings import (
    Settings,
    VadSettings,
)
from pipeline.lab.evaluation import Clip, corpus_wer, transcript_text
from pipeline.lab.inputs import with_segment_bounds
from pipeline.lab.measure import measure_job
from pipeline.lab.report import Progress, Report, pct, say, table
from pipeline.lab.watch import cluster_available

if TYPE_CHECKING:
    from pipeline.jobs.events import JobResult

#: VAD rows whose WER is within this (absolute) of the best count as equally accurate.
WER_TOLERANCE = 0.005


#: Throughput rows whose real-time factor is within this share of the best count as equally fast.
RTF_TOLERANCE = 0.05
#: The VAD fields a sweep varies (the rest come from the base settings).
VAD_FIELDS = ("threshold", "min_silence_ms", "min_segment_s", "max_segment_s", "target_segment_s")


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
            say(on_progress, f"{row['label']}: WER {pct(row['wer'])}, {row['segments']} segment(s)")
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


def default_thread_counts(cores: int | None = None) -> list[int]:
    """CTranslate2 thread counts worth trying: 1, half the cores and all of them."""
    import psutil

    n = cores or psutil.cpu_count(logical=False) or os.cpu_count() or 1
    return sorted({1, max(1, n // 2), n})


def optimizer_choice(settings: Settings) -> dict[str, Any]:
    """What the optimizer (:mod:`pipeline.optimize.optimizer`) picks on this machine for ``settings``' model and device.

    Returns:
        ``batch_size``, ``cpu_threads``, ``workers`` (0 when it plans one model, i.e. in-process),
        ``concurrency``, ``device``, ``model``, ``compute_type`` and ``reasons`` (one line per field).
    """
    from pipeline.optimize.report import hardware_report

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
            say(on_progress, f"{row['label']}: failed ({row['error']})")
        else:
            say(
                on_progress,
                f"{row['label']}: RTF {row['rtf']:.3f}, peak {row['peak_rss_mb']:.0f} MB, "
                f"first cue {row['first_cue_s']:.1f} s",
            )
    return rows


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
