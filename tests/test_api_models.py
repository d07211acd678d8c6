"""The model API against a real app (build_server, its lifespan start-up, the real bundled model): the status
at start, 409 while loading, a switch after ready, a job during the load, a memory refusal, a failure and its
retry."""

from __future__ import annotations

import argparse
import dataclasses
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers.models import broken_folder, fixed, model_folder

from pipeline.asr import manager as mm
from pipeline.core.errors import UsageError
from pipeline.core.settings import ModelManagerSettings, Settings
from pipeline.parse import add_model_manager_args, model_manager_from_args
from workbench.server import build_server
from workbench.ui.models import status_badge, status_html, status_text


def _poll(
    client: TestClient,
    url: str,
    until: Callable[[dict[str, Any]], bool],
    timeout: float = 120.0,
    seen: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(url)
        assert r.status_code == 200, r.text
        body = r.json()
        if seen is not None:
            seen.append(body)
        if until(body):
            return body
        assert time.monotonic() < deadline, f"{url} did not get there in {timeout:.0f} s: {body}"
        time.sleep(0.05)


def _upload(client: TestClient, path: Path) -> str:
    with open(path, "rb") as fh:
        r = client.post("/api/jobs", files={"file": (path.name, fh)}, data={"formats": "srt,json", "language": "en"})
    assert r.status_code == 202, r.text
    return r.json()["job_id"]


def _done(client: TestClient, job_id: str) -> dict[str, Any]:
    status = _poll(
        client, f"/api/jobs/{job_id}", lambda s: s["state"] in ("done", "failed", "cancelled") and not s["active"]
    )
    assert status["state"] == "done", status
    return json.loads(client.get(f"/api/jobs/{job_id}/result.json").text)


def _app(settings: Settings, **models: Any) -> Any:  # noqa: ANN401
    return build_server(settings.replace(models=ModelManagerSettings(**models)), preload=True)


def _close(app: Any) -> None:  # noqa: ANN401
    app.state.jobs.close()
    app.state.jobs.runner.close()


def test_start_load_conflict_switch_and_a_job_during_the_load(
    settings: Settings, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real warm-up, held at its start until the test has looked at everything that happens meanwhile.
    gate = threading.Event()
    real = mm.warm_up
    monkeypatch.setattr(mm, "warm_up", lambda model: gate.wait(120) and real(model))
    app = _app(settings, warmup="on")
    try:
        with TestClient(app) as client:
            first = client.get("/api/models/status").json()
            assert first["state"] in ("loading", "ready"), first  # never a "preload in progress" failure
            seen: list[dict[str, Any]] = [first]
            loading = _poll(client, "/api/models/status", lambda s: s.get("stage") == "warm-up", seen=seen)
            assert loading["state"] == "loading" and loading["model"] == "tiny.en" and 0 < loading["progress"] < 1
            worker = loading["workers"][0]
            assert worker["worker"] == "in-process" and worker["state"] == "loading"

            # A second load while loading: 409 with the state; nothing queued twice.
            for body in ({"model": "tiny.en"}, None):
                r = client.post("/api/models/load", json=body)
                assert r.status_code == 409, r.text
                assert r.json()["state"] == "loading" and "tiny.en is still loading (warm-up" in r.json()["detail"]

            # A job submitted during the load waits for the model, visibly.
            job_id = _upload(client, data_dir / "jfk" / "jfk.wav")
            waiting = _poll(client, f"/api/jobs/{job_id}", lambda s: s["stage"] == "waiting_for_model")
            assert waiting["state"] == "waiting_for_model" and "tiny.en" in waiting["message"]

            gate.set()
            ready = _poll(client, "/api/models/status", lambda s: s["state"] != "loading", seen=seen)
            assert ready["state"] == "ready" and ready["model"] == "tiny.en" and ready["progress"] == 1.0
            assert {s["state"] for s in seen} == {"loading", "ready"}
            result = _done(client, job_id)
            assert "ask not" in " ".join(seg["text"] for seg in result["segments"]).lower()
            assert result["model"] == "tiny.en" and result["timings"]["model_wait"] > 0  # it waited for the load

            # After ready, a load is a new round that ends ready with the new model; new jobs use it.
            copy = model_folder(tmp_path, "tiny-copy")
            r = client.post("/api/models/load", json={"model": str(copy)})
            assert r.status_code == 202, r.text
            assert r.json()["state"] == "loading" and r.json()["model"] == "tiny-copy"
            ready = _poll(client, "/api/models/status", lambda s: s["state"] != "loading")
            assert ready["state"] == "ready" and ready["model"] == "tiny-copy", ready
            # Two models per worker by default (auto holds tiny.en beside the multilingual base): both stay.
            assert ready["workers"][0]["cache"] == ["tiny.en", "tiny-copy"]
            result = _done(client, _upload(client, data_dir / "jfk" / "jfk.wav"))
            assert result["model"] == "tiny-copy"
    finally:
        gate.set()
        _close(app)


def test_a_small_memory_budget_is_refused_clearly_and_the_app_keeps_serving(settings: Settings) -> None:
    app = _app(settings, memory_limit_mb=40)
    try:
        with TestClient(app) as client:
            status = _poll(client, "/api/models/status", lambda s: s["state"] not in ("idle", "loading"))
            assert status["state"] == "failed" and status["model"] == "tiny.en"
            assert status["error"].startswith("not enough memory for tiny.en") and "limit of 40 MB" in status["error"]
            assert client.get("/api/jobs").status_code == 200
            assert client.get("/api/hardware/basic").status_code == 200
            assert client.get("/").status_code == 200
            r = client.post("/api/models/load", json={})  # a retry is refused the same way, and says so
            assert r.status_code == 202
            again = _poll(client, "/api/models/status", lambda s: s["state"] != "loading")
            assert again["state"] == "failed" and again["workers"][0]["round"] > status["workers"][0]["round"]
    finally:
        _close(app)


def test_a_broken_model_fails_with_the_reason_the_app_serves_and_a_retry_works(
    settings: Settings, tmp_path: Path
) -> None:
    folder = broken_folder(tmp_path, "tiny-broken")
    app = _app(settings.replace(model=dataclasses.replace(settings.model, name=str(folder))), warmup="off")
    try:
        with TestClient(app) as client:
            status = _poll(client, "/api/models/status", lambda s: s["state"] not in ("idle", "loading"))
            assert status["state"] == "failed" and status["model"] == "tiny-broken"
            assert "could not be loaded" in status["error"] and "\n" not in status["error"]
            assert client.get("/api/jobs").status_code == 200 and client.get("/").status_code == 200
            assert any(c.get("props", {}).get("label") == "Models" for c in app.state.ui.config["components"])
            fixed(folder)
            r = client.post("/api/models/load")  # no body: retry the selected model
            assert r.status_code == 202 and r.json()["state"] == "loading"
            ready = _poll(client, "/api/models/status", lambda s: s["state"] != "loading")
            assert ready["state"] == "ready" and ready["model"] == "tiny-broken" and ready["error"] is None
    finally:
        _close(app)


def test_status_reads_idle_without_preload_and_a_bad_body_is_refused(settings: Settings) -> None:
    app = build_server(settings.replace(models=ModelManagerSettings(preload=())), preload=False)
    try:
        with TestClient(app) as client:
            status = _poll(client, "/api/models/status", lambda s: bool(s["workers"]))
            assert status["state"] == "idle" and "no model loaded yet" in status["message"]
            assert client.post("/api/models/load", json={"model": 42}).status_code == 422
    finally:
        _close(app)


def build_parser() -> argparse.ArgumentParser:
    """The model flags as app.py adds them."""
    p = argparse.ArgumentParser()
    p.add_argument("--no-preload", action="store_true")
    add_model_manager_args(p)
    return p


def test_model_settings_parse_in_one_place() -> None:

    ns = build_parser().parse_args(
        [
            "--preload",
            "tiny.en, small",
            "--warmup",
            "off",
            "--max-cached-models",
            "2",
            "--memory-headroom",
            "256",
            "--model-memory-limit",
            "4000",
        ]
    )
    assert model_manager_from_args(ns) == ModelManagerSettings(("tiny.en", "small"), "off", 2, 256, 4000)
    assert model_manager_from_args(build_parser().parse_args(["--no-preload"])).preload == ()
    assert model_manager_from_args(build_parser().parse_args([])) == ModelManagerSettings()
    with pytest.raises(UsageError, match="bad --max-cached-models .0.: use a whole number of at least 1"):
        model_manager_from_args(build_parser().parse_args(["--max-cached-models", "0"]))
    with pytest.raises(UsageError, match="--preload names no model"):
        model_manager_from_args(build_parser().parse_args(["--preload", " , "]))
    stored = Settings(models=ModelManagerSettings(preload=("tiny.en",))).to_dict()
    assert Settings.from_dict(json.loads(json.dumps(stored))).models.preload == ("tiny.en",)


@pytest.mark.parametrize(
    ("status", "tab", "header"),
    [
        (
            {"state": "loading", "model": "tiny.en", "progress": 0.4, "stage": "warm-up"},
            "Model tiny.en: loading 40% (warming up)",
            "Model tiny.en: loading 40%",
        ),
        (
            {"state": "failed", "model": "tiny-broken", "error": "model tiny-broken could not be loaded"},
            "Model tiny-broken: failed — model tiny-broken could not be loaded",
            "Model tiny-broken: failed",
        ),
        ({"state": "ready", "model": "tiny.en", "progress": 1.0}, "Model tiny.en: ready", "Model tiny.en: ready"),
        ({"state": "idle", "model": None}, "No model loaded yet", "No model loaded yet"),
    ],
)
def test_the_indicator_says_the_state_the_status_gives(status: dict[str, Any], tab: str, header: str) -> None:
    assert status_text(status) == tab and status_text(status, compact=True) == header
    assert f'data-state="{status["state"]}"' in status_badge(status) and header in status_badge(status)
    html = status_html({**status, "workers": []})
    assert f'data-state="{status["state"]}"' in html and ("Retry" in html) == (status["state"] == "failed")
    assert (str(status.get("error")) in html) == (status["state"] == "failed")  # the reason, in full
