"""CPU seconds of every process and thread of a command, read from /proc while it runs (Linux).

Where a run's CPU goes when a whole-process figure is not enough: e.g. the model's C++ threads against the
event loops, the decoder and the imports, in-process or on a local Dask cluster (the worker processes are
children of the command). Threads that ended between two polls (every 0.1 s) count up to their last poll.

Usage::

    python benchmarks/thread_cpu.py video2srt IN.mp4 -o out --workers 1 --cpu-threads 2
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict

TICK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out += [int(c) for c in f.read().split()]
            except OSError:
                continue
    except OSError:
        pass
    return out


def _threads(pid: int) -> dict[int, float]:
    cpu: dict[int, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return cpu
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu[int(tid)] = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
    return cpu


def main(argv: list[str]) -> int:
    """Run ``argv``; print its wall time, CPU per process, and each thread's CPU above 0.05 s."""
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError as exc:
        print(
            f"thread_cpu.py: error: cannot run {argv[0]!r} ({exc.strerror}); give a command and its arguments",
            file=sys.stderr,
        )
        return 2
    seen: dict[tuple[int, int], float] = {}
    t0 = time.monotonic()
    while proc.poll() is None:
        todo, pids = [proc.pid], []
        while todo:
            pid = todo.pop()
            pids.append(pid)
            todo += _children(pid)
        for pid in pids:
            for tid, cpu in _threads(pid).items():
                seen[(pid, tid)] = cpu
        time.sleep(0.1)
    wall = time.monotonic() - t0
    per_process: dict[int, float] = defaultdict(float)
    for (pid, _tid), cpu in seen.items():
        per_process[pid] += cpu
    name = {pid: "main" if pid == proc.pid else f"child {pid}" for pid in per_process}
    print(
        f"wall {wall:.2f} s, CPU {sum(per_process.values()):.2f} s: "
        + ", ".join(f"{name[p]} {c:.2f}" for p, c in per_process.items())
    )
    for (pid, tid), cpu in sorted(seen.items(), key=lambda kv: -kv[1]):
        if cpu >= 0.05:
            print(f"  {name[pid]:>12}  thread {tid:<8} {cpu:6.2f} s")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
