"""What a cold local Dask cluster costs, phase by phase: one worker with two model replicas, as the CLI starts it.

Each repetition is a fresh process that imports the cluster module, starts a ``DaskBackend`` (scheduler,
one nanny and its worker process, model plugin), waits until the worker's model is ready, and closes it;
the parent times the whole process, so the interpreter's exit is counted too. With ``--visit``, the child
also opens the dashboard link once the model is ready and times the first page (the dashboard loads on
its first visit).

Usage::

    python benchmarks/cluster_start.py [--repeat 5] [--visit]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

PHASES = ("import_s", "backend_s", "ready_s", "close_s", "process_s")


def child(visit: bool) -> int:
    """In this process: start, wait until ready, optionally visit the dashboard, close; print the phases."""
    from dataclasses import replace

    from pipeline.core.settings import Settings

    t = time.monotonic()
    from pipeline.backends.dask import DaskBackend

    out: dict[str, float] = {"import_s": time.monotonic() - t}
    s = Settings()
    s = replace(s, cluster=replace(s.cluster, workers=1, dashboard_address=":0"), model=replace(s.model, cpu_threads=2))
    t = time.monotonic()
    backend = DaskBackend(s)
    backend.ready()
    out["backend_s"] = time.monotonic() - t
    while [m.get("state") for m in backend.model_statuses().values()] != ["ready"]:
        time.sleep(0.02)
    out["ready_s"] = time.monotonic() - t
    if visit and backend.dashboard:
        v = time.monotonic()
        with urllib.request.urlopen(backend.dashboard, timeout=60) as response:
            response.read()
        out["first_visit_s"] = time.monotonic() - v
    t = time.monotonic()
    backend.close()
    out["close_s"] = time.monotonic() - t
    print(json.dumps(out), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``--repeat`` fresh processes and print each one's phases, then their medians."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--visit", action="store_true", help="also time the dashboard's first page")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    if ns.child:
        return child(ns.visit)
    runs = []
    for _ in range(ns.repeat):
        t = time.monotonic()
        cmd = [sys.executable, __file__, "--child", *(["--visit"] if ns.visit else [])]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=Path(__file__).parent.parent)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr[-2000:]}")
        run = {**json.loads(done.stdout.strip().splitlines()[-1]), "process_s": time.monotonic() - t}
        runs.append(run)
        print(json.dumps({k: round(v, 3) for k, v in run.items()}), flush=True)
    keys = [k for k in (*PHASES, "first_visit_s") if all(k in r for r in runs)]
    print("median: " + "  ".join(f"{k} {statistics.median(r[k] for r in runs):.2f}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
