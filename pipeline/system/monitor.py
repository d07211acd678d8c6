"""Live usage samples of this machine (CPU, RAM, GPUs) for the workbench's charts and the Dask workers' status."""

from __future__ import annotations

import logging
import time
from typing import Any

from pipeline.system.detect import probe_gpu, probe_memory

log = logging.getLogger(__name__)


def sample_usage() -> dict[str, Any]:
    """One live sample of this machine's load, for the workbench's charts and each Dask worker's status.

    ``cpu_percent`` is the whole machine's CPU use since the previous call in this process (the first call
    in a process gives 0.0), so call it at a steady interval. RAM honours a cgroup limit as
    :class:`~pipeline.system.detect.CoreHardwareDetector` does; GPUs come from the same NVML probe. Never
    raises: a failing probe leaves its part empty (0 or no GPUs).

    Returns:
        ``{"time" (epoch s), "cpu_percent", "ram_used_mb", "ram_total_mb",
        "gpus": [{"index", "name", "used_mb", "total_mb"}]}``.
    """
    sample: dict[str, Any] = {"time": time.time(), "cpu_percent": 0.0, "ram_used_mb": 0, "ram_total_mb": 0, "gpus": []}
    try:
        import psutil

        sample["cpu_percent"] = float(psutil.cpu_percent(interval=None))
        memory = probe_memory()
        sample["ram_total_mb"] = memory["memory_total_mb"]
        sample["ram_used_mb"] = max(0, memory["memory_total_mb"] - memory["memory_available_mb"])
    except Exception as exc:  # noqa: BLE001 - a sample is best effort: a chart gap, never a crash
        log.debug("usage sample: CPU/RAM probe failed: %s", exc)
    try:
        gpu = probe_gpu()
        totals, frees, names = gpu["gpu_memory_mb"], gpu["gpu_free_memory_mb"] or gpu["gpu_memory_mb"], gpu["gpu_names"]
        sample["gpus"] = [
            {
                "index": i,
                "name": names[i] if i < len(names) else f"GPU {i}",
                "used_mb": max(0, int(total) - int(frees[i] if i < len(frees) else total)),
                "total_mb": int(total),
            }
            for i, total in enumerate(totals)
        ]
    except Exception as exc:  # noqa: BLE001 - see above
        log.debug("usage sample: GPU probe failed: %s", exc)
    return sample
