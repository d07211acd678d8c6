"""Model replicas × threads: the same windows transcribed by one wide replica or by several side by side.

The input is cut by the runner's own VAD and batched as the runner batches it (the first segment alone, then
about ``--batch-size`` windows). Each configuration runs in a fresh process: the bundled tiny.en loaded with
CTranslate2 ``intra_threads`` = threads and ``inter_threads`` = replicas, and the batches sent from as many
Python threads as there are replicas (as the model manager's inference lanes do). Reported: wall and CPU
seconds of transcription alone (model loaded, one untimed warm-up batch), peak RSS of the process, and a
digest of the text, which must be the same in every configuration.

Usage::

    python benchmarks/replicas.py [--input 10min|manifesto] [--repeat 2] [--configs 1x2,2x1,2x2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import DEFAULT_DATA_DIR  # noqa: E402 - the scripts run as files
from compare import prepare_inputs  # noqa: E402


def child(media: Path, replicas: int, threads: int, batch_size: int) -> dict[str, object]:
    """In this process: cut, batch and transcribe ``media`` with ``replicas`` × ``threads``."""
    import dataclasses

    from faster_whisper import WhisperModel

    from pipeline.asr.inputs import SegmentAudio
    from pipeline.asr.models import LoadedModel, Placement, resolve
    from pipeline.asr.transcribe import transcribe_segments
    from pipeline.core.settings import Settings
    from pipeline.media.decode import decode_all
    from pipeline.media.segments import segment_audio
    from pipeline.media.vad import SileroVad

    s = Settings()
    samples = decode_all(media)
    segments, _ = segment_audio(samples, s.vad, SileroVad())
    items = [SegmentAudio.read(seg, lambda a, b: samples[round(a * 16000) : round(b * 16000)]) for seg in segments]
    groups: list[list[SegmentAudio]] = [items[:1]]
    current: list[SegmentAudio] = []
    for item in items[1:]:
        current.append(item)
        if sum(len(i.windows) for i in current) >= batch_size:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    spec = resolve(s.model, "cpu")
    model = WhisperModel(
        spec.path, device="cpu", compute_type="int8", cpu_threads=threads, num_workers=replicas, local_files_only=True
    )
    loaded = LoadedModel(spec, Placement("cpu", "int8", threads, replicas=replicas), model)
    settings = dataclasses.replace(s.transcribe, batch_size=batch_size, language="en")
    transcribe_segments(loaded, items[:1], settings, "en")  # untimed: first-call setup
    t0, c0 = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(replicas) as lanes:
        results = list(lanes.map(lambda g: transcribe_segments(loaded, g, settings, "en"), groups))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    text = " ".join(seg.text for batch in results for r in batch for seg in r.segments)
    return {
        "replicas": replicas,
        "threads": threads,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "batches": [sum(len(i.windows) for i in g) for g in groups],
        "words": len(text.split()),
        "text_md5": hashlib.md5(text.encode()).hexdigest()[:10],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run every configuration ``--repeat`` times, alternating, and print a table of medians."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", default="10min", choices=["10min", "manifesto"])
    p.add_argument("--configs", default="1x2,2x2,2x1", help="comma-separated REPLICASxTHREADS")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--out", type=Path, default=Path("bench-out"))
    p.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--child", nargs=3, type=int, metavar=("REPLICAS", "THREADS", "BATCH"), help=argparse.SUPPRESS)
    p.add_argument("media", nargs="?", type=Path, help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    if ns.child:
        print(json.dumps(child(ns.media, *ns.child)))
        return 0
    media = prepare_inputs([ns.input], ns.out, ns.data)[0]
    configs = [tuple(int(x) for x in c.lower().split("x")) for c in ns.configs.split(",") if c.strip()]
    runs: dict[tuple[int, ...], list[dict]] = {c: [] for c in configs}
    for r in range(ns.repeat):
        for replicas, threads in configs:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                str(replicas),
                str(threads),
                str(ns.batch_size),
                str(media.path),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            runs[(replicas, threads)].append(json.loads(out))
            print(json.dumps({"repeat": r, **runs[(replicas, threads)][-1]}), flush=True)
    base = statistics.median(x["wall_s"] for x in runs[configs[0]])
    print(f"\nInput: {ns.input} ({media.duration:.0f} s), batch size {ns.batch_size}, median of {ns.repeat}.\n")
    print("| replicas × threads | batches (windows) | wall s | vs first | CPU s | peak RSS MB | text |")
    print("|---|---|---:|---:|---:|---:|---|")
    for (replicas, threads), xs in runs.items():
        wall = statistics.median(x["wall_s"] for x in xs)
        print(
            f"| {replicas} × {threads} | {xs[0]['batches']} | {', '.join(str(x['wall_s']) for x in xs)} | "
            f"{wall / base:.2f}× | {statistics.median(x['cpu_s'] for x in xs):.1f} | "
            f"{max(x['peak_rss_mb'] for x in xs)} | {xs[0]['text_md5']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
