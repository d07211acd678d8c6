"""A stand-in ``pynvml`` module, for GPU detection without a GPU."""

from __future__ import annotations

import types

MIB = 1024 * 1024


def fake_nvml(gpus: list[tuple[str, int, int]]) -> types.ModuleType:
    """A stand-in ``pynvml`` module: ``gpus`` is (name, total MB, free MB) per device."""
    module = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    module.NVMLError = NVMLError  # type: ignore[attr-defined]
    module.calls = []  # type: ignore[attr-defined]
    module.nvmlInit = lambda: module.calls.append("init")  # type: ignore[attr-defined]
    module.nvmlShutdown = lambda: module.calls.append("shutdown")  # type: ignore[attr-defined]
    module.nvmlDeviceGetCount = lambda: len(gpus)  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda index: index  # type: ignore[attr-defined]
    # Older pynvml returns bytes, newer str: give both.
    module.nvmlDeviceGetName = lambda h: gpus[h][0].encode() if h % 2 else gpus[h][0]  # type: ignore[attr-defined]
    module.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(  # type: ignore[attr-defined]
        total=gpus[h][1] * MIB, free=gpus[h][2] * MIB, used=(gpus[h][1] - gpus[h][2]) * MIB
    )
    return module


def nvml_raising(error_name: str) -> types.ModuleType:
    module = types.ModuleType("pynvml")
    error = type(error_name, (Exception,), {})

    def init() -> None:
        raise error("simulated")

    module.nvmlInit = init  # type: ignore[attr-defined]
    return module
