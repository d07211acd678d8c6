"""The model manager: one per worker process; loads, warms, caches and reports Whisper models honestly.

Each model on each worker goes through one state machine::

    idle ──▶ loading(stage, progress) ──▶ ready ──(evicted, least recently used)──▶ idle
                    │
                    └──▶ failed(reason) ──(load again: retry)──▶ loading

    stages: queued (behind other work on the inference thread) → resolve → [download | assemble] → load →
    [warm-up]   (assemble: the packaged multilingual base joined from its parts, once per machine)
    (warm-up: ``auto`` runs it on CUDA only; on the CPU it does not pay off, benchmarks/README.md)

A *round* is one pass through ``loading``. Rounds run one at a time on the manager's single **inference
thread**, which also runs every inference call of a one-replica model (:meth:`ModelManager.infer`); a model
with several replicas runs its calls on as many *lanes* (:mod:`pipeline.asr.lanes` says why). Every change
is an event: subscribers get a fresh :meth:`ModelManager.status` dict (with a growing ``seq``), and readers
call :meth:`~ModelManager.status`; nothing reads private fields. The app aggregates the workers' status
dicts with :func:`~pipeline.asr.model_status.aggregate_status` (``ready`` only when every worker is).

The *selected* model is the one new jobs use and the one the top-level status describes. It changes only
through :meth:`~ModelManager.load` (the user's switch) and :meth:`~ModelManager.preload` (start-up).
Jobs ask for their own model (fixed in their settings, so a resume gives the same output) with
:meth:`~ModelManager.request` / :meth:`~ModelManager.get`, which joins a running round or starts one.

Every case (start-up, a load during a load, a switch, jobs during a switch, failures, not enough memory,
workers joining and dying, closing) and its handling is listed in docs/models.md ("The model manager").
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from pipeline.asr.footprint import model_memory_mb
from pipeline.asr.lanes import InferenceLanes
from pipeline.asr.memory_guard import check_room, gpu_free_mb
from pipeline.asr.model_status import PROGRESS, ModelRecord, StatusBoard, display_name
from pipeline.asr.models import CacheKey, LoadedModel, ModelCache, ModelSpec, Placement, load, placement_for, resolve
from pipeline.asr.warmup import warm_up, warms
from pipeline.core.errors import ModelError
from pipeline.core.settings import AUTO_MODEL, ModelManagerSettings, ModelSettings
from pipeline.system.detect import CoreHardwareDetector

log = logging.getLogger(__name__)

T = TypeVar("T")


class ModelBusyError(ModelError):
    """A load was asked for while another runs on this worker; ``status`` is the manager's state (HTTP 409)."""

    transient = True

    def __init__(self, message: str, status: dict[str, Any]) -> None:
        super().__init__(message)
        self.status = status


class ModelManager(StatusBoard):
    """Loads, warms up, caches (LRU, memory-guarded) and reports the Whisper models of one process.

    Usable in any process: the app's in-process runner holds one, and each Dask worker holds one through
    its worker plugin. Thread-safe.

    Args:
        settings: The default model (``name``, device, compute type, CPU threads); ``load(name)`` and
            ``preload()`` vary only the name.
        manager_settings: Preload list, warm-up, cache size, memory headroom and limit.
        cache: Keep loaded models here (shared with other holders of the same cache); a new one by default.
        name: This worker's name in statuses.
        detector: Memory probes for the guard (tests inject small budgets); the machine's by default.
    """

    def __init__(
        self,
        settings: ModelSettings,
        manager_settings: ModelManagerSettings | None = None,
        *,
        cache: ModelCache | None = None,
        name: str = "in-process",
        detector: CoreHardwareDetector | None = None,
    ) -> None:
        config = manager_settings or ModelManagerSettings()
        super().__init__(settings, config, cache if cache is not None else ModelCache(config.max_cached), name)
        self._detector = detector
        self._rounds = 0
        self._closed = False
        self._threads = InferenceLanes()

    # -- the inference thread ---------------------------------------------------------------------------------
    def _on_inference_thread(self) -> bool:
        return self._threads.on_inference_thread()

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn`` on the inference thread (where models load); inline when already on it."""
        return self._threads.submit(fn, *args, **kwargs)

    def infer(self, settings: ModelSettings, fn: Callable[[LoadedModel], T]) -> Future[T]:
        """Run ``fn(model)`` with the model for ``settings`` (loading it if needed) on an inference lane.

        A model with one replica runs on the inference thread, one call at a time. A model with several
        replicas (:attr:`pipeline.asr.models.Placement.replicas`) runs on as many lane threads, so that many
        calls run side by side; its round still loads on the inference thread, and a call waits for it.
        """
        replicas = placement_for(settings).replicas
        if replicas <= 1:
            return self.submit(lambda: fn(self.get(settings)))
        with self._lock:
            if self._closed:
                raise ModelError("the model manager is closed")
        return self._threads.on_lanes(replicas, lambda: fn(self.get(settings)))

    # -- the public operations ----------------------------------------------------------------------------------
    @property
    def selected(self) -> ModelSettings:
        """The model new jobs use: the last one loaded or preloaded, else the default."""
        with self._lock:
            return self._selected or self.settings

    def settings_for(self, name: str | None) -> ModelSettings:
        """The default model settings with ``name`` (blank: the selected model)."""
        name = (name or "").strip()
        return dataclasses.replace(self.settings, name=name) if name else self.selected

    def preload(self) -> dict[str, Any]:
        """Start loading the preload list in the background (first one selected); never refuses.

        Returns at once with the status (``loading``, or ``idle`` when the list is empty). Calling it again
        while it runs joins the running rounds.
        """
        names = self.config.preload if self.config.preload is not None else (self.settings.name,)
        if not names:
            log.info("model preload is off: the first job or load loads the model")
            return self.status()
        first = self.settings_for(names[0])
        with self._lock:
            if self._selected is None:
                self._selected = first
        self.request(first)
        extra = list(names[1 : max(1, self.config.max_cached)])
        for name in extra:
            self.request(self.settings_for(name))
        skipped = names[1 + len(extra) :]
        if skipped:
            log.warning(
                "not preloading %s: only %d model(s) fit in the cache (--max-cached-models)",
                ", ".join(skipped),
                self.config.max_cached,
            )
        return self.status()

    def load(self, name: str | None = None) -> dict[str, Any]:
        """Select ``name`` for new jobs and start a new load round for it (blank: the selected model: retry).

        Returns at once with the status (``loading``).

        Raises:
            ModelBusyError: Another round runs on this worker (HTTP 409); its ``status`` says which.
        """
        with self._lock:
            if self._closed:
                raise ModelError("the model manager is closed")
            if self._pending:
                busy = self._records[next(iter(self._pending))]
                pct = f", {busy.progress:.0%}" if busy.stage not in ("queued", None) else ""
                raise ModelBusyError(
                    f"{busy.name or busy.settings.name} is still loading ({busy.stage}{pct}); "
                    "try again when it is ready",
                    self.status(),
                )
            settings = self.settings_for(name)
            self._selected = settings
            rec, future = self._begin(settings)
        self._emit()
        if self._on_inference_thread():
            self._claim_and_run(settings, rec, future)
        return self.status()

    def request(self, settings: ModelSettings | None = None) -> Future[LoadedModel]:
        """The model for ``settings`` (default: the selected one) as a future; starts a round when needed.

        A cached model gives a finished future; a model whose round runs gives that round's future (nothing
        is loaded twice); otherwise a new round is queued behind whatever runs on the inference thread.
        Called on the inference thread itself (a batch that needs its model), a round still queued runs at
        once, inline, so that nothing ever waits for work queued behind itself.
        """
        settings = settings or self.selected
        with self._lock:
            rec = self._records.get(settings)
            if rec is not None and rec.state == "ready" and rec.key is not None:
                loaded = self.cache.lookup(rec.key)
                if loaded is not None:
                    done: Future[LoadedModel] = Future()
                    done.set_result(loaded)
                    return done
            pending = self._pending.get(settings)
            started = pending is None
            if started:
                if self._closed:
                    raise ModelError("the model manager is closed")
                rec, pending = self._begin(settings)
            else:
                rec = self._records[settings]
        assert pending is not None  # begun above, or already pending
        if started:
            self._emit()
        if self._on_inference_thread():
            self._claim_and_run(settings, rec, pending)
        return pending

    def get(self, settings: ModelSettings | None = None, timeout: float | None = None) -> LoadedModel:
        """The loaded model for ``settings`` (default: the selected one), loading it if needed; blocks.

        Raises:
            ModelError: It cannot be loaded (the reason is also in the status).
        """
        return self.request(settings).result(timeout)

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until no round runs (or ``timeout`` passes); return the status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._idle.wait(left)
        return self.status()

    def names(self) -> list[str]:
        """Names of the cached models, least recently used first."""
        return self.cache.names()

    def memory(self) -> dict[str, Any]:
        """Measure free RAM and GPU memory now (for the plots, the optimizer and the guard)."""
        if self._detector is None:
            self._detector = CoreHardwareDetector()
        info = self._detector.detect(refresh=True)
        snapshot = {
            "ram_total_mb": info.memory_total_mb,
            "ram_available_mb": info.memory_available_mb,
            "gpu_total_mb": list(info.gpu_memory_mb),
            "gpu_free_mb": list(info.gpu_free_memory_mb or info.gpu_memory_mb),
            "measured": time.time(),
        }
        with self._lock:
            self._memory = snapshot
        return dict(snapshot)

    def close(self) -> None:
        """Stop the inference thread; rounds still queued end ``failed`` ("closed"). Last call."""
        with self._lock:
            self._closed = True
        self._threads.shutdown()
        closed = ModelError("the model manager was closed before this model was loaded")
        unclaimed = []
        with self._lock:
            for settings, future in list(self._pending.items()):
                rec = self._records[settings]
                if not rec.claimed:
                    rec.claimed = True
                    self._finish_locked(rec, "failed", error=str(closed))
                    unclaimed.append(future)
        for future in unclaimed:
            future.set_exception(closed)
        self._emit()

    # -- rounds ---------------------------------------------------------------------------------------------------
    def _begin(self, settings: ModelSettings) -> tuple[ModelRecord, Future[LoadedModel]]:
        """Create the round's record in ``loading`` and queue it. Caller holds the lock."""
        self._rounds += 1
        rec = ModelRecord(
            settings,
            round=self._rounds,
            state="loading",
            stage="queued",
            name=display_name(settings.name),
            message=f"{display_name(settings.name)} is queued for loading",
            started=time.time(),
        )
        self._records.pop(settings, None)  # re-inserted last: the status lists models by recency
        self._records[settings] = rec
        self._prune_records()
        future: Future[LoadedModel] = Future()
        self._pending[settings] = future
        if not self._on_inference_thread():
            self._threads.queue(self._claim_and_run, settings, rec, future)
        self._touch()
        return rec, future

    def _claim_and_run(self, settings: ModelSettings, rec: ModelRecord, future: Future[LoadedModel]) -> None:
        """Run the round unless someone already has (the queued task and an inline caller race for it)."""
        with self._lock:
            if rec.claimed:
                return
            rec.claimed = True
        try:
            future.set_result(self._run_round(settings, rec))
        except BaseException as exc:  # noqa: BLE001 - handed to every waiter through the future
            future.set_exception(exc)

    def _run_round(self, settings: ModelSettings, rec: ModelRecord) -> LoadedModel:
        try:
            loaded = self._load(settings, rec)
        except ModelError as exc:
            self._finish(rec, "failed", error=_one_line(exc))
            raise
        except BaseException as exc:
            error = ModelError(f"model {rec.name} could not be loaded ({type(exc).__name__}: {_one_line(exc)})")
            log.debug("model round failed", exc_info=True)
            self._finish(rec, "failed", error=str(error))
            raise error from exc
        return loaded

    def _load(self, settings: ModelSettings, rec: ModelRecord) -> LoadedModel:
        started = time.monotonic()
        self._set(rec, stage="resolve", progress=PROGRESS["resolve"], message=f"finding {rec.name}")
        placement = placement_for(settings)
        self._set(rec, device=placement.device, compute_type=placement.compute_type)
        gpu_free = 0
        if settings.name == AUTO_MODEL and placement.device == "cuda":
            # The optimizer's choice depends on the GPU's free memory (medium when it fits).
            gpu_free = gpu_free_mb(self.memory(), placement) or 0
        downloaded: list[str] = []

        def on_download(name: str) -> None:
            downloaded.append(name)
            self._set(
                rec,
                stage="download",
                progress=PROGRESS["download"],
                message=f"downloading {name} from the Hugging Face hub",
            )

        assembled: list[float] = []

        def on_assemble(fraction: float, message: str) -> None:
            # The packaged base is joined from its parts once per machine (seconds): a stage of its own.
            if assembled and fraction - assembled[-1] < 0.05 and fraction < 1.0:
                return
            assembled.append(fraction)
            span = PROGRESS["load_after_assembly"] - PROGRESS["assemble"]
            self._set(rec, stage="assemble", progress=PROGRESS["assemble"] + span * fraction, message=message)

        spec = resolve(settings, placement.device, gpu_free, on_download, on_assemble)
        key: CacheKey = (spec.path, placement)
        self._set(
            rec,
            name=spec.name,
            path=spec.path,
            source=spec.source,
            key=key,
            need_mb=model_memory_mb(spec.path, placement.compute_type, 1),
        )
        loaded = self.cache.lookup(key)
        if loaded is not None:
            self._finish(rec, "ready", message=f"{spec.name} is ready on {_where(placement)} (already loaded)")
            return loaded
        for victim in self._guard(rec, spec, placement):
            self._evict(victim, f"evicted to make room for {spec.name}")
        stage_start = PROGRESS["load_after_download" if downloaded else "load_after_assembly" if assembled else "load"]
        self._set(rec, stage="load", progress=stage_start, message=f"loading {spec.name} on {_where(placement)}")
        rss = _rss_mb()
        t = time.monotonic()
        loaded = load(spec, placement)
        self._set(rec, load_s=round(time.monotonic() - t, 3))
        if warms(self.config.warmup, placement):
            self._set(
                rec, stage="warm-up", progress=PROGRESS["warm-up"], message=f"warming up {spec.name} with a short clip"
            )
            t = time.monotonic()
            try:
                warm_up(loaded)
            except Exception as exc:
                raise ModelError(
                    f"model {spec.name} loaded but failed on a short test clip ({type(exc).__name__}: "
                    f"{_one_line(exc)}); it cannot transcribe: check the model files"
                ) from exc
            self._set(rec, warmup_s=round(time.monotonic() - t, 3))
        if rss is not None:
            now = _rss_mb()
            self._set(rec, rss_mb=max(0, now - rss) if now is not None else None)
        for old in self.cache.put(key, loaded, self.config.max_cached):
            self._mark_evicted((old.spec.path, old.placement), f"evicted (least recently used) for {spec.name}")
        gc.collect()  # evicted models free their memory only once collected
        took = time.monotonic() - started
        self._finish(rec, "ready", message=f"{spec.name} is ready on {_where(placement)} (loaded in {took:.1f} s)")
        log.info(
            "model %s ready on %s in %.1f s (load %.1f s, warm-up %s s)",
            spec.name,
            _where(placement),
            took,
            rec.load_s or 0.0,
            rec.warmup_s if rec.warmup_s is not None else "off",
        )
        return loaded

    # -- the memory guard -----------------------------------------------------------------------------------------
    def _guard(self, rec: ModelRecord, spec: ModelSpec, placement: Placement) -> list[CacheKey]:
        """The cached models to evict before loading ``spec`` (see :func:`~pipeline.asr.memory_guard.check_room`)."""
        need = rec.need_mb or model_memory_mb(spec.path, placement.compute_type, 1)
        return check_room(spec.name, need, placement, self.cache, self.config, self.memory())

    def _evict(self, key: CacheKey, why: str) -> None:
        if self.cache.remove(key) is not None:
            log.info("model %s %s", Path(key[0]).name, why)
            self._mark_evicted(key, why)
            gc.collect()


def _where(placement: Placement) -> str:
    return f"{placement.device}/{placement.compute_type}"


def _one_line(exc: BaseException | str) -> str:
    return " ".join(str(exc).split())


def _rss_mb() -> int | None:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss) // (1024 * 1024)
    except Exception:  # noqa: BLE001 - a measurement for the status only
        return None
