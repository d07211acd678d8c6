"""Watching jobs: run several jobs in-process or on a Dask cluster (local or remote) and record their
progress and every worker's memory (and GPU memory) over time.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.errors import ClusterError, PipelineError
from pipeline.core.settings import (
    Settings,
)
from pipeline.lab.evaluation import Clip, corpus_wer, transcript_text
from pipeline.lab.memory import MIB, open_nvml, tree_rss_bytes
from pipeline.lab.report import Progress, Report, pct, say, table


def cluster_available() -> bool:
    """Whether transcription can run on Dask workers here (``pipeline.backends.dask`` is part of this install)."""
    import importlib.util

    return importlib.util.find_spec("pipeline.backends.dask") is not None


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

    def on_event(event: Any) -> None:  # noqa: ANN401 - pipeline.jobs.events.JobEvent
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
            say(
                on_progress,
                f"{row['input']}: "
                + (
                    f"failed ({row['error']})"
                    if row["error"]
                    else f"{row['audio_s']:.0f} s of audio in {row['wall_s']:.1f} s, WER {pct(row['wer'])}"
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
        nvml = open_nvml()
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
