"""Dask distributed: where transcription runs when it does not run in-process (the only module importing it).

Three places, chosen by :class:`~pipeline.core.settings.ClusterSettings`:

- ``--workers 0``: no cluster; :class:`pipeline.jobs.engine.Runner` transcribes on its own inference thread.
- ``--workers N`` (or the optimizer's choice): a local cluster of worker *processes*, one per GPU (pinned
  with ``CUDA_VISIBLE_DEVICES`` and declaring the ``GPU`` resource) or CPU workers that split the cores.
- ``--scheduler ADDRESS``: an existing cluster; any ``dask worker ADDRESS`` on a machine with the package
  installed is a CPU worker (``--resources GPU=1`` and ``CUDA_VISIBLE_DEVICES`` make it a GPU worker).

Every worker gets :class:`ModelPlugin` (also workers that join later): it applies CPU affinity and gives
the worker one :class:`~pipeline.asr.manager.ModelManager`, which loads and warms the model on the
worker's own inference thread while the coordinator decodes. Local workers are started with the plugin, so
the model loads before they have even joined; a remote scheduler hands it to its workers. A task carries a
batch of segments with their samples (no shared disk) and returns their results; the batches are fixed by
the segment plan, so a cluster gives byte-identical output to ``--workers 0``. A dead worker's tasks are
rerun elsewhere by the scheduler; the runner keeps results by segment index, so nothing is lost or counted
twice.

A local cluster's scheduler serves the Dask dashboard, whose bokeh pages load on the first visit
(:class:`_LazyDashboard`): a CLI run that nobody watches does not pay for them.

Why the threads are set per worker: Dask's nanny exports ``OMP_NUM_THREADS=1`` (and MKL/OpenBLAS) into
every worker it spawns, which held a 2-thread CTranslate2 worker to one core (measured: 28–32 s against
15–18 s in-process on the 10-minute input). Our workers get the thread count they are planned for.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future as ConcurrentFuture
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from distributed import WorkerPlugin
from tornado import web

from pipeline.core.errors import ClusterError, TransientError
from pipeline.core.settings import (
    ClusterSettings,
    GuardSettings,
    ModelManagerSettings,
    ModelSettings,
    Settings,
    TranscribeSettings,
)

if TYPE_CHECKING:
    from distributed import Client, Future

    from pipeline.asr.detect import LanguageGuess
    from pipeline.asr.inputs import SegmentAudio
    from pipeline.asr.manager import ModelManager
    from pipeline.core.types import SegmentResult
    from pipeline.optimize.optimizer import OptimizedSettings
    from pipeline.system.detect import HardwareInfo

log = logging.getLogger(__name__)

PLUGIN_NAME = "video2srt-models"
#: Thread variables that numeric libraries read once, when they load.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class WorkerPlan:
    """One local worker process: its name, CTranslate2 threads, Dask resources and environment."""

    name: str
    cpu_threads: int
    resources: dict[str, float] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    gpu: int | None = None


#: Scheduler metadata key of the model the app selected last (for workers that join later).
SELECTED_MODEL_KEY = "video2srt-selected-model"
#: How fresh the live-worker count must be.
ALIVE_EVERY_S = 1.0
#: Seconds between checks whether GPU workers have joined (their tasks then ask for the GPU resource).
GPU_CHECK_S = 5.0
#: Dask settings for the local cluster (its nannies hand them to the workers). Dask's statistical profiler
#: wakes every 10 ms in each worker, and every event loop (scheduler, nanny, worker, client) checks its own
#: health every 20 ms: on 2 cores, the worker's main thread and the coordinator's event loop used 1.13 and
#: 0.55 s of CPU in a cold 10-minute CLI run, and 0.61 and 0.22 s without (per-thread CPU from /proc). The
#: profile could only show tasks waiting on the model's C++ threads; a loop blocked past 3 s is still reported.
LEAN_CONFIG = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "500ms"}
#: Set in the environment of the workers we start: their planned CTranslate2 threads.
PLANNED_THREADS = "VIDEO2SRT_CPU_THREADS"


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


# --------------------------------------------------------------------------------------------------------------
# The worker side


class ModelPlugin(WorkerPlugin):
    """Gives each worker process a model manager and starts loading the model as the worker starts.

    Model settings travel unresolved (``auto`` device, 0 threads) and are decided on the worker, for its
    own hardware: a remote GPU worker loads on CUDA even when the coordinator has no GPU.

    Args:
        model: The model settings of new jobs.
        manager: Preload, warm-up, cache and memory guard settings.
        cpu_affinity: The affinity strategy applied in each worker process.
    """

    name = PLUGIN_NAME

    def __init__(self, model: ModelSettings, manager: ModelManagerSettings, cpu_affinity: str) -> None:
        self.model = model
        self.manager_settings = manager
        self.cpu_affinity = cpu_affinity
        self.manager: ModelManager | None = None

    async def setup(self, worker: Any) -> None:  # noqa: ANN401 - distributed.Worker
        """Called by Dask in the worker process: bind cores, create the manager, preload in the background.

        A worker that joins after the app switched models preloads the model selected now (kept on the
        scheduler by :meth:`DaskBackend.load_model`), not the one the cluster started with.
        """
        selected = None
        try:
            selected = await worker.scheduler.get_metadata(keys=[SELECTED_MODEL_KEY], default=None)
        except Exception as exc:  # noqa: BLE001 - without it the worker preloads the starting model
            log.debug("no selected model from the scheduler: %s", exc)
        self._start_manager(worker, selected)

    def _start_manager(self, worker: Any, selected: str | None) -> None:  # noqa: ANN401 - distributed.Worker
        from pipeline.asr.manager import ModelManager
        from pipeline.asr.models import placement_for
        from pipeline.system.affinity import apply_cpu_affinity
        from pipeline.system.memory import skip_heap_walk_at_exit

        skip_heap_walk_at_exit()  # the nanny waits for this process to end when the cluster closes
        cores = apply_cpu_affinity(self.cpu_affinity, placement_for(self.model).device)
        planned = os.environ.get(PLANNED_THREADS, "")
        threads = int(planned) if planned.isdigit() else len(cores or []) or os.cpu_count() or 1
        if "ctranslate2" not in sys.modules:
            # A plain `dask worker` inherits the nanny's OMP_NUM_THREADS=1; the OpenMP runtime reads it when
            # CTranslate2 loads, which has not happened yet in this process.
            os.environ.update(thread_env(threads))
        model = replace(self.model, name=selected or self.model.name, cpu_threads=threads)
        manager_settings = self.manager_settings
        if selected and manager_settings.preload:
            manager_settings = replace(manager_settings, preload=(selected,))
        self.manager = ModelManager(model, manager_settings, name=str(worker.name))
        self.manager.preload()

    def teardown(self, worker: Any) -> None:  # noqa: ANN401 - distributed.Worker
        """Called by Dask when the worker closes."""
        if self.manager is not None:
            self.manager.close()


def _worker_manager() -> ModelManager:
    from distributed import get_worker

    plugin = cast("ModelPlugin | None", get_worker().plugins.get(PLUGIN_NAME))
    if plugin is None or plugin.manager is None:
        raise TransientError("this Dask worker has no video2srt model plugin yet; the task will be retried")
    return plugin.manager


def for_worker(default: ModelSettings, wanted: ModelSettings) -> ModelSettings:
    """The job's model as this worker runs it: the job names the model; ``auto`` parts are the worker's."""
    return replace(
        default,
        name=wanted.name,
        device=default.device if wanted.device == "auto" else wanted.device,
        compute_type=default.compute_type if wanted.compute_type == "auto" else wanted.compute_type,
        allow_download=wanted.allow_download,
    )


def transcribe_task(
    items: list[SegmentAudio],
    settings: TranscribeSettings,
    language: str,
    model: ModelSettings,
    guard: GuardSettings | None = None,
) -> tuple[list[SegmentResult], str]:
    """A Dask task: transcribe one batch on this worker's model (see :func:`pipeline.asr.transcribe.batch_future`)."""
    from pipeline.asr.transcribe import batch_future

    manager = _worker_manager()
    return batch_future(manager, items, settings, language, for_worker(manager.settings, model), guard).result()


def detect_task(windows: list[np.ndarray], model: ModelSettings) -> LanguageGuess:
    """A Dask task: the language of some speech windows on this worker's model (the catalogue name resolves
    on the worker; a packaged model is assembled once per machine, under a file lock)."""
    from pipeline.asr.detect import detect_with

    manager = _worker_manager()
    return detect_with(manager, windows, for_worker(manager.settings, model))


def worker_report(dask_worker: Any) -> dict[str, Any]:  # noqa: ANN401 - distributed.Worker
    """Run on each worker by :meth:`DaskBackend.status`: its model status and a load sample."""
    from pipeline.system.monitor import sample_usage

    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    manager = getattr(plugin, "manager", None)
    return {"models": manager.status() if manager is not None else None, "usage": sample_usage()}


# --------------------------------------------------------------------------------------------------------------
# The coordinator side


class DaskBackend:
    """A connection to a cluster (started here, or an existing one) that transcribes batches as tasks.

    Args:
        settings: The runner's settings; the cluster part says where, the model parts what to load.

    Raises:
        ClusterError: The scheduler cannot be reached, or the local cluster cannot start.
    """

    def __init__(self, settings: Settings) -> None:
        import dask
        from distributed import Client

        if logging.getLogger().getEffectiveLevel() > logging.INFO:
            # distributed sets its loggers to INFO when imported; its start/stop chatter is not for users.
            logging.getLogger("distributed").setLevel(logging.WARNING)
        self.settings = settings
        cs = settings.cluster
        self.cluster: Any = None
        self._futures: dict[int, Future] = {}
        self._seen: tuple[float, dict[str, dict[str, Any]]] = (-1e9, {})
        self.mode = "remote" if cs.scheduler else "local"
        plugin = ModelPlugin(_portable(settings.model), settings.models, cs.cpu_affinity)
        try:
            if cs.scheduler:
                self.client: Client = Client(cs.scheduler, timeout=f"{cs.connect_timeout_s}s", set_as_default=False)
            else:
                # The nanny would otherwise export OMP_NUM_THREADS=1 into this process and every worker, and
                # MALLOC_TRIM_THRESHOLD_=65536, under which CTranslate2's large buffers go back to the OS at
                # every free: 7.5 s of system time per worker on the 10-minute input, against 3 s without.
                dask.config.set({"distributed.nanny.pre-spawn-environ": {}, **LEAN_CONFIG})
                self.cluster = _local_cluster(settings, plugin)
                self.client = Client(self.cluster, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            if self.cluster is not None:
                self.cluster.close()
            where = cs.scheduler or "a local cluster"
            raise ClusterError(
                f"cannot reach the Dask scheduler at {where} ({type(exc).__name__}: {exc}); start it with "
                "`dask scheduler`, check the address, or run without --scheduler"
                if cs.scheduler
                else f"cannot start a local Dask cluster ({type(exc).__name__}: {exc}); run with --workers 0"
            ) from exc
        if self.cluster is None:
            # Local workers get the plugin as they start (_local_cluster), remote ones from the scheduler.
            self.client.register_plugin(plugin, name=PLUGIN_NAME)
        if cs.adaptive and self.cluster is not None:
            low, high = cs.adaptive
            self.cluster.adapt(minimum=low, maximum=high)
        self._gpu = any(w.get("resources", {}).get("GPU") for w in self._workers().values())
        self._gpu_checked = time.monotonic()
        self.dashboard = self._dashboard_link()
        if self.dashboard:
            log.info("Dask dashboard: %s", self.dashboard)

    # -- work ------------------------------------------------------------------------------------------------
    def submit(
        self,
        items: list[SegmentAudio],
        settings: TranscribeSettings,
        language: str,
        model: ModelSettings,
        priority: float = 0,
        guard: GuardSettings | None = None,
    ) -> ConcurrentFuture:
        """Send one batch; the future gives ``(results, model name)``. GPU work asks for a GPU worker.

        A lost worker or connection comes back from the future as a (transient) :class:`TransientError`.
        """
        if not self._gpu and time.monotonic() - self._gpu_checked > GPU_CHECK_S:
            # A GPU worker may have joined; asking the scheduler on every submit would cost a round trip each.
            self._gpu = any(w.get("resources", {}).get("GPU") for w in self._workers().values())
            self._gpu_checked = time.monotonic()
        future = self.client.submit(
            transcribe_task,
            items,
            settings,
            language,
            _portable(model),
            guard,
            priority=priority,
            pure=False,
            resources={"GPU": 1} if self._gpu else None,
        )
        return _as_concurrent(future, self._futures, self.settings.cluster.scheduler or "")

    def detect_language(self, windows: list[np.ndarray], model: ModelSettings) -> LanguageGuess:
        """The language of some speech windows, decided on a worker."""
        return self.client.submit(detect_task, windows, _portable(model), pure=False, priority=100).result()

    def cancel(self, futures: Sequence[ConcurrentFuture]) -> None:
        """Drop the tasks behind ``futures`` (from :meth:`submit`), queued or running: a cancelled job."""
        tasks = [self._futures.pop(id(f)) for f in futures if id(f) in self._futures]
        if tasks:
            self.client.cancel(tasks, force=True)

    # -- health ----------------------------------------------------------------------------------------------
    def _workers(self) -> dict[str, dict[str, Any]]:
        try:
            workers = dict(self.client.scheduler_info(n_workers=-1).get("workers", {}))
        except (OSError, TimeoutError) as exc:
            # A slow answer is not "no workers": keep what was last seen.
            log.debug("scheduler_info failed: %s", exc)
            return dict(self._seen[1])
        self._seen = (time.monotonic(), workers)
        return workers

    def alive(self) -> int:
        """Workers connected now (asked at most once a second: every running job watches this)."""
        if time.monotonic() - self._seen[0] > ALIVE_EVERY_S:
            self._workers()
        return len(self._seen[1])

    def wait_for_workers(self, timeout_s: float, on_wait: Any = None) -> None:  # noqa: ANN401 - a callable
        """Return when a worker is connected; call ``on_wait(message)`` once if none is yet.

        Raises:
            ClusterError: No worker joined within ``timeout_s``.
        """
        if self.alive():
            return
        where = self.settings.cluster.scheduler or "the local cluster"
        if on_wait is not None:
            on_wait(f"waiting for a Dask worker to join {where}")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.alive():
                return
            time.sleep(0.5)
        raise ClusterError(
            f"no Dask worker is connected to {where} after {timeout_s:.0f} s; start one with "
            f"`dask worker {self.settings.cluster.scheduler or '<scheduler address>'}`, then resume the job"
        )

    def _dashboard_link(self) -> str | None:
        try:
            link = self.client.dashboard_link
        except (KeyError, AttributeError, OSError):
            return None
        return link or None

    def status(self, timeout_s: float = 2.0) -> dict[str, Any]:
        """Workers with state, load, model and tasks, for the UI and ``Runner.cluster_status``."""
        workers = self._workers()
        reports: dict[str, Any] = {}
        box: dict[str, Any] = {}

        def ask() -> None:
            try:
                box.update(self.client.run(worker_report, on_error="return"))
            except (OSError, TimeoutError, ValueError) as exc:
                log.debug("worker reports failed: %s", exc)

        asker = threading.Thread(target=ask, daemon=True)
        asker.start()
        asker.join(timeout_s)  # a worker too busy to answer in time shows without its report
        reports = {k: v for k, v in box.items() if isinstance(v, dict)}
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
        return {
            "mode": self.mode,
            "scheduler": self.client.scheduler.address if self.client.scheduler else None,
            "dashboard": self.dashboard,
            "workers": rows,
        }

    def model_statuses(self) -> dict[str, dict[str, Any]]:
        """Each live worker's model-manager status, by worker name (for the app-level model status).

        A worker whose plugin has not made its manager yet (it just joined) counts as ``idle``, so the
        aggregate never says ``ready`` while a joining worker has no model.
        """
        return {
            w["name"]: w.get("model_status") or {"state": "idle", "message": "worker starting", "progress": 0.0}
            for w in self.status()["workers"]
        }

    def load_model(self, name: str | None) -> dict[str, Any]:
        """Start a load round for ``name`` on every worker; returns each worker's answer by address.

        ``name`` is also kept on the scheduler, so workers that join later preload it.
        """
        if name:
            self.client.set_metadata(SELECTED_MODEL_KEY, name)

        def load(dask_worker: Any, name: str | None = name) -> dict[str, Any]:  # noqa: ANN401
            from pipeline.core.errors import PipelineError

            manager = dask_worker.plugins[PLUGIN_NAME].manager
            try:
                return {"ok": True, "status": manager.load(name)}
            except PipelineError as exc:
                return {"ok": False, "error": str(exc), "status": manager.status()}

        return self.client.run(load)

    def close(self) -> None:
        """Disconnect; a cluster started here is shut down."""
        # A client whose scheduler is gone is still trying to reconnect; closing cancels that, which distributed
        # logs as an error with a traceback. The job has already said what happened, in one line.
        quiet = self.client.status not in ("running", "closed")
        client_log = logging.getLogger("distributed.client")
        level = client_log.level
        if quiet:
            client_log.setLevel(logging.CRITICAL)
        try:
            self.client.close()
        finally:
            client_log.setLevel(level)
            if self.cluster is not None:
                self.cluster.close()


def _portable(model: ModelSettings) -> ModelSettings:
    """Model settings for workers: threads are decided per worker (its plan, or its own cores)."""
    return replace(model, cpu_threads=0)


def _local_cluster(settings: Settings, plugin: ModelPlugin) -> Any:  # noqa: ANN401 - distributed.SpecCluster
    """Start the planned local workers as processes under one scheduler on loopback.

    Each worker sets ``plugin`` up as it starts, before it joins the scheduler, so its model loads while it
    registers (and so do workers that adaptive scaling adds later).
    """
    from distributed import Nanny, Scheduler, SpecCluster

    from pipeline.asr.models import replicas_for
    from pipeline.optimize.optimizer import CoreOptimizer
    from pipeline.system.detect import CoreHardwareDetector

    info = CoreHardwareDetector(settings.jobs.jobs_dir).detect()
    optimized = CoreOptimizer().optimize(
        info,
        device=settings.model.device,
        compute_type=settings.model.compute_type,
        model=settings.model.name,
        cpu_affinity=settings.cluster.cpu_affinity,
    )
    plans = plan_workers(settings.cluster, settings.model, info, optimized)
    cs = settings.cluster

    def spec(plan: WorkerPlan) -> dict[str, Any]:
        return {
            "cls": Nanny,
            "options": {
                # One task per model replica: more would only queue inside the worker.
                "nthreads": replicas_for(
                    replace(settings.model, cpu_threads=plan.cpu_threads), "cpu" if plan.gpu is None else "cuda"
                ),
                "resources": plan.resources or None,
                "env": plan.env,
                "host": "127.0.0.1",
                "memory_limit": 0,
                "silence_logs": logging.WARNING,
                "plugins": (plugin,),
            },
        }

    # The bokeh dashboard loads on its first visit (_LazyDashboard): importing it with the scheduler costs
    # 0.55 s beyond distributed itself, and a slower exit. Without bokeh, Dask serves its "install bokeh" page.
    lazy = importlib.util.find_spec("bokeh") is not None
    scheduler = {
        "cls": Scheduler,
        "options": {
            "host": "127.0.0.1",
            "dashboard_address": cs.dashboard_address,
            "port": 0,
            "dashboard": False if lazy else None,
        },
    }
    log.info("starting a local Dask cluster: %s", ", ".join(f"{p.name} ({p.cpu_threads} threads)" for p in plans))
    cluster = SpecCluster(
        workers={p.name: spec(p) for p in plans},
        scheduler=scheduler,
        worker=spec(plans[0]) if plans else None,
        silence_logs=logging.WARNING,
        name="video2srt",
    )
    if lazy:
        server = cluster.scheduler
        # Both are set once SpecCluster's constructor returns; distributed types them as optional.
        cluster.loop.add_callback(server.http_application.add_application, _LazyDashboard(server))  # type: ignore[union-attr]
    return cluster


class _LazyDashboard(web.Application):
    """Serves the scheduler's bokeh dashboard from its first visit on, so that a run nobody watches never
    imports bokeh. Added to the scheduler's HTTP server, it answers the paths the server has no handler for:
    the first request loads the dashboard (in a thread, so the scheduler keeps serving), connects it, and
    redirects to the same address, which the dashboard then serves; after that it answers nothing.
    """

    def __init__(self, scheduler: Any) -> None:  # noqa: ANN401 - distributed.Scheduler
        super().__init__([(r"/.*", _DashboardLoader, {"owner": self})])
        self.scheduler = scheduler
        self.loading: asyncio.Future[None] | None = None
        self.connected = False

    def find_handler(self, request: Any, **kwargs: Any) -> Any:  # noqa: ANN401 - tornado's types
        """Nothing once the dashboard is connected: the server's next application (the dashboard) answers."""
        return None if self.connected else super().find_handler(request, **kwargs)

    async def load(self) -> None:
        """Import and connect the dashboard once, however many first visits wait for it."""
        if self.loading is None:
            self.loading = asyncio.ensure_future(self._load())
        await asyncio.shield(self.loading)

    async def _load(self) -> None:
        loop = asyncio.get_running_loop()
        dashboard = await loop.run_in_executor(None, importlib.import_module, "distributed.dashboard.scheduler")
        scheduler = self.scheduler
        # "/" is the Scheduler's own default http_prefix, which a local cluster does not change.
        dashboard.connect(scheduler.http_application, scheduler.http_server, scheduler, prefix="/")
        self.connected = True


class _DashboardLoader(web.RequestHandler):
    def initialize(self, owner: _LazyDashboard) -> None:
        self.owner = owner

    async def get(self, *_args: str) -> None:
        try:
            await self.owner.load()
        except ImportError as exc:
            self.set_status(503)
            self.finish(f"the Dask dashboard cannot load ({exc}); install bokeh: pip install 'bokeh>=3.1'")
            return
        self.redirect(self.request.uri or "/status")


def _as_concurrent(future: Future, registry: dict[int, Future], scheduler: str = "") -> ConcurrentFuture:
    """A ``concurrent.futures.Future`` that settles with the Dask future, so the runner has one kind to wait on.

    A lost worker (``KilledWorker``) or connection becomes a :class:`TransientError`: the runner retries it.
    A lost scheduler (the client cancels every future it holds) becomes a :class:`ClusterError`.
    """
    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    out: ConcurrentFuture = ConcurrentFuture()
    registry[id(out)] = future

    def settle(f: Future) -> None:
        registry.pop(id(out), None)
        if f.cancelled():
            # Cancelled by us (a cancelled job, the client still running), or by a client whose scheduler is gone.
            if f.client.status != "running":
                out.set_exception(
                    ClusterError(f"lost the connection to the Dask scheduler{scheduler and ' at '}{scheduler}")
                )
            else:
                out.cancel()
            return
        try:
            out.set_result(f.result())
        except (KilledWorker, CommClosedError) as exc:
            out.set_exception(TransientError(f"a Dask worker was lost ({type(exc).__name__}: {exc})"))
        except BaseException as exc:  # noqa: BLE001 - handed on through the future
            out.set_exception(exc)

    future.add_done_callback(settle)
    return out
