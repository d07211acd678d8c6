"""Model status: one model's record on a worker (its state machine's latest round) and the app-level
aggregate over the live workers' status dicts.

States and stages are described in :mod:`pipeline.asr.manager`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.asr.models import CacheKey, LoadedModel, ModelCache
from pipeline.core.settings import AUTO_MODEL, ModelManagerSettings, ModelSettings

log = logging.getLogger(__name__)

Subscriber = Callable[[dict[str, Any]], None]

STATES = ("idle", "loading", "ready", "failed")
STAGES = ("queued", "resolve", "download", "assemble", "load", "warm-up")
#: Progress at the start of each stage; a round without a download goes from resolve straight to load.
PROGRESS = {
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


@dataclass
class ModelRecord:
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


def display_name(name: str) -> str:
    """How a model request reads in a status line: ``auto`` as "the default model", a folder by its name."""
    if name == AUTO_MODEL:
        return "the default model"
    return Path(name).name if ("/" in name or os.sep in name) else name


class StatusBoard:
    """The records of one worker's models and their status, told to subscribers after every change.

    The base of :class:`~pipeline.asr.manager.ModelManager`, which runs the rounds that change the records;
    every change goes through :meth:`_set`, :meth:`_finish` or :meth:`_mark_evicted`, so that subscribers
    see each one. Callers hold no lock; the board's lock is re-entrant.
    """

    def __init__(self, settings: ModelSettings, config: ModelManagerSettings, cache: ModelCache, name: str) -> None:
        self.settings = settings
        self.config = config
        self.cache = cache
        self.name = name
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._records: dict[ModelSettings, ModelRecord] = {}
        self._pending: dict[ModelSettings, Future[LoadedModel]] = {}
        self._selected: ModelSettings | None = None
        self._subscribers: list[Subscriber] = []
        self._seq = 0
        self._updated = time.time()
        self._memory: dict[str, Any] = {}

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
                top = ModelRecord(selected, name=display_name(selected.name)).as_dict()
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
            return rec.message if rec is not None else f"{display_name(settings.name)} is not loaded yet"

    def _mark_evicted(self, key: CacheKey, why: str) -> None:
        with self._lock:
            for rec in self._records.values():
                if rec.key == key and rec.state == "ready":
                    rec.state, rec.stage, rec.progress, rec.message = "idle", None, 0.0, why
            self._touch()
        self._emit()

    # -- state changes ----------------------------------------------------------------------------------------------
    def _set(self, rec: ModelRecord, **fields: Any) -> None:
        with self._lock:
            for name, value in fields.items():
                setattr(rec, name, value)
            self._touch()
        self._emit()

    def _finish(self, rec: ModelRecord, state: str, *, message: str = "", error: str | None = None) -> None:
        with self._lock:
            self._finish_locked(rec, state, message=message, error=error)
        self._emit()

    def _finish_locked(self, rec: ModelRecord, state: str, *, message: str = "", error: str | None = None) -> None:
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
