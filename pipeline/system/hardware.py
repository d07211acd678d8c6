"""Hardware detection, the optimizer that turns it into job defaults, and CPU affinity.

:class:`CoreHardwareDetector` finds GPUs (NVML first; ``torch.cuda`` only when torch is already imported),
cores, RAM and free space on the jobs folder's filesystem. Every probe runs in its own daemon thread with a
timeout, so a hanging driver or a broken library costs at most the timeout and yields conservative defaults
plus a warning, never an exception. :class:`CoreOptimizer` turns a :class:`HardwareInfo` into
:class:`OptimizedSettings` (batch size, concurrency, memory mapping, affinity, device, model, compute type),
each decision with a one-line reason. :func:`apply_cpu_affinity` binds a transcription worker process to
its share of the cores.

Nothing here imports torch, a UI or Dask: ``video2srt --hardware`` must answer in well under 5 s.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import dataclasses
import functools
import gc
import importlib.util
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

from pipeline.asr.models import BUNDLED, SPLIT_THREADS_BELOW, auto_replicas, default_model_name, resolve_compute_type
from pipeline.core.errors import UsageError
from pipeline.core.settings import AUTO_MODEL, default_jobs_dir

log = logging.getLogger(__name__)

MIB = 1024 * 1024
GIB = 1024 * MIB

#: How long one probe may take before its defaults are used instead.
PROBE_TIMEOUT_S = 2.0

#: Decoded audio of a long (2 h) input: 16 kHz mono float32, in MiB (460.8 MB decimal).
LONG_AUDIO_MB = 2 * 3600 * 16000 * 4 / MIB
#: Memory mapping is used once the in-RAM copies of that audio would take more than this share of free RAM.
MEMORY_MAP_SHARE = 0.10

#: Batches beyond this give no measurable speed-up on one GPU and only raise the risk of running out of memory.
GPU_BATCH_CAP = 32
#: On the CPU every batch item already keeps all threads busy; batching only amortises per-call overhead,
#: which 8 items do (measured on tiny.en, 2 cores), while bigger batches just cost RAM.
CPU_BATCH_CAP = 8
#: Windows per call when a worker runs several replicas (lanes) side by side. The lanes pull the next call
#: as they free up, so the work left when the queue runs dry is at most one call per lane: with big calls
#: the last one ran alone on one core while the other idled. Small calls also hold fewer windows' encoder
#: activations at once (peak memory) and cost no more CPU time (benchmarks/README.md, "Lanes").
CPU_LANE_BATCH = 2
#: GPU memory kept free for the CUDA context, cuBLAS/cuDNN workspaces and fragmentation.
GPU_RESERVE_SHARE = 0.10
GPU_RESERVE_MIN_MB = 512
#: Transcription workers together may use this share of the available RAM; the rest is for the coordinator
#: (decoding, VAD), the page cache and everything else on the machine.
CPU_RAM_SHARE = 0.5
#: One worker process before any model: Python, NumPy, PyAV, CTranslate2, faster-whisper.
WORKER_OVERHEAD_MB = 400
#: More CPU workers than this on one machine add scheduling and memory cost for little gain.
CPU_MAX_WORKERS = 4
#: CTranslate2 threads per CPU worker: small models' matrices are too small to keep more than ~4 threads
#: busy in a decode step, so several 4-thread workers beat one wide one; medium/large use 8.
CPU_THREADS_SMALL_MODEL = 4
CPU_THREADS_LARGE_MODEL = 8
#: GPU workers use CPU threads only around the GPU work (CTranslate2 host side); a few are plenty.
GPU_WORKER_CPU_THREADS = 4

AFFINITY_STRATEGIES = ("auto", "half", "all", "none")


@dataclass(frozen=True)
class ModelFootprint:
    """Approximate memory of one Whisper model size at float16.

    Attributes:
        weights_mb: Weights plus the runtime's fixed buffers, loaded and ready (batch of one).
        per_item_mb: Extra memory per batch item (encoder activations for 30 s, decoder KV cache, beam 5).
    """

    weights_mb: int
    per_item_mb: int


#: Rough figures for CTranslate2 at float16 (faster-whisper's published measurements scaled by size:
#: large-v2 takes ~4.7 GB with beam 5 and ~6 GB at batch 8). Per-item cost grows with width × depth,
#: so it is roughly proportional to the weights (~7-8 %); turbo and distil have large encoders but tiny
#: decoders. Checked in the order given, so "turbo" and "distil" win over "large".
MODEL_FOOTPRINTS: tuple[tuple[str, ModelFootprint], ...] = (
    ("turbo", ModelFootprint(1700, 200)),
    ("distil-large", ModelFootprint(1700, 200)),
    ("large", ModelFootprint(4700, 350)),
    ("medium", ModelFootprint(2600, 200)),
    ("small", ModelFootprint(1000, 80)),
    ("base", ModelFootprint(300, 30)),
    ("tiny", ModelFootprint(150, 20)),
)
#: An unknown model is sized as a large one, so that a guess never overfills the GPU.
UNKNOWN_MODEL_FOOTPRINT = ModelFootprint(4700, 350)

#: Weights relative to float16: int8 halves them; float32 doubles them.
_WEIGHT_FACTOR = {"float32": 2.0, "int8": 0.5, "int8_float16": 0.5, "int8_bfloat16": 0.5, "int8_float32": 0.5}
#: Activations relative to float16: int8 on the CPU computes in float32.
_ACTIVATION_FACTOR = {"float32": 2.0, "int8": 2.0, "int8_float32": 2.0}


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


@dataclass(frozen=True)
class OptimizedSettings:
    """The optimizer's defaults for jobs on this machine; ``reasons`` says why, one line per field."""

    batch_size: int
    concurrency: int
    use_memory_mapping: bool
    cpu_affinity_cores: list[int]
    cpu_affinity_strategy: str
    device: str
    compute_type: str
    model: str
    cpu_threads: int
    replicas: int = 1
    reasons: dict[str, str] = field(default_factory=dict)
    #: For ``auto``: the model of languages other than English (``model`` is English's); else ``model``.
    multilingual_model: str = ""

    def as_dict(self) -> dict[str, Any]:
        """All fields as plain JSON values."""
        return dataclasses.asdict(self)


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


def _probe_gpu() -> dict[str, Any]:
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


def _probe_memory() -> dict[str, Any]:
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


@functools.lru_cache(maxsize=1)
def _libc() -> Any:  # noqa: ANN401 - a ctypes library, or None
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


#: Seconds between two heap trims (:func:`trim_heap`).
TRIM_EVERY_S = 20.0
_trimmed_at = [0.0]


def trim_heap() -> None:
    """Hand the C heap's free pages back to the system now and then (glibc ``malloc_trim``; elsewhere nothing).

    Batches running side by side on several threads free their encoder activations (~0.5 GB for 8 windows
    of tiny.en) into different malloc arenas, which glibc keeps: over the 2-hour input the process grew to
    1.8 GB where the 10-minute one peaks at 1.2–1.5 GB. A trim after every batch held the 2-hour run at
    1.6 GB but cost 10% of its time (the next batch faults the pages in again), so trims are at least
    ``TRIM_EVERY_S`` apart: fragmentation grows slowly.
    """
    libc = _libc()
    now = time.monotonic()
    if libc is None or now - _trimmed_at[0] < TRIM_EVERY_S:
        return
    _trimmed_at[0] = now
    libc.malloc_trim(0)


@functools.cache
def skip_heap_walk_at_exit() -> None:
    """Let this process exit without the interpreter's last garbage collection over every live object.

    With Dask and its bokeh dashboard imported that walk took 0.3–0.4 s of a CLI run's exit (``gc.freeze``
    at exit: ``python -c "import distributed.dashboard.scheduler"`` exits in 0.95 s instead of 1.34 s).
    Registered with :mod:`atexit` (once, however often this is called), so it only runs as the process ends,
    after the exit handlers registered later; files are flushed as usual.
    """
    atexit.register(gc.freeze)


def sample_usage() -> dict[str, Any]:
    """One live sample of this machine's load, for the workbench's charts and each Dask worker's status.

    ``cpu_percent`` is the whole machine's CPU use since the previous call in this process (the first call
    in a process gives 0.0), so call it at a steady interval. RAM honours a cgroup limit as
    :class:`CoreHardwareDetector` does; GPUs come from the same NVML probe. Never raises: a failing probe
    leaves its part empty (0 or no GPUs).

    Returns:
        ``{"time" (epoch s), "cpu_percent", "ram_used_mb", "ram_total_mb",
        "gpus": [{"index", "name", "used_mb", "total_mb"}]}``.
    """
    sample: dict[str, Any] = {"time": time.time(), "cpu_percent": 0.0, "ram_used_mb": 0, "ram_total_mb": 0, "gpus": []}
    try:
        import psutil

        sample["cpu_percent"] = float(psutil.cpu_percent(interval=None))
        memory = _probe_memory()
        sample["ram_total_mb"] = memory["memory_total_mb"]
        sample["ram_used_mb"] = max(0, memory["memory_total_mb"] - memory["memory_available_mb"])
    except Exception as exc:  # noqa: BLE001 - a sample is best effort: a chart gap, never a crash
        log.debug("usage sample: CPU/RAM probe failed: %s", exc)
    try:
        gpu = _probe_gpu()
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
            "gpu": _probe_gpu,
            "cpu": _probe_cpu,
            "memory": _probe_memory,
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


# --------------------------------------------------------------------------------------------------------------
# CPU affinity


def parse_core_list(value: str) -> list[int]:
    """Parse a core list such as ``"0-3,8"`` into sorted, distinct core numbers.

    Raises:
        UsageError: The text is not a list of numbers and ascending ranges.
    """
    cores: set[int] = set()
    for part in value.replace(" ", "").split(","):
        if not part:
            continue
        low, sep, high = part.partition("-")
        try:
            first = int(low)
            last = int(high) if sep else first
        except ValueError:
            raise UsageError(f"bad core list {value!r}: use numbers and ranges like 0-3,8") from None
        if first < 0 or last < first:
            raise UsageError(f"bad core range {part!r} in {value!r}: use ascending ranges like 0-3")
        cores.update(range(first, last + 1))
    if not cores:
        raise UsageError(f"empty core list {value!r}: use numbers and ranges like 0-3,8")
    return sorted(cores)


def format_core_list(cores: list[int]) -> str:
    """Write cores compactly, e.g. ``[0, 1, 2, 3, 8]`` as ``"0-3,8"``."""
    parts: list[str] = []
    ordered = sorted(set(cores))
    index = 0
    while index < len(ordered):
        end = index
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        parts.append(str(ordered[index]) if end == index else f"{ordered[index]}-{ordered[end]}")
        index = end + 1
    return ",".join(parts)


def effective_affinity_strategy(strategy: str, device: str) -> str:
    """Resolve ``auto``: ``half`` when transcription runs on a GPU (the CPU side is light, and the other half
    stays free for decoding and VAD), ``all`` on the CPU (transcription is the work). Other values pass."""
    strategy = strategy.strip().lower().replace(" ", "")
    if strategy == "auto":
        return "half" if device == "cuda" else "all"
    return strategy


def _plan_affinity(strategy: str, device: str, cpu_count: int) -> tuple[list[int] | None, str]:
    """Cores for ``strategy`` and a note on anything dropped (empty when nothing was)."""
    cpu_count = max(1, cpu_count)
    resolved = effective_affinity_strategy(strategy, device)
    if resolved == "none":
        return None, ""
    if resolved == "all":
        return list(range(cpu_count)), ""
    if resolved == "half":
        return list(range(max(1, cpu_count // 2))), ""
    try:
        wanted = parse_core_list(resolved)
    except UsageError:
        raise UsageError(
            f"bad CPU affinity {strategy!r}: use auto, half, all, none, or a core list like 0-3,8"
        ) from None
    kept = [core for core in wanted if core < cpu_count]
    dropped = [core for core in wanted if core >= cpu_count]
    if not dropped:
        return kept, ""
    note = f"cores {format_core_list(dropped)} do not exist on this {cpu_count}-CPU machine and were dropped"
    if not kept:
        return list(range(cpu_count)), note + "; none left, so all cores are used"
    return kept, note


def affinity_cores(strategy: str, device: str, cpu_count: int) -> list[int] | None:
    """The cores a transcription worker is bound to.

    Args:
        strategy: ``auto`` (``half`` on a GPU, ``all`` on the CPU), ``half`` (the first 50 % of the CPUs),
            ``all``, ``none``, or a list such as ``0-3,8``. Listed cores outside the machine are dropped with
            a warning; when none is left, all cores are used.
        device: Where transcription runs (``cuda`` or ``cpu``); decides ``auto``.
        cpu_count: Logical CPUs of the machine.

    Returns:
        Sorted core numbers, or ``None`` for ``none`` (leave the affinity as it is).

    Raises:
        UsageError: ``strategy`` is none of the above.
    """
    cores, note = _plan_affinity(strategy, device, cpu_count)
    if note:
        log.warning("CPU affinity %s: %s", strategy, note)
    return cores


def apply_cpu_affinity(strategy: str, device: str) -> list[int] | None:
    """Bind the current process to the cores of ``strategy`` (see :func:`affinity_cores`). Never raises.

    Works through psutil on Linux and Windows. On other platforms, for a bad strategy, or when the system
    refuses, it logs why and carries on unbound.

    Returns:
        The cores the process is bound to now, or ``None`` when nothing was applied.
    """
    try:
        import psutil

        process = psutil.Process()
        if not hasattr(process, "cpu_affinity"):
            log.info("CPU affinity is not supported on %s; leaving it as is", sys.platform)
            return None
        cpu_count = psutil.cpu_count(logical=True) or os.cpu_count() or 1
        cores = affinity_cores(strategy, device, cpu_count)
        if cores is None:
            log.info("CPU affinity: strategy none, leaving it as is")
            return None
        process.cpu_affinity(cores)
        applied = sorted(process.cpu_affinity())
    except Exception as exc:  # noqa: BLE001 - binding is an optimisation; it must never stop a worker
        log.warning("CPU affinity %r not applied (%s: %s); carrying on unbound", strategy, type(exc).__name__, exc)
        return None
    log.info("CPU affinity: pid %d bound to cores %s (strategy %s)", os.getpid(), format_core_list(applied), strategy)
    return applied


# --------------------------------------------------------------------------------------------------------------
# Optimizer


def model_footprint(model: str) -> ModelFootprint:
    """Approximate float16 memory of ``model`` (a Whisper name or a CTranslate2 folder); see MODEL_FOOTPRINTS."""
    path = Path(model).expanduser()
    name = path.name.lower() if path.name else model.lower()
    for family, footprint in MODEL_FOOTPRINTS:
        if family in name:
            return footprint
    weights = path / "model.bin"
    if weights.is_file():
        # An unnamed converted model: its file is about its float16 weights; scale the per-item cost alike.
        size_mb = weights.stat().st_size // MIB
        return ModelFootprint(int(size_mb * 1.5) + 100, max(20, int(size_mb * 0.075)))
    return UNKNOWN_MODEL_FOOTPRINT


def model_memory_mb(model: str, compute_type: str, batch_size: int = 1) -> int:
    """Approximate memory (MiB) of ``model`` in ``compute_type`` decoding ``batch_size`` windows at once."""
    footprint = model_footprint(model)
    weights = footprint.weights_mb * _WEIGHT_FACTOR.get(compute_type, 1.0)
    per_item = footprint.per_item_mb * _ACTIVATION_FACTOR.get(compute_type, 1.0)
    return int(weights + batch_size * per_item)


def _gpu_usable_mb(info: HardwareInfo) -> list[int]:
    usable: list[int] = []
    for index, total in enumerate(info.gpu_memory_mb):
        free = info.gpu_free_memory_mb[index] if index < len(info.gpu_free_memory_mb) else total
        reserve = max(GPU_RESERVE_MIN_MB, int(total * GPU_RESERVE_SHARE))
        usable.append(max(0, min(free, total) - reserve))
    return usable


def _gb(mb: float) -> str:
    return f"{mb / 1024:.1f} GB"


_REASON_ORDER = (
    "batch_size",
    "concurrency",
    "use_memory_mapping",
    "cpu_affinity_cores",
    "cpu_affinity_strategy",
    "device",
    "compute_type",
    "model",
    "multilingual_model",
    "cpu_threads",
    "replicas",
)


class CoreOptimizer:
    """Turns :class:`HardwareInfo` into the defaults of every job, each with a one-line reason."""

    def optimize(
        self,
        info: HardwareInfo,
        *,
        device: str = "auto",
        compute_type: str = "auto",
        model: str = AUTO_MODEL,
        cpu_affinity: str = "auto",
    ) -> OptimizedSettings:
        """Decide device, model, compute type, batch size, concurrency, memory mapping and affinity.

        Args:
            info: The machine, from :meth:`CoreHardwareDetector.detect`.
            device: ``auto``, ``cpu`` or ``cuda``; anything but ``auto`` is kept as asked.
            compute_type: ``auto`` or a CTranslate2 compute type; ``auto`` goes through
                :func:`pipeline.asr.models.resolve_compute_type`.
            model: ``auto`` (:func:`pipeline.asr.models.default_model_name`), a Whisper name or a model folder.
            cpu_affinity: ``auto``, ``half``, ``all``, ``none`` or a core list like ``0-3,8``.

        Raises:
            UsageError: ``cpu_affinity`` is not a known strategy or core list.
        """
        reasons: dict[str, str] = {}
        usable = _gpu_usable_mb(info)
        free = [
            info.gpu_free_memory_mb[i] if i < len(info.gpu_free_memory_mb) else total
            for i, total in enumerate(info.gpu_memory_mb)
        ]
        best_free = max(free, default=0)

        # Device: a GPU only when one can hold the model with at least one batch item.
        gpu_compute = resolve_compute_type(compute_type, "cuda")
        gpu_model = model if model != AUTO_MODEL else default_model_name("cuda", best_free)
        need = model_memory_mb(gpu_model, gpu_compute, 1)
        fitting = [i for i, room in enumerate(usable) if room >= need]
        if device != "auto":
            chosen_device = device
            note = "" if device != "cuda" or info.cuda_available else "; no CUDA GPU was detected, loading may fail"
            reasons["device"] = f"{device} as requested{note}"
        elif info.cuda_available and fitting:
            chosen_device = "cuda"
            reasons["device"] = (
                f"cuda: {len(fitting)} of {info.gpu_count} GPU(s) have room for {gpu_model} "
                f"(~{need} MB with one batch item)"
            )
        elif info.cuda_available and info.gpu_count:
            chosen_device = "cpu"
            reasons["device"] = (
                f"cpu: no GPU has room for {gpu_model} (~{need} MB needed, at most {max(usable, default=0)} MB "
                f"usable after a {GPU_RESERVE_MIN_MB} MB / {GPU_RESERVE_SHARE:.0%} reserve)"
            )
        else:
            chosen_device = "cpu"
            reasons["device"] = "cpu: no CUDA GPU detected"

        chosen_compute = resolve_compute_type(compute_type, chosen_device)
        reasons["compute_type"] = (
            f"{chosen_compute} as requested"
            if compute_type != "auto"
            else f"{chosen_compute}: the fastest accurate type on {chosen_device} (float16 on CUDA, int8 on CPU)"
        )

        other_model = model
        if model != AUTO_MODEL:
            chosen_model = model
            reasons["model"] = f"{model} as requested"
            reasons["multilingual_model"] = f"{model} as requested, for every language"
        else:
            gpu_mb = best_free if chosen_device == "cuda" else 0
            chosen_model = default_model_name(chosen_device, gpu_mb)
            if chosen_device == "cuda" and chosen_model != BUNDLED:
                reasons["model"] = (
                    f"{chosen_model}: CUDA GPU with {_gb(best_free)} free (a GPU with enough memory runs "
                    f"{chosen_model}); the bundled {BUNDLED} is used if it is not available offline"
                )
            elif chosen_device == "cuda":
                reasons["model"] = f"bundled {BUNDLED}: {_gb(best_free)} free GPU memory is too little for medium"
            else:
                reasons["model"] = f"bundled {BUNDLED}: always available offline and fast enough on the CPU"
            other_model = chosen_model
            reasons["multilingual_model"] = "the model above, for every language"
            if _catalogue_ready():
                from pipeline.asr.models import choose_model

                english, why_english = choose_model("en", chosen_device, gpu_mb)
                other_model, why_other = choose_model("xx", chosen_device, gpu_mb)
                if chosen_device == "cpu" or english != BUNDLED:
                    chosen_model = english  # what auto really runs for English (a model that is here)
                reasons["model"] = f"auto for English: {why_english}" if chosen_model == english else reasons["model"]
                reasons["multilingual_model"] = (
                    f"auto for other languages: {why_other}; with --language unset the language is detected first "
                    "on the multilingual base, on speech windows only"
                )

        strategy = effective_affinity_strategy(cpu_affinity, chosen_device)
        cores, note = _plan_affinity(cpu_affinity, chosen_device, info.cpu_threads)
        if cores is None:
            reasons["cpu_affinity_cores"] = "not bound (strategy none): the OS schedules workers on any core"
        else:
            why = {
                "half": "the first half of the CPUs for transcription; the rest stays free for decoding and VAD",
                "all": "all CPUs: transcription on the CPU is the work itself",
            }.get(strategy, "the listed cores")
            reasons["cpu_affinity_cores"] = f"cores {format_core_list(cores)}: {why}" + (f"; {note}" if note else "")
        reasons["cpu_affinity_strategy"] = (
            f"{strategy}: resolved from auto for {chosen_device}"
            if cpu_affinity.strip().lower() == "auto"
            else f"{strategy} as requested"
        )
        # Workers can use no more physical cores than they are bound to.
        core_budget = max(1, min(info.cpu_cores, len(cores) if cores is not None else info.cpu_threads))

        if chosen_device == "cuda":
            batch_size, concurrency, cpu_threads = self._gpu_plan(
                info, usable, chosen_model, chosen_compute, core_budget, reasons
            )
            replicas = 1
            reasons["replicas"] = "1 per worker: one model per GPU, whose batches already fill it"
        else:
            batch_size, concurrency, cpu_threads, replicas = self._cpu_plan(
                info, chosen_model, chosen_compute, core_budget, reasons
            )

        copies = concurrency + 1
        in_ram = LONG_AUDIO_MB * copies
        available = info.memory_available_mb
        use_mmap = available <= 0 or in_ram > MEMORY_MAP_SHARE * available
        share = f"{in_ram / available:.1%}" if available > 0 else "an unknown share"
        reasons["use_memory_mapping"] = (
            f"{'on' if use_mmap else 'off'}: a 2 h input decodes to ~{LONG_AUDIO_MB:.0f} MB; {copies} copies "
            f"(coordinator + {concurrency} worker(s)) would take {share} of {_gb(available)} available RAM "
            f"({'over' if use_mmap else 'within'} {MEMORY_MAP_SHARE:.0%})"
        )

        return OptimizedSettings(
            batch_size=batch_size,
            concurrency=concurrency,
            use_memory_mapping=use_mmap,
            cpu_affinity_cores=cores if cores is not None else [],
            cpu_affinity_strategy=strategy,
            device=chosen_device,
            compute_type=chosen_compute,
            model=chosen_model,
            cpu_threads=cpu_threads,
            replicas=replicas,
            multilingual_model=other_model if other_model != AUTO_MODEL else chosen_model,
            # In field order, so that JSON readers see the reasons as they see the fields.
            reasons={name: reasons[name] for name in _REASON_ORDER if name in reasons},
        )

    @staticmethod
    def _gpu_plan(
        info: HardwareInfo,
        usable: list[int],
        model: str,
        compute_type: str,
        core_budget: int,
        reasons: dict[str, str],
    ) -> tuple[int, int, int]:
        weights = model_memory_mb(model, compute_type, 0)
        per_item = max(1, model_memory_mb(model, compute_type, 1) - weights)
        fitting = [room for room in usable if room >= weights + per_item]
        if not fitting:
            # Only reached when cuda was asked for explicitly; nothing to size from, so stay modest.
            reasons["batch_size"] = f"8: no GPU memory figures to size {model} from"
            reasons["concurrency"] = "1 worker: no GPU with room for the model was detected"
            threads = max(1, min(GPU_WORKER_CPU_THREADS, core_budget))
            reasons["cpu_threads"] = f"{threads}: CPU threads serve only the host side of GPU work"
            return 8, 1, threads
        room = min(fitting)
        batch = max(1, min(GPU_BATCH_CAP, (room - weights) // per_item))
        capped = (room - weights) // per_item > GPU_BATCH_CAP
        reasons["batch_size"] = (
            f"{batch}: {model} ({compute_type}) takes ~{weights} MB plus ~{per_item} MB per item, "
            f"{room} MB usable on the smallest GPU"
            + (f"; capped at {GPU_BATCH_CAP}, beyond which a GPU gains nothing" if capped else "")
        )
        concurrency = len(fitting)
        reasons["concurrency"] = (
            f"{concurrency} worker(s): one per GPU with room for the model"
            + ("" if concurrency == info.gpu_count else f" ({info.gpu_count - concurrency} GPU(s) too full)")
            + "; two models on one GPU would only halve each one's batch"
        )
        threads = max(1, min(GPU_WORKER_CPU_THREADS, core_budget // concurrency))
        reasons["cpu_threads"] = (
            f"{threads} per worker: CTranslate2's CPU threads serve only the host side of GPU work "
            f"({core_budget} bound cores shared by {concurrency} worker(s))"
        )
        return batch, concurrency, threads

    @staticmethod
    def _cpu_plan(
        info: HardwareInfo, model: str, compute_type: str, core_budget: int, reasons: dict[str, str]
    ) -> tuple[int, int, int, int]:
        weights = model_memory_mb(model, compute_type, 0) + WORKER_OVERHEAD_MB
        per_item = max(1, model_memory_mb(model, compute_type, 1) - model_memory_mb(model, compute_type, 0))
        ram_budget = max(0, int(info.memory_available_mb * CPU_RAM_SHARE))

        large = model_footprint(model).weights_mb >= model_footprint("medium").weights_mb
        target_threads = CPU_THREADS_LARGE_MODEL if large else CPU_THREADS_SMALL_MODEL
        workers = max(1, min(CPU_MAX_WORKERS, core_budget // target_threads))
        batch = CPU_BATCH_CAP
        by_cores = workers
        while workers > 1 and workers * (weights + batch * per_item) > ram_budget:
            workers -= 1
        ram_limited_workers = workers < by_cores
        room = ram_budget - weights
        if room < batch * per_item:
            batch = max(1, room // per_item)
        threads = max(1, core_budget // workers)

        reasons["batch_size"] = (
            f"{batch}: on the CPU each item already keeps every thread busy, so {CPU_BATCH_CAP} only amortises "
            f"per-call overhead"
            + (
                f"; limited by RAM ({model} needs ~{weights} MB plus ~{per_item} MB per item, {ram_budget} MB allowed)"
                if batch < CPU_BATCH_CAP
                else f"; {workers} × ~{weights + batch * per_item} MB fits in {ram_budget} MB "
                f"({CPU_RAM_SHARE:.0%} of available RAM)"
            )
        )
        if workers == 1 and not ram_limited_workers:
            why = (
                f"fewer than {2 * target_threads} usable cores, so one worker gets them all "
                f"(splitting would leave each with too few threads)"
            )
        elif ram_limited_workers:
            why = f"RAM allows only {workers} copies of {model} within {ram_budget} MB"
        else:
            why = (
                f"{model} keeps ~{target_threads} threads busy per decode step, so several workers use "
                f"{core_budget} cores better than one wide one (at most {CPU_MAX_WORKERS})"
            )
        reasons["concurrency"] = f"{workers} worker(s) × {threads} threads ≤ {core_budget} usable cores: {why}"
        reasons["cpu_threads"] = (
            f"{threads} CTranslate2 threads per worker: the {core_budget} usable cores split over {workers} worker(s)"
        )
        replicas = auto_replicas("cpu", threads)
        # Each replica holds a batch's activations (a batch of 8 with tiny.en measured ~+570 MB peak RSS).
        need = workers * (weights + replicas * batch * per_item)
        if replicas > 1 and need > ram_budget:
            reasons["replicas"] = (
                f"1: {replicas} batches at once per worker would need ~{need} MB, over {ram_budget} MB"
            )
            replicas = 1
        elif replicas > 1:
            reasons["replicas"] = (
                f"{replicas} per worker, one thread each: with fewer than {SPLIT_THREADS_BELOW} threads a small "
                "model runs batches side by side far better than one batch on every thread (measured on 2 "
                "cores: 1.2-1.3x faster)"
            )
            if batch > CPU_LANE_BATCH:
                batch = CPU_LANE_BATCH
                reasons["batch_size"] = (
                    f"{batch}: {replicas} lanes each pull the next call as they free up, so small calls keep "
                    f"every lane busy to the end (with {CPU_BATCH_CAP}-window calls the last one ran alone on "
                    "one core) and hold fewer windows' activations in memory"
                )
        else:
            reasons["replicas"] = f"1 per worker: {threads} thread(s) serve one batch at a time well"
        return batch, workers, threads, replicas


# --------------------------------------------------------------------------------------------------------------
# Summary and report


def _catalogue_ready() -> bool:
    """Whether faster-whisper's model table can be read (the catalogue needs it for ``auto``)."""
    return importlib.util.find_spec("faster_whisper") is not None


def _gpu_line(info: HardwareInfo) -> str:
    if not info.gpu_count:
        return "GPU: none" + ("" if info.cuda_available else " (no CUDA)")
    names = info.gpu_names or [f"GPU {i}" for i in range(info.gpu_count)]
    frees = info.gpu_free_memory_mb or info.gpu_memory_mb
    if info.gpu_count == 1:
        return f"GPU: {names[0]} ({_gb(info.gpu_memory_mb[0])}, {_gb(frees[0])} free)"
    if len(set(names)) == 1 and len(set(info.gpu_memory_mb)) == 1:
        return f"GPU: {info.gpu_count}× {names[0]} ({_gb(info.gpu_memory_mb[0])} each, at least {_gb(min(frees))} free)"
    return "GPU: " + ", ".join(f"{n} ({_gb(m)})" for n, m in zip(names, info.gpu_memory_mb))


def summary(info: HardwareInfo, optimized: OptimizedSettings) -> str:
    """One line for people: the hardware, then the chosen settings, then any detection warnings."""
    affinity = (
        f"cores {format_core_list(optimized.cpu_affinity_cores)} ({optimized.cpu_affinity_strategy})"
        if optimized.cpu_affinity_cores
        else "not bound"
    )
    parts = [
        _gpu_line(info),
        f"CPU: {info.cpu_cores} cores/{info.cpu_threads} threads",
        f"RAM: {_gb(info.memory_total_mb)} total, {_gb(info.memory_available_mb)} available",
        f"storage: {info.temp_space_available_gb:.1f} GB free",
        f"device {optimized.device}, model {optimized.model} ({optimized.compute_type})",
        f"batch size {optimized.batch_size}",
        f"concurrency {optimized.concurrency} worker(s) × {optimized.cpu_threads} threads"
        + (f" × {optimized.replicas} replicas" if optimized.replicas > 1 else ""),
        f"memory mapping {'on' if optimized.use_memory_mapping else 'off'}",
        f"CPU affinity: {affinity}",
    ]
    if info.warnings:
        parts.append("warnings: " + "; ".join(info.warnings))
    return " / ".join(parts)


def hardware_report(
    jobs_dir: Path | None = None,
    *,
    device: str = "auto",
    compute_type: str = "auto",
    model: str = AUTO_MODEL,
    cpu_affinity: str = "auto",
    detector: CoreHardwareDetector | None = None,
    refresh: bool = False,
) -> dict[str, Any]:
    """Detect the hardware, optimize for it, and return both as JSON-ready values.

    Args:
        jobs_dir: The jobs folder whose filesystem's free space is reported (default: the configured one).
        device: Passed to :meth:`CoreOptimizer.optimize`, as are ``compute_type``, ``model``, ``cpu_affinity``.
        compute_type: See ``device``.
        model: See ``device``.
        cpu_affinity: See ``device``.
        detector: Use this detector instead of one for ``jobs_dir``.
        refresh: Probe again instead of using the process's cached result.

    Returns:
        ``{"hardware": {...HardwareInfo...}, "optimized": {...OptimizedSettings, reasons...}, "summary": "..."}``
    """
    detector = detector if detector is not None else CoreHardwareDetector(jobs_dir)
    info = detector.detect(refresh=refresh)
    optimized = CoreOptimizer().optimize(
        info, device=device, compute_type=compute_type, model=model, cpu_affinity=cpu_affinity
    )
    return {"hardware": info.as_dict(), "optimized": optimized.as_dict(), "summary": summary(info, optimized)}
