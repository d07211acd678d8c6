"""Workbench pieces without a browser: usage samples and charts, progress and cluster rendering, auth parsing,
the UI's per-job settings. The browser drives the whole app in test_browser.py."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.hardware import fake_nvml

from pipeline.core.errors import UsageError
from pipeline.core.settings import Settings
from pipeline.parse import settings_from_request as job_settings
from pipeline.system.monitor import sample_usage


def test_sample_usage_reads_this_machine() -> None:
    sample_usage()  # the first CPU figure of a process is 0.0 by definition
    time.sleep(0.2)
    sample = sample_usage()
    assert abs(sample["time"] - time.time()) < 5
    assert 0.0 <= sample["cpu_percent"] <= 100.0
    assert 0 < sample["ram_used_mb"] < sample["ram_total_mb"]
    assert isinstance(sample["gpus"], list)


def test_sample_usage_reports_each_gpu_through_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([("H200", 143_000, 140_000), ("A10", 24_000, 4_000)]))
    gpus = sample_usage()["gpus"]
    assert gpus == [
        {"index": 0, "name": "H200", "used_mb": 3_000, "total_mb": 143_000},
        {"index": 1, "name": "A10", "used_mb": 20_000, "total_mb": 24_000},
    ]


def test_usage_history_keeps_the_window_per_source() -> None:
    from workbench.usage import HOST, UsageHistory

    now = time.time()
    host_samples = iter([{"time": now - 100, "cpu_percent": 10.0}, {"time": now, "cpu_percent": 50.0}])
    worker_usage = {"time": now - 1, "cpu_percent": 90.0, "ram_used_mb": 2048, "gpus": []}
    workers = [{"name": "gpu-0", "usage": worker_usage}, {"name": "no-usage-yet"}]
    history = UsageHistory(workers=lambda: workers, sample=lambda: next(host_samples), window_s=50)
    history.record()
    history.record()  # the worker's sample did not change: not stored twice
    snap = history.snapshot()
    assert set(snap) == {HOST, "gpu-0"}
    assert [s["cpu_percent"] for s in snap[HOST]] == [50.0]  # 100 s old: outside the 50 s window
    assert len(snap["gpu-0"]) == 1


def test_usage_figures_draw_one_line_per_source_and_gpu() -> None:
    from workbench.ui.hardware import usage_figures

    now = time.time()
    gpu = {"index": 0, "name": "H200", "used_mb": 4096, "total_mb": 143_000}
    history = {
        "app host": [
            {"time": now - 2, "cpu_percent": 20.0, "ram_used_mb": 1024, "ram_total_mb": 8192, "gpus": []},
            {"time": now, "cpu_percent": 30.0, "ram_used_mb": 1536, "ram_total_mb": 8192, "gpus": []},
        ],
        "worker-1": [{"time": now, "cpu_percent": 80.0, "ram_used_mb": 4096, "ram_total_mb": 16384, "gpus": [gpu]}],
    }
    cpu, ram, gpu_fig = usage_figures(history)
    assert [t.name for t in cpu.data] == ["app host", "worker-1"]
    assert list(ram.data[0].y) == [1.0, 1.5]
    assert [t.name for t in gpu_fig.data] == ["worker-1 · GPU 0 (H200)"] and list(gpu_fig.data[0].y) == [4.0]
    _, _, no_gpu = usage_figures({"app host": history["app host"]})
    assert not no_gpu.data and "No GPU" in no_gpu.layout.annotations[0].text


def test_job_card_shows_progress_speed_and_time_left() -> None:
    from workbench.ui.transcribe import job_card

    running = {
        "job_id": "20260101-120000-1a2b3c4d",
        "input_name": "talk <1>.mp4",
        "state": "running",
        "stage": "running",
        "progress": 0.5,
        "segments_done": 2,
        "segments_total": 4,
        "audio_done": 60.0,
        "duration": 120.0,
        "rtf": 0.25,
        "error": None,
    }
    html = job_card(running)
    assert "talk &lt;1&gt;.mp4" in html and "Transcribing · 50%" in html and "2 / 4" in html
    assert "Real-time factor <b>0.25</b>" in html and "about 15 s" in html  # 60 s left × 0.25
    failed = job_card({**running, "state": "failed", "stage": "failed", "error": "disk full; free some space"})
    assert "Failed" in failed and "disk full" in failed and "Time left" not in failed


def test_cluster_tab_renders_whatever_the_status_reports() -> None:
    from workbench.ui.cluster import summary_html, workers_html

    status = {
        "mode": "local",
        "scheduler": "tcp://127.0.0.1:8786",
        "dashboard": "http://127.0.0.1:8787/status",
        "workers": [
            {
                "name": "gpu-0",
                "address": "tcp://10.0.0.2:4000",
                "state": "running",
                "nthreads": 4,
                "resources": {"GPU": 1},
                "models": ["medium"],
                "model_state": "ready",
                "tasks": 3,
                "usage": {
                    "cpu_percent": 42.0,
                    "ram_used_mb": 3072,
                    "ram_total_mb": 65536,
                    "gpus": [{"index": 0, "used_mb": 5120, "total_mb": 81920}],
                },
                "memory_limit_mb": 32000,
            }
        ],
    }
    summary = summary_html(status)
    assert "Local Dask cluster" in summary and 'href="http://127.0.0.1:8787/status"' in summary
    table = workers_html(status)
    for text in (
        "gpu-0",
        "running",
        "42%",
        "3.0 GB of 64.0 GB",
        "GPU 0: 5.0 GB of 80.0 GB",
        "medium (ready)",
        "GPU=1",
        "Memory limit mb",
        "32000",
    ):
        assert text in table, text
    assert "Starting" in summary_html(None) and "No workers" in workers_html({"mode": "starting", "workers": []})
    assert "boom" in summary_html({"mode": "unreachable", "workers": [], "error": "boom"})


def test_parse_auth() -> None:
    from workbench.auth import parse_auth

    assert parse_auth(None) is None
    assert parse_auth("alice:s3:cret") == ("alice", "s3:cret")
    for bad in ("alice", ":pw", "alice:", ""):
        with pytest.raises(UsageError, match="USER:PASS"):
            parse_auth(bad)


def test_ui_job_settings_are_checked(tmp_path: Path) -> None:
    s = job_settings(
        Settings(),
        {"batch_size": "4", "beam_size": 2, "vad": False, "max_lines": 1, "max_line_width": 30, "language": "en"},
        tmp_path,
    )
    assert (s.transcribe.batch_size, s.transcribe.beam_size, s.vad.enabled) == (4, 2, False)
    assert (s.subtitles.max_lines, s.subtitles.max_line_width, s.transcribe.language) == (1, 30, "en")
    bad: list[dict[str, Any]] = [
        {"batch_size": "lots"},
        {"beam_size": 0},
        {"vad": "maybe"},
        {"max_lines": 99},
        {"speed": "fast"},
    ]
    for overrides in bad:
        with pytest.raises(UsageError):
            job_settings(Settings(), overrides, tmp_path)


def test_every_error_kind_has_an_http_status_and_a_ui_title() -> None:
    from pipeline.core.errors import CheckpointError, ErrorKind, InputError, ModelError, TransientError, UsageError
    from workbench.errors import JobConflictError, JobNotFoundError, StorageError, UnsupportedMediaError
    from workbench.http.errors import STATUS_BY_KIND, http_status
    from workbench.ui.errors import TITLE_BY_KIND, ui_error

    assert set(STATUS_BY_KIND) == set(ErrorKind) == set(TITLE_BY_KIND)
    # By kind, whatever the message says.
    assert http_status(UsageError("model files are broken")) == 400
    assert http_status(UsageError("x"), usage=422) == 422
    assert http_status(InputError("x")) == 400
    assert http_status(ModelError("bad request")) == 503
    assert http_status(TransientError("not found")) == 503
    assert http_status(CheckpointError("x")) == 409
    # The service's own refusals, finer than their kind.
    assert http_status(JobNotFoundError("x")) == 404
    assert http_status(JobConflictError("x")) == 409
    assert http_status(UnsupportedMediaError("x")) == 415
    assert http_status(StorageError("x")) == 507
    error = ui_error(ModelError("the model\nis missing"), "Not loaded: ")
    assert error.message == "Not loaded: the model is missing" and error.title == TITLE_BY_KIND[ErrorKind.MODEL]


def test_login_sessions_open_the_api_and_logging_out_closes_them() -> None:
    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient

    from workbench.auth import SESSION_COOKIE, Login

    login = Login(("alice", "s3cret"))
    app = FastAPI()
    app.include_router(login.router())

    @app.get("/api/whoami", dependencies=[Depends(login.require)])
    def whoami() -> str:
        return "yes"

    with TestClient(app) as client:
        assert client.get("/api/whoami").status_code == 401
        assert client.get("/api/whoami", auth=("alice", "s3cret")).json() == "yes"
        assert client.get("/api/whoami", auth=("alice", "s3cret!")).status_code == 401
        assert client.post("/login", data={"username": "alice", "password": "nope"}).status_code == 400
        assert 'type="password"' in client.get("/login").text
        r = client.post("/login", data={"username": "alice", "password": "s3cret"})
        assert r.status_code == 200 and r.json() == {"success": True}
        token = client.cookies.get(SESSION_COOKIE)
        assert token and client.get("/api/whoami").json() == "yes"
        assert client.get("/logout", follow_redirects=False).status_code == 303
        client.cookies.set(SESSION_COOKIE, token)  # the old session, sent again after the logout
        assert client.get("/api/whoami").status_code == 401
