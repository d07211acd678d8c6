"""First-job latency with and without the model manager's warm-up.

Each trial is a fresh Python process, as after ``python app.py``: it builds a runner, preloads the model
through the model manager (with or without warm-up) and waits until it is ready, then runs the same short
job twice. The first job pays whatever lazy initialization the load left over; the second shows the
steady state. Trials alternate between the two variants so that drift in the machine's load spreads evenly;
medians are reported.

Run: ``python benchmarks/warmup.py [--input PATH] [--trials 4] [--device cpu|cuda] [--out bench-out/warmup.json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
FIELDS = (
    "ready_s",
    "load_s",
    "warmup_s",
    "first_job_s",
    "first_transcribe_s",
    "second_job_s",
    "second_transcribe_s",
    "first_extra_s",
    "vad_init_s",
)


def child(input_path: Path, warmup: bool, device: str) -> dict[str, Any]:
    """One trial in this (fresh) process: preload, wait until ready, run the job twice."""
    from pipeline.core.settings import (
        JobSettings,
        ModelManagerSettings,
        ModelSettings,
        OutputSettings,
        Settings,
        TranscribeSettings,
    )
    from pipeline.jobs.engine import Runner
    from pipeline.media.vad import SileroVad

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            model=ModelSettings(name="tiny.en", device=device),
            models=ModelManagerSettings(warmup="on" if warmup else "off"),
            transcribe=TranscribeSettings(language="en", batch_size=8),
            output=OutputSettings(output_dir=Path(tmp) / "out", formats=("srt",)),
            jobs=JobSettings(jobs_dir=Path(tmp) / "jobs"),
        )
        t = time.perf_counter()
        vad = SileroVad()
        vad_init = time.perf_counter() - t
        del vad
        runner = Runner(settings)
        t = time.perf_counter()
        runner.models.preload()
        status = runner.models.wait(300)
        ready = time.perf_counter() - t
        if status["state"] != "ready":
            raise SystemExit(f"the model did not load: {status['message']}")
        record = status["models"][0]
        jobs = []
        for _ in range(2):
            t = time.perf_counter()
            result = runner.run(input_path, settings)
            jobs.append((time.perf_counter() - t, result.transcript.timings["transcribe"]))
        runner.close()
    return {
        "first_extra_s": jobs[0][0] - jobs[1][0],
        "warmup": warmup,
        "ready_s": ready,
        "load_s": record["load_s"],
        "warmup_s": record["warmup_s"] or 0.0,
        "first_job_s": jobs[0][0],
        "first_transcribe_s": jobs[0][1],
        "second_job_s": jobs[1][0],
        "second_transcribe_s": jobs[1][1],
        "vad_init_s": vad_init,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", type=Path, default=DATA / "jfk" / "jfk.wav")
    p.add_argument("--trials", type=int, default=4, help="trials per variant (default 4)")
    p.add_argument("--out", type=Path, default=Path("bench-out") / "warmup.json")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--child", choices=("on", "off"), help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    if ns.child:
        print(json.dumps(child(ns.input, ns.child == "on", ns.device)))
        return 0

    def trial(variant: str) -> dict[str, Any]:
        run = subprocess.run(
            [sys.executable, __file__, "--child", variant, "--input", str(ns.input), "--device", ns.device],
            check=True,
            capture_output=True,
            text=True,
        )
        return json.loads(run.stdout.strip().splitlines()[-1])

    trial("off")  # untimed: brings the model, the libraries and the input into the page cache
    trials: list[dict[str, Any]] = []
    for i in range(ns.trials):
        for variant in ("on", "off") if i % 2 == 0 else ("off", "on"):
            trials.append(trial(variant))
            print(f"warm-up {variant}: " + ", ".join(f"{k} {trials[-1][k]:.2f}" for k in FIELDS), file=sys.stderr)
    summary = {}
    for variant in (True, False):
        rows = [t for t in trials if t["warmup"] is variant]
        summary["on" if variant else "off"] = {k: round(statistics.median(r[k] for r in rows), 3) for k in FIELDS}
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    ns.out.write_text(
        json.dumps({"input": str(ns.input), "device": ns.device, "trials": trials, "median": summary}, indent=2)
    )
    print(
        "| warm-up | model ready after | of which warm-up | first job | second job | first − second (paired) "
        "| ready + first job |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, m in summary.items():
        print(
            f"| {name} | {m['ready_s']:.2f} s | {m['warmup_s']:.2f} s | {m['first_job_s']:.2f} s | "
            f"{m['second_job_s']:.2f} s | {m['first_extra_s']:+.2f} s | {m['ready_s'] + m['first_job_s']:.2f} s |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
