"""Waiting on a job through the HTTP API."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient


def wait_job(client: TestClient, job_id: str, timeout: float = 300.0, on_poll: Any = None) -> dict[str, Any]:  # noqa: ANN401
    """Poll ``GET /api/jobs/{id}`` until the job has finished and its worker has let go of it.

    Letting go matters: resume and delete must see the job idle. ``on_poll`` gets every status read.
    """
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = client.get(f"/api/jobs/{job_id}")
        assert r.status_code == 200, r.text
        status = r.json()
        if on_poll is not None:
            on_poll(status)
        if status["state"] in ("done", "failed", "cancelled") and not status["active"]:
            return status
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout:.0f} s: {status}")
