"""The job fingerprint: a resume never mixes segment results of two settings or two versions of video2srt.

A job is interrupted after some segments finished (a permanent failure, as in test_resume.py), then what
its results depend on changes (a guard threshold, the results version, an old job folder) and it is resumed:
the segments made before are transcribed again, with a one-line note, and nothing of the old ones is used.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import with_parts
from helpers.jobs import SHORT_SEGMENTS

from pipeline.asr import transcribe as transcribe_mod
from pipeline.core.errors import ModelError, TranscriptionError
from pipeline.core.settings import Settings
from pipeline.jobs import fingerprint as fingerprint_mod
from pipeline.jobs import flight as flight_mod
from pipeline.jobs.engine import Runner
from pipeline.jobs.files import fingerprint
from pipeline.jobs.store import Job, JobStore

REAL_TRANSCRIBE = transcribe_mod.transcribe_segments


def _interrupted(
    speech_input: Path, settings: Settings, model_cache: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[Runner, Job]:
    """A job that finished its first segments and then failed for good on segment 3."""
    monkeypatch.setattr(flight_mod, "RETRY_BACKOFF_S", 0.01)
    errors = [ModelError("model files are broken")]

    def failing(model, items, settings, language, guard=None):  # noqa: ANN001, ANN202
        if errors and any(item.segment.index == 3 for item in items):
            raise errors.pop(0)
        return REAL_TRANSCRIBE(model, items, settings, language, guard)

    monkeypatch.setattr(transcribe_mod, "transcribe_segments", failing)
    s = with_parts(settings, transcribe={"batch_size": 2}, jobs={"keep_checkpoints": True}, vad=SHORT_SEGMENTS)
    runner = Runner(s, model_cache)
    with pytest.raises(TranscriptionError, match="model files are broken"):
        runner.run(speech_input, s)
    (job,) = JobStore(s.jobs.jobs_dir).jobs()
    assert {0, 1} <= set(job.load_results())
    return runner, job


def _recording(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Put the real transcription back, noting the segments it transcribes."""
    seen: list[int] = []

    def recording(model, items, settings, language, guard=None):  # noqa: ANN001, ANN202
        seen.extend(item.segment.index for item in items)
        return REAL_TRANSCRIBE(model, items, settings, language, guard)

    monkeypatch.setattr(transcribe_mod, "transcribe_segments", recording)
    return seen


def _stamps(job: Job) -> set[str | None]:
    return {json.loads(p.read_text()).get("fingerprint") for p in job.results_dir.glob("*.json")}


def _resume(runner: Runner, job: Job, caplog: pytest.LogCaptureFixture) -> tuple[Any, list[str]]:
    with caplog.at_level(logging.WARNING, logger="pipeline.jobs.engine"):
        result = runner.resume(job.id)
    notes = [r.getMessage() for r in caplog.records if "transcribed again" in r.getMessage()]
    return result, notes


def _edit_job(job: Job, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads((job.dir / "job.json").read_text())
    change(data)
    (job.dir / "job.json").write_text(json.dumps(data))


def test_a_changed_guard_threshold_transcribes_the_finished_segments_again(
    speech_input: Path, settings: Settings, model_cache: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    runner, job = _interrupted(speech_input, settings, model_cache, monkeypatch)
    before = job.read_job()
    assert before["fingerprint_values"]["guard"]["compression_ratio"] == 2.4
    assert _stamps(job) == {before["results_fingerprint"]}

    def stricter(data: dict[str, Any]) -> None:
        data["settings"]["guard"]["compression_ratio"] = 2.0

    _edit_job(job, stricter)
    seen = _recording(monkeypatch)
    result, notes = _resume(runner, job, caplog)
    assert len(notes) == 1 and "guard.compression_ratio 2.4 -> 2.0" in notes[0], notes
    assert f"job {job.id}" in notes[0] and "\n" not in notes[0]
    # Every segment was transcribed under the new threshold, the finished ones included.
    assert {0, 1} <= set(seen) and sorted(set(seen)) == list(range(len(job.read_job()["segment_plan"])))
    after = job.read_job()
    assert after["fingerprint_values"]["guard"]["compression_ratio"] == 2.0
    assert after["results_fingerprint"] != before["results_fingerprint"]
    assert _stamps(job) == {after["results_fingerprint"]}
    assert result.outputs["srt"].read_text(encoding="utf-8").strip()
    # Resumed again with nothing changed: every result holds and none is set aside.
    assert job.match_settings(after["fingerprint_values"]) is None


def test_a_new_results_version_transcribes_the_finished_segments_again(
    speech_input: Path, settings: Settings, model_cache: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    runner, job = _interrupted(speech_input, settings, model_cache, monkeypatch)
    monkeypatch.setattr(fingerprint_mod, "RESULTS_VERSION", fingerprint_mod.RESULTS_VERSION + 1)
    seen = _recording(monkeypatch)
    _, notes = _resume(runner, job, caplog)
    assert len(notes) == 1 and "versions.results" in notes[0], notes
    assert {0, 1} <= set(seen)


def test_a_job_folder_of_an_older_version_resumes_from_scratch_with_a_note(
    speech_input: Path, settings: Settings, model_cache: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    runner, job = _interrupted(speech_input, settings, model_cache, monkeypatch)
    plan = job.read_job()["segment_plan"]

    def older(data: dict[str, Any]) -> None:
        # What video2srt wrote before: no guard or timing settings, no fingerprint values, unstamped results.
        for key in ("fingerprint_values", "results_fingerprint"):
            data.pop(key)
        for part in ("guard", "timing"):
            data["settings"].pop(part)

    _edit_job(job, older)
    for path in job.results_dir.glob("*.json"):
        record = json.loads(path.read_text())
        record.pop("fingerprint")
        path.write_text(json.dumps(record))
    seen = _recording(monkeypatch)
    result, notes = _resume(runner, job, caplog)
    assert len(notes) == 1 and notes[0].startswith(f"job {job.id} was made by an older version of video2srt: ")
    assert {0, 1} <= set(seen)
    # Its segment plan is kept (the cuts need no result of the old version), and the job finished.
    assert job.read_job()["segment_plan"] == plan
    assert job.read_checkpoint()["state"] == "done" and result.outputs["srt"].exists()
    assert _stamps(job) == {job.read_job()["results_fingerprint"]}
    assert job.read_job()["settings_fingerprint"] == fingerprint(job.read_job()["fingerprint_values"])
