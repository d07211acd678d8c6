"""Where a model manager's work runs: one inference thread, and lane threads for a model with several replicas.

The thread that loads a model is the thread that uses it: CTranslate2 on the CPU runs much slower when a model
loaded on one thread is used from another (docs/benchmarks.md). A model with several replicas runs its calls
on as many lanes side by side; CTranslate2 then computes on its own replica threads, as fast from the lanes as
from the loading thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class InferenceLanes:
    """One inference thread (loads, and calls of one-replica models) and a pool of lanes that grows on demand."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread_id: int | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference", initializer=self._mark)
        self._lanes: ThreadPoolExecutor | None = None
        self._lane_count = 0

    def _mark(self) -> None:
        self._thread_id = threading.get_ident()

    def on_inference_thread(self) -> bool:
        """Whether the caller runs on the inference thread."""
        return self._thread_id == threading.get_ident()

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn`` on the inference thread; inline when already on it."""
        if self.on_inference_thread():
            future: Future[T] = Future()
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
                future.set_exception(exc)
            return future
        return self._executor.submit(fn, *args, **kwargs)

    def queue(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn`` behind whatever runs on the inference thread, even when called from it."""
        self._executor.submit(fn, *args)

    def on_lanes(self, replicas: int, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` on one of at least ``replicas`` lane threads."""
        with self._lock:
            if self._lane_count < replicas:
                old, self._lane_count = self._lanes, replicas
                self._lanes = ThreadPoolExecutor(max_workers=replicas, thread_name_prefix="inference-lane")
                if old is not None:
                    old.shutdown(wait=False)
            lanes = self._lanes
        assert lanes is not None
        return lanes.submit(fn)

    def shutdown(self) -> None:
        """Stop the threads; work still queued is cancelled."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            lanes = self._lanes
        if lanes is not None:
            lanes.shutdown(wait=False, cancel_futures=True)
