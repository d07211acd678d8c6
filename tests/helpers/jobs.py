"""The jobs HTTP API in tests: settings for a served job manager, a client on its router, waiting on a job."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from pipeline.core.settings import JobSettings, ModelSettings, OutputSettings, Settings, TranscribeSettings
from workbench.http.jobs import jobs_router
from workbench.service import JobManager

#: VAD bounds that cut the conftest's 80 s ``speech_input`` into four or five segments (15–30 s each), so a job
#: can be interrupted with some segments finished and some not.
SHORT_SEGMENTS = {"min_segment_s": 15.0, "max_segment_s": 30.0, "target_segment_s": 22.5}


def api_settings(root: Path) -> Settings:
    """Settings for jobs submitted through the API: bundled tiny.en on the CPU, English, files under ``root``."""
    return Settings(
        model=ModelSettings(name="tiny.en", device="cpu", compute_type="int8"),
        transcribe=TranscribeSettings(language="en", batch_size=8),
        output=OutputSettings(output_dir=root / "out"),
        jobs=JobSettings(jobs_dir=root / "jobs"),
    )


def api_client(manager: JobManager) -> TestClient:
    """A client on just the jobs router (the Gradio mount is covered once, by the server tests)."""
    app = FastAPI()
    app.include_router(jobs_router(manager))
    return TestClient(app)


def wait_until(
    client: TestClient,
    url: str,
    done: Callable[[dict[str, Any]], bool],
    timeout: float = 300.0,
    on_poll: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Poll ``GET url`` until ``done`` says yes of its JSON; ``on_poll`` gets every answer."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = client.get(url)
        assert r.status_code == 200, r.text
        status = r.json()
        if on_poll is not None:
            on_poll(status)
        if done(status):
            return status
        time.sleep(0.2)
    raise AssertionError(f"{url} did not finish in {timeout:.0f} s: {status}")


def wait_job(
    client: TestClient,
    job_id: str,
    timeout: float = 300.0,
    on_poll: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Poll ``GET /api/jobs/{id}`` until the job has finished and its worker has let go of it.

    Letting go matters: resume and delete must see the job idle. ``on_poll`` gets every status read.
    """

    def finished(status: dict[str, Any]) -> bool:
        return status["state"] in ("done", "failed", "cancelled") and not status["active"]

    return wait_until(client, f"/api/jobs/{job_id}", finished, timeout, on_poll)
