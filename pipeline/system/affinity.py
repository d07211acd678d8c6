"""CPU affinity: which cores a transcription worker is bound to, and binding the current process to them.

Only the worker start-up applies it (:func:`apply_cpu_affinity`); planning (:func:`affinity_cores`) has no
side effects, so the optimizer can report the cores without binding anything.
"""

from __future__ import annotations

import logging
import os
import sys

from pipeline.core.errors import UsageError

log = logging.getLogger(__name__)

AFFINITY_STRATEGIES = ("auto", "half", "all", "none")


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


def plan_affinity(strategy: str, device: str, cpu_count: int) -> tuple[list[int] | None, str]:
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
    cores, note = plan_affinity(strategy, device, cpu_count)
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
