"""Hardening, faults: the app killed mid-job, the Dask scheduler lost mid-job, the disk full
mid-job, the model failing to load under a job. Each fails clearly (or not at all), loses no finished
segment, leaves no corrupt file, and resumes to the output of an uninterrupted run.

A killed worker is covered by tests/test_cluster.py (its tasks are rerun elsewhere, output identical), a
model that fails or does not fit by tests/test_api_models.py and tests/test_model_manager.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import soundfile as sf
from app_server import free_port
from fastapi.testclient import TestClient
from helpers.cluster import job_cli, job_settings, start_scheduler, start_worker, stop
from helpers.jobs import wait_job
from helpers.models import broken_folder, fixed
from media import concat_speech, speech_clips

from pipeline.core.errors import CheckpointError
from pipeline.core.settings import Settings
from pipeline.jobs import store as checkpoint

# Minutes of real servers and real jobs: deselect with -m "not heavy" for a fast loop.
from pipeline.jobs.engine import Runner
from pipeline.jobs.events import JobEvent

# Minutes of real servers and real jobs: deselect with -m "not heavy" for a fast loop.
pytestmark = pytest.mark.heavy

REPO = Path(__file__).resolve().parents[1]


def _first_result(jobs: Path, proc: subprocess.Popen | None, timeout: float = 600.0) -> Path:
    """Wait until a job under ``jobs`` has saved its first segment result; return that job's folder."""
    deadline = time.monotonic() + timeout
    while True:
        found = sorted(jobs.glob("*/segments_results/*.json"))
        if found:
            return found[0].parent.parent
        assert proc is None or proc.poll() is None, "the process ended before its first segment was saved"
        assert time.monotonic() < deadline, "no segment was saved in time"
        time.sleep(0.05)


def _intact(job_dir: Path) -> dict[str, bytes]:
    """Every file of a job folder, after checking none is corrupt or half-written: each JSON parses, each
    segment result's checksum holds, no temp file is left. Returns the segment results' bytes."""
    leftovers = [p.name for p in job_dir.rglob(".*") if p.is_file()]
    assert not leftovers, f"temp files left behind: {leftovers}"
    for path in job_dir.rglob("*.json"):
        json.loads(path.read_text(encoding="utf-8"))
    results = checkpoint.Job(job_dir.name, job_dir).load_results()
    files = sorted(job_dir.glob("segments_results/*.json"))
    assert len(results) == len(files), "a stored segment result fails its checksum"
    return {p.name: p.read_bytes() for p in files}


# --------------------------------------------------------------------------------------------------------------
# The app killed mid-job


@contextlib.contextmanager
def app_process(jobs: Path, log: Path, auth: tuple[str, str]) -> Iterator[tuple[str, subprocess.Popen]]:
    """``python app.py`` (in-process jobs, --auth) on a free port; yields its URL once the API answers."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "app.py"),
                "--port",
                str(port),
                "--model",
                "tiny.en",
                "--workers",
                "0",
                "--jobs-dir",
                str(jobs),
                "--auth",
                ":".join(auth),
            ],
            cwd=jobs.parent,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the app did not start"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/jobs", auth=auth, timeout=5).status_code == 200:
                    break
            time.sleep(0.3)
        yield url, proc
    finally:
        stop(proc, grace=30)


def test_app_killed_mid_job_restarts_lists_it_unfinished_and_resumes_it_to_identical_output(
    data_dir: Path, tmp_path: Path
) -> None:
    auth = ("alice", "pw-" + secrets.token_hex(12))
    talk = tmp_path / "talk.wav"  # 100 s of speech: two or three segments at the default cuts
    sf.write(talk, concat_speech(speech_clips(data_dir), 100, pauses=(0.8, 1.4, 0.6)), 16000)
    jobs, log = tmp_path / "jobs", tmp_path / "app.log"
    form = {"formats": "srt,json", "language": "en", "batch_size": "1"}  # one segment per batch: saved one by one
    with app_process(jobs, log, auth) as (url, proc):
        with open(talk, "rb") as fh:
            r = httpx.post(f"{url}/api/jobs", files={"file": (talk.name, fh)}, data=form, auth=auth, timeout=60)
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        job_dir = _first_result(jobs, proc)
        os.killpg(proc.pid, signal.SIGKILL)  # the whole app, mid-job, no chance to clean up
        proc.wait(30)
    assert job_dir.name == job_id
    before = _intact(job_dir)
    assert before and not (job_dir / "output" / "result.srt").exists()
    with app_process(jobs, log, auth) as (url, _), httpx.Client(base_url=url, auth=auth, timeout=60) as client:
        listed = {j["job_id"]: j for j in client.get("/api/jobs").json()}
        assert listed[job_id]["stage"] == "interrupted" and listed[job_id]["state"] in ("running", "queued")
        assert list(listed)[0] == job_id  # unfinished jobs first
        assert client.post(f"/api/jobs/{job_id}/resume").status_code == 202
        assert wait_job(client, job_id, timeout=600)["state"] == "done"
        resumed = client.get(f"/api/jobs/{job_id}/result.srt").text
        # The same file, uninterrupted, in the same app: the reference.
        with open(talk, "rb") as fh:
            solo = client.post("/api/jobs", files={"file": (talk.name, fh)}, data=form).json()["job_id"]
        assert wait_job(client, solo, timeout=600)["state"] == "done"
        assert resumed.strip() and resumed == client.get(f"/api/jobs/{solo}/result.srt").text
        assert json.loads(client.get(f"/api/jobs/{job_id}/result.json").text)["segments"]
    # The secret of --auth is in no log line and no file the app wrote.
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in text and auth[1] not in text
    assert not [p for p in jobs.rglob("*") if p.is_file() and auth[1].encode() in p.read_bytes()]


# --------------------------------------------------------------------------------------------------------------
# The Dask scheduler lost mid-job


@pytest.mark.cluster
def test_lost_scheduler_fails_clearly_keeps_every_segment_and_resumes_in_process(
    speech_input: Path,
    reference_srt: bytes,
    tmp_path: Path,
) -> None:
    scheduler, address = start_scheduler(tmp_path)
    worker = None
    try:
        worker = start_worker(address, tmp_path / "worker.log", "w0")
        jobs, out = tmp_path / "jobs", tmp_path / "out"
        cli = subprocess.Popen(
            job_cli(str(speech_input), "-o", str(out), "--scheduler", address, "--jobs-dir", str(jobs)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        job_dir = _first_result(jobs, cli)
        os.killpg(scheduler.pid, signal.SIGKILL)
        _, stderr = cli.communicate(timeout=300)
    finally:
        stop(scheduler)
        if worker is not None:
            stop(worker)
    assert cli.returncode == 1 and "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "lost the connection to the Dask scheduler" in errors[0], stderr
    assert f"--resume {job_dir.name}" in errors[0]
    state = json.loads((job_dir / "checkpoint.json").read_text())
    assert state["state"] == "failed" and "scheduler" in state["error"]
    before = _intact(job_dir)
    assert before and not (out / f"{speech_input.stem}.srt").exists()
    # Finished in this process, from where it stopped: the uninterrupted output, the saved segments untouched.
    resume = subprocess.run(
        job_cli("--resume", job_dir.name, "--workers", "0", "--jobs-dir", str(jobs)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resume.returncode == 0, resume.stderr
    assert (out / f"{speech_input.stem}.srt").read_bytes() == reference_srt


# --------------------------------------------------------------------------------------------------------------
# The disk full mid-job


def _tmpfs(folder: Path, size_mb: int) -> bool:
    """Mount a tmpfs of ``size_mb`` at ``folder``; False where this machine does not allow it (not root, a
    container without the capability)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(folder)], capture_output=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


class _FullDisk:
    """A jobs folder whose disk can be filled and freed: a real 72 MiB tmpfs filled by a ballast file, or,
    where mounting is not allowed, every write of pipeline.jobs.store failing with ENOSPC half-way through."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root / "disk"
        # Room for the free-space guard (64 MiB margin plus the job's audio) and little more.
        self.mounted = _tmpfs(self.root, 72)
        self.full = threading.Event()
        if not self.mounted:
            real_open = open

            def failing_open(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
                handle = real_open(path, mode, *args, **kwargs)
                if "w" not in mode or not self.full.is_set():
                    return handle
                return _HalfWriter(handle)

            monkeypatch.setattr(checkpoint, "open", failing_open, raising=False)

    def fill(self) -> None:
        self.full.set()
        if self.mounted:
            with open(self.root / "ballast", "wb") as fh:
                with contextlib.suppress(OSError):
                    while True:
                        fh.write(b"\0" * (1 << 20))
                        fh.flush()

    def free(self) -> None:
        self.full.clear()
        (self.root / "ballast").unlink(missing_ok=True)

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.root)], capture_output=True, timeout=30)


class _HalfWriter:
    """A file that takes half of what it is given, then fails as a full disk does."""

    def __init__(self, handle: Any) -> None:  # noqa: ANN401
        self.handle = handle

    def write(self, data: bytes) -> int:
        self.handle.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __enter__(self) -> _HalfWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401
        return getattr(self.handle, name)


@pytest.fixture
def full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_FullDisk]:
    disk = _FullDisk(tmp_path, monkeypatch)
    try:
        yield disk
    finally:
        disk.close()


def test_full_disk_fails_clearly_keeps_finished_segments_leaves_no_corrupt_file_and_resumes(
    speech_input: Path,
    reference_srt: bytes,
    settings: Settings,
    full_disk: _FullDisk,  # noqa: F811
) -> None:
    s = job_settings(settings, workers=0)
    s = s.replace(
        jobs=dataclasses.replace(s.jobs, jobs_dir=full_disk.root / "jobs", keep_checkpoints=True),
        output=dataclasses.replace(s.output, output_dir=full_disk.root / "out", formats=("srt", "json")),
    )
    runner = Runner(s)
    events: list[JobEvent] = []

    def on_event(event: JobEvent) -> None:
        events.append(event)
        if event.stage == "running" and event.segments_done >= 1 and not full_disk.full.is_set():
            full_disk.fill()

    try:
        with pytest.raises(CheckpointError) as failure:
            runner.run(speech_input, s, on_event)
        message = str(failure.value)
        assert "the disk is full" in message and "\n" not in message and "--resume" in message, message
        assert events[-1].stage == "failed"
        (job_dir,) = [p for p in (full_disk.root / "jobs").iterdir() if p.name != "vad_cache"]
        before = _intact(job_dir)
        assert before, "the segments finished before the disk filled are kept"
        assert not (full_disk.root / "out").exists() or not any((full_disk.root / "out").iterdir())
        # Space again: the resume finishes it to the uninterrupted output, the kept segments untouched.
        full_disk.free()
        result = runner.resume(job_dir.name)
        assert result.outputs["srt"].read_bytes() == reference_srt
        assert {k: v for k, v in _intact(job_dir).items() if k in before} == before
    finally:
        runner.close()


# --------------------------------------------------------------------------------------------------------------
# The model fails to load under a job


def test_a_job_under_a_model_that_fails_to_load_fails_clearly_and_resumes_after_the_fix(
    settings: Settings, data_dir: Path, tmp_path: Path
) -> None:
    from workbench.server import build_server

    folder = broken_folder(tmp_path, "tiny-broken")
    s = settings.replace(model=dataclasses.replace(settings.model, name=str(folder)))
    app = build_server(s, preload=True)
    try:
        with TestClient(app) as client:
            with open(data_dir / "jfk" / "jfk.wav", "rb") as fh:
                r = client.post("/api/jobs", files={"file": ("jfk.wav", fh)}, data={"formats": "srt"})
            assert r.status_code == 202, r.text
            job_id = r.json()["job_id"]
            status = wait_job(client, job_id)
            assert status["state"] == "failed" and "tiny-broken" in status["error"], status
            assert "\n" not in status["error"] and "Traceback" not in status["error"]
            assert client.get("/api/models/status").json()["state"] == "failed"
            assert client.get("/").status_code == 200 and client.get("/api/jobs").status_code == 200
            fixed(folder)
            assert client.post("/api/models/load").status_code == 202  # retry the selected model
            assert client.post(f"/api/jobs/{job_id}/resume").status_code == 202
            status = wait_job(client, job_id)
            assert status["state"] == "done", status
            assert "ask not" in client.get(f"/api/jobs/{job_id}/result.srt").text.lower()
    finally:
        app.state.jobs.close()
        app.state.jobs.runner.close()
