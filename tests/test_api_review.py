"""Review and export over the HTTP API on the first 12 s of manifesto.mp4: the cues with words and flags, edits
refused with the first offending cue (422), a saved edit rewriting srt/vtt/json/ass, embed and burn as
background exports, restore, a restart, and a resume that keeps the edit."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pysubs2
import pytest
import srt
from fastapi.testclient import TestClient
from helpers.jobs import api_client, api_settings, wait_job, wait_until

from pipeline.asr.models import ModelCache
from pipeline.core.settings import Settings
from pipeline.jobs.engine import Runner
from workbench.service import JobManager

EDIT = "Workers of all countries, unite!"


@pytest.fixture(scope="module")
def review_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return api_settings(tmp_path_factory.mktemp("review"))


@pytest.fixture(scope="module")
def served(review_settings: Settings, model_cache: ModelCache) -> Iterator[tuple[TestClient, JobManager]]:
    manager = JobManager(review_settings, Runner(review_settings, model_cache))
    with api_client(manager) as client:
        yield client, manager
    manager.close()


@pytest.fixture(scope="module")
def clip_job(served: tuple[TestClient, JobManager], tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> str:
    client, _ = served
    clip = tmp_path_factory.mktemp("clip") / "manifesto.mp4"
    src = data_dir / "video" / "manifesto.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-t", "12", "-c", "copy", str(clip)], check=True)
    with open(clip, "rb") as fh:
        r = client.post("/api/jobs", files={"file": ("manifesto.mp4", fh)}, data={"formats": "srt,json"})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    assert wait_job(client, job_id)["state"] == "done"
    return job_id


def _rows(cues: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"start": c["start"], "end": c["end"], "text": c["text"]} for c in cues["cues"]]


def test_cues_edits_and_exports(
    served: tuple[TestClient, JobManager], clip_job: str, review_settings: Settings
) -> None:
    client, manager = served
    out = review_settings.jobs.jobs_dir / clip_job / "output"
    data = client.get(f"/api/jobs/{clip_job}/cues").json()
    assert not data["edited"] and data["limits"]["max_line_width"] == 42 and data["language"] == "en"
    cues = data["cues"]
    assert len(cues) >= 2 and all(c["words"] for c in cues)
    assert {"index", "start", "end", "text", "lines", "words", "flags"} <= set(cues[0])
    for cue in cues:
        low = any(w["probability"] < 0.5 for w in cue["words"])
        assert ("low_confidence" in cue["flags"]) == low
    # ASS was not asked for: styled from the transcript on request.
    ass = client.get(f"/api/jobs/{clip_job}/result.ass")
    assert ass.status_code == 200 and len(pysubs2.SSAFile.from_string(ass.text).events) == len(cues)
    before = {name: (out / name).read_bytes() for name in ("result.srt", "result.json")}

    # Bad edits: 422 naming the first offending cue and why; nothing is written.
    rows = _rows(data)
    cases = {
        "overlap": (1, {"start": rows[0]["end"] - 0.3}, "overlap"),
        "reversed": (0, {"end": rows[0]["start"] - 0.1}, "not after its start"),
        "empty": (1, {"text": "   "}, "no text"),
        "long line": (0, {"text": "x" * 60}, "over the limit of 42"),
        "too many lines": (0, {"text": "word " * 40}, "over the limit of 2"),
        "not a number": (1, {"start": "soon"}, "number of seconds"),
    }
    for name, (i, change, reason) in cases.items():
        bad = [dict(r) for r in rows]
        bad[i].update(change)
        r = client.put(f"/api/jobs/{clip_job}/cues", json=bad)
        assert r.status_code == 422, (name, r.text)
        body = r.json()
        assert body["cue"] == i + 1 and reason in body["reason"] and body["detail"].startswith(f"cue {i + 1}:"), name
    assert client.put(f"/api/jobs/{clip_job}/cues", json=[]).status_code == 422
    assert client.put(f"/api/jobs/{clip_job}/cues", json={"cues": "nope"}).status_code == 422
    assert {name: (out / name).read_bytes() for name in before} == before

    # A good edit: the last cue's words corrected; every output rewritten, the originals kept.
    rows[-1]["text"] = EDIT
    r = client.put(f"/api/jobs/{clip_job}/cues", json={"cues": rows})
    assert r.status_code == 200, r.text
    assert r.json()["edited"] and r.json()["cues"][-1]["text"] == EDIT
    assert list(srt.parse(client.get(f"/api/jobs/{clip_job}/result.srt").text))[-1].content == EDIT
    for fmt in ("srt", "vtt", "json", "ass"):
        assert EDIT in (out / f"result.{fmt}").read_text(encoding="utf-8"), fmt
    assert json.loads((out / "result.json").read_text())["cues"][-1]["lines"] == [EDIT]
    assert (out / "original.srt").read_bytes() == before["result.srt"]
    assert (out / "original.json").read_bytes() == before["result.json"]

    # Embed and burn run in the background; their files come from the job.
    for kind, name in (("embed", "result.subtitled.mp4"), ("burn", "result.burned.mp4")):
        r = client.post(f"/api/jobs/{clip_job}/export", json={"kind": kind})
        assert r.status_code == 202 and r.json()["state"] in ("queued", "running", "done"), r.text
        status = wait_until(
            client, f"/api/jobs/{clip_job}/export/{kind}", lambda s: s["state"] not in ("queued", "running")
        )
        assert status["state"] == "done" and status["file"] == name, status
        r = client.get(f"/api/jobs/{clip_job}/{name}")
        assert r.status_code == 200 and r.headers["content-type"] == "video/mp4" and len(r.content) > 10_000
    track = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(out / "result.subtitled.mp4"), "-map", "0:s:0", "-f", "srt", "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert EDIT in track
    assert client.post(f"/api/jobs/{clip_job}/export", json={"kind": "print"}).status_code == 400
    assert client.get(f"/api/jobs/{clip_job}/result.subtitled.mkv").status_code == 404

    # A restart: the edit and the exports are part of the job folder.
    other = JobManager(review_settings, manager.runner)
    try:
        with api_client(other) as again:
            assert again.get(f"/api/jobs/{clip_job}/cues").json()["edited"]
            assert again.get(f"/api/jobs/{clip_job}/export/burn").json()["state"] == "done"
    finally:
        other.close()

    # A resume of the job (the CLI's --resume) runs it again but never undoes the edit.
    manager.runner.resume(clip_job)
    assert list(srt.parse((out / "result.srt").read_text()))[-1].content == EDIT

    # Restore: the originals are back, and the exports made from the edit are gone.
    r = client.post(f"/api/jobs/{clip_job}/cues/restore")
    assert r.status_code == 200 and not r.json()["edited"]
    assert (out / "result.srt").read_bytes() == before["result.srt"]
    assert not (out / "original.srt").exists() and not (out / "result.burned.mp4").exists()
    assert client.post(f"/api/jobs/{clip_job}/cues/restore").status_code == 409


def test_unfinished_and_audio_jobs(served: tuple[TestClient, JobManager], data_dir: Path) -> None:
    client, _ = served
    with open(data_dir / "jfk" / "jfk.wav", "rb") as fh:
        job_id = client.post("/api/jobs", files={"file": ("jfk.wav", fh)}).json()["job_id"]
    # Not done yet (queued or running, then cancelled): no review, no export.
    assert client.get(f"/api/jobs/{job_id}/cues").status_code == 409
    r = client.post(f"/api/jobs/{job_id}/export", json={"kind": "embed"})
    assert r.status_code == 409 and "not done" in r.json()["detail"]
    assert wait_job(client, job_id)["state"] == "done"
    # Audio only: embedding gives an MKA; there is no picture to burn into.
    client.post(f"/api/jobs/{job_id}/export", json={"kind": "embed"})
    status = wait_until(client, f"/api/jobs/{job_id}/export/embed", lambda s: s["state"] not in ("queued", "running"))
    assert status["file"] == "result.subtitled.mka"
    assert client.get(f"/api/jobs/{job_id}/result.subtitled.mka").headers["content-type"] == "audio/x-matroska"
    client.post(f"/api/jobs/{job_id}/export", json={"kind": "burn"})
    status = wait_until(client, f"/api/jobs/{job_id}/export/burn", lambda s: s["state"] not in ("queued", "running"))
    assert status["state"] == "failed" and "no video to burn" in status["error"]
