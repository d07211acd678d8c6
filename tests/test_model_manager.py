"""The model manager: state machine and events, busy refusals, switching, LRU, memory guard, failure and retry,
warm-up, and the aggregation over workers. Real loads of the bundled tiny.en (through folders of links to its
files, so each test loads for real without copying 75 MB)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.models import broken_folder, fixed, model_folder

from pipeline.asr import manager as mm
from pipeline.asr.manager import ModelBusyError, ModelManager
from pipeline.asr.memory_guard import ModelMemoryError
from pipeline.asr.model_status import aggregate_status
from pipeline.asr.models import ModelCache
from pipeline.asr.warmup import warm_up
from pipeline.core.errors import ModelError
from pipeline.core.settings import ModelManagerSettings, ModelSettings
from pipeline.system.detect import CoreHardwareDetector

CPU = ModelSettings(name="tiny.en", device="cpu", compute_type="int8", cpu_threads=2)


def small_machine(available_mb: int | dict[str, int]) -> CoreHardwareDetector:
    """Memory probes reporting a machine with ``available_mb`` of free RAM (or ``box["free"]`` as it changes)."""
    box = available_mb if isinstance(available_mb, dict) else {"free": available_mb}
    return CoreHardwareDetector(
        probes={
            "memory": lambda: {"memory_total_mb": 4 * box["free"], "memory_available_mb": box["free"]},
            "gpu": lambda: {"gpu_count": 0, "gpu_memory_mb": [], "gpu_free_memory_mb": [], "cuda_available": False},
        }
    )


def manager(name: str, **config: Any) -> ModelManager:  # noqa: ANN401
    return ModelManager(
        ModelSettings(name=name, device="cpu", compute_type="int8", cpu_threads=2), ModelManagerSettings(**config)
    )


def test_preload_reports_every_stage_as_events_and_ends_ready(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, "tiny-a")
    m = manager(str(folder), warmup="on")
    events: list[dict[str, Any]] = []
    m.subscribe(events.append)
    first = m.preload()
    # Loading at once, before the inference thread has done anything; a second preload joins it.
    assert first["state"] == "loading" and first["busy"]
    again = m.preload()
    assert again["state"] == "loading" and again["round"] == first["round"]
    status = m.wait(120)
    assert status["state"] == "ready" and status["model"] == "tiny-a" and status["progress"] == 1.0
    assert status["cache"] == ["tiny-a"] and not status["busy"]
    record = status["models"][0]
    assert record["source"] == "path" and record["load_s"] > 0 and record["warmup_s"] > 0
    assert record["memory_mb"] > 50 and status["memory"]["ram_available_mb"] > 0
    stages = [e["stage"] for e in events if e["state"] == "loading"]
    order = [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s]
    assert order == ["queued", "resolve", "load", "warm-up"]
    assert [e["state"] for e in events][-1] == "ready"
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    progress = [e["progress"] for e in events]
    assert progress == sorted(progress)
    # A cached model is handed out at once, the same object, also from the inference thread (no deadlock).
    loaded = m.get()
    assert m.request().done() and m.get() is loaded
    assert m.submit(m.get).result(30) is loaded
    m.close()


def test_load_during_load_is_refused_with_the_state_then_a_switch_is_a_new_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = model_folder(tmp_path, "tiny-a"), model_folder(tmp_path, "tiny-b")
    gate = threading.Event()
    real = mm.warm_up
    monkeypatch.setattr(mm, "warm_up", lambda model: gate.wait(60) and real(model))
    m = manager(str(a), max_cached=2, warmup="on")
    m.preload()
    with pytest.raises(ModelBusyError, match="tiny-a is still loading") as busy:
        m.load(str(b))
    assert busy.value.status["state"] == "loading" and busy.value.status["busy"]
    with pytest.raises(ModelBusyError):
        m.load()  # a retry while loading is refused the same way: nothing is queued twice
    assert m.selected.name == str(a)
    gate.set()
    assert m.wait(120)["state"] == "ready"
    # After ready: a new round, with the new model selected for new jobs at once.
    started = m.load(str(b))
    assert started["state"] == "loading" and started["model"] == "tiny-b" and m.selected.name == str(b)
    status = m.wait(120)
    assert status["state"] == "ready" and status["model"] == "tiny-b" and status["round"] == started["round"]
    assert status["cache"] == ["tiny-a", "tiny-b"]  # two fit: both stay
    # Loading a cached model is a round too, ready at once without loading again.
    assert m.load(str(a))["model"] == "tiny-a"
    status = m.wait(30)
    assert status["state"] == "ready" and "already loaded" in status["message"]
    assert status["cache"] == ["tiny-b", "tiny-a"]  # least recently used first
    m.close()


def test_lru_evicts_the_least_recently_used_and_says_so(tmp_path: Path) -> None:
    a, b = model_folder(tmp_path, "tiny-a"), model_folder(tmp_path, "tiny-b")
    m = manager(str(a), warmup="off", max_cached=1)
    first = m.get()
    m.load(str(b))
    status = m.wait(120)
    assert status["state"] == "ready" and status["cache"] == ["tiny-b"]
    old = next(r for r in status["models"] if r["model"] == "tiny-a")
    assert old["state"] == "idle" and "evicted" in old["message"]
    # A job that still holds the evicted model keeps it; asking for it again loads it again.
    again = m.get(m.settings_for(str(a)))
    assert again is not first and m.status()["cache"] == ["tiny-a"]
    m.close()


def test_a_job_during_a_load_joins_it_and_another_model_queues_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = model_folder(tmp_path, "tiny-a"), model_folder(tmp_path, "tiny-b")
    gate = threading.Event()
    real = mm.load
    monkeypatch.setattr(mm, "load", lambda spec, placement: gate.wait(60) and real(spec, placement))
    m = manager(str(a), warmup="off", max_cached=2)
    m.preload()
    same = m.request()
    other = m.request(m.settings_for(str(b)))
    assert same is m.request() and not same.done() and not other.done()  # joined, not queued twice
    queued = next(r for r in m.status()["models"] if r["model"] == "tiny-b")
    assert queued["state"] == "loading" and queued["stage"] == "queued"
    assert "queued" in m.message_for(m.settings_for(str(b)))
    gate.set()
    assert same.result(120).spec.name == "tiny-a" and other.result(120).spec.name == "tiny-b"
    assert m.status()["model"] == "tiny-a"  # a job's own model never changes the selection
    m.close()


def test_a_batch_on_the_inference_thread_never_waits_for_a_round_queued_behind_it(tmp_path: Path) -> None:
    a, b = model_folder(tmp_path, "tiny-a"), model_folder(tmp_path, "tiny-b")
    m = manager(str(a), warmup="off", max_cached=2)
    gate = threading.Event()
    # A batch holds the inference thread while the round of the model it needs is queued behind it.
    batch = m.submit(lambda: gate.wait(60) and m.get(m.settings_for(str(b))).spec.name)
    queued = m.request(m.settings_for(str(b)))
    assert not queued.done()
    gate.set()
    assert batch.result(120) == "tiny-b" and queued.result(1).spec.name == "tiny-b"
    record = next(r for r in m.status()["models"] if r["model"] == "tiny-b")
    assert record["state"] == "ready" and record["round"] == 1  # loaded once, by whoever came first
    m.close()


def test_memory_guard_refuses_clearly_and_the_manager_keeps_working(tmp_path: Path) -> None:
    m = ModelManager(CPU, ModelManagerSettings(headroom_mb=512), detector=small_machine(300))
    m.load()
    status = m.wait(60)
    assert status["state"] == "failed"
    assert "not enough memory for tiny.en" in status["error"] and "512 MB headroom" in status["error"]
    assert "only 300 MB is free" in status["error"] and "\n" not in status["error"]
    with pytest.raises(ModelMemoryError):
        m.get()
    # A configured limit refuses the same way, whatever the machine has.
    limited = ModelManager(CPU, ModelManagerSettings(memory_limit_mb=40))
    with pytest.raises(ModelMemoryError, match="model memory limit of 40 MB"):
        limited.get()
    assert limited.status()["state"] == "failed" and limited.status()["cache"] == []
    m.close()
    limited.close()


def test_eviction_makes_room_first_when_only_that_lets_the_new_model_fit(tmp_path: Path) -> None:
    a, b = model_folder(tmp_path, "tiny-a"), model_folder(tmp_path, "tiny-b")
    need = mm.model_memory_mb(str(a), "int8", 1)
    machine = {"free": need + 150}
    m = ModelManager(
        ModelSettings(name=str(a), device="cpu", compute_type="int8", cpu_threads=2),
        ModelManagerSettings(warmup="off", headroom_mb=100, max_cached=1),
        detector=small_machine(machine),
    )
    m.get()
    machine["free"] = 150  # tiny-a took the room: tiny-b (+ 100 MB headroom) fits only in place of it
    m.load(str(b))
    status = m.wait(120)
    assert status["state"] == "ready" and status["cache"] == ["tiny-b"]
    assert "make room for tiny-b" in next(r for r in status["models"] if r["model"] == "tiny-a")["message"]
    m.close()


def test_a_broken_model_fails_with_the_reason_and_a_retry_after_the_fix_works(tmp_path: Path) -> None:
    folder = broken_folder(tmp_path, "tiny-broken")
    m = manager(str(folder), warmup="off")
    m.preload()
    status = m.wait(60)
    assert status["state"] == "failed" and status["model"] == "tiny-broken"
    assert "could not be loaded" in status["error"] and "tiny-broken" in status["error"]
    with pytest.raises(ModelError):
        m.get()  # a job tries once more itself, and fails with the reason
    fixed(folder)
    assert m.load()["state"] == "loading"  # no name: retry the selected model
    status = m.wait(120)
    assert status["state"] == "ready" and status["error"] is None and status["cache"] == ["tiny-broken"]
    m.close()


def test_unknown_model_fails_with_what_is_available() -> None:
    m = manager("whisper-9000")
    m.load()
    status = m.wait(30)
    assert status["state"] == "failed" and "unknown model 'whisper-9000'" in status["error"]
    m.close()


def test_close_ends_queued_rounds_failed_not_stuck_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = model_folder(tmp_path, "tiny-a"), model_folder(tmp_path, "tiny-b")
    gate = threading.Event()
    monkeypatch.setattr(mm, "load", lambda spec, placement: gate.wait(60) and None)
    m = manager(str(a))
    m.preload()
    queued = m.request(m.settings_for(str(b)))
    m.close()
    gate.set()
    with pytest.raises(ModelError, match="closed"):
        queued.result(10)
    record = next(r for r in m.status()["models"] if r["model"] == "tiny-b")
    assert record["state"] == "failed" and "closed" in record["error"]
    with pytest.raises(ModelError, match="closed"):
        m.load(str(b))


def test_subscribers_can_leave_and_a_failing_one_breaks_nothing(tmp_path: Path) -> None:
    m = manager(str(model_folder(tmp_path, "tiny-a")), warmup="off")
    seen: list[int] = []

    def bad(status: dict[str, Any]) -> None:
        raise RuntimeError("subscriber bug")

    m.subscribe(bad)
    leave = m.subscribe(lambda status: seen.append((status["seq"], status["state"])))
    m.load()
    assert m.wait(120)["state"] == "ready"
    deadline = time.monotonic() + 10
    while seen[-1][1] != "ready" and time.monotonic() < deadline:  # the last event may still be on its way
        time.sleep(0.01)
    assert len(seen) >= 3 and seen[-1][1] == "ready"
    leave()
    count = len(seen)
    m.load()
    m.wait(30)
    assert len(seen) == count
    m.close()


def test_warm_up_runs_the_bundled_real_speech_clip(model_cache: ModelCache) -> None:
    text = warm_up(model_cache.get(CPU)).lower()
    assert "fellow" in text and "americ" in text


def _worker(state: str, model: str = "tiny.en", **extra: Any) -> dict[str, Any]:  # noqa: ANN401
    return {
        "state": state,
        "model": model,
        "progress": {"ready": 1.0, "loading": 0.5}.get(state, 0.0),
        "message": f"{model} {state}",
        "error": "broken file" if state == "failed" else None,
        "stage": "load" if state == "loading" else None,
        **extra,
    }


@pytest.mark.parametrize(
    ("states", "expected", "message"),
    [
        ([], "idle", "no transcription worker"),
        (["ready"], "ready", "tiny.en ready"),
        (["loading"], "loading", "tiny.en loading"),
        (["ready", "ready", "ready"], "ready", "ready on all 3 workers"),
        (["ready", "loading"], "loading", "1 of 2 workers ready; w1: tiny.en loading"),
        (["ready", "idle"], "loading", "1 of 2 workers ready"),  # a worker that just joined
        (["idle", "idle"], "idle", "no worker has a model"),
        (["ready", "failed", "loading"], "failed", "w1: broken file (1 of 3 workers ready)"),
    ],
)
def test_aggregate_is_ready_only_when_every_worker_is(states: list[str], expected: str, message: str) -> None:
    workers = {f"w{i}": _worker(s) for i, s in enumerate(states)}
    status = aggregate_status(workers)
    assert status["state"] == expected and message in status["message"]
    assert status["total_workers"] == len(states) and status["ready_workers"] == states.count("ready")
    assert [w["worker"] for w in status["workers"]] == list(workers)
    if states:
        assert status["progress"] == pytest.approx(sum(w["progress"] for w in workers.values()) / len(states), abs=1e-3)


def test_aggregate_follows_the_live_workers_when_one_dies_during_a_load() -> None:
    workers = {"w0": _worker("ready"), "w1": _worker("loading")}
    assert aggregate_status(workers)["state"] == "loading"
    del workers["w1"]  # its process died: the cluster reports only live workers
    assert aggregate_status(workers)["state"] == "ready"
    workers["w2"] = _worker("idle")  # its replacement joins; the plugin will load the model
    assert aggregate_status(workers)["state"] == "loading"


def test_aggregate_names_workers_that_hold_different_models() -> None:
    status = aggregate_status({"w0": _worker("ready", "tiny.en"), "w1": _worker("ready", "small")})
    assert status["state"] == "ready" and "different models" in status["message"]
