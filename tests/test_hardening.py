"""Hardening, bad inputs: the generated corpus of tests/badmedia.py through the CLI and the API.

Every case ends in valid subtitles (possibly empty) or one clear error: in the CLI exit 1 with one ``error:``
line naming the file and no traceback; in the API a 4xx with a one-line ``detail``, or a job that fails
with a clear message, while the app keeps serving.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import srt
from badmedia import BadInput, build_corpus
from fastapi.testclient import TestClient
from helpers.jobs import wait_job

from pipeline.asr.models import ModelCache
from pipeline.core.settings import JobSettings, ModelSettings, OutputSettings, Settings, TranscribeSettings
from pipeline.jobs.engine import Runner
from workbench.service import JobManager

# Minutes of real servers and real jobs: deselect with -m "not heavy" for a fast loop.
pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def corpus(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, BadInput]:
    return build_corpus(data_dir, tmp_path_factory.mktemp("badmedia"))


def _check_subtitles(case: str, bad: BadInput, srt_text: str, json_text: str) -> None:
    cues = list(srt.parse(srt_text))  # raises on anything that is not valid SRT
    data = json.loads(json_text)
    assert len(data["cues"]) == len(cues), case
    text = " ".join(c.content.replace("\n", " ") for c in cues).lower()
    if bad.reason == "":
        assert cues == [], f"{case}: no speech, yet cues: {text!r}"
    elif bad.reason is not None:
        assert bad.reason in text.replace(",", ""), f"{case}: {text!r}"


def test_every_bad_input_through_the_cli(corpus: dict[str, BadInput], tmp_path: Path) -> None:
    """All inputs in one run (one model load): each bad one prints its one error line, the others go on."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            *(str(b.path) for b in corpus.values()),
            "-o",
            str(out),
            "-f",
            "srt,json",
            "--model",
            "tiny.en",
            "--workers",
            "0",
            "--jobs-dir",
            str(tmp_path / "jobs"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert all(line.startswith("error: ") for line in errors), proc.stderr
    failing = [name for name, b in corpus.items() if b.expect == "error"]
    assert proc.returncode == (1 if failing else 0)
    assert len(errors) == len(failing), proc.stderr
    for name, bad in corpus.items():
        mine = [line for line in errors if str(bad.path) in line]
        if bad.expect == "error":
            assert len(mine) == 1 and bad.reason in mine[0], (name, errors)
            assert not (out / f"{bad.path.stem}.srt").exists(), name
        else:
            assert mine == [], (name, mine)
            _check_subtitles(
                name,
                bad,
                (out / f"{bad.path.stem}.srt").read_text(encoding="utf-8"),
                (out / f"{bad.path.stem}.json").read_text(encoding="utf-8"),
            )
    # Every output was written whole: nothing half-written or temporary is left beside them.
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    print(
        f"\nbad inputs, CLI: {len(corpus)} tried in one run (exit {proc.returncode}): {len(failing)} one-line "
        f"errors, {len(corpus) - len(failing)} valid subtitle files, no traceback"
    )


@pytest.fixture(scope="module")
def api(model_cache: ModelCache, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, JobManager]]:
    from workbench.server import build_server

    root = tmp_path_factory.mktemp("api")
    settings = Settings(
        model=ModelSettings(name="tiny.en", device="cpu", compute_type="int8"),
        transcribe=TranscribeSettings(batch_size=8),
        output=OutputSettings(output_dir=root / "out"),
        jobs=JobSettings(jobs_dir=root / "jobs"),
    )
    manager = JobManager(settings, Runner(settings, model_cache))
    with TestClient(build_server(settings, manager=manager)) as client:
        yield client, manager
    manager.close()


def _api_case(client: TestClient, bad: BadInput) -> dict[str, Any]:
    with open(bad.path, "rb") as fh:
        r = client.post("/api/jobs", files={"file": (bad.path.name, fh)}, data={"formats": "srt,json"})
    if r.status_code != 202:
        return {"http": r.status_code, "detail": r.json()["detail"]}
    status = wait_job(client, r.json()["job_id"], timeout=600)
    return {"http": 202, "status": status}


def test_every_bad_input_through_the_api(api: tuple[TestClient, JobManager], corpus: dict[str, BadInput]) -> None:
    client, manager = api
    answers: dict[str, dict[str, Any]] = {}
    for name, bad in corpus.items():
        answer = answers[name] = _api_case(client, bad)
        if answer["http"] != 202:
            detail = answer["detail"]
            assert 400 <= answer["http"] < 500, (name, answer)
            assert bad.expect == "error" and bad.reason in detail, (name, answer)
            assert isinstance(detail, str) and "\n" not in detail and "Traceback" not in detail
            # The client knows its file by its name; the server's upload folder stays private.
            assert str(manager.uploads_root) not in detail, detail
        else:
            status = answer["status"]
            job_id = status["job_id"]
            if bad.expect == "error":
                assert status["state"] == "failed" and bad.reason in status["error"], (name, status)
            else:
                assert status["state"] == "done", (name, status)
                srt_text = client.get(f"/api/jobs/{job_id}/result.srt").text
                _check_subtitles(name, bad, srt_text, client.get(f"/api/jobs/{job_id}/result.json").text)
        # The app keeps serving, UI and API, after every case.
        assert client.get("/api/jobs").status_code == 200
        assert client.get("/").status_code == 200
    refused = [n for n, a in answers.items() if a["http"] != 202]
    assert sorted(refused) == sorted(n for n, b in corpus.items() if b.expect == "error"), answers
    # Refused uploads left nothing behind; finished jobs let go of theirs.
    assert not any(manager.uploads_root.iterdir())
    names = {j["input_name"] for j in client.get("/api/jobs").json()}
    assert len(names) == len(corpus) - len(refused)
    assert all(len(n.encode()) <= 110 for n in names)
    codes = sorted({a["http"] for a in answers.values() if a["http"] != 202})
    print(
        f"\nbad inputs, API: {len(corpus)} tried: {len(refused)} refused with a one-line {codes}, "
        f"{len(corpus) - len(refused)} jobs done with valid subtitles; UI and API served after each"
    )
