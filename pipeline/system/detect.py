"""Hardware detection: GPUs, cores, RAM and free space on the jobs folder's filesystem.

:class:`CoreHardwareDetector` finds GPUs (NVML first; ``torch.cuda`` only when torch is already imported),
cores, RAM and free space. Every probe runs in its own daemon thread with a timeout, so a hanging driver or a
broken library costs at most the timeout and yields conservative defaults plus a warning, never an exception.

Nothing here imports torch, a UI or Dask: ``video2srt --hardware`` must answer in well under 5 s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import platform
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.settings import default_jobs_dir

log = logging.getLogger(__name__)

MIB = 1024 * 1024
GIB = 1024 * MIB

#: How long one probe may take before its defaults are used instead.
PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class HardwareInfo:
    """What the machine offers for transcription (cores, memory, disk and GPUs, with names, free GPU memory and warnings).

    Memory figures are MiB (as nvidia-smi and psutil report them), disk space GiB.
    """

    gpu_count: int
    gpu_memory_mb: list[int]
    cuda_available: bool
    cpu_cores: int
    cpu_threads: int
    memory_total_mb: int
    memory_available_mb: int
    temp_space_available_gb: float
    gpu_names: list[str] = field(default_factory=list)
    gpu_free_memory_mb: list[int] = field(default_factory=list)
    platform: str = ""
    #: One line per probe that failed or timed out (its defaults were used instead).
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """All fields as plain JSON values."""
        data = dataclasses.asdict(self)
        data["warnings"] = list(self.warnings)
        return data


# --------------------------------------------------------------------------------------------------------------
# Probes: each returns a mapping of HardwareInfo fields (and optionally "warnings": a list of lines).

Probe = Callable[[], Mapping[str, Any]]

_GPU_DEFAULTS: dict[str, Any] = {
    "gpu_count": 0,
    "gpu_memory_mb": [],
    "gpu_free_memory_mb": [],
    "gpu_names": [],
    "cuda_available": False,
}
#: NVML errors that only mean "no NVIDIA driver here": the normal case on a CPU machine, not a warning.
_NO_DRIVER_ERRORS = ("NVMLError_LibraryNotFound", "NVMLError_DriverNotLoaded")


def _cpu_defaults() -> dict[str, Any]:
    threads = os.cpu_count() or 1
    # Unknown physical cores: assume two-way hyperthreading so that we never plan more threads than cores.
    return {"cpu_cores": max(1, threads // 2), "cpu_threads": threads}


def _memory_defaults() -> dict[str, Any]:
    # Unknown RAM: plan for a small machine (small batches, memory mapping on).
    return {"memory_total_mb": 4096, "memory_available_mb": 2048}


def _storage_defaults() -> dict[str, Any]:
    return {"temp_space_available_gb": 0.0}


def probe_gpu() -> dict[str, Any]:
    """GPUs through NVML; through ``torch.cuda`` only when NVML is unavailable and torch is already loaded."""
    nvml_error: BaseException | None = None
    try:
        import pynvml
    except ImportError as exc:
        nvml_error = exc
    else:
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - pynvml raises NVMLError subclasses built at run time
            nvml_error = exc
        else:
            try:
                return _nvml_devices(pynvml)
            finally:
                with contextlib.suppress(Exception):
                    pynvml.nvmlShutdown()
    torch = sys.modules.get("torch")
    if torch is not None:
        # Only when something else already paid for importing torch: importing it here would cost seconds.
        return _torch_devices(torch)
    result = dict(_GPU_DEFAULTS)
    if not isinstance(nvml_error, ImportError) and type(nvml_error).__name__ not in _NO_DRIVER_ERRORS:
        result["warnings"] = [f"GPU probe: NVML failed ({type(nvml_error).__name__}: {nvml_error}); assuming no GPU"]
    return result


def _nvml_devices(pynvml: Any) -> dict[str, Any]:
    count = int(pynvml.nvmlDeviceGetCount())
    names: list[str] = []
    total: list[int] = []
    free: list[int] = []
    for index in range(count):
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        total.append(int(memory.total) // MIB)
        free.append(int(memory.free) // MIB)
        try:
            name = pynvml.nvmlDeviceGetName(handle)
        except Exception:  # noqa: BLE001 - a missing name is cosmetic; the memory figures are what matter
            name = f"GPU {index}"
        names.append(name.decode(errors="replace") if isinstance(name, bytes) else str(name))
    return {
        "gpu_count": count,
        "gpu_memory_mb": total,
        "gpu_free_memory_mb": free,
        "gpu_names": names,
        "cuda_available": count > 0,
    }


def _torch_devices(torch: Any) -> dict[str, Any]:
    if not torch.cuda.is_available():
        return dict(_GPU_DEFAULTS)
    count = int(torch.cuda.device_count())
    names: list[str] = []
    total: list[int] = []
    free: list[int] = []
    for index in range(count):
        props = torch.cuda.get_device_properties(index)
        names.append(str(props.name))
        total.append(int(props.total_memory) // MIB)
        if torch.cuda.is_initialized():
            free.append(int(torch.cuda.mem_get_info(index)[0]) // MIB)
        else:
            # mem_get_info would create a CUDA context (hundreds of MB on every GPU) just to look.
            free.append(total[-1])
    return {
        "gpu_count": count,
        "gpu_memory_mb": total,
        "gpu_free_memory_mb": free,
        "gpu_names": names,
        "cuda_available": count > 0,
    }


def _probe_cpu() -> dict[str, Any]:
    import psutil

    threads = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    cores = psutil.cpu_count(logical=False) or threads
    return {"cpu_cores": int(cores), "cpu_threads": int(threads)}


def _cgroup_memory_mb() -> tuple[int, int] | None:
    """(limit, current) of a cgroup v2 memory limit, when one is set: psutil reports the host's RAM."""
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        current = int((root / "memory.current").read_text().strip())
        return int(limit) // MIB, current // MIB
    except (OSError, ValueError):
        return None


def probe_memory() -> dict[str, Any]:
    import psutil

    vm = psutil.virtual_memory()
    total = int(vm.total) // MIB
    available = int(vm.available) // MIB
    cgroup = _cgroup_memory_mb()
    if cgroup is not None and cgroup[0] < total:
        total = cgroup[0]
        available = max(0, min(available, cgroup[0] - cgroup[1]))
    return {"memory_total_mb": total, "memory_available_mb": available}


def _probe_storage(jobs_dir: Path) -> dict[str, Any]:
    # The jobs folder may not exist yet; measure the filesystem it will live on without creating it.
    path = jobs_dir.expanduser().absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return {"temp_space_available_gb": round(shutil.disk_usage(path).free / GIB, 1)}


# --------------------------------------------------------------------------------------------------------------
# Detector

_FIELD_TYPES: dict[str, Callable[[Any], Any]] = {
    "gpu_count": int,
    "gpu_memory_mb": lambda v: [int(x) for x in v],
    "gpu_free_memory_mb": lambda v: [int(x) for x in v],
    "gpu_names": lambda v: [str(x) for x in v],
    "cuda_available": bool,
    "cpu_cores": int,
    "cpu_threads": int,
    "memory_total_mb": int,
    "memory_available_mb": int,
    "temp_space_available_gb": float,
}

_CACHE: dict[str, HardwareInfo] = {}
_CACHE_LOCK = threading.Lock()


class CoreHardwareDetector:
    """Detects the hardware once per process (``detect(refresh=True)`` probes again).

    Args:
        jobs_dir: The jobs folder whose filesystem's free space is reported (default: the configured one).
        timeout_s: How long each probe may take; all probes run at once, so this bounds ``detect()``.
        probes: Replacements for the ``gpu``, ``cpu``, ``memory`` and ``storage`` probes (tests, other
            platforms). A detector with injected probes keeps its own cache instead of the process one.
    """

    PROBE_NAMES = ("gpu", "cpu", "memory", "storage")

    def __init__(
        self,
        jobs_dir: Path | None = None,
        *,
        timeout_s: float = PROBE_TIMEOUT_S,
        probes: Mapping[str, Probe] | None = None,
    ) -> None:
        unknown = set(probes or {}) - set(self.PROBE_NAMES)
        if unknown:
            raise ValueError(f"unknown probes {sorted(unknown)}: use {', '.join(self.PROBE_NAMES)}")
        self.jobs_dir = Path(jobs_dir) if jobs_dir is not None else default_jobs_dir()
        self.timeout_s = timeout_s
        jobs = self.jobs_dir
        self._probes: dict[str, Probe] = {
            "gpu": probe_gpu,
            "cpu": _probe_cpu,
            "memory": probe_memory,
            "storage": lambda: _probe_storage(jobs),
        }
        self._probes.update(probes or {})
        self._defaults: dict[str, Callable[[], dict[str, Any]]] = {
            "gpu": lambda: dict(_GPU_DEFAULTS),
            "cpu": _cpu_defaults,
            "memory": _memory_defaults,
            "storage": _storage_defaults,
        }
        # Only the real probes describe "this process's machine"; injected ones stay with their detector.
        self._cache_key = None if probes else str(self.jobs_dir.expanduser().absolute())
        self._info: HardwareInfo | None = None
        self._lock = threading.Lock()

    def detect(self, refresh: bool = False) -> HardwareInfo:
        """Return the machine's :class:`HardwareInfo`, probing only on first use or when ``refresh``.

        Never raises for a failing or hanging probe: its conservative defaults are used and a line naming
        it is added to ``warnings``.
        """
        with self._lock:
            if not refresh:
                if self._info is not None:
                    return self._info
                if self._cache_key is not None:
                    with _CACHE_LOCK:
                        cached = _CACHE.get(self._cache_key)
                    if cached is not None:
                        self._info = cached
                        return cached
            info = self._probe_all()
            self._info = info
            if self._cache_key is not None:
                with _CACHE_LOCK:
                    _CACHE[self._cache_key] = info
            return info

    def _probe_all(self) -> HardwareInfo:
        started = time.monotonic()
        boxes: dict[str, dict[str, Any]] = {name: {} for name in self.PROBE_NAMES}
        threads: dict[str, threading.Thread] = {}
        for name in self.PROBE_NAMES:
            thread = threading.Thread(
                target=_run_into, args=(self._probes[name], boxes[name]), name=f"video2srt-probe-{name}", daemon=True
            )
            thread.start()
            threads[name] = thread
        deadline = started + self.timeout_s
        fields: dict[str, Any] = {}
        warnings: list[str] = []
        for name in self.PROBE_NAMES:
            threads[name].join(max(0.0, deadline - time.monotonic()))
            box = dict(boxes[name])  # a snapshot: a late probe may still write into the original
            defaults = self._defaults[name]()
            if threads[name].is_alive() and "value" not in box:
                warnings.append(f"{name} probe did not answer within {self.timeout_s:g} s; using defaults")
                fields.update(defaults)
            elif "error" in box:
                exc = box["error"]
                warnings.append(f"{name} probe failed ({type(exc).__name__}: {exc}); using defaults")
                fields.update(defaults)
            else:
                fields.update(self._coerce(name, box["value"], defaults, warnings))
        info = HardwareInfo(**fields, platform=_platform_name(), warnings=tuple(warnings))
        for line in warnings:
            log.warning("hardware detection: %s", line)
        log.debug("hardware detected in %.3f s: %s", time.monotonic() - started, info)
        return info

    @staticmethod
    def _coerce(name: str, value: Mapping[str, Any], defaults: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        out = dict(defaults)
        for key, raw in value.items():
            if key == "warnings":
                warnings.extend(str(line) for line in raw)
            elif key in _FIELD_TYPES:
                try:
                    out[key] = _FIELD_TYPES[key](raw)
                except (TypeError, ValueError):
                    warnings.append(f"{name} probe gave a bad {key} ({raw!r}); using the default")
        return out


def _run_into(probe: Probe, box: dict[str, Any]) -> None:
    try:
        box["value"] = dict(probe())
    except Exception as exc:  # noqa: BLE001 - isolation: any failure of a probe becomes a warning, never fatal
        box["error"] = exc


def _platform_name() -> str:
    return f"{platform.system() or sys.platform}-{platform.machine() or 'unknown'}"
