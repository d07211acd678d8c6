"""The Dask backend: batches run on Dask workers (the only module that imports ``distributed``).

``--workers N`` (or the optimizer's plan) starts a local cluster of worker processes, one per GPU or CPU workers
that split the cores; ``--scheduler ADDRESS`` joins an existing one. Every worker gets :class:`ModelPlugin`,
which pins its CPUs and gives it one model manager that loads and warms the model while the coordinator
decodes. A task carries a batch of segments with their samples (no shared disk); the batches follow the segment
plan, so the output is byte-identical to the local backend's. docs/architecture.md ("Cluster") has the rest.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future as ConcurrentFuture
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from distributed import WorkerPlugin

from pipeline.backends.dask_dashboard import LazyDashboard
from pipeline.backends.dask_plan import (
    ALIVE_EVERY_S,
    GPU_CHECK_S,
    INFLIGHT_PER_WORKER,
    JOBS_ON_CLUSTER,
    LEAN_CONFIG,
    PLANNED_THREADS,
    PLUGIN_NAME,
    SELECTED_MODEL_KEY,
    WorkerPlan,
    for_worker,
    load_on,
    local_plans,
    not_reached,
    plan_workers,
    portable,
    scheduler_options,
    start_worker,
    worker_options,
    worker_rows,
)
from pipeline.core.errors import ClusterError, TransientError
from pipeline.core.settings import GuardSettings, ModelManagerSettings, ModelSettings, Settings, TranscribeSettings

if TYPE_CHECKING:
    from distributed import Client, Future

    from pipeline.asr.detect import LanguageGuess
    from pipeline.asr.inputs import SegmentAudio
    from pipeline.asr.manager import ModelManager
    from pipeline.backends.base import BatchFuture, WaitCallback
    from pipeline.core.types import SegmentResult

__all__ = ["PLANNED_THREADS", "DaskBackend", "ModelPlugin", "WorkerPlan", "plan_workers"]

log = logging.getLogger(__name__)


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
        self.manager = start_worker(
            self.model, self.manager_settings, self.cpu_affinity, name=str(worker.name), selected=selected
        )

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

    Nothing starts on construction: :meth:`start` begins in the background, :meth:`ready` waits for it.

    Args:
        settings: The runner's settings; the cluster part says where, the model parts what to load.
    """

    distributed = True
    job_slots = JOBS_ON_CLUSTER

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        cs = settings.cluster
        self.mode = "remote" if cs.scheduler else "local"
        self.cluster: Any = None
        self.dashboard: str | None = None
        self._client: Client | None = None
        self._error: ClusterError | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._starter: threading.Thread | None = None
        self._chosen: str | None = None  # a model selected before the cluster was up
        self._futures: dict[int, Future] = {}
        self._seen: tuple[float, dict[str, dict[str, Any]]] = (-1e9, {})
        self._gpu = False
        self._gpu_checked = 0.0

    # -- start and stop ----------------------------------------------------------------------------------------
    def start(self, models: Sequence[ModelSettings] = (), *, preload: bool = True) -> None:
        """Start or reach the cluster on a background thread (its workers preload the model themselves)."""
        with self._lock:
            if self._starter is not None or self._client is not None:
                return
            self._starter = threading.Thread(target=self._start_quietly, name="cluster-start", daemon=True)
        self._starter.start()

    def _start_quietly(self) -> None:
        try:
            self.ready()
        except Exception:  # noqa: BLE001 - the error surfaces again, as one line, on the first job
            log.debug("cluster start failed", exc_info=True)

    def ready(self) -> None:
        """Start or reach the cluster, once; later calls return at once (or raise the same error).

        Raises:
            ClusterError: The scheduler is unreachable or the local cluster cannot start.
        """
        with self._lock:
            if self._client is not None:
                return
            if self._error is not None:
                raise self._error
            if self._closed:
                raise ClusterError("the Dask backend is closed")
            try:
                self._connect()
            except ClusterError as exc:
                self._error = exc
                raise

    @property
    def client(self) -> Client:
        """The Dask client, the cluster started or reached first (blocks)."""
        self.ready()
        assert self._client is not None
        return self._client

    def _connect(self) -> None:
        import dask
        from distributed import Client

        if logging.getLogger().getEffectiveLevel() > logging.INFO:
            # distributed sets its loggers to INFO when imported; its start/stop chatter is not for users.
            logging.getLogger("distributed").setLevel(logging.WARNING)
        cs = self.settings.cluster
        model = portable(self.settings.model)
        if self._chosen:
            model = replace(model, name=self._chosen)
        plugin = ModelPlugin(model, self.settings.models, cs.cpu_affinity)
        try:
            if cs.scheduler:
                client = Client(cs.scheduler, timeout=f"{cs.connect_timeout_s}s", set_as_default=False)
            else:
                # The nanny would otherwise export OMP_NUM_THREADS=1 into this process and every worker, and
                # MALLOC_TRIM_THRESHOLD_=65536, under which CTranslate2's large buffers go back to the OS at
                # every free, which more than doubles a worker's system time (docs/benchmarks.md).
                dask.config.set({"distributed.nanny.pre-spawn-environ": {}, **LEAN_CONFIG})
                self.cluster = _local_cluster(self.settings, plugin)
                client = Client(self.cluster, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            if self.cluster is not None:
                self.cluster.close()
                self.cluster = None
            where = cs.scheduler or "a local cluster"
            raise ClusterError(
                f"cannot reach the Dask scheduler at {where} ({type(exc).__name__}: {exc}); start it with "
                "`dask scheduler`, check the address, or run without --scheduler"
                if cs.scheduler
                else f"cannot start a local Dask cluster ({type(exc).__name__}: {exc}); run with --workers 0"
            ) from exc
        if self._chosen:
            client.set_metadata(SELECTED_MODEL_KEY, self._chosen)
        if self.cluster is None:
            # Local workers get the plugin as they start (_local_cluster), remote ones from the scheduler.
            client.register_plugin(plugin, name=PLUGIN_NAME)
        if cs.adaptive and self.cluster is not None:
            low, high = cs.adaptive
            self.cluster.adapt(minimum=low, maximum=high)
        self._client = client
        self._gpu = any(w.get("resources", {}).get("GPU") for w in self._workers().values())
        self._gpu_checked = time.monotonic()
        self.dashboard = _dashboard_link(client)
        if self.dashboard:
            log.info("Dask dashboard: %s", self.dashboard)

    def close(self) -> None:
        """Disconnect; a cluster started here is shut down (after a start still under way)."""
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is None:
            return
        # A client whose scheduler is gone is still trying to reconnect; closing cancels that, which distributed
        # logs as an error with a traceback. The job has already said what happened, in one line.
        quiet = client.status not in ("running", "closed")
        client_log = logging.getLogger("distributed.client")
        level = client_log.level
        if quiet:
            client_log.setLevel(logging.CRITICAL)
        try:
            client.close()
        finally:
            client_log.setLevel(level)
            if self.cluster is not None:
                self.cluster.close()

    # -- work ------------------------------------------------------------------------------------------------
    def prepare(self, model: ModelSettings, on_wait: WaitCallback, *, multilingual: bool = False) -> str:
        """Wait for a worker (each loads its own model; an English-only one refuses translation in its task)."""
        self.wait_for_workers(
            self.settings.cluster.worker_timeout_s, lambda message: on_wait("waiting_for_workers", message)
        )
        return model.name

    def inflight(self, model: ModelSettings) -> int:
        """A few batches per live worker."""
        return INFLIGHT_PER_WORKER * self.alive()

    def submit(
        self,
        items: list[SegmentAudio],
        settings: TranscribeSettings,
        language: str,
        model: ModelSettings,
        priority: float = 0.0,
        guard: GuardSettings | None = None,
    ) -> BatchFuture:
        """Send one batch; the future gives ``(results, model name)``. GPU work asks for a GPU worker.

        A lost worker or connection comes back from the future as a (transient) :class:`TransientError`.
        """
        client = self.client
        if not self._gpu and time.monotonic() - self._gpu_checked > GPU_CHECK_S:
            # A GPU worker may have joined; asking the scheduler on every submit would cost a round trip each.
            self._gpu = any(w.get("resources", {}).get("GPU") for w in self._workers().values())
            self._gpu_checked = time.monotonic()
        future = client.submit(
            transcribe_task,
            items,
            settings,
            language,
            portable(model),
            priority=priority,
            pure=False,
            resources={"GPU": 1} if self._gpu else None,
        )
        return _as_concurrent(future, self._futures, self.settings.cluster.scheduler or "")

    def detect_language(self, windows: list[np.ndarray], model: ModelSettings) -> LanguageGuess:
        """The language of some speech windows, decided on a worker."""
        return self.client.submit(detect_task, windows, portable(model), pure=False, priority=100).result()

    def cancel(self, futures: Sequence[ConcurrentFuture]) -> None:
        """Drop the tasks behind ``futures`` (from :meth:`submit`), queued or running: a cancelled job."""
        tasks = [self._futures.pop(id(f)) for f in futures if id(f) in self._futures]
        if tasks:
            self.client.cancel(tasks, force=True)

    # -- health ----------------------------------------------------------------------------------------------
    def _workers(self) -> dict[str, dict[str, Any]]:
        client = self._client
        if client is None:
            return {}
        try:
            workers = dict(client.scheduler_info(n_workers=-1).get("workers", {}))
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

    def wait_for_workers(self, timeout_s: float, on_wait: Callable[[str], None] | None = None) -> None:
        """Return when a worker is connected; call ``on_wait(message)`` once if none is yet.

        Raises:
            ClusterError: No worker joined within ``timeout_s``.
        """
        self.ready()
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

    def status(self, jobs: int = 0, timeout_s: float = 2.0) -> dict[str, Any]:
        """Workers with state, load, model and tasks, for the UI and ``Runner.cluster_status``; a cluster not
        up yet is ``starting`` (or ``unreachable``, with its error) and is never waited for."""
        client = self._client
        if client is None:
            return not_reached(self.settings.cluster.scheduler, self._error)
        workers = self._workers()
        box: dict[str, Any] = {}

        def ask() -> None:
            try:
                box.update(client.run(worker_report, on_error="return"))
            except (OSError, TimeoutError, ValueError) as exc:
                log.debug("worker reports failed: %s", exc)

        asker = threading.Thread(target=ask, daemon=True)
        asker.start()
        asker.join(timeout_s)  # a worker too busy to answer in time shows without its report
        reports = {k: v for k, v in box.items() if isinstance(v, dict)}
        return {
            "mode": self.mode,
            "scheduler": client.scheduler.address if client.scheduler else None,
            "dashboard": self.dashboard,
            "workers": worker_rows(workers, reports),
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

    def load_model(self, name: str | None) -> dict[str, dict[str, Any]]:
        """Start a load round for ``name`` on every worker; returns each worker's answer by address.

        ``name`` is also kept on the scheduler, so workers that join later preload it; before the cluster is
        up, its workers are started with it.
        """
        with self._lock:
            client = self._client
            if client is None:
                self._chosen = (name or "").strip() or self._chosen
                return {}
        if name:
            client.set_metadata(SELECTED_MODEL_KEY, name)

        def load(dask_worker: Any, name: str | None = name) -> dict[str, Any]:  # noqa: ANN401
            return load_on(dask_worker.plugins[PLUGIN_NAME].manager, name)

        return cast("dict[str, dict[str, Any]]", client.run(load))


def _local_cluster(settings: Settings, plugin: ModelPlugin) -> Any:  # noqa: ANN401 - distributed.SpecCluster
    """Start the planned local workers as processes under one scheduler on loopback.

    Each worker sets ``plugin`` up as it starts, before it joins the scheduler, so its model loads while it
    registers (and so do workers that adaptive scaling adds later).
    """
    from distributed import Nanny, Scheduler, SpecCluster

    plans = local_plans(settings)

    def spec(plan: WorkerPlan) -> dict[str, Any]:
        return {"cls": Nanny, "options": {**worker_options(plan, settings.model), "plugins": (plugin,)}}

    # The bokeh dashboard loads on its first visit (LazyDashboard). Without bokeh, Dask serves its
    # "install bokeh" page.
    lazy = importlib.util.find_spec("bokeh") is not None
    scheduler = {"cls": Scheduler, "options": scheduler_options(settings.cluster, lazy)}
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
        dashboard = LazyDashboard(server, _connect_dashboard)
        cluster.loop.add_callback(server.http_application.add_application, dashboard)  # type: ignore[union-attr]
    return cluster


def _dashboard_link(client: Client) -> str | None:
    try:
        link = client.dashboard_link
    except (KeyError, AttributeError, OSError):
        return None
    return link or None


def _connect_dashboard(scheduler: Any) -> None:  # noqa: ANN401 - distributed.Scheduler
    """Import the bokeh dashboard and connect it to ``scheduler``'s HTTP server (on a dashboard's first visit)."""
    dashboard = importlib.import_module("distributed.dashboard.scheduler")
    # "/" is the Scheduler's own default http_prefix, which a local cluster does not change.
    dashboard.connect(scheduler.http_application, scheduler.http_server, scheduler, prefix="/")


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
