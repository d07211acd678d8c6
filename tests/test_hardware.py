"""Hardware detection, the optimizer's decisions on typical machines, CPU affinity and the hardware routes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psutil
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from helpers.hardware import fake_nvml, nvml_raising

from pipeline.asr.footprint import model_memory_mb
from pipeline.core.errors import UsageError
from pipeline.optimize.optimizer import CPU_BATCH_CAP, CPU_LANE_BATCH, GPU_BATCH_CAP, CoreOptimizer, OptimizedSettings
from pipeline.optimize.report import hardware_report, summary
from pipeline.system.affinity import affinity_cores, apply_cpu_affinity, format_core_list, parse_core_list
from pipeline.system.detect import CoreHardwareDetector, HardwareInfo
from workbench.http.hardware import hardware_router

REPO = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
SEED_HARDWARE_FIELDS = {
    "gpu_count",
    "gpu_memory_mb",
    "cuda_available",
    "cpu_cores",
    "cpu_threads",
    "memory_total_mb",
    "memory_available_mb",
    "temp_space_available_gb",
}
OPTIMIZED_FIELDS = {f.name for f in OptimizedSettings.__dataclass_fields__.values()}
DECISIONS = OPTIMIZED_FIELDS - {"reasons"}


# ------------------------------------------------------------------------------------------------ fakes


def const(**values: Any) -> Callable[[], Mapping[str, Any]]:
    return lambda: values


def machine(
    monkeypatch: pytest.MonkeyPatch,
    *,
    gpus: list[tuple[str, int, int]] | None = None,
    cores: int,
    threads: int,
    ram_total_mb: int,
    ram_available_mb: int,
) -> HardwareInfo:
    """Detect a made-up machine: GPUs through the real NVML probe over a fake ``pynvml``, the rest injected."""
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(gpus or []))
    detector = CoreHardwareDetector(
        Path("/nonexistent"),
        probes={
            "cpu": const(cpu_cores=cores, cpu_threads=threads),
            "memory": const(memory_total_mb=ram_total_mb, memory_available_mb=ram_available_mb),
            "storage": const(temp_space_available_gb=500.0),
        },
    )
    info = detector.detect()
    assert info.warnings == ()
    return info


def check_explained(opt: OptimizedSettings) -> None:
    """Every decision has a one-line reason."""
    assert set(opt.reasons) == DECISIONS
    for name, reason in opt.reasons.items():
        assert reason and "\n" not in reason, name


# ------------------------------------------------------------------------------------------------ the optimizer


def test_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    info = machine(monkeypatch, cores=4, threads=8, ram_total_mb=16384, ram_available_mb=12000)
    assert (info.gpu_count, info.cuda_available, info.gpu_memory_mb) == (0, False, [])
    opt = CoreOptimizer().optimize(info)
    check_explained(opt)
    assert (opt.device, opt.model, opt.compute_type) == ("cpu", "tiny.en", "int8")
    assert opt.batch_size == CPU_BATCH_CAP
    assert opt.cpu_affinity_strategy == "all" and opt.cpu_affinity_cores == list(range(8))
    # Bound to 8 logical CPUs but only 4 physical cores: one worker takes them all.
    assert (opt.concurrency, opt.cpu_threads) == (1, 4)
    assert opt.use_memory_mapping is False
    assert "no CUDA GPU" in opt.reasons["device"]


def test_one_8gb_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    info = machine(
        monkeypatch, gpus=[("RTX 3070", 8192, 7800)], cores=8, threads=16, ram_total_mb=32768, ram_available_mb=28000
    )
    assert (info.gpu_count, info.gpu_memory_mb, info.gpu_free_memory_mb) == (1, [8192], [7800])
    assert info.gpu_names == ["RTX 3070"] and info.cuda_available
    opt = CoreOptimizer().optimize(info)
    check_explained(opt)
    assert (opt.device, opt.model, opt.compute_type) == ("cuda", "medium", "float16")
    assert opt.concurrency == 1
    # medium at float16 (~2.6 GB) on ~7 GB usable leaves room for a healthy batch, but not the cap.
    assert 8 <= opt.batch_size < GPU_BATCH_CAP
    assert model_memory_mb("medium", "float16", opt.batch_size) <= 7800
    assert opt.cpu_affinity_strategy == "half" and opt.cpu_affinity_cores == list(range(8))
    assert 1 <= opt.cpu_threads <= 4
    assert "medium" in opt.reasons["model"] and "per item" in opt.reasons["batch_size"]


def test_one_24gb_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    info = machine(
        monkeypatch, gpus=[("RTX 4090", 24564, 23800)], cores=16, threads=32, ram_total_mb=32768, ram_available_mb=28672
    )
    opt = CoreOptimizer().optimize(info)
    check_explained(opt)
    assert (opt.device, opt.model, opt.compute_type) == ("cuda", "medium", "float16")
    assert opt.batch_size == GPU_BATCH_CAP and "capped" in opt.reasons["batch_size"]
    assert opt.concurrency == 1
    assert opt.cpu_affinity_cores == list(range(16))
    assert opt.use_memory_mapping is False
    line = summary(info, opt)
    assert "GPU: RTX 4090" in line and "CPU: 16 cores/32 threads" in line and f"batch size {GPU_BATCH_CAP}" in line


def test_four_80gb_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = [("H100 80GB", 81559, 81000)] * 4
    info = machine(monkeypatch, gpus=gpus, cores=64, threads=128, ram_total_mb=1024000, ram_available_mb=900000)
    assert info.gpu_count == 4 and info.gpu_names == ["H100 80GB"] * 4  # bytes and str names both decoded
    opt = CoreOptimizer().optimize(info)
    check_explained(opt)
    assert (opt.device, opt.model, opt.compute_type) == ("cuda", "medium", "float16")
    assert opt.concurrency == 4 and "one per GPU" in opt.reasons["concurrency"]
    assert opt.batch_size == GPU_BATCH_CAP
    assert opt.cpu_affinity_cores == list(range(64))
    assert opt.concurrency * opt.cpu_threads <= 64
    assert "4× H100 80GB" in summary(info, opt)


def test_16_cores_64gb_cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    info = machine(monkeypatch, cores=16, threads=32, ram_total_mb=65536, ram_available_mb=60000)
    opt = CoreOptimizer().optimize(info)
    check_explained(opt)
    assert (opt.device, opt.model, opt.compute_type) == ("cpu", "tiny.en", "int8")
    assert 2 <= opt.concurrency <= 4 and 4 <= opt.cpu_threads <= 8
    assert opt.concurrency * opt.cpu_threads <= 16
    assert opt.batch_size == CPU_BATCH_CAP and opt.replicas == 1
    assert opt.cpu_affinity_cores == list(range(32))
    assert opt.use_memory_mapping is False


def test_2_cores_4gb(monkeypatch: pytest.MonkeyPatch) -> None:
    info = machine(monkeypatch, cores=2, threads=2, ram_total_mb=4096, ram_available_mb=3000)
    opt = CoreOptimizer().optimize(info)
    check_explained(opt)
    assert (opt.device, opt.model, opt.compute_type) == ("cpu", "tiny.en", "int8")
    assert (opt.concurrency, opt.cpu_threads) == (1, 2)
    assert opt.replicas == 2 and "side by side" in opt.reasons["replicas"]
    # Two lanes pull small calls, so neither idles at the end while the other runs a big one.
    assert opt.batch_size == CPU_LANE_BATCH and "lanes" in opt.reasons["batch_size"]
    assert opt.cpu_affinity_cores == [0, 1]
    # Two in-RAM copies of a 2 h input (~880 MB) would be ~30 % of 3 GB: map the file instead.
    assert opt.use_memory_mapping is True and "over 10%" in opt.reasons["use_memory_mapping"]


def test_cpu_batch_is_limited_by_ram() -> None:
    info = HardwareInfo(0, [], False, 2, 2, 2048, 1200, 10.0)
    opt = CoreOptimizer().optimize(info, model="medium")
    assert opt.device == "cpu" and 1 <= opt.batch_size < CPU_BATCH_CAP
    assert "limited by RAM" in opt.reasons["batch_size"]
    # No room for a second batch at once either: one replica.
    assert opt.replicas == 1 and "over" in opt.reasons["replicas"]


def test_gpu_too_full_falls_back_to_cpu() -> None:
    info = HardwareInfo(1, [8192], True, 8, 16, 32768, 30000, 100.0, ["busy"], [300])
    opt = CoreOptimizer().optimize(info)
    assert opt.device == "cpu" and opt.model == "tiny.en" and opt.compute_type == "int8"
    assert "no GPU has room" in opt.reasons["device"]
    assert opt.cpu_affinity_strategy == "all"


def test_small_gpu_gets_the_bundled_model() -> None:
    info = HardwareInfo(1, [4096], True, 4, 8, 16384, 12000, 100.0, ["small"], [3900])
    opt = CoreOptimizer().optimize(info)
    assert (opt.device, opt.model, opt.compute_type) == ("cuda", "tiny.en", "float16")
    assert opt.batch_size == GPU_BATCH_CAP


def test_requested_values_are_kept() -> None:
    info = HardwareInfo(1, [8192], True, 8, 16, 32768, 30000, 100.0, ["RTX"], [7800])
    opt = CoreOptimizer().optimize(info, device="cpu", compute_type="float32", model="small", cpu_affinity="0-3,99")
    check_explained(opt)
    assert (opt.device, opt.compute_type, opt.model) == ("cpu", "float32", "small")
    assert opt.cpu_affinity_cores == [0, 1, 2, 3] and opt.cpu_affinity_strategy == "0-3,99"
    assert "99" in opt.reasons["cpu_affinity_cores"]
    assert opt.concurrency * opt.cpu_threads <= 4
    large = CoreOptimizer().optimize(info, model="large-v3")
    assert large.device == "cuda" and large.batch_size < CoreOptimizer().optimize(info).batch_size
    unbound = CoreOptimizer().optimize(info, cpu_affinity="none")
    assert unbound.cpu_affinity_cores == [] and unbound.cpu_affinity_strategy == "none"
    with pytest.raises(UsageError):
        CoreOptimizer().optimize(info, cpu_affinity="most")


def test_model_memory_table() -> None:
    assert (
        model_memory_mb("tiny.en", "float16")
        < model_memory_mb("base", "float16")
        < model_memory_mb("small", "float16")
        < model_memory_mb("medium", "float16")
        < model_memory_mb("large-v3", "float16")
    )
    assert model_memory_mb("large-v3-turbo", "float16") < model_memory_mb("large-v3", "float16")
    assert model_memory_mb("medium", "int8_float16", 0) < model_memory_mb("medium", "float16", 0)
    assert model_memory_mb("medium", "float16", 8) > model_memory_mb("medium", "float16", 1)
    assert model_memory_mb("/models/whisper-medium-ct2", "float16") == model_memory_mb("medium", "float16")


# ------------------------------------------------------------------------------------------------ the detector


def test_nvml_without_driver_is_no_gpu_and_no_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", nvml_raising("NVMLError_LibraryNotFound"))
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    info = CoreHardwareDetector(Path("/nonexistent"), probes={"storage": const(temp_space_available_gb=1.0)}).detect()
    assert (info.gpu_count, info.cuda_available, info.warnings) == (0, False, ())


def test_nvml_failure_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", nvml_raising("NVMLError_Unknown"))
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    info = CoreHardwareDetector(Path("/nonexistent"), probes={"storage": const(temp_space_available_gb=1.0)}).detect()
    assert info.gpu_count == 0
    assert len(info.warnings) == 1 and "NVML" in info.warnings[0] and "NVMLError_Unknown" in info.warnings[0]


def test_torch_only_when_already_imported_and_nvml_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    props = types.SimpleNamespace(name="TorchGPU", total_memory=16 * 1024 * MIB)
    cuda = types.SimpleNamespace(
        is_available=lambda: True,
        device_count=lambda: 1,
        get_device_properties=lambda i: props,
        is_initialized=lambda: False,
        mem_get_info=lambda i: pytest.fail("must not create a CUDA context just to look"),
    )
    monkeypatch.setitem(sys.modules, "pynvml", nvml_raising("NVMLError_LibraryNotFound"))
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    info = CoreHardwareDetector(Path("/nonexistent"), probes={"storage": const(temp_space_available_gb=1.0)}).detect()
    assert (info.gpu_count, info.gpu_names, info.gpu_memory_mb) == (1, ["TorchGPU"], [16384])
    assert info.gpu_free_memory_mb == [16384] and info.cuda_available
    # With NVML working, torch is not consulted even though it is loaded.
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([("NvmlGPU", 8192, 8000)]))
    info = CoreHardwareDetector(Path("/nonexistent"), probes={"storage": const(temp_space_available_gb=1.0)}).detect()
    assert info.gpu_names == ["NvmlGPU"]


def test_nvml_is_shut_down(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = fake_nvml([("A", 1000, 900)])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    CoreHardwareDetector(Path("/nonexistent"), probes={"storage": const(temp_space_available_gb=1.0)}).detect()
    assert nvml.calls == ["init", "shutdown"]  # type: ignore[attr-defined]


def test_failing_probe_gives_defaults_and_a_warning() -> None:
    def broken() -> Mapping[str, Any]:
        raise RuntimeError("psutil exploded")

    info = CoreHardwareDetector(
        Path("/nonexistent"),
        probes={"gpu": const(), "memory": broken, "storage": const(temp_space_available_gb=3.0)},
    ).detect()
    assert (info.memory_total_mb, info.memory_available_mb) == (4096, 2048)
    assert len(info.warnings) == 1
    assert "memory probe failed" in info.warnings[0] and "psutil exploded" in info.warnings[0]
    assert info.temp_space_available_gb == 3.0 and info.cpu_cores >= 1
    # The conservative defaults still give a working plan (and turn memory mapping on).
    opt = CoreOptimizer().optimize(info)
    assert opt.device == "cpu" and opt.use_memory_mapping is True
    assert "memory probe failed" in summary(info, opt)


def test_bad_probe_value_gives_default_and_a_warning() -> None:
    info = CoreHardwareDetector(
        Path("/nonexistent"),
        probes={"gpu": const(), "cpu": const(cpu_cores="many", cpu_threads=4), "storage": const()},
    ).detect()
    assert info.cpu_threads == 4 and info.cpu_cores >= 1
    assert any("bad cpu_cores" in line for line in info.warnings)


def test_hanging_probe_is_cut_by_the_timeout() -> None:
    release = threading.Event()

    def hangs() -> Mapping[str, Any]:
        release.wait(30)
        return {"gpu_count": 7}

    try:
        started = time.monotonic()
        info = CoreHardwareDetector(
            Path("/nonexistent"),
            timeout_s=0.2,
            probes={"gpu": hangs, "storage": const(temp_space_available_gb=1.0)},
        ).detect()
        elapsed = time.monotonic() - started
    finally:
        release.set()
    assert elapsed < 1.5
    assert info.gpu_count == 0 and not info.cuda_available
    assert len(info.warnings) == 1 and "gpu probe did not answer within 0.2 s" in info.warnings[0]
    assert info.cpu_threads >= 1  # the other probes still answered


def test_detect_is_cached_until_refresh() -> None:
    calls = []

    def cpu() -> Mapping[str, Any]:
        calls.append(1)
        return {"cpu_cores": len(calls), "cpu_threads": len(calls)}

    detector = CoreHardwareDetector(Path("/nonexistent"), probes={"gpu": const(), "cpu": cpu, "storage": const()})
    first = detector.detect()
    assert detector.detect() is first and len(calls) == 1
    again = detector.detect(refresh=True)
    assert len(calls) == 2 and again.cpu_cores == 2 and detector.detect() is again


def test_real_detectors_share_the_process_cache(tmp_path: Path) -> None:
    jobs = tmp_path / "not" / "yet" / "jobs"
    first = CoreHardwareDetector(jobs).detect(refresh=True)
    assert CoreHardwareDetector(jobs).detect() is first
    assert not (tmp_path / "not").exists()  # measured the filesystem, created nothing
    assert first.temp_space_available_gb > 0
    assert first.cpu_threads == psutil.cpu_count(logical=True)
    assert first.memory_total_mb > 0 and 0 < first.memory_available_mb <= first.memory_total_mb


def test_unknown_probe_name_is_refused() -> None:
    with pytest.raises(ValueError):
        CoreHardwareDetector(Path("/x"), probes={"disk": const()})


def test_detect_is_fast_and_never_imports_torch(tmp_path: Path) -> None:
    code = (
        "import sys, time; t = time.perf_counter(); "
        "from pipeline.system.detect import CoreHardwareDetector; "
        f"CoreHardwareDetector({str(tmp_path)!r}).detect(); "
        "print(time.perf_counter() - t, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    elapsed, torch_loaded = out.stdout.split()
    assert float(elapsed) < 5.0 and torch_loaded == "False"


# ------------------------------------------------------------------------------------------------ affinity


def test_parse_and_format_core_lists() -> None:
    assert parse_core_list("0-3,8") == [0, 1, 2, 3, 8]
    assert parse_core_list(" 8, 2-3 ,2") == [2, 3, 8]
    assert format_core_list([8, 0, 1, 2, 3, 5, 6]) == "0-3,5-6,8"
    for bad in ("", "a", "3-1", "-1", "1-", "0-3;8"):
        with pytest.raises(UsageError):
            parse_core_list(bad)


def test_affinity_cores(caplog: pytest.LogCaptureFixture) -> None:
    assert affinity_cores("auto", "cuda", 16) == list(range(8))
    assert affinity_cores("auto", "cpu", 16) == list(range(16))
    assert affinity_cores("half", "cpu", 2) == [0]
    assert affinity_cores("half", "cuda", 1) == [0]
    assert affinity_cores("all", "cuda", 4) == [0, 1, 2, 3]
    assert affinity_cores("none", "cuda", 4) is None
    assert affinity_cores("0-3,8", "cuda", 16) == [0, 1, 2, 3, 8]
    with caplog.at_level("WARNING", logger="pipeline.system.affinity"):
        assert affinity_cores("1,5-9", "cpu", 4) == [1]
        assert "5-9" in caplog.text
        caplog.clear()
        assert affinity_cores("10-12", "cpu", 4) == [0, 1, 2, 3]
        assert "all cores" in caplog.text
    with pytest.raises(UsageError):
        affinity_cores("most", "cpu", 4)


def _affinity_in_child(strategy: str, device: str = "cuda") -> dict[str, Any]:
    code = (
        "import json, sys, psutil; from pipeline.system.affinity import apply_cpu_affinity; "
        "applied = apply_cpu_affinity(sys.argv[1], sys.argv[2]); "
        "print(json.dumps({'applied': applied, 'now': sorted(psutil.Process().cpu_affinity())}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, strategy, device], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not hasattr(psutil.Process(), "cpu_affinity"), reason="no CPU affinity on this platform")
def test_affinity_applied_in_a_child_process() -> None:
    cpus = psutil.cpu_count(logical=True) or 1
    inherited = sorted(psutil.Process().cpu_affinity())
    if inherited != list(range(cpus)):
        pytest.skip("this process is already restricted to some cores")
    half = list(range(max(1, cpus // 2)))
    assert _affinity_in_child("half") == {"applied": half, "now": half}  # 2 CPUs: [0]
    assert _affinity_in_child("auto", "cuda") == {"applied": half, "now": half}
    assert _affinity_in_child("auto", "cpu") == {"applied": list(range(cpus)), "now": list(range(cpus))}
    assert _affinity_in_child("none") == {"applied": None, "now": inherited}
    last = cpus - 1
    assert _affinity_in_child(f"{last},{cpus + 5}") == {"applied": [last], "now": [last]}
    # A bad strategy is logged, never raised: the worker carries on unbound.
    assert _affinity_in_child("most") == {"applied": None, "now": inherited}


def test_skip_heap_walk_freezes_the_heap_last_at_exit_and_other_exit_work_still_runs(tmp_path: Path) -> None:
    code = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0))\n"
        "from pipeline.system.memory import skip_heap_walk_at_exit\n"
        "skip_heap_walk_at_exit(); skip_heap_walk_at_exit()\n"
        "atexit.register(lambda: print('frozen before:', gc.get_freeze_count() > 0))\n"
        f"open({str(tmp_path / 'out.txt')!r}, 'w').write('written')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # atexit runs handlers last-in first-out: the freeze comes after the handlers registered later.
    assert done.stdout.splitlines() == ["frozen before: False", "frozen at exit: True"]
    assert (tmp_path / "out.txt").read_text() == "written"


def test_apply_affinity_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    class Unsupported:  # like psutil.Process on macOS: no cpu_affinity at all
        pass

    monkeypatch.setattr(psutil, "Process", Unsupported)
    assert apply_cpu_affinity("half", "cuda") is None

    class Refusing:
        def cpu_affinity(self, cores: list[int] | None = None) -> list[int]:
            raise psutil.AccessDenied(1)

    monkeypatch.setattr(psutil, "Process", Refusing)
    assert apply_cpu_affinity("all", "cpu") is None


# ------------------------------------------------------------------------------------------------ report and HTTP


def test_hardware_report_is_json_with_every_field(tmp_path: Path) -> None:
    report = hardware_report(tmp_path)
    decoded = json.loads(json.dumps(report))
    assert set(decoded) == {"hardware", "optimized", "summary"}
    assert SEED_HARDWARE_FIELDS <= set(decoded["hardware"])
    assert {"gpu_names", "gpu_free_memory_mb", "platform", "warnings"} <= set(decoded["hardware"])
    assert set(decoded["optimized"]) == OPTIMIZED_FIELDS
    assert set(decoded["optimized"]["reasons"]) == DECISIONS
    assert decoded["summary"].startswith("GPU:") and "batch size" in decoded["summary"]


def test_hardware_report_takes_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    detector = CoreHardwareDetector(
        Path("/x"),
        probes={
            "gpu": const(
                gpu_count=1, gpu_memory_mb=[24564], gpu_free_memory_mb=[23800], gpu_names=["G"], cuda_available=True
            ),
            "storage": const(temp_space_available_gb=9.0),
        },
    )
    report = hardware_report(detector=detector, device="cpu")
    assert report["optimized"]["device"] == "cpu" and report["hardware"]["gpu_names"] == ["G"]


@pytest.fixture
def client() -> TestClient:
    detector = CoreHardwareDetector(
        Path("/x"),
        probes={
            "gpu": const(
                gpu_count=1, gpu_memory_mb=[8192], gpu_free_memory_mb=[7800], gpu_names=["G"], cuda_available=True
            ),
            "cpu": const(cpu_cores=8, cpu_threads=16),
            "memory": const(memory_total_mb=32768, memory_available_mb=30000),
            "storage": const(temp_space_available_gb=123.4),
        },
    )
    app = FastAPI()
    app.include_router(hardware_router(detector=detector))
    return TestClient(app)


def test_route_basic(client: TestClient) -> None:
    response = client.get("/api/hardware/basic")
    assert response.status_code == 200
    body = response.json()
    assert SEED_HARDWARE_FIELDS <= set(body)
    assert body["gpu_memory_mb"] == [8192] and body["cpu_cores"] == 8 and body["temp_space_available_gb"] == 123.4


def test_route_optimize(client: TestClient) -> None:
    body = client.get("/api/hardware/optimize").json()
    required = (
        "batch_size",
        "concurrency",
        "use_memory_mapping",
        "cpu_affinity_cores",
        "device",
        "compute_type",
        "model",
    )
    for name in required:
        assert name in body and name in body["reasons"]
    assert (body["device"], body["model"], body["compute_type"]) == ("cuda", "medium", "float16")
    assert body["cpu_affinity_cores"] == list(range(8))
    body = client.get("/api/hardware/optimize", params={"device": "cpu", "cpu_affinity": "0-1"}).json()
    assert body["device"] == "cpu" and body["cpu_affinity_cores"] == [0, 1] and body["model"] == "tiny.en"


def test_route_optimize_rejects_bad_values(client: TestClient) -> None:
    for params in ({"device": "tpu"}, {"compute_type": "int4"}, {"cpu_affinity": "most"}):
        response = client.get("/api/hardware/optimize", params=params)
        assert response.status_code == 422, params
        assert isinstance(response.json()["detail"], str)


def test_router_construction_probes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_probe(self: CoreHardwareDetector, refresh: bool = False) -> HardwareInfo:
        raise AssertionError("probed at construction")

    monkeypatch.setattr(CoreHardwareDetector, "detect", no_probe)
    hardware_router(Path("/x"))


_COUNT_HEAPS = """
import ctypes, sys, threading
from pipeline.system.memory import share_one_heap_arena
if sys.argv[1] == "share":
    share_one_heap_arena()
keep = []
def work():
    keep.append([bytearray(200_000) for _ in range(20)])  # above obmalloc's limit: glibc's malloc
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
path = sys.argv[2]
fp = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(fp))
libc.fclose(ctypes.c_void_p(fp))
print(open(path).read().count("<heap nr="))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heap arenas")
def test_threads_share_one_heap_arena_unless_the_environment_says_otherwise(tmp_path: Path) -> None:
    def heaps(mode: str, **env: str) -> int:
        full = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env
        report = tmp_path / f"{mode}-{len(env)}.xml"
        cmd = [sys.executable, "-c", _COUNT_HEAPS, mode, str(report)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=full)
        assert out.returncode == 0, out.stderr
        return int(out.stdout)

    assert heaps("plain") > 1  # glibc gives the threads arenas of their own
    assert heaps("share") == 1
    assert heaps("share", MALLOC_ARENA_MAX="4") > 1  # the user's own setting wins
