"""Hardening, load: 8 jobs submitted at once through the HTTP API of the real server all finish,
each with exactly the subtitles of its solo run (no cross-talk: every upload has the same file name), while
memory stays bounded and the status route keeps answering. Latency and memory are measured and printed
(``pytest -s``), never asserted against a clock; the long soak is ``benchmarks/soak.py`` (``pytest -m slow``).
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from app_server import serve
from helpers.jobs import wait_job

from pipeline.asr.models import ModelCache
from pipeline.core.settings import Settings
from pipeline.jobs.engine import Runner
from workbench.service import JobManager

# Minutes of real servers and real jobs: deselect with -m "not heavy" for a fast loop.
pytestmark = pytest.mark.heavy

#: Eight short real recordings (2–5 s each), all uploaded under one name.
INPUTS = [f"ljspeech/LJ001-{i:04d}.wav" for i in (2, 4, 6, 8, 11, 13, 16)] + ["fleurs_en/fleurs-en-004.ogg"]
#: More than a job's peak needs (one model, one job's audio at a time); a leak per job would pass it.
RSS_HEADROOM_MB = 400


def _submit(client: httpx.Client, path: Path, name: str) -> str:
    with open(path, "rb") as fh:
        r = client.post("/api/jobs", files={"file": (name, fh)}, data={"formats": "srt,json", "language": "en"})
    assert r.status_code == 202, r.text
    return str(r.json()["job_id"])


def test_eight_concurrent_jobs_finish_without_cross_talk_and_memory_stays_bounded(
    settings: Settings, model_cache: ModelCache, data_dir: Path
) -> None:
    from workbench.server import build_server

    manager = JobManager(settings, Runner(settings, model_cache))
    me = psutil.Process()
    with serve(build_server(settings, manager=manager)) as url, httpx.Client(base_url=url, timeout=120) as client:
        # Solo runs first, one after the other: the reference for each input.
        solo: dict[str, str] = {}
        for name in INPUTS:
            job_id = _submit(client, data_dir / name, "clip.wav")
            assert wait_job(client, job_id, timeout=600)["state"] == "done"
            solo[name] = client.get(f"/api/jobs/{job_id}/result.srt").text
        assert len(set(solo.values())) == len(INPUTS), "the inputs must differ for cross-talk to show"
        baseline_mb = me.memory_info().rss / 2**20

        # Then all eight at once, from eight client threads, while two pollers time the status route.
        ids: dict[str, str] = {}
        barrier = threading.Barrier(len(INPUTS))
        errors: list[BaseException] = []

        def submit(name: str) -> None:
            try:
                with httpx.Client(base_url=url, timeout=120) as own:
                    barrier.wait(60)
                    ids[name] = _submit(own, data_dir / name, "clip.wav")
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        latencies: list[float] = []
        codes: list[int] = []
        running = threading.Event()
        running.set()

        def poll() -> None:
            with httpx.Client(base_url=url, timeout=120) as own:
                while running.is_set():
                    for job_id in list(ids.values()):
                        t = time.perf_counter()
                        r = own.get(f"/api/jobs/{job_id}")
                        latencies.append(time.perf_counter() - t)
                        codes.append(r.status_code)
                    time.sleep(0.1)

        peak_mb = baseline_mb

        def sample() -> None:
            nonlocal peak_mb
            while running.is_set():
                peak_mb = max(peak_mb, me.memory_info().rss / 2**20)
                time.sleep(0.1)

        started = time.monotonic()
        threads = [threading.Thread(target=submit, args=(n,)) for n in INPUTS]
        helpers = [threading.Thread(target=poll) for _ in range(2)] + [threading.Thread(target=sample)]
        for t in threads + helpers:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        assert len(set(ids.values())) == len(INPUTS)
        finals = {name: wait_job(client, job_id, timeout=600) for name, job_id in ids.items()}
        wall = time.monotonic() - started
        running.clear()
        for t in helpers:
            t.join(30)

        for name, status in finals.items():
            assert status["state"] == "done" and status["input_name"] == "clip.wav", (name, status)
            assert client.get(f"/api/jobs/{ids[name]}/result.srt").text == solo[name], f"cross-talk in {name}"
        assert codes and set(codes) == {200}
        assert peak_mb - baseline_mb < RSS_HEADROOM_MB, (baseline_mb, peak_mb)
        assert not any(manager.uploads_root.iterdir())  # every finished job let go of its upload
    manager.close()
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))] * 1000
    print(
        f"\nload: {len(INPUTS)} concurrent jobs done in {wall:.1f} s; status latency over {len(latencies)} "
        f"requests: p50 {statistics.median(latencies) * 1000:.0f} ms, p95 {p95:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms; RSS {baseline_mb:.0f} MB before, peak {peak_mb:.0f} MB"
    )
