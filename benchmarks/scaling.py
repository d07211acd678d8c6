"""Parallel efficiency of the Dask path with a simulated transcriber, on 1–16 workers (issue: Dask scaling).

The real runner does everything a job does — hashing, decoding, VAD (cached after the first run, as in
production), batching, back-pressure, submitting to Dask, collecting, checkpointing, writing the files —
but each task, instead of running Whisper, sleeps for ``--cost`` seconds per second of audio in its
windows (GIL-free, like CTranslate2). Workers are threads of one local Dask cluster, so 16 of them fit on
a small machine; they see the tasks exactly as real workers would.

Reported per worker count, for one 2-hour input and for 10 concurrent 10-minute jobs:
makespan, the ideal (all simulated work / workers) and parallel efficiency = ideal / makespan.

The coordinator's own decode + VAD speed bounds any real cluster: it is printed too (× real time), so
that a deployment can see how many workers one coordinator can feed.

Usage::

    python benchmarks/scaling.py [--workers 1,2,4,8,16] [--cost 0.03] [--jobs 10] [--out bench-out]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import DEFAULT_DATA_DIR  # noqa: E402 - the scripts run as files
from compare import prepare_inputs  # noqa: E402

import pipeline.backends.dask as cluster_mod  # noqa: E402
from pipeline.core.constants import SAMPLE_RATE  # noqa: E402
from pipeline.core.settings import ClusterSettings, JobSettings, ModelManagerSettings, OutputSettings, Settings  # noqa: E402
from pipeline.core.types import SegmentResult  # noqa: E402
from pipeline.jobs.engine import Runner  # noqa: E402

_work = {"seconds": 0.0}
_work_lock = threading.Lock()


def simulated_task(items, settings, language, model, cost=0.03):  # noqa: ANN001, ANN201 - a stand-in task
    """Sleep ``cost`` s per second of window audio (GIL-free), then return empty results in order."""
    seconds = sum(w.size for item in items for w in item.windows) / SAMPLE_RATE
    with _work_lock:
        _work["seconds"] += seconds * cost
    time.sleep(seconds * cost)
    return [SegmentResult(item.segment.index, language, (), ()) for item in items], "simulated"


def _settings(base: Path, address: str, batch_size: int) -> Settings:
    s = Settings()
    return s.replace(
        cluster=ClusterSettings(scheduler=address, max_inflight=0),
        models=ModelManagerSettings(preload=()),  # the simulated tasks need no model
        jobs=JobSettings(jobs_dir=base / "jobs", keep_checkpoints=False),
        output=OutputSettings(output_dir=base / "out", formats=("srt",)),
        transcribe=dataclasses.replace(s.transcribe, language="en", batch_size=batch_size),
        model=dataclasses.replace(s.model, name="tiny.en", cpu_threads=1),
    )


def run_layout(workers: int, inputs: Sequence[Path], base: Path, batch_size: int) -> dict[str, float]:
    """Run ``inputs`` concurrently on a cluster of ``workers`` and measure makespan against the ideal."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=False, dashboard_address=None, silence_logs=logging.ERROR
    ) as cluster:
        s = _settings(base, cluster.scheduler_address, batch_size)
        runner = Runner(s)
        try:
            backend = runner.backend()
            assert backend is not None
            backend.wait_for_workers(30)
            import scaling

            work = scaling._work
            work["seconds"] = 0.0
            errors: list[BaseException] = []

            def one(path: Path) -> None:
                try:
                    runner.run(path, s)
                except BaseException as exc:  # noqa: BLE001 - reported after the run
                    errors.append(exc)

            threads = [threading.Thread(target=one, args=(p,)) for p in inputs]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            makespan = time.monotonic() - t0
            if errors:
                raise errors[0]
        finally:
            runner.close()
    ideal = work["seconds"] / workers
    return {
        "workers": workers,
        "makespan_s": round(makespan, 2),
        "ideal_s": round(ideal, 2),
        "efficiency": round(ideal / makespan, 3),
    }


def coordinator_speed(path: Path, base: Path) -> float:
    """Decode + VAD of ``path`` on this process, as × real time (what one coordinator can feed)."""
    from pipeline.core.settings import AudioSettings, VadSettings
    from pipeline.media.decode import decode, probe
    from pipeline.media.segments import segment_stream
    from pipeline.media.vad import SileroVad

    t0 = time.monotonic()
    audio = AudioSettings()
    duration = probe(path, audio).duration
    for _ in segment_stream(decode(path, audio), VadSettings(), SileroVad()):
        pass
    return duration / (time.monotonic() - t0)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sweep and write ``scaling.json`` / ``scaling.md`` under ``--out``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", default="1,2,4,8,16")
    p.add_argument(
        "--cost",
        type=float,
        default=0.1,
        help="simulated seconds per second of speech (default 0.1: a worker at 10x real time)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="windows per task (default 1: one segment per task, as on CPU workers)",
    )
    p.add_argument("--jobs", type=int, default=10, help="concurrent 10-minute jobs in the second scenario")
    p.add_argument(
        "--scenarios", default="2h,jobs", help="comma-separated: 2h (one 2-hour input), jobs (concurrent jobs)"
    )
    p.add_argument("--out", type=Path, default=Path("bench-out"))
    p.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    ns = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("distributed").setLevel(logging.ERROR)

    import functools

    import scaling  # this file by its module name, so Dask pickles the task by reference

    # The backend submits whatever this name holds.
    cluster_mod.transcribe_task = functools.partial(scaling.simulated_task, cost=ns.cost)
    inputs = {i.name: i for i in prepare_inputs(["10min", "2h"], ns.out, ns.data)}
    folder = ns.out / "scaling"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    long_wav, short_wav = inputs["2h"].path, inputs["10min"].path
    feed = coordinator_speed(long_wav, folder)
    print(f"coordinator decode + VAD: {feed:.0f}x real time", flush=True)
    wanted = {x.strip() for x in ns.scenarios.split(",")}
    scenarios = {
        name: paths
        for key, name, paths in (
            ("2h", "2h input", [long_wav]),
            ("jobs", f"{ns.jobs} x 10 min jobs", [short_wav] * ns.jobs),
        )
        if key in wanted
    }
    rows = []
    for name, paths in scenarios.items():
        run_layout(16, paths[:1], folder, ns.batch_size)  # fills the VAD cache, as a coordinator's would be
        for n in [int(x) for x in ns.workers.split(",")]:
            row = {"scenario": name, **run_layout(n, paths, folder, ns.batch_size)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    stem = "scaling" if wanted == {"2h", "jobs"} else "scaling-" + "-".join(sorted(wanted))
    (ns.out / f"{stem}.json").write_text(
        json.dumps(
            {"cost": ns.cost, "batch_size": ns.batch_size, "coordinator_x_realtime": feed, "rows": rows}, indent=2
        )
    )
    lines = [
        f"Simulated transcriber: {ns.cost} s per second of speech, {ns.batch_size} window(s) per task. "
        f"Coordinator decode + VAD: {feed:.0f}x real time.",
        "",
        "| scenario | workers | makespan | ideal | efficiency |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['scenario']} | {r['workers']} | {r['makespan_s']:.1f} s | {r['ideal_s']:.1f} s | {r['efficiency']:.0%} |"
        for r in rows
    ]
    (ns.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
