"""The same job through both backends, in-process and on a real Dask cluster: the same files, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import with_parts
from helpers.cluster import job_settings

from pipeline.backends.local import LocalBackend
from pipeline.core.settings import Settings
from pipeline.jobs.engine import Runner
from pipeline.jobs.events import JobResult


def _run(clip: Path, settings: Settings, workers: int, out: Path) -> tuple[JobResult, str]:
    """``clip`` on a runner with ``workers`` Dask workers (0: in-process); the result and its backend's class."""
    s = with_parts(
        job_settings(settings, workers=workers),
        transcribe={"batch_size": 2},  # several windows to a call, over several calls
        output={"output_dir": out, "formats": ("srt", "vtt", "json")},
    )
    runner = Runner(s)
    try:
        assert runner.on_cluster is (workers > 0)
        result = runner.run(clip, s)
        backend = type(runner.backend()).__name__
    finally:
        runner.close()
    return result, backend


@pytest.mark.cluster
def test_local_and_dask_backends_write_identical_files(data_dir: Path, settings: Settings, tmp_path: Path) -> None:
    clip = data_dir / "harvard" / "harvard-sentences-list30.mp3"
    local, local_kind = _run(clip, settings, 0, tmp_path / "local")
    dask, dask_kind = _run(clip, settings, 1, tmp_path / "dask")
    assert (local_kind, dask_kind) == (LocalBackend.__name__, "DaskBackend")
    # The comparison covers several calls, one of them with several windows.
    assert (
        local.transcript.timings["calls"] >= 2
        and local.transcript.timings["windows"] > local.transcript.timings["calls"]
    )
    for fmt in ("srt", "vtt"):
        assert local.outputs[fmt].read_bytes() == dask.outputs[fmt].read_bytes(), fmt
    ours, theirs = (json.loads(r.outputs["json"].read_text(encoding="utf-8")) for r in (local, dask))
    # Everything but the timings, which are this run's and this host's.
    ours.pop("timings"), theirs.pop("timings")
    assert ours == theirs
    assert ours["segments"] and all(seg["words"] for seg in ours["segments"]) and ours["cues"]
    assert local.words == dask.words and local.cues == dask.cues
