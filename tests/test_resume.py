"""Resumable jobs: kill at random points and resume to identical output; retries; integrity; cleanup."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import with_parts
from helpers.cluster import job_cli
from helpers.jobs import SHORT_SEGMENTS

from pipeline.asr import transcribe as transcribe_mod
from pipeline.core.errors import CheckpointError, ModelError, TranscriptionError, TransientError
from pipeline.core.settings import Settings
from pipeline.jobs import flight as flight_mod
from pipeline.jobs.engine import Runner
from pipeline.jobs.store import JobStore

# Jobs killed and resumed, minutes in all: deselect with -m "not heavy" for a fast loop.
pytestmark = pytest.mark.heavy


#: The real transcription, which the failure tests put back once the cause went away.
REAL_TRANSCRIBE = transcribe_mod.transcribe_segments


@pytest.fixture(scope="module")
def reference(speech_input: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, float]:
    """The SRT of an uninterrupted run, and how long such a run takes.

    Timed on a second run: the first one in a fresh environment also compiles every module it imports, and
    kills timed from that would land after the job had ended.
    """
    times = []
    for run in range(2):
        root = tmp_path_factory.mktemp(f"reference{run}")
        t = time.monotonic()
        proc = subprocess.run(
            job_cli(str(speech_input), "-o", str(root), "--jobs-dir", str(root / "jobs")),
            capture_output=True,
            text=True,
        )
        times.append(time.monotonic() - t)
        assert proc.returncode == 0, proc.stderr
    return (root / "eighty_seconds.srt").read_bytes(), min(times)


def _result_files(jobs: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(jobs)): (p.stat().st_mtime_ns, p.read_bytes()) for p in jobs.glob("*/segments_results/*.json")
    }


def test_sigkill_at_random_points_then_resume_all(
    speech_input: Path, reference: tuple[bytes, float], tmp_path: Path
) -> None:
    expected, duration = reference
    rng = random.Random(20261129)
    # Two kills anywhere early (before the job folder, during decoding, around the first result), timed from
    # the start; three after the first segment result is on disk, where finished segments must survive. Those
    # are timed from that result, not from the start: how much of a run start-up takes depends on the machine.
    kills = [("start", rng.uniform(0.1, 0.5)) for _ in range(2)] + [
        ("result", rng.uniform(0.0, 0.15)) for _ in range(3)
    ]
    resumed_from_results = 0
    for attempt, (since, fraction) in enumerate(kills):
        root = tmp_path / f"kill{attempt}"
        jobs = root / "jobs"
        proc = subprocess.Popen(
            job_cli(str(speech_input), "-o", str(root), "--jobs-dir", str(jobs)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10 * duration
        while since == "result" and not _result_files(jobs) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(fraction * duration)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # Nothing half-written: every checkpoint and result that exists parses.
        for cp in jobs.glob("*/checkpoint.json"):
            json.loads(cp.read_text())
        before = _result_files(jobs)
        resumed_from_results += bool(before)
        resume = subprocess.run(
            job_cli("--resume-all", "-o", str(root), "--jobs-dir", str(jobs)), capture_output=True, text=True
        )
        assert resume.returncode == 0, resume.stderr
        if not (root / "eighty_seconds.srt").exists():
            # Killed before the job folder existed, or after it finished: nothing to resume; run it again.
            assert "no unfinished jobs" in resume.stderr or not list(jobs.glob("*/job.json"))
            continue
        assert (root / "eighty_seconds.srt").read_bytes() == expected, f"attempt {attempt}"
        # Finished segments were not transcribed again: their files are untouched (while kept).
        after = _result_files(jobs)
        assert all(after.get(k, v) == v for k, v in before.items())
    assert resumed_from_results >= 2, "most kills should land after some segments finished"


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flight_mod, "RETRY_BACKOFF_S", 0.01)


def _flaky(monkeypatch: pytest.MonkeyPatch, segment: int, errors: list[Exception]) -> None:
    """Make transcription of ``segment`` raise each of ``errors`` once, in turn, then work."""
    real = transcribe_mod.transcribe_segments

    def flaky(model, items, settings, language, guard=None):  # noqa: ANN001, ANN202
        if errors and any(item.segment.index == segment for item in items):
            raise errors.pop(0)
        return real(model, items, settings, language, guard)

    monkeypatch.setattr(transcribe_mod, "transcribe_segments", flaky)


def _settings(settings: Settings) -> Settings:
    return with_parts(settings, transcribe={"batch_size": 2}, jobs={"keep_checkpoints": True}, vad=SHORT_SEGMENTS)


def test_transient_failures_are_retried(
    speech_input: Path, settings: Settings, model_cache, monkeypatch, fast_retries
) -> None:  # noqa: ANN001
    _flaky(monkeypatch, 1, [TransientError("worker lost"), RuntimeError("CUDA failed: out of memory")])
    s = _settings(settings)
    result = Runner(s, model_cache).run(speech_input, s)
    history = json.loads((result.job_dir / "checkpoint.json").read_text())["history"]
    mine = [h for h in history if h["segment"] == 1]
    assert [h["attempt"] for h in mine] == [1, 2] and all(h["transient"] for h in mine)
    assert "out of memory" in mine[1]["error"]
    assert json.loads((result.job_dir / "checkpoint.json").read_text())["state"] == "done"


def test_permanent_failure_keeps_finished_segments_and_resumes(
    speech_input: Path,
    settings: Settings,
    model_cache,
    monkeypatch,
    fast_retries,
    reference,  # noqa: ANN001
) -> None:
    _flaky(monkeypatch, 3, [ModelError("model files are broken")])
    s = _settings(settings)
    runner = Runner(s, model_cache)
    with pytest.raises(TranscriptionError, match="segment\\(s\\) .*3.* failed: model files are broken"):
        runner.run(speech_input, s)
    (job,) = JobStore(s.jobs.jobs_dir).jobs()
    cp = job.read_checkpoint()
    assert cp["state"] == "failed" and "model files are broken" in cp["error"]
    assert [h["transient"] for h in cp["history"]] == [False] * len(cp["history"])
    kept = sorted(p.name for p in job.results_dir.glob("*.json"))
    # Segments in batches before the failing one are kept (the first segment is a batch of its own).
    assert kept[:2] == ["00000.json", "00001.json"] and "00003.json" not in kept
    # The cause went away: the resume finishes it, and the subtitles match an uninterrupted run.
    monkeypatch.setattr(transcribe_mod, "transcribe_segments", REAL_TRANSCRIBE)
    result = runner.resume(job.id)
    assert result.outputs["srt"].read_bytes() == _reference_with(settings, speech_input, model_cache)


def _reference_with(settings: Settings, path: Path, model_cache) -> bytes:  # noqa: ANN001
    s = with_parts(
        settings,
        jobs={"jobs_dir": settings.jobs.jobs_dir.parent / "ref_jobs"},
        output={"output_dir": settings.jobs.jobs_dir.parent / "ref_out"},
        transcribe={"batch_size": 2},
        vad=SHORT_SEGMENTS,
    )
    return Runner(s, model_cache).run(path, s).outputs["srt"].read_bytes()


def test_corrupt_result_is_recomputed(speech_input: Path, settings: Settings, model_cache) -> None:  # noqa: ANN001
    s = _settings(settings)
    runner = Runner(s, model_cache)
    first = runner.run(speech_input, s)
    job = JobStore(s.jobs.jobs_dir).open(first.job_id)
    path = job.results_dir / "00001.json"
    path.write_text(path.read_text().replace("e", "E", 3))  # checksum no longer holds
    job.update_checkpoint(state="running")
    assert 1 not in job.load_results()
    again = runner.resume(job.id)
    assert again.outputs["srt"].read_bytes() == first.outputs["srt"].read_bytes()


def test_changed_input_is_refused(tmp_path: Path, data_dir: Path, settings: Settings, model_cache) -> None:  # noqa: ANN001
    src = tmp_path / "clip.wav"
    src.write_bytes((data_dir / "jfk" / "jfk.wav").read_bytes())
    runner = Runner(settings, model_cache)
    job = runner.create_job(src, settings)
    src.write_bytes((data_dir / "ljspeech" / "LJ001-0001.wav").read_bytes())
    with pytest.raises(CheckpointError, match="changed since the job started"):
        runner.resume(job.id)
    src.unlink()
    with pytest.raises(CheckpointError, match="is gone"):
        runner.resume(job.id)


def test_unknown_folder_format_and_bad_ids(tmp_path: Path, data_dir: Path, settings: Settings, model_cache) -> None:  # noqa: ANN001
    runner = Runner(settings, model_cache)
    job = runner.create_job(data_dir / "jfk" / "jfk.wav", settings)
    data = json.loads((job.dir / "job.json").read_text())
    data["format_version"] = 99
    (job.dir / "job.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="format 99"):
        runner.resume(job.id)
    for bad in ("../etc", "/tmp/x", "20260101-000000-zzzzzzzz", "..%2F..%2Fetc"):
        with pytest.raises(CheckpointError, match="not a job id"):
            runner.resume(bad)


def test_disk_space_guard(data_dir: Path, settings: Settings, model_cache, monkeypatch) -> None:  # noqa: ANN001
    import shutil

    from pipeline.jobs import store as checkpoint

    monkeypatch.setattr(
        checkpoint.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 10**6, 10**6)
    )
    with pytest.raises(CheckpointError, match="not enough free space .* needs about .* MB and 1 MB are free"):
        Runner(settings, model_cache).run(data_dir / "jfk" / "jfk.wav", settings)


def test_unfinished_jobs_expire(data_dir: Path, settings: Settings, model_cache) -> None:  # noqa: ANN001
    runner = Runner(settings, model_cache)
    old = runner.create_job(data_dir / "jfk" / "jfk.wav", settings)
    fresh = runner.create_job(data_dir / "jfk" / "jfk.wav", settings)
    data = json.loads((old.dir / "checkpoint.json").read_text())
    data["updated"] = time.time() - 8 * 86400
    (old.dir / "checkpoint.json").write_text(json.dumps(data))
    Runner(settings, model_cache)  # constructing a runner removes nothing: expiry is asked for explicitly
    assert old.dir.exists()
    assert JobStore(settings.jobs.jobs_dir).expire(settings.jobs.expire_days) == [old.id]
    assert not old.dir.exists() and fresh.dir.exists()


def test_the_cli_removes_expired_jobs_before_resuming_and_says_so(
    data_dir: Path,
    settings: Settings,
    model_cache,  # noqa: ANN001
) -> None:
    old = Runner(settings, model_cache).create_job(data_dir / "jfk" / "jfk.wav", settings)
    data = json.loads((old.dir / "checkpoint.json").read_text())
    data["updated"] = time.time() - 8 * 86400
    (old.dir / "checkpoint.json").write_text(json.dumps(data))
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "--resume-all", "--jobs-dir", str(settings.jobs.jobs_dir)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"removed job {old.id}: unfinished for more than 7 days" in proc.stderr
    assert "no unfinished jobs" in proc.stderr and not old.dir.exists()


def test_list_jobs_shows_unfinished_first(data_dir: Path, tmp_path: Path, settings: Settings, model_cache) -> None:  # noqa: ANN001
    runner = Runner(settings, model_cache)
    runner.run(data_dir / "jfk" / "jfk.wav", settings)
    pending = runner.create_job(data_dir / "jfk" / "jfk.flac", settings)
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "--list-jobs", "--jobs-dir", str(settings.jobs.jobs_dir)],
        capture_output=True,
        text=True,
    )
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and pending.id in lines[1] and "queued" in lines[1] and "done" in lines[2]


def test_a_job_killed_before_its_first_checkpoint_resumes_and_is_not_expired(data_dir: Path, tmp_path: Path) -> None:
    """A kill between job.json and the first checkpoint.json leaves a job without times of its own."""
    jobs = tmp_path / "jobs"
    first = subprocess.run(
        job_cli(str(data_dir / "jfk" / "jfk.wav"), "-o", str(tmp_path), "--jobs-dir", str(jobs), "--keep-checkpoints"),
        capture_output=True,
        text=True,
    )
    assert first.returncode == 0, first.stderr
    (job_dir,) = [p for p in jobs.iterdir() if (p / "job.json").exists()]
    (job_dir / "checkpoint.json").unlink()
    (tmp_path / "jfk.srt").unlink()
    resume = subprocess.run(
        job_cli("--resume-all", "-o", str(tmp_path), "--jobs-dir", str(jobs)), capture_output=True, text=True
    )
    assert resume.returncode == 0, resume.stderr
    assert "removed job" not in resume.stderr and "And so, my fellow Americans" in (tmp_path / "jfk.srt").read_text()
