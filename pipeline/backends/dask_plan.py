"""The Dask backend's plain parts, which need no ``distributed``: local worker plans, the threads a worker
gets, the model settings as a worker runs them, and the status rows of the workers.

Why the threads are set per worker: Dask's nanny exports ``OMP_NUM_THREADS=1`` (and MKL/OpenBLAS) into every
worker it spawns, which holds a multi-thread CTranslate2 worker to one core (docs/benchmarks.md, "Process
housekeeping"). Our workers get the thread count they are planned for.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.asr.manager import ModelManager
    from pipeline.core.settings import ClusterSettings, ModelManagerSettings, ModelSettings, Settings
    from pipeline.optimize.optimizer import OptimizedSettings
    from pipeline.system.detect import HardwareInfo

#: The name the model plugin is registered under on every worker.
PLUGIN_NAME = "video2srt-models"
#: Thread variables that numeric libraries read once, when they load.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: Scheduler metadata key of the model the app selected last (for workers that join later).
SELECTED_MODEL_KEY = "video2srt-selected-model"
#: How fresh the live-worker count must be.
ALIVE_EVERY_S = 1.0
#: Seconds between checks whether GPU workers have joined (their tasks then ask for the GPU resource).
GPU_CHECK_S = 5.0
#: Dask settings for the local cluster (its nannies hand them to the workers). Dask's statistical profiler
#: wakes every 10 ms in each worker, and every event loop (scheduler, nanny, worker, client) checks its own
#: health every 20 ms: CPU that a small machine needs for the model (figures in docs/benchmarks.md). The
#: profile could only show tasks waiting on the model's C++ threads; a loop blocked past 3 s is still reported.
LEAN_CONFIG = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "500ms"}
#: Set in the environment of the workers we start: their planned CTranslate2 threads.
PLANNED_THREADS = "VIDEO2SRT_CPU_THREADS"
#: Batches of one job in flight per worker: a deep enough queue for the longest-first order to even out the
#: last wave (memory on the coordinator: about this many batches' samples per worker).
INFLIGHT_PER_WORKER = 4
#: Jobs a server runs at once on a cluster (Dask shares the workers between them by priority and order).
JOBS_ON_CLUSTER = 4


@dataclass(frozen=True)
class WorkerPlan:
    """One local worker process: its name, CTranslate2 threads, Dask resources and environment."""

    name: str
    cpu_threads: int
    resources: dict[str, float] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    gpu: int | None = None


def thread_env(threads: int) -> dict[str, str]:
    """Environment that lets a worker's numeric libraries use ``threads`` threads (not the nanny's 1)."""
    return {var: str(max(1, threads)) for var in THREAD_VARS}


def plan_workers(
    cluster: ClusterSettings, model: ModelSettings, info: HardwareInfo, optimized: OptimizedSettings
) -> list[WorkerPlan]:
    """The local workers to start: one per usable GPU, else CPU workers that split the cores.

    ``cluster.workers`` (when given) is the count; otherwise the optimizer's ``concurrency``.

    Args:
        cluster: Worker count (``None``: the optimizer's).
        model: The model settings; ``cpu_threads`` wins over the optimizer's when set.
        info: The machine.
        optimized: The optimizer's plan for it.
    """
    if optimized.device == "cuda" and info.gpu_count:
        count = cluster.workers or optimized.concurrency
        gpus = list(range(info.gpu_count))
        plans = []
        for i in range(count):
            gpu = gpus[i % len(gpus)]
            env = {
                **thread_env(optimized.cpu_threads),
                PLANNED_THREADS: str(optimized.cpu_threads),
                "CUDA_VISIBLE_DEVICES": str(gpu),
            }
            plans.append(WorkerPlan(f"gpu{gpu}-{i}", optimized.cpu_threads, {"GPU": 1.0}, env, gpu))
        return plans
    count = cluster.workers or optimized.concurrency
    budget = max(1, len(optimized.cpu_affinity_cores) or info.cpu_threads)
    threads = model.cpu_threads or max(1, budget // count)
    env = {**thread_env(threads), PLANNED_THREADS: str(threads)}
    return [WorkerPlan(f"cpu-{i}", threads, {}, dict(env)) for i in range(count)]


def portable(model: ModelSettings) -> ModelSettings:
    """Model settings for workers: threads are decided per worker (its plan, or its own cores)."""
    return replace(model, cpu_threads=0)


def for_worker(default: ModelSettings, wanted: ModelSettings) -> ModelSettings:
    """The job's model as this worker runs it: the job names the model; ``auto`` parts are the worker's."""
    return replace(
        default,
        name=wanted.name,
        device=default.device if wanted.device == "auto" else wanted.device,
        compute_type=default.compute_type if wanted.compute_type == "auto" else wanted.compute_type,
        allow_download=wanted.allow_download,
    )


def worker_rows(workers: dict[str, dict[str, Any]], reports: dict[str, Any]) -> list[dict[str, Any]]:
    """The status rows of the workers, by name: the scheduler's view of each and, where it answered in
    time, the worker's own report (its model status and a load sample)."""
    rows = []
    for address, info in sorted(workers.items(), key=lambda kv: str(kv[1].get("name"))):
        report = reports.get(address, {})
        models = report.get("models") or {}
        metrics = info.get("metrics", {})
        rows.append(
            {
                "name": str(info.get("name", address)),
                "address": address,
                "state": info.get("status", "running"),
                "nthreads": info.get("nthreads", 0),
                "resources": info.get("resources", {}),
                "models": models.get("cache", []),
                "model_state": models.get("state"),
                "model_status": models or None,
                "tasks": metrics.get("task_counts", {}).get("executing", metrics.get("executing", 0)),
                "cpu_percent": metrics.get("cpu"),
                "memory_mb": int(metrics.get("memory", 0) / 2**20),
                "usage": report.get("usage"),
            }
        )
    return rows


def not_reached(scheduler: str | None, error: BaseException | None) -> dict[str, Any]:
    """The status of a cluster not reached yet (``starting``) or that could not be (``unreachable``)."""
    return {
        "mode": "starting" if error is None else "unreachable",
        "scheduler": scheduler,
        "dashboard": None,
        "workers": [],
        "error": str(error) if error else None,
    }


def local_plans(settings: Settings) -> list[WorkerPlan]:
    """The workers of a local cluster for this machine (see :func:`plan_workers`)."""
    from pipeline.optimize.optimizer import optimize
    from pipeline.system.detect import CoreHardwareDetector

    info = CoreHardwareDetector(settings.jobs.jobs_dir).detect()
    return plan_workers(settings.cluster, settings.model, info, optimize(settings, info))


def worker_options(plan: WorkerPlan, model: ModelSettings) -> dict[str, Any]:
    """The options of a local worker's nanny, but its plugins."""
    from pipeline.asr.models import replicas_for

    return {
        # One task per model replica: more would only queue inside the worker.
        "nthreads": replicas_for(replace(model, cpu_threads=plan.cpu_threads), "cpu" if plan.gpu is None else "cuda"),
        "resources": plan.resources or None,
        "env": plan.env,
        "host": "127.0.0.1",
        "memory_limit": 0,
        "silence_logs": logging.WARNING,
    }


def scheduler_options(cluster: ClusterSettings, lazy_dashboard: bool) -> dict[str, Any]:
    """The options of a local cluster's scheduler, on loopback; with ``lazy_dashboard`` its dashboard is not
    loaded with it (:class:`pipeline.backends.dask_dashboard.LazyDashboard` serves it)."""
    return {
        "host": "127.0.0.1",
        "dashboard_address": cluster.dashboard_address,
        "port": 0,
        "dashboard": False if lazy_dashboard else None,
    }


def start_worker(
    model: ModelSettings, manager: ModelManagerSettings, cpu_affinity: str, *, name: str, selected: str | None
) -> ModelManager:
    """A worker process starting up: bind its cores, give its numeric libraries its planned threads, and
    make its model manager, which starts loading ``selected`` (or the starting model) in the background."""
    from pipeline.asr.manager import ModelManager
    from pipeline.asr.models import placement_for
    from pipeline.system.affinity import apply_cpu_affinity
    from pipeline.system.memory import share_one_heap_arena, skip_heap_walk_at_exit

    skip_heap_walk_at_exit()  # the nanny waits for this process to end when the cluster closes
    share_one_heap_arena()  # before the model's lanes start
    cores = apply_cpu_affinity(cpu_affinity, placement_for(model).device)
    planned = os.environ.get(PLANNED_THREADS, "")
    threads = int(planned) if planned.isdigit() else len(cores or []) or os.cpu_count() or 1
    if "ctranslate2" not in sys.modules:
        # A plain `dask worker` inherits the nanny's OMP_NUM_THREADS=1; the OpenMP runtime reads it when
        # CTranslate2 loads, which has not happened yet in this process.
        os.environ.update(thread_env(threads))
    model = replace(model, name=selected or model.name, cpu_threads=threads)
    if selected and manager.preload:
        manager = replace(manager, preload=(selected,))
    models = ModelManager(model, manager, name=name)
    models.preload()
    return models


def load_on(manager: ModelManager, name: str | None) -> dict[str, Any]:
    """A worker's answer to a load round for ``name``: ``ok`` and its status, or why it refused."""
    from pipeline.core.errors import PipelineError

    try:
        return {"ok": True, "status": manager.load(name)}
    except PipelineError as exc:
        return {"ok": False, "error": str(exc), "status": manager.status()}
