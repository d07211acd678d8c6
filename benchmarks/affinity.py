"""Does CPU affinity help on this machine? Throughput of ``video2srt`` with ``--cpu-affinity half|all|none``.

Each strategy transcribes the same input as its own process (in-process runner, the strategy applied to
that process), alternating strategies over ``--repeat`` rounds so drift in the machine's load spreads
evenly. Prints wall time and real-time factor per strategy (the median over the rounds).

Run: ``python benchmarks/affinity.py [--input PATH] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench_common import DEFAULT_DATA_DIR, media_duration

STRATEGIES = ("all", "half", "none")


def run_once(path: Path, strategy: str, out: Path) -> float:
    """Wall seconds of one ``video2srt`` run with ``strategy``."""
    cmd = [
        sys.executable,
        "-m",
        "pipeline",
        str(path),
        "-o",
        str(out),
        "--jobs-dir",
        str(out / "jobs"),
        "--model",
        "tiny.en",
        "--language",
        "en",
        "--cpu-affinity",
        strategy,
    ]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", type=Path, default=DEFAULT_DATA_DIR / "video" / "manifesto.mp4")
    p.add_argument("--repeat", type=int, default=3)
    ns = p.parse_args(argv)
    duration = media_duration(ns.input)
    times: dict[str, list[float]] = {s: [] for s in STRATEGIES}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(ns.repeat):
            for strategy in STRATEGIES:
                times[strategy].append(run_once(ns.input, strategy, Path(tmp) / strategy))
    print(f"Input: {ns.input.name} ({duration:.0f} s); median of {ns.repeat} runs each.\n")
    print("| --cpu-affinity | cores bound | wall s | RTF | vs all |")
    print("|---|---|---:|---:|---:|")
    base = statistics.median(times["all"])
    for strategy in STRATEGIES:
        wall = statistics.median(times[strategy])
        cores = {"all": "every core", "half": "the first 50%", "none": "left as inherited"}[strategy]
        print(f"| {strategy} | {cores} | {wall:.1f} | {wall / duration:.3f} | {wall / base:.2f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
