"""Peak RSS and wall time of ``video2srt`` under glibc heap settings, in interleaved runs.

The CLI shares one heap arena among its threads (``pipeline.system.memory.share_one_heap_arena``) unless
``MALLOC_ARENA_MAX`` is set; the other variants set glibc's own environment variables to show what the
alternatives cost. Each variant transcribes the same input as its own process, variants alternating over
``--repeat`` rounds so drift in the machine's load spreads evenly; peak RSS and CPU time as ``compare.py``
measures them.

Run: ``python benchmarks/allocator.py --input PATH [--repeat 4]`` (e.g. the 10-minute ``pauses`` input that
``python benchmarks/compare.py --prepare-only`` builds under ``bench-out/inputs``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench_common import bundled_model_path, media_duration
from compare import measure, tool_command

#: Variant name -> the environment it adds.
VARIANTS: dict[str, dict[str, str]] = {
    "one arena (the CLI's default)": {},
    "glibc's arenas (one per thread)": {"MALLOC_ARENA_MAX": "16"},
    "mmap from 16 MB, glibc's arenas": {"MALLOC_ARENA_MAX": "16", "MALLOC_MMAP_THRESHOLD_": str(16 << 20)},
}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", type=Path, required=True)
    p.add_argument("--repeat", type=int, default=4)
    ns = p.parse_args(argv)
    duration = media_duration(ns.input)
    model = bundled_model_path()
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(ns.repeat):
            for i, (name, extra) in enumerate(VARIANTS.items()):
                out = Path(tmp) / f"{i}-{rep}"
                cmd, _ = tool_command("ours", ns.input, out, model, batch_size=8)
                m = measure(cmd, out / "log.txt", env={**os.environ, **extra})
                if m.rc != 0:
                    print(f"{name}: exit {m.rc}, see {out / 'log.txt'}", file=sys.stderr)
                    return 1
                results[name].append((m.wall_s, m.peak_rss_mb, m.cpu_s))
    print(f"Input: {ns.input.name} ({duration:.0f} s); {ns.repeat} interleaved runs each; medians, then ranges.\n")
    print("| heap | wall s | peak RSS MB | peak RSS min–max | CPU s |")
    print("|---|---:|---:|---|---:|")
    for name, runs in results.items():
        walls, peaks, cpus = zip(*runs)
        print(
            f"| {name} | {statistics.median(walls):.1f} | {statistics.median(peaks):.0f} "
            f"| {min(peaks):.0f}–{max(peaks):.0f} | {statistics.median(cpus):.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
