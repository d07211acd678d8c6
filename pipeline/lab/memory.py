"""Memory of a process tree (resident memory of a process and its children) and of the GPUs, sampled over time."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

MIB = 1024 * 1024


#: How often a measured process tree's memory is sampled.
SAMPLE_EVERY_S = 0.05


class MemorySampler:
    """Samples, on a background thread, the resident memory of a process and all its descendants.

    GPU memory is the NVIDIA devices' used memory above what was used when sampling began (NVML through
    nvidia-ml-py; 0 without a GPU). Use as a context manager; afterwards ``peak_rss_mb``, ``peak_gpu_mb``
    and ``series`` (``(seconds, rss_mb, gpu_mb)`` samples) hold the figures.

    Args:
        pid: The root process (default: this one).
        every_s: Sampling interval.
    """

    def __init__(self, pid: int | None = None, every_s: float = SAMPLE_EVERY_S) -> None:
        self.pid = pid if pid is not None else os.getpid()
        self.every_s = every_s
        self.peak_rss_mb = 0.0
        self.peak_gpu_mb = 0.0
        self.series: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nvml: Any = None
        self._gpu_base = 0.0

    def __enter__(self) -> MemorySampler:
        self._nvml = open_nvml()
        self._gpu_base = self._gpu_used_mb()
        self._started = time.perf_counter()
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001 - NVML errors are classes built at run time; shutdown is best effort
                pass

    def sample(self) -> None:
        """Take one sample now."""
        rss = tree_rss_bytes(self.pid) / MIB
        gpu = max(0.0, self._gpu_used_mb() - self._gpu_base)
        self.peak_rss_mb = max(self.peak_rss_mb, rss)
        self.peak_gpu_mb = max(self.peak_gpu_mb, gpu)
        self.series.append((round(time.perf_counter() - self._started, 3), round(rss, 1), round(gpu, 1)))

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def _gpu_used_mb(self) -> float:
        if self._nvml is None:
            return 0.0
        try:
            count = self._nvml.nvmlDeviceGetCount()
            return (
                sum(
                    self._nvml.nvmlDeviceGetMemoryInfo(self._nvml.nvmlDeviceGetHandleByIndex(i)).used
                    for i in range(count)
                )
                / MIB
            )
        except Exception:  # noqa: BLE001 - NVML errors are classes built at run time; no GPU figure then
            return 0.0


def open_nvml() -> Any:
    """pynvml, initialised, or None where there is no NVIDIA driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no NVIDIA driver is the normal case on a CPU machine
        return None
    return pynvml


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` and all its descendants, in bytes (0 when it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in tree:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass  # it ended between listing and reading
    return total
