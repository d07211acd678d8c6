"""The jobs HTTP API: upload, poll, fetch results; bad inputs; id validation; cancel; resume after a failure."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import srt
from conftest import with_parts
from fastapi.testclient import TestClient
from helpers.jobs import api_client, api_settings, wait_job

from pipeline.asr import transcribe as transcribe_mod
from pipeline.asr.models import ModelCache
from pipeline.core.errors import ModelError
from pipeline.core.settings import Settings
from pipeline.jobs.engine import Runner
from workbench.service import JobManager

SHORT_SEGMENTS = {"min_segment_s": 15.0, "max_segment_s": 30.0, "target_segment_s": 22.5}
UNKNOWN_ID = "20260101-120000-1a2b3c4d"


def _upload(client: TestClient, path: Path, name: str | None = None, **form: str) -> Any:
    with open(path, "rb") as fh:
        return client.post("/api/jobs", files={"file": (name or path.name, fh)}, data=form)


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return api_settings(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def shared(module_settings: Settings, model_cache: ModelCache) -> Iterator[tuple[TestClient, JobManager]]:
    manager = JobManager(module_settings, Runner(module_settings, model_cache))
    with api_client(manager) as client:
        yield client, manager
    manager.close()


@pytest.fixture(scope="module")
def manifesto_job(shared: tuple[TestClient, JobManager], data_dir: Path) -> dict[str, Any]:
    """manifesto.mp4 through the API to the end; what was seen while it ran."""
    client, _ = shared
    r = _upload(client, data_dir / "video" / "manifesto.mp4", formats="srt,json", language="en")
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    seen: dict[str, Any] = {"stages": set(), "partials": []}

    def on_poll(status: dict[str, Any]) -> None:
        seen["stages"].add(status["stage"])
        assert 0.0 <= status["progress"] <= 1.0
        if status["state"] == "running":
            res = client.get(f"/api/jobs/{job_id}/result.srt")
            if res.status_code == 200:
                seen["partials"].append((res.headers["x-partial"], res.text))
            else:
                assert res.status_code == 404 and "yet" in res.json()["detail"]

    t = time.monotonic()
    seen["final"] = wait_job(client, job_id, on_poll=on_poll)
    seen["seconds"] = time.monotonic() - t
    seen["job_id"] = job_id
    return seen


def test_upload_poll_and_fetch_results(shared: tuple[TestClient, JobManager], manifesto_job: dict[str, Any]) -> None:
    client, manager = shared
    job_id, final = manifesto_job["job_id"], manifesto_job["final"]
    assert final["state"] == "done" and final["progress"] == 1.0, final
    assert final["input_name"] == "manifesto.mp4" and final["error"] is None
    assert final["segments_done"] == final["segments_total"] >= 1 and final["duration"] > 80
    for key in ("stage", "created"):
        assert key in final
    r = client.get(f"/api/jobs/{job_id}/result.srt")
    assert r.status_code == 200 and r.headers["x-partial"] == "0"
    assert r.headers["content-type"].startswith("text/plain") and "utf-8" in r.headers["content-type"]
    cues = list(srt.parse(r.text))
    assert len(cues) >= 10 and "communist" in r.text.lower()
    # While it ran: the growing partial SRT (marked so) or, in its last moments, the final one.
    for flag, text in manifesto_job["partials"]:
        assert flag == "1" or (flag == "0" and text == r.text)
        list(srt.parse(text))
    r = client.get(f"/api/jobs/{job_id}/result.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    data = r.json()
    assert {"language", "duration", "model", "segments", "cues", "timings"} <= set(data)
    assert {"start", "end", "text", "words"} <= set(data["segments"][0])
    # vtt was not asked for: made from the job's transcript, the same cues as the SRT.
    r = client.get(f"/api/jobs/{job_id}/result.vtt")
    assert r.status_code == 200 and r.text.startswith("WEBVTT")
    assert r.text.count(" --> ") == len(cues)
    assert job_id in [j["job_id"] for j in client.get("/api/jobs").json()]
    # Done: nothing to resume or cancel; the upload moved into the job folder (review and video export read it).
    assert client.post(f"/api/jobs/{job_id}/resume").status_code == 409
    assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 409
    assert not any(manager.uploads_root.iterdir())
    assert manager.review.input_path(job_id) == manager.store.open(job_id).dir / "input.mp4"


def test_bad_uploads_are_refused_and_leave_nothing(
    shared: tuple[TestClient, JobManager], data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, manager = shared
    text = tmp_path / "notes.txt"
    text.write_text("not media at all\n" * 100)
    r = _upload(client, text, "fake.mp4")
    assert r.status_code == 400 and "fake.mp4" in r.json()["detail"] and str(tmp_path) not in r.text
    r = _upload(client, text)
    assert r.status_code == 415 and "notes.txt" in r.json()["detail"]
    # A client-side path in the file name never leaves the uploads folder.
    r = _upload(client, text, "../../../escape.mp4")
    assert r.status_code == 400 and not list(manager.settings.jobs.jobs_dir.parent.rglob("escape.mp4"))
    r = _upload(client, data_dir / "jfk" / "jfk.wav", formats="srt,doc")
    assert r.status_code == 400 and "doc" in r.json()["detail"]
    r = _upload(client, data_dir / "jfk" / "jfk.wav", max_line_width="wide")
    assert r.status_code == 400
    r = client.post("/api/jobs", data={"formats": "srt"})
    assert r.status_code == 400 and "file" in r.json()["detail"]
    monkeypatch.setattr(manager, "max_upload_bytes", 100_000)
    r = _upload(client, data_dir / "jfk" / "jfk.wav")  # 352 kB
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    assert not any(manager.uploads_root.iterdir())


@pytest.mark.parametrize(
    "path, codes",
    [
        ("/api/jobs/..%2F..%2Fetc%2Fpasswd", (400,)),
        ("/api/jobs/..%2F..%2Fetc%2Fpasswd/result.srt", (400,)),
        ("/api/jobs/%2Fetc%2Fpasswd", (400,)),
        ("/api/jobs/%2e%2e/result.json", (400,)),
        ("/api/jobs/../../etc/passwd", (400, 404)),
        ("/api/jobs/not-a-job", (400,)),
        (f"/api/jobs/{UNKNOWN_ID}", (404,)),
        (f"/api/jobs/{UNKNOWN_ID}/result.srt", (404,)),
    ],
)
def test_job_ids_are_validated(shared: tuple[TestClient, JobManager], path: str, codes: tuple[int, ...]) -> None:
    client, _ = shared
    r = client.get(path)
    assert r.status_code in codes, (r.status_code, r.text)
    assert "root:" not in r.text and isinstance(r.json()["detail"], str)


def test_every_job_route_validates_ids(shared: tuple[TestClient, JobManager]) -> None:
    client, _ = shared
    for job_id, code in (("..%2Fjobs", 400), ("bad-id", 400), (UNKNOWN_ID, 404)):
        assert client.post(f"/api/jobs/{job_id}/resume").status_code == code
        assert client.post(f"/api/jobs/{job_id}/cancel").status_code == code
        assert client.delete(f"/api/jobs/{job_id}").status_code == code
        assert client.get(f"/api/jobs/{job_id}/result.vtt").status_code == code


def test_cancelling_a_queued_job_means_it_never_runs(
    settings: Settings, model_cache: ModelCache, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = Runner(settings, model_cache)
    real, gate, started = runner.run_job, threading.Event(), []

    def gated(job, on_event=None, cancel=None, fresh=False):  # noqa: ANN001, ANN202
        started.append(job.id)
        assert gate.wait(60)
        return real(job, on_event, cancel, fresh=fresh)

    monkeypatch.setattr(runner, "run_job", gated)
    manager = JobManager(settings, runner)
    with api_client(manager) as client:
        first = _upload(client, data_dir / "jfk" / "jfk.wav").json()["job_id"]
        second = _upload(client, data_dir / "jfk" / "jfk.wav").json()["job_id"]
        assert client.get(f"/api/jobs/{second}").json()["state"] == "queued"
        r = client.post(f"/api/jobs/{second}/cancel")
        assert r.status_code == 202 and r.json()["state"] == "cancelled"
        gate.set()
        assert wait_job(client, first)["state"] == "done"
        status = wait_job(client, second)
        assert status["state"] == "cancelled" and status["segments_done"] == 0
        assert started == [first]
        assert client.get(f"/api/jobs/{second}/result.srt").status_code == 404
        # Deleting removes the job folder and its upload.
        assert client.delete(f"/api/jobs/{second}").status_code == 204
        assert client.get(f"/api/jobs/{second}").status_code == 404
        assert not (settings.jobs.jobs_dir / second).exists() and not any(manager.uploads_root.iterdir())
    manager.close()


def test_cancelling_a_running_job_never_stalls_the_queue(
    settings: Settings, model_cache: ModelCache, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = Runner(settings, model_cache)
    real, gate = runner.run_job, threading.Event()

    def gated(job, on_event=None, cancel=None, fresh=False):  # noqa: ANN001, ANN202
        gate.wait(60)
        return real(job, on_event, cancel, fresh=fresh)

    monkeypatch.setattr(runner, "run_job", gated)
    # The cancel lands before the runner has decoded anything: the runner must stop at once, and a
    # runner that did not would still not stall the queue (the grace period).
    manager = JobManager(settings, runner, cancel_grace_s=2.0)
    with api_client(manager) as client:
        first = _upload(client, data_dir / "jfk" / "jfk.wav").json()["job_id"]
        second = _upload(client, data_dir / "jfk" / "jfk.wav").json()["job_id"]
        deadline = time.monotonic() + 30
        while client.get(f"/api/jobs/{first}").json()["stage"] == "queued" and time.monotonic() < deadline:
            time.sleep(0.05)
        r = client.post(f"/api/jobs/{first}/cancel")
        assert r.status_code == 202 and r.json()["state"] == "running"
        gate.set()
        assert wait_job(client, first, timeout=60)["state"] == "cancelled"
        assert wait_job(client, second)["state"] == "done"
    manager.close()


def test_resume_through_the_api_after_a_permanent_failure(
    settings: Settings, model_cache: ModelCache, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = with_parts(settings, transcribe={"batch_size": 1}, vad=SHORT_SEGMENTS, jobs={"keep_checkpoints": True})
    real, errors = transcribe_mod.transcribe_segments, [ModelError("model files are broken")]

    def flaky(model, items, settings, language, guard=None):  # noqa: ANN001, ANN202
        if errors and any(item.segment.index == 1 for item in items):
            raise errors.pop(0)
        return real(model, items, settings, language, guard)

    monkeypatch.setattr(transcribe_mod, "transcribe_segments", flaky)
    manager = JobManager(s, Runner(s, model_cache))
    harvard = data_dir / "harvard" / "harvard-sentences-list30.mp3"
    with api_client(manager) as client:
        failing = _upload(client, harvard).json()["job_id"]
        status = wait_job(client, failing)
        assert status["state"] == "failed" and "model files are broken" in status["error"]
        kept = s.jobs.jobs_dir / failing / "segments_results" / "00000.json"
        assert kept.exists() and not kept.with_name("00001.json").exists()
        kept_mtime = kept.stat().st_mtime_ns
        # What was finished before the failure stays available, marked partial.
        r = client.get(f"/api/jobs/{failing}/result.srt")
        assert r.status_code == 200 and r.headers["x-partial"] == "1" and list(srt.parse(r.text))
        assert client.get(f"/api/jobs/{failing}/result.json").status_code == 404
        # The cause went away: a normal run of the same file is the reference.
        normal = _upload(client, harvard).json()["job_id"]
        assert wait_job(client, normal)["state"] == "done"
        r = client.post(f"/api/jobs/{failing}/resume")
        assert r.status_code == 202
        assert client.post(f"/api/jobs/{failing}/resume").status_code == 409  # already queued or running
        status = wait_job(client, failing)
        assert status["state"] == "done" and status["error"] is None
        resumed = client.get(f"/api/jobs/{failing}/result.srt").text
        assert resumed.strip() and resumed == client.get(f"/api/jobs/{normal}/result.srt").text
        assert kept.stat().st_mtime_ns == kept_mtime  # the finished segment was not transcribed again
        history = json.loads((s.jobs.jobs_dir / failing / "checkpoint.json").read_text())["history"]
        assert [h["transient"] for h in history] == [False]
    manager.close()


def test_old_uploads_without_a_job_are_pruned_at_start(settings: Settings) -> None:
    uploads = settings.jobs.jobs_dir / "uploads"
    orphan, fresh = uploads / "0123456789abcdef", uploads / "fedcba9876543210"
    for folder in (orphan, fresh):
        folder.mkdir(parents=True)
        (folder / "clip.mp4").write_bytes(b"x")
    day_ago = time.time() - 2 * 86400
    os.utime(orphan, (day_ago, day_ago))
    manager = JobManager(settings)
    assert orphan.exists()  # building the service removes nothing: starting it does
    manager.start()
    assert not orphan.exists() and fresh.exists()  # a recent one may be an upload in progress
    assert manager.unfinished_at_start == []
    manager.close()


def _age(job_dir: Path, when: float) -> None:
    """Make a job folder look untouched since ``when``: ``JobStore.expire`` reads checkpoint.json's ``updated``."""
    checkpoint = job_dir / "checkpoint.json"
    data = json.loads(checkpoint.read_text())
    data["updated"] = when
    checkpoint.write_text(json.dumps(data))


def test_the_service_expires_old_jobs_on_its_schedule_but_never_one_it_holds(
    settings: Settings, model_cache: ModelCache, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = with_parts(settings, jobs={"expire_days": 1})
    runner = Runner(s, model_cache)
    real, gate = runner.run_job, threading.Event()

    def gated(job, on_event=None, cancel=None, fresh=False):  # noqa: ANN001, ANN202
        assert gate.wait(120)
        return real(job, on_event, cancel, fresh=fresh)

    monkeypatch.setattr(runner, "run_job", gated)
    jobs_dir, clip, month_ago = s.jobs.jobs_dir, data_dir / "jfk" / "jfk.wav", time.time() - 30 * 86400
    manager = JobManager(s, runner, housekeeping_every_s=0.2)
    manager.start()
    with api_client(manager) as client:
        running = _upload(client, clip).json()["job_id"]
        queued = _upload(client, clip).json()["job_id"]
        left = runner.create_job(clip, s).id  # a job nobody runs, such as one a crash left behind
        for job_id in (running, queued, left):
            _age(jobs_dir / job_id, month_ago)
        # A later round removes the old job it does not hold, with no restart of the service.
        deadline = time.monotonic() + 60
        while (jobs_dir / left).exists():
            assert time.monotonic() < deadline, "the expired job was not removed"
            time.sleep(0.1)
        assert client.get(f"/api/jobs/{left}").status_code == 404
        # The jobs it holds are as old, but stay and finish.
        assert (jobs_dir / running).is_dir() and (jobs_dir / queued).is_dir()
        gate.set()
        assert wait_job(client, running)["state"] == "done"
        assert wait_job(client, queued)["state"] == "done"
    manager.close()


def test_build_server_serves_the_jobs_api(settings: Settings) -> None:
    from workbench.server import build_server

    app = build_server(settings)
    assert isinstance(app.state.jobs, JobManager)
    with TestClient(app) as client:
        assert client.get("/api/jobs").json() == []
        assert client.get("/api/jobs/..%2F..%2Fetc%2Fpasswd").status_code == 400
        assert client.get(f"/api/jobs/{UNKNOWN_ID}").status_code == 404


def test_app_start_can_resume_what_a_crash_left(settings: Settings, model_cache: ModelCache, data_dir: Path) -> None:
    """A job left unfinished (its process killed) is listed as interrupted, and resumed at start on request."""
    from workbench.server import build_server

    runner = Runner(settings, model_cache)
    job = runner.create_job(data_dir / "jfk" / "jfk.wav", settings)
    job.update_checkpoint(state="running")  # what a killed process leaves behind
    with TestClient(build_server(settings)) as client:
        listed = {j["job_id"]: j for j in client.get("/api/jobs").json()}
        assert listed[job.id]["stage"] == "interrupted"
    server = build_server(settings, resume_unfinished=True)
    server.state.jobs._runner = runner  # share the loaded model
    with TestClient(server) as client:
        assert wait_job(client, job.id)["state"] == "done"
        assert "ask not" in client.get(f"/api/jobs/{job.id}/result.srt").text.lower()
    server.state.jobs.close()
