"""CTranslate2's CPU back ends and compute types: what one Whisper window costs under each, with the same text?

CTranslate2 picks its int8 matrix library and instruction set from the CPU (on an AMD CPU it does not use Intel
MKL; ``CT2_USE_MKL=1`` forces it), and the compute type sets the arithmetic. This measures whether any of the
settings a user could change would make a window cheaper than the default ``int8`` ours (and faster-whisper)
runs on the CPU. Each variant runs in a fresh process with its environment: the bundled tiny.en, one thread,
six 28-second windows of the repository's English speech (fleurs_en, harvard, ljspeech end to end), each
transcribed by faster-whisper's ``WhisperModel.transcribe`` (beam 5, word timestamps, language en), once to
warm up and once timed; then five encoder passes of one window alone. Variants run interleaved, ``--repeat``
rounds; the table shows medians and whether every window's text equals the default's.

Usage::

    python benchmarks/ct2_variants.py [--repeat 2] [--out bench-out]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import DEFAULT_DATA_DIR, bundled_model_path, load_sets  # noqa: E402 - the scripts run as files

from pipeline.core.errors import InputError  # noqa: E402
from pipeline.lab.evaluation import data_dir as find_data_dir  # noqa: E402

#: name → (environment, compute type). The first is the default every other is compared with.
VARIANTS: dict[str, tuple[dict[str, str], str]] = {
    "default · int8": ({}, "int8"),
    "int8_float32": ({}, "int8_float32"),
    "int8_bfloat16": ({}, "int8_bfloat16"),
    "float32": ({}, "float32"),
    "CT2_USE_MKL=1 · int8": ({"CT2_USE_MKL": "1"}, "int8"),
    "CT2_USE_MKL=1 + packed GEMM · int8": ({"CT2_USE_MKL": "1", "CT2_USE_EXPERIMENTAL_PACKED_GEMM": "1"}, "int8"),
    "CT2_FORCE_CPU_ISA=AVX2 · int8": ({"CT2_FORCE_CPU_ISA": "AVX2"}, "int8"),
}
#: The English sets whose clips, end to end, are cut into the windows.
SETS = ("fleurs_en", "harvard", "ljspeech")
WINDOW_S = 28
WINDOWS = 6


def child(compute_type: str, data_dir: Path) -> dict[str, object]:
    """In this process: transcribe the windows and time the encoder under this process's environment."""
    import ctranslate2
    import numpy as np
    from faster_whisper import WhisperModel, decode_audio

    sets = load_sets(data_dir)
    audio = np.concatenate([decode_audio(str(clip.path)) for name in SETS for clip in sets[name]])
    n = 16000 * WINDOW_S
    windows = [audio[i : i + n] for i in range(0, audio.size - n, n)][:WINDOWS]
    model = WhisperModel(str(bundled_model_path()), device="cpu", compute_type=compute_type, cpu_threads=1)

    def transcribe_all() -> list[str]:
        texts = []
        for window in windows:
            segments, _ = model.transcribe(
                window, language="en", beam_size=5, word_timestamps=True, vad_filter=False,
                condition_on_previous_text=False,
            )  # fmt: skip
            texts.append(" ".join(s.text.strip() for s in segments))
        return texts

    transcribe_all()
    cpu, wall = time.process_time(), time.perf_counter()
    texts = transcribe_all()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    features = model.feature_extractor(windows[0])[:, :3000]
    stored = ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None]))
    encode = time.process_time()
    for _ in range(5):
        model.model.encode(stored, to_cpu=True)
    encode = (time.process_time() - encode) / 5
    return {"cpu_per_window": cpu / len(windows), "wall_per_window": wall / len(windows), "encode": encode,
            "texts": texts}  # fmt: skip


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_variant(name: str, data_dir: Path) -> dict[str, object]:
    """One variant in a fresh process; ``error`` holds the last line of its failure."""
    env, compute_type = VARIANTS[name]
    cmd = [sys.executable, __file__, "--child", compute_type, "--data", str(data_dir)]
    r = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
    if r.returncode:
        return {"error": (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]}
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def main() -> int:
    p = argparse.ArgumentParser(description="CPU cost of a Whisper window under CTranslate2's back ends.")
    p.add_argument("--repeat", type=int, default=2, help="interleaved rounds of every variant")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names (see VARIANTS)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR, help="the test data folder")
    p.add_argument("--out", type=Path, default=Path("bench-out"), help="where ct2_variants.md goes")
    p.add_argument("--child", help=argparse.SUPPRESS)
    ns = p.parse_args()
    if ns.child:
        print(json.dumps(child(ns.child, ns.data)))
        return 0
    if ns.repeat < 1:
        print(f"error: --repeat {ns.repeat}: give 1 or more rounds", file=sys.stderr)
        return 2
    try:
        ns.data = find_data_dir(ns.data)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    names = [n.strip() for n in ns.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        print(f"error: unknown variant(s) {', '.join(unknown)}; choose from: {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    runs: dict[str, list[dict[str, object]]] = {n: [] for n in names}
    for round_ in range(ns.repeat):
        for name in names:
            runs[name].append(run_variant(name, ns.data))
            print(f"round {round_ + 1}: {name}: {runs[name][-1].get('error') or 'done'}", file=sys.stderr)
    baseline = next((r["texts"] for r in runs.get("default · int8", []) if "texts" in r), None)
    lines = [
        f"CPU: {cpu_name()}; tiny.en, one thread, {WINDOWS} windows of {WINDOW_S} s; "
        f"medians of {ns.repeat} interleaved round(s).",
        "",
        "| variant | CPU s / window | wall s / window | encoder CPU s | same text as default int8 |",
        "|---|---:|---:|---:|---|",
    ]
    for name in names:
        ok = [r for r in runs[name] if "texts" in r]
        if not ok:
            lines.append(f"| {name} | — | — | — | fails: {runs[name][0]['error']} |")
            continue

        def med(key: str, rows: list[dict[str, object]] = ok) -> float:
            return statistics.median(float(str(r[key])) for r in rows)

        same = "yes" if all(r["texts"] == baseline for r in ok) else "no"
        lines.append(
            f"| {name} | {med('cpu_per_window'):.3f} | {med('wall_per_window'):.3f} | {med('encode'):.3f} | {same} |"
        )
    ns.out.mkdir(parents=True, exist_ok=True)
    (ns.out / "ct2_variants.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
