"""Real model, three layouts on this machine: in-process, 1 Dask worker × 2 threads, 2 workers × 1 thread.

Two modes, each layout in a fresh process, layouts alternating within each repetition so that background
load hits them alike; the median over repetitions is reported.

- ``cold``: the ``video2srt`` CLI on the 10-minute input, so cluster start-up (scheduler, dashboard, worker
  processes) and model loads are paid, as a CLI user pays them. End to end is process start to files
  written; the first cue is when the job's partial SRT first holds a cue (polled every 50 ms).
- ``warm``: as the app runs jobs. The process starts the runner, waits until every worker's model is
  ready, runs one short job (jfk.wav), then times the 10-minute job from submission to files written; the
  first cue is when the job reports its first finished segment (the partial SRT is written just before).

Usage::

    python benchmarks/layouts.py [--repeat 3] [--input 10min] [--mode cold,warm] [--out bench-out]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import DEFAULT_DATA_DIR  # noqa: E402 - the scripts run as files
from compare import prepare_inputs  # noqa: E402

LAYOUTS = {
    "in-process (--workers 0)": ["--workers", "0"],
    "1 worker x 2 threads": ["--workers", "1", "--cpu-threads", "2"],
    "2 workers x 1 thread": ["--workers", "2", "--cpu-threads", "1"],
}


def run_once(flags: list[str], media: Path, scratch: Path) -> dict[str, float]:
    """One CLI run; returns wall seconds and seconds to the first cue in the partial (or final) SRT."""
    if scratch.exists():
        shutil.rmtree(scratch)
    jobs, out = scratch / "jobs", scratch / "out"
    cmd = [
        sys.executable,
        "-m",
        "pipeline",
        str(media),
        "-o",
        str(out),
        "--jobs-dir",
        str(jobs),
        "--dashboard-address",
        ":0",
        *flags,
    ]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first: float | None = None
    while proc.poll() is None:
        if first is None and any(p.stat().st_size > 0 for p in jobs.glob("*/output/partial.srt")):
            first = time.monotonic() - t0
        time.sleep(0.05)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read()}")
    return {"wall_s": wall, "first_cue_s": first if first is not None else wall}


def run_warm(flags: list[str], media: Path, scratch: Path, data: Path) -> dict[str, float]:
    """One warm run in a fresh process (:func:`warm_child`); returns its job's wall and first-cue seconds."""
    if scratch.exists():
        shutil.rmtree(scratch)
    cmd = [
        sys.executable,
        __file__,
        "--warm-child",
        "--data",
        str(data),
        "--",
        str(media),
        "-o",
        str(scratch / "out"),
        "--jobs-dir",
        str(scratch / "jobs"),
        "--dashboard-address",
        ":0",
        *flags,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def warm_child(cli_args: list[str], data: Path) -> int:
    """In this process: start the runner as the app does, wait until ready, warm up, time one job."""
    from pipeline.jobs.engine import Runner
    from pipeline.jobs.events import JobEvent
    from pipeline.lab.watch import wait_until_ready
    from pipeline.parse import build_parser, settings_from_args

    settings = settings_from_args(build_parser().parse_args(cli_args))
    media = Path(cli_args[0])
    runner = Runner(settings)
    try:
        runner.start()
        wait_until_ready(runner, settings)
        runner.run(data / "jfk" / "jfk.wav", settings)
        first: list[float] = []
        t0 = time.monotonic()

        def on_event(event: JobEvent) -> None:
            if not first and event.stage == "running" and event.segments_done >= 1:
                first.append(time.monotonic() - t0)

        runner.run(media, settings, on_event)
        wall = time.monotonic() - t0
    finally:
        runner.close()
    print(json.dumps({"wall_s": wall, "first_cue_s": first[0] if first else wall}))
    return 0


def _table(title: str, runs: dict[str, list[dict[str, float]]]) -> tuple[list[str], list[dict[str, float | str]]]:
    base = statistics.median(x["wall_s"] for x in runs["in-process (--workers 0)"])
    lines = [
        title,
        "",
        "| layout | end to end | vs in-process | first cue | first cue / total |",
        "|---|---|---|---|---|",
    ]
    rows: list[dict[str, float | str]] = []
    for name, xs in runs.items():
        wall = statistics.median(x["wall_s"] for x in xs)
        first = statistics.median(x["first_cue_s"] for x in xs)
        rows.append({"layout": name, "wall_s": wall, "first_cue_s": first})
        lines.append(f"| {name} | {wall:.1f} s | {wall / base:.2f}x | {first:.1f} s | {first / wall:.0%} |")
    return lines, rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run the layouts and write ``layouts.json`` / ``layouts.md`` under ``--out``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--input", default="10min", choices=["10min", "manifesto"])
    p.add_argument("--mode", default="cold,warm", help="comma-separated: cold, warm")
    p.add_argument("--out", type=Path, default=Path("bench-out"))
    p.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--warm-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("cli_args", nargs="*", help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    if ns.warm_child:
        return warm_child(ns.cli_args, ns.data)
    modes = [m.strip() for m in ns.mode.split(",") if m.strip()]
    if not modes or set(modes) - {"cold", "warm"}:
        p.error("--mode takes cold, warm or both")
    media = prepare_inputs([ns.input], ns.out, ns.data)[0]
    runs = {mode: {name: [] for name in LAYOUTS} for mode in modes}
    for r in range(ns.repeat):
        for mode in modes:
            for name, flags in LAYOUTS.items():
                scratch = ns.out / "layouts"
                got = (
                    run_once(flags, media.path, scratch)
                    if mode == "cold"
                    else run_warm(flags, media.path, scratch, ns.data)
                )
                runs[mode][name].append(got)
                print(json.dumps({"mode": mode, "layout": name, "repeat": r, **got}), flush=True)
    lines: list[str] = []
    rows: dict[str, list[dict[str, float | str]]] = {}
    for mode in modes:
        title = f"{mode}: input {ns.input} ({media.duration:.0f} s), median of {ns.repeat}; " + (
            "process start to files written"
            if mode == "cold"
            else "job submitted to files written, runner already started and its models ready"
        )
        table, rows[mode] = _table(title, runs[mode])
        lines += table + [""]
    (ns.out / "layouts.json").write_text(json.dumps({"input": ns.input, "runs": runs, "rows": rows}, indent=2))
    (ns.out / "layouts.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
