"""Real model, three layouts on this machine: in-process, 1 Dask worker × 2 threads, 2 workers × 1 thread.

Each run is the ``video2srt`` CLI as a fresh process on the 10-minute input (so cluster start-up, worker
imports and model loads are paid, as a user pays them). Reported per layout: end-to-end wall time (process
start to files written) and time to first cue (process start until the job's partial SRT first holds a
cue, polled every 50 ms). Layouts alternate within each repetition so that background load hits them alike;
the median over repetitions is reported.

Usage::

    python benchmarks/layouts.py [--repeat 3] [--input 10min] [--out bench-out]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

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
    cmd = [sys.executable, "-m", "pipeline", str(media), "-o", str(out), "--jobs-dir", str(jobs),
           "--dashboard-address", ":0", *flags]
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the layouts and write ``layouts.json`` / ``layouts.md`` under ``--out``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--input", default="10min", choices=["10min", "manifesto"])
    p.add_argument("--out", type=Path, default=Path("bench-out"))
    p.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    ns = p.parse_args(argv)
    media = prepare_inputs([ns.input], ns.out, ns.data)[0]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in LAYOUTS}
    for r in range(ns.repeat):
        for name, flags in LAYOUTS.items():
            runs[name].append(run_once(flags, media.path, ns.out / "layouts"))
            print(json.dumps({"layout": name, "repeat": r, **runs[name][-1]}), flush=True)
    base = statistics.median(x["wall_s"] for x in runs["in-process (--workers 0)"])
    lines = [f"Input: {ns.input} ({media.duration:.0f} s), median of {ns.repeat}.", "",
             "| layout | end to end | vs in-process | first cue | first cue / total |", "|---|---|---|---|---|"]
    rows = []
    for name, xs in runs.items():
        wall = statistics.median(x["wall_s"] for x in xs)
        first = statistics.median(x["first_cue_s"] for x in xs)
        rows.append({"layout": name, "wall_s": wall, "first_cue_s": first})
        lines.append(f"| {name} | {wall:.1f} s | {wall / base:.2f}x | {first:.1f} s | {first / wall:.0%} |")
    (ns.out / "layouts.json").write_text(json.dumps({"input": ns.input, "runs": runs, "rows": rows}, indent=2))
    (ns.out / "layouts.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
