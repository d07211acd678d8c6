"""Dask: a real LocalCluster and real `dask scheduler` / `dask worker` processes give the in-process output.

One ~80 s speech input, cut at 15–30 s and sent one segment per batch, so a job has several tasks in flight.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dask
import pytest
import soundfile as sf
from conftest import with_parts
from helpers.cluster import job_cli, job_settings, start_scheduler, start_worker, stop
from media import concat_speech, speech_clips

from pipeline.backends.dask import PLANNED_THREADS, plan_workers
from pipeline.core.errors import ClusterError
from pipeline.core.settings import ClusterSettings, ModelSettings, Settings
from pipeline.jobs.engine import Runner
from pipeline.jobs.events import JobEvent
from pipeline.jobs.plan import use_cluster
from pipeline.optimize.optimizer import CoreOptimizer
from pipeline.system.detect import HardwareInfo


@pytest.mark.cluster
def test_local_cluster_gives_identical_output_and_reports_workers(
    speech_input: Path, reference_srt: bytes, settings: Settings, tmp_path: Path
) -> None:
    s = job_settings(settings, workers=2)
    runner = Runner(s)
    events: list[JobEvent] = []
    try:
        assert runner.on_cluster
        runner.start()
        result = runner.run(speech_input, s, on_event=events.append)
        status = runner.cluster_status()
        models = runner.model_status()
        backend = runner.backend()
        assert backend is not None
        lean = backend.client.run(
            lambda: (
                dask.config.get("distributed.worker.profile.enabled"),
                dask.config.get("distributed.admin.tick.interval"),
            )
        )
        # The dashboard loads on its first visit: the link answers with its page, and so do the others.
        pages = {path: _get(status["dashboard"].replace("/status", path)) for path in ("/status", "/workers", "/")}
    finally:
        runner.close()
    assert result.outputs["srt"].read_bytes() == reference_srt
    assert status["mode"] == "local"
    assert status["dashboard"] and status["dashboard"].startswith("http://")
    assert all(code == 200 and "bokeh" in body.lower() for code, body in pages.values()), pages
    assert set(lean.values()) == {(False, "500ms")}  # the nanny handed the cluster's settings to each worker
    assert sorted(w["name"] for w in status["workers"]) == ["cpu-0", "cpu-1"]
    # Each worker has its own model manager, loaded by the worker plugin, and a live load sample.
    assert {w["model_state"] for w in status["workers"]} == {"ready"}
    assert all(w["usage"] and w["usage"]["ram_total_mb"] > 0 for w in status["workers"])
    assert models["state"] == "ready" and len(models["workers"]) == 2
    # Results were streamed: progress arrived segment by segment, not all at the end.
    done_counts = [e.segments_done for e in events if e.stage == "running"]
    assert len(set(done_counts)) >= 3


@pytest.mark.cluster
def test_a_worker_with_two_replicas_runs_two_tasks_at_once_with_identical_output(
    speech_input: Path, reference_srt: bytes, settings: Settings
) -> None:
    s = job_settings(with_parts(settings, model={"cpu_threads": 2}), workers=1)
    runner = Runner(s)
    try:
        runner.start()
        result = runner.run(speech_input, s)
        status = runner.cluster_status()
    finally:
        runner.close()
    assert result.outputs["srt"].read_bytes() == reference_srt
    # Two replicas of 2 threads: one Dask task thread per replica, so two batches run side by side.
    assert [w["nthreads"] for w in status["workers"]] == [2]


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read().decode(errors="replace")


@pytest.mark.cluster
def test_a_worker_the_local_cluster_adds_later_gets_the_model_plugin(settings: Settings) -> None:
    from pipeline.backends.dask import DaskBackend

    backend = DaskBackend(job_settings(settings, workers=1))
    assert backend.model_statuses() == {}  # constructing it starts nothing
    try:
        backend.ready()
        _until(lambda: [s["state"] for s in backend.model_statuses().values()] == ["ready"])
        backend.cluster.scale(2)  # as adaptive scaling does: a new worker from the cluster's worker spec
        _until(lambda: sorted(s["state"] for s in backend.model_statuses().values()) == ["ready", "ready"])
    finally:
        backend.close()


def test_two_planned_workers_split_the_cores() -> None:
    info = HardwareInfo(
        gpu_count=0,
        gpu_memory_mb=[],
        cuda_available=False,
        cpu_cores=8,
        cpu_threads=16,
        memory_total_mb=64000,
        memory_available_mb=60000,
        temp_space_available_gb=100.0,
    )
    optimized = CoreOptimizer().optimize(info, device="cpu", compute_type="int8", model="tiny.en", cpu_affinity="all")
    plans = plan_workers(ClusterSettings(workers=4), ModelSettings(), info, optimized)
    assert [p.name for p in plans] == ["cpu-0", "cpu-1", "cpu-2", "cpu-3"]
    assert all(p.cpu_threads == 4 and p.env["OMP_NUM_THREADS"] == "4" and p.env[PLANNED_THREADS] == "4" for p in plans)
    assert all(not p.resources for p in plans)


def test_one_worker_per_gpu_pinned_with_a_gpu_resource() -> None:
    info = HardwareInfo(
        cpu_cores=16,
        cpu_threads=32,
        memory_total_mb=256000,
        memory_available_mb=200000,
        gpu_count=4,
        gpu_memory_mb=[24000] * 4,
        gpu_free_memory_mb=[23000] * 4,
        gpu_names=["L4"] * 4,
        cuda_available=True,
        temp_space_available_gb=100.0,
    )
    optimized = CoreOptimizer().optimize(info, device="auto", compute_type="auto", model="auto", cpu_affinity="auto")
    assert optimized.device == "cuda" and optimized.concurrency == 4
    plans = plan_workers(ClusterSettings(), ModelSettings(), info, optimized)
    assert [p.env["CUDA_VISIBLE_DEVICES"] for p in plans] == ["0", "1", "2", "3"]
    assert all(p.resources == {"GPU": 1.0} for p in plans)


def test_the_optimizer_keeps_one_planned_worker_in_process(settings: Settings) -> None:
    # This machine's plan: how many workers the optimizer wants decides; one worker runs in-process.
    from pipeline.system.detect import CoreHardwareDetector

    optimized = CoreOptimizer().optimize(
        CoreHardwareDetector().detect(), device="cpu", compute_type="int8", model="tiny.en", cpu_affinity="auto"
    )
    assert use_cluster(with_parts(settings, cluster={"workers": None})) == (optimized.concurrency > 1)
    assert use_cluster(with_parts(settings, cluster={"workers": 0})) is False
    assert use_cluster(with_parts(settings, cluster={"workers": 0, "scheduler": "tcp://127.0.0.1:1"})) is True


# --------------------------------------------------------------------------------------------------------------
# Separate processes on loopback: `dask scheduler` and `dask worker`, as on several machines.


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[str]:
    proc, address = start_scheduler(tmp_path)
    try:
        yield address
    finally:
        stop(proc)


@pytest.mark.cluster
def test_separate_scheduler_and_workers_survive_a_killed_worker(
    scheduler: str, speech_input: Path, reference_srt: bytes, settings: Settings, tmp_path: Path
) -> None:
    workers = [start_worker(scheduler, tmp_path / f"w{i}.log", f"w{i}") for i in range(2)]
    s = job_settings(settings, scheduler=scheduler, workers=None, max_inflight=4)
    runner = Runner(s)
    killed: list[int] = []

    def on_event(event: JobEvent) -> None:
        # Kill one worker as soon as the first segment is back: it holds queued or running tasks.
        if event.stage == "running" and event.segments_done >= 1 and not killed:
            killed.append(workers[0].pid)
            os.killpg(workers[0].pid, signal.SIGKILL)

    try:
        backend = runner.backend()
        assert backend is not None and backend.mode == "remote"
        backend.wait_for_workers(60)
        while backend.alive() < 2:
            time.sleep(0.2)
        result = runner.run(speech_input, s, on_event=on_event)
    finally:
        runner.close()
        for w in workers:
            stop(w)
    assert killed, "the job finished before a worker could be killed"
    assert result.outputs["srt"].read_bytes() == reference_srt


@pytest.mark.cluster
def test_a_killed_local_worker_is_restarted_with_its_model_and_the_job_is_identical(
    speech_input: Path, reference_srt: bytes, settings: Settings
) -> None:
    s = job_settings(settings, workers=2, max_inflight=4)
    runner = Runner(s)
    killed: list[int] = []
    try:
        runner.start()
        backend = runner.backend()
        assert backend is not None and backend.mode == "local"
        _until(lambda: runner.model_status()["state"] == "ready" and runner.model_status()["total_workers"] == 2)
        pids = backend.client.run(os.getpid)

        def on_event(event: JobEvent) -> None:
            # Kill one worker process as soon as the first segment is back: its nanny starts a new one.
            if event.stage == "running" and event.segments_done >= 1 and not killed:
                killed.append(next(iter(pids.values())))
                os.kill(killed[0], signal.SIGKILL)

        result = runner.run(speech_input, s, on_event=on_event)
        # The new worker process gets the model plugin from the cluster's spec and loads the model again.
        _until(lambda: runner.model_status()["state"] == "ready" and runner.model_status()["total_workers"] == 2)
        now = set(backend.client.run(os.getpid).values())
    finally:
        runner.close()
    assert killed, "the job finished before a worker could be killed"
    assert result.outputs["srt"].read_bytes() == reference_srt
    assert killed[0] not in now and len(now) == 2


@pytest.mark.cluster
def test_cli_on_a_remote_scheduler_matches_in_process(
    scheduler: str, speech_input: Path, reference_srt: bytes, tmp_path: Path
) -> None:
    worker = start_worker(scheduler, tmp_path / "w.log", "cli-worker")
    try:
        out = subprocess.run(
            job_cli(
                str(speech_input),
                "-o",
                str(tmp_path / "out"),
                "--scheduler",
                scheduler,
                "--jobs-dir",
                str(tmp_path / "jobs"),
            ),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        stop(worker)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out" / "eighty_seconds.srt").read_bytes() == reference_srt


@pytest.mark.cluster
def test_no_worker_waits_visibly_then_fails_clearly_and_resumably(
    scheduler: str, speech_input: Path, settings: Settings
) -> None:
    s = job_settings(settings, scheduler=scheduler, workers=None, worker_timeout_s=3.0)
    runner = Runner(s)
    events: list[JobEvent] = []
    try:
        with pytest.raises(ClusterError, match="no Dask worker is connected.*dask worker"):
            runner.run(speech_input, s, on_event=events.append)
    finally:
        runner.close()
    assert any(e.stage == "waiting_for_workers" for e in events)
    job_id = events[0].job_id
    checkpoint = json.loads((s.jobs.jobs_dir / job_id / "checkpoint.json").read_text())
    assert checkpoint["state"] == "failed" and "dask worker" in checkpoint["error"]


@pytest.mark.cluster
def test_unreachable_scheduler_is_one_clear_cli_error(speech_input: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            str(speech_input),
            "--scheduler",
            "tcp://127.0.0.1:9",
            "--jobs-dir",
            str(tmp_path / "jobs"),
            "-o",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the Dask scheduler at tcp://127.0.0.1:9")
    assert "Traceback" not in out.stderr


@pytest.mark.cluster
def test_unreachable_scheduler_falls_back_in_process_when_allowed(
    speech_input: Path, reference_srt: bytes, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    s = job_settings(settings, scheduler="tcp://127.0.0.1:9", workers=None, fallback_local=True, connect_timeout_s=2.0)
    runner = Runner(s)
    try:
        result = runner.run(speech_input, s)
        assert not runner.on_cluster
    finally:
        runner.close()
    assert result.outputs["srt"].read_bytes() == reference_srt
    assert "running jobs in this process instead" in caplog.text


@pytest.mark.cluster
def test_an_urgent_job_overtakes_a_long_one(
    data_dir: Path, speech_input: Path, settings: Settings, tmp_path: Path
) -> None:
    long_input = tmp_path / "long.wav"
    sf.write(long_input, concat_speech(speech_clips(data_dir), 200, pauses=(0.8, 1.4, 0.6)), 16000)
    s = job_settings(settings, workers=1, max_inflight=2)
    urgent = s.replace(jobs=dataclasses.replace(s.jobs, priority=10))
    runner = Runner(s)
    finished: dict[str, float] = {}
    started = threading.Event()

    def run(name: str, path: Path, job_settings: Settings) -> None:
        def on_event(event: JobEvent) -> None:
            if event.stage == "running" and event.segments_done >= 1:
                started.set()

        runner.run(path, job_settings, on_event=on_event)
        finished[name] = time.monotonic()

    try:
        long_job = threading.Thread(target=run, args=("long", long_input, s))
        long_job.start()
        assert started.wait(300)
        run("urgent", speech_input, urgent)
        long_job.join(600)
    finally:
        runner.close()
    assert set(finished) == {"long", "urgent"}
    assert finished["urgent"] < finished["long"]


@pytest.mark.cluster
def test_a_worker_that_joins_after_a_switch_preloads_the_new_model(
    scheduler: str, settings: Settings, tmp_path: Path
) -> None:
    from pipeline.asr.models import bundled_model_path

    other = tmp_path / "tiny-copy"
    other.mkdir()
    for item in bundled_model_path().iterdir():
        (other / item.name).symlink_to(item)
    workers = [start_worker(scheduler, tmp_path / "w0.log", "first")]
    s = job_settings(settings, scheduler=scheduler, workers=None)
    runner = Runner(s)
    try:
        backend = runner.backend()
        assert backend is not None
        backend.wait_for_workers(60)
        _until(lambda: runner.model_status()["state"] == "ready")
        runner.load_model(str(other))
        _until(lambda: runner.model_status()["state"] == "ready" and runner.model_status()["model"] == "tiny-copy")
        workers.append(start_worker(scheduler, tmp_path / "w1.log", "later"))
        _until(lambda: runner.model_status()["total_workers"] == 2 and runner.model_status()["state"] == "ready")
        status = runner.model_status()
    finally:
        runner.close()
        for w in workers:
            stop(w)
    assert {w["worker"]: w["model"] for w in status["workers"]} == {"first": "tiny-copy", "later": "tiny-copy"}


def _until(check, timeout: float = 120.0) -> None:  # noqa: ANN001 - a predicate
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)
