"""Usage history for the workbench's charts: the last minutes of
:func:`~pipeline.system.monitor.sample_usage` samples for the app host and, when the cluster reports them, for
each worker. One background thread samples for every browser session.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from pipeline.system.monitor import sample_usage

log = logging.getLogger(__name__)

#: The app's own machine in the charts.
HOST = "app host"
#: How often the charts get a new point, and how far back they reach.
SAMPLE_EVERY_S = 2.0
WINDOW_S = 300.0


class UsageHistory:
    """Rolling CPU/RAM/GPU-memory samples per source (the app host, then each worker that reports usage).

    Args:
        workers: Returns the cluster's worker dicts; those with a ``usage`` sample are charted by ``name``.
        sample: Takes one sample of this machine (default :func:`~pipeline.system.monitor.sample_usage`).
        window_s: Samples older than this are dropped.
        every_s: Sampling interval of the background thread.
    """

    def __init__(
        self,
        workers: Callable[[], list[dict[str, Any]]] | None = None,
        sample: Callable[[], dict[str, Any]] = sample_usage,
        window_s: float = WINDOW_S,
        every_s: float = SAMPLE_EVERY_S,
    ) -> None:
        self.window_s, self.every_s = window_s, every_s
        self._workers, self._sample = workers, sample
        self._lock = threading.Lock()
        self._series: dict[str, deque[dict[str, Any]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start sampling in a daemon thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="usage-sampler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.record()
            except Exception:  # noqa: BLE001 - a failed round is a gap in the charts, never a dead sampler
                log.debug("usage sampling failed", exc_info=True)
            self._stop.wait(self.every_s)

    def record(self) -> None:
        """Take one round of samples: this host, then every worker that reports ``usage``."""
        rounds = [(HOST, self._sample())]
        for worker in self._workers() if self._workers is not None else []:
            usage = worker.get("usage")
            if isinstance(usage, dict) and usage.get("time"):
                rounds.append((str(worker.get("name") or worker.get("address") or "worker"), usage))
        cutoff = time.time() - self.window_s
        with self._lock:
            for source, sample in rounds:
                series = self._series.setdefault(source, deque())
                if series and series[-1].get("time") == sample.get("time"):
                    continue  # a worker's status not refreshed since the last round
                series.append(sample)
            for series in self._series.values():
                while series and float(series[0].get("time") or 0) < cutoff:
                    series.popleft()

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """A copy of every source's samples, oldest first."""
        with self._lock:
            return {source: list(series) for source, series in self._series.items() if series}
