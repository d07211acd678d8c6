"""The hardware report: what ``video2srt --hardware``, the workbench and the API show (hardware, choices, reasons)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.core.settings import AUTO_MODEL
from pipeline.optimize.optimizer import CoreOptimizer, OptimizedSettings
from pipeline.system.affinity import format_core_list
from pipeline.system.detect import CoreHardwareDetector, HardwareInfo


def _gb(mb: float) -> str:
    return f"{mb / 1024:.1f} GB"


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
