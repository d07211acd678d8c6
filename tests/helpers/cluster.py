"""Dask on loopback as on several machines: ``dask scheduler`` and ``dask worker`` processes, and job settings
that give a job several tasks in flight."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import with_parts

from pipeline.core.settings import Settings

#: Segments of 15–30 s: an 80 s input makes several tasks.
SHORT = {"min_segment_s": 15.0, "max_segment_s": 30.0, "target_segment_s": 22.5}


def job_settings(settings: Settings, **cluster: object) -> Settings:
    """``settings`` with short segments, one segment per batch and the given cluster fields."""
    return with_parts(
        settings,
        vad=SHORT,
        transcribe={"language": "en", "batch_size": 1},
        model={"name": "tiny.en"},
        cluster={"dashboard_address": ":0", **cluster},
    )


def job_cli(*args: str) -> list[str]:
    """The ``video2srt`` command (``python -m pipeline``) with the flags of :func:`job_settings`: the CLI run
    whose output matches an in-process run of those settings."""
    return [
        sys.executable,
        "-m",
        "pipeline",
        *args,
        "--model",
        "tiny.en",
        "--language",
        "en",
        "--batch-size",
        "1",
        "--segment-length",
        "15-30",
    ]


def spawn(args: list[str], log: Path) -> subprocess.Popen:
    """``python -m <args>`` in its own session (so :func:`stop` reaches its children), output to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", *args], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop a process started with its own session, and its children: SIGTERM, then SIGKILL after ``grace``."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(grace)


def start_scheduler(folder: Path) -> tuple[subprocess.Popen, str]:
    """A ``dask scheduler`` process on loopback and its address (stop it with :func:`stop`)."""
    file = folder / "scheduler.json"
    proc = spawn(
        [
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(file),
        ],
        folder / "scheduler.log",
    )
    try:
        deadline = time.monotonic() + 60
        while not file.exists():
            assert proc.poll() is None and time.monotonic() < deadline, (folder / "scheduler.log").read_text()
            time.sleep(0.2)
        return proc, json.loads(file.read_text())["address"]
    except BaseException:
        stop(proc)
        raise


def start_worker(address: str, log: Path, name: str) -> subprocess.Popen:
    """A ``dask worker`` process with one thread and no nanny (killing it kills the worker for good)."""
    return spawn(
        ["distributed.cli.dask_worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", name], log
    )
