"""Windows, levelling and beam: the candidates behind the VAD and decoding defaults, measured side by side.

Each candidate is a (VAD settings, decoding settings) pair. For each, through
:func:`pipeline.lab.sweeps.vad_sweep` (one runner, one model, in this process): WER per data set, where
faster-whisper's batched pipeline on the same files is the yardstick (``benchmarks/accuracy.py``'s
``transcribe_fw``), and on the 10-minute benchmark input (``compare.py``'s ``10min.wav``) its WER, its Whisper
window count and the CPU seconds (user + system of this process, model load included) the run took. On this
shared machine wall time is not comparable between candidates; CPU time is steadier, and the window count is
what it mostly follows (each window is a full 30 s encoder pass).

``--kinds`` measures instead on the benchmark inputs of ``benchmarks/inputs.py`` (dense, pauses, silences,
speakers; built if missing), one input at a time: per candidate and input, the Whisper windows, the seconds the
encoder sees (30 s a window, guard re-decodes included), the windows' own audio and the WER; beside them
faster-whisper's batched pipeline's chunks and their audio, from its own VAD and chunking with its defaults
(no transcription: those counts do not depend on it). All of it is deterministic, so it can be compared on a
busy machine where wall time cannot.

Usage::

    python benchmarks/compare.py --prepare-only --inputs 10min      # builds bench-out/inputs/10min.wav
    python benchmarks/windows.py [--candidates 'before,chosen,...'] [--out bench-out]
    python benchmarks/windows.py --kinds dense,pauses,silences,speakers --candidates 'chosen,...'
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import resource
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.core.settings import Settings, VadSettings
from pipeline.lab.evaluation import DEFAULT_DATA_DIR, SET_NAMES, Clip, corpus_wer, load_sets
from pipeline.lab.inputs import base_settings
from pipeline.lab.sweeps import vad_sweep

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import transcribe_fw  # noqa: E402 - the scripts run as files, not as a package
from bench_common import bundled_model_path  # noqa: E402

#: The settings in force before this tuning, spelled out so the comparison survives later default changes.
BEFORE_VAD = {"threshold": 0.5, "skip_silence_s": 2.0, "keep_pause_s": 30.0, "window_s": 24.0}
NO_LEVELLING = {"level_boost_db": 0.0}
#: name -> (VadSettings fields, TranscribeSettings fields), on top of the current defaults.
CANDIDATES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "before": (BEFORE_VAD, NO_LEVELLING),
    "before · beam 1": (BEFORE_VAD, {**NO_LEVELLING, "beam_size": 1}),
    "before · 30 s windows": ({**BEFORE_VAD, "window_s": 30.0}, NO_LEVELLING),
    "before · 20 s windows": ({**BEFORE_VAD, "window_s": 20.0}, NO_LEVELLING),
    "before + levelling": (BEFORE_VAD, {}),
    "30 s + levelling": ({**BEFORE_VAD, "window_s": 30.0}, {}),
    "20 s + levelling": ({**BEFORE_VAD, "window_s": 20.0}, {}),
    "30 s + levelling · pad 250 ms": ({**BEFORE_VAD, "window_s": 30.0, "speech_pad_ms": 250}, {}),
    "30 s + levelling · threshold 0.55": ({**BEFORE_VAD, "window_s": 30.0, "threshold": 0.55}, {}),
    "chosen · threshold 0.5": ({"threshold": 0.5}, {}),
    "chosen · keep pauses 2 s": ({"keep_pause_s": 2.0}, {}),
    "chosen": ({}, {}),
    "chosen · beam 3": ({}, {"beam_size": 3}),
    "chosen · beam 1": ({}, {"beam_size": 1}),
    "chosen · keep pauses 1 s": ({"keep_pause_s": 1.0}, {}),
    "chosen · keep pauses 0.4 s": ({"keep_pause_s": 0.4}, {}),
    "chosen · silence 160 ms": ({"min_silence_ms": 160}, {}),
    # faster-whisper's batched VAD splits at 160 ms of silence and keeps 0.8 s (its pads) of a longer one.
    "chosen · silence 160 ms · keep pauses 0.4 s": ({"min_silence_ms": 160, "keep_pause_s": 0.4}, {}),
    "chosen · silence 160 ms · keep pauses 0.2 s": ({"min_silence_ms": 160, "keep_pause_s": 0.2}, {}),
    "chosen · silence 160 ms · keep pauses 0 s": ({"min_silence_ms": 160, "keep_pause_s": 0.0}, {}),
}


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(name: str, clips: Sequence[Clip], long_clip: Clip, base: Settings) -> dict[str, Any]:
    """WER per set and the 10-minute figures of one candidate.

    Args:
        name: A key of :data:`CANDIDATES`.
        clips: The data set recordings.
        long_clip: The 10-minute input with its reference.
        base: Everything but the candidate's fields.

    Returns:
        ``name``, ``vad`` and ``transcribe`` (the fields set), ``wer_by_set``, and ``long_wer``,
        ``long_windows``, ``long_cpu_s``.
    """
    vad_fields, tr_fields = CANDIDATES[name]
    vad = dataclasses.replace(VadSettings(), **vad_fields)
    settings = base.replace(transcribe=dataclasses.replace(base.transcribe, **tr_fields))
    sets = vad_sweep(clips, [vad], settings)[0]
    started = _cpu_s()
    long = vad_sweep([long_clip], [vad], settings)[0]
    return {
        "name": name,
        "vad": vad_fields,
        "transcribe": tr_fields,
        "wer_by_set": sets["wer_by_set"],
        "long_wer": long["wer"],
        "long_windows": long["windows"],
        "long_cpu_s": round(_cpu_s() - started, 1),
    }


def fw_figures(clips: Sequence[Clip], long_clip: Clip) -> dict[str, Any]:
    """faster-whisper's batched pipeline on the same recordings: WER per set, and on the 10-minute input."""
    model = bundled_model_path()
    hyps, _ = transcribe_fw(clips, model)
    by_set = {
        name: corpus_wer([c.ref for c in clips if c.set == name], [h for c, h in zip(clips, hyps) if c.set == name])
        for name in dict.fromkeys(c.set for c in clips)
    }
    started = _cpu_s()
    (long_hyp,), _ = transcribe_fw([long_clip], model)
    return {
        "wer_by_set": by_set,
        "long_wer": corpus_wer([long_clip.ref], [long_hyp]),
        "long_cpu_s": round(_cpu_s() - started, 1),
    }


def fw_chunks(path: Path) -> tuple[int, float]:
    """faster-whisper's batched pipeline's chunks of ``path`` and their seconds of audio, without transcribing.

    Its own VAD and chunking with the options ``BatchedInferencePipeline.transcribe`` uses by default.
    """
    from faster_whisper import decode_audio
    from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

    audio = decode_audio(str(path))
    stamps = get_speech_timestamps(audio, VadOptions(max_speech_duration_s=30, min_silence_duration_ms=160))
    chunks, _ = collect_chunks(audio, stamps, max_duration=30)
    return len(chunks), round(sum(c.size for c in chunks) / 16000, 3)


def measure_kinds(names: Sequence[str], kinds: Sequence[str], out: Path, data: Path) -> list[dict[str, Any]]:
    """Per candidate and benchmark input: windows, encoder seconds, audio fed and WER, one input at a time.

    Args:
        names: Keys of :data:`CANDIDATES`.
        kinds: Benchmark input kinds (``benchmarks/inputs.py``).
        out: Scratch folder; the inputs are built (or reused) in ``out/inputs``.
        data: The test data folder.

    Returns:
        One row per candidate and input, then one per input for faster-whisper (``name`` ``"fw"``).
    """
    from inputs import build  # noqa: PLC0415 - the scripts run as files, not as a package

    from pipeline.jobs.engine import Runner
    from pipeline.lab.evaluation import transcript_text

    built = {kind: build(kind, out / "inputs", 600.0, data) for kind in kinds}
    base = base_settings(out / "windows", device="cpu", compute_type="int8", batch_size=0)
    rows: list[dict[str, Any]] = []
    for name in names:
        vad_fields, tr_fields = CANDIDATES[name]
        settings = base.replace(
            vad=dataclasses.replace(base.vad, **vad_fields),
            transcribe=dataclasses.replace(base.transcribe, **tr_fields),
        )
        runner = Runner(settings)
        try:
            for kind, b in built.items():
                cpu = _cpu_s()
                transcript = runner.run(b.mp4, settings).transcript
                cpu = _cpu_s() - cpu
                rows.append(
                    {
                        "name": name,
                        "kind": kind,
                        "windows": transcript.timings.get("windows"),
                        "padded_s": transcript.timings.get("padded_s"),
                        "audio_fed_s": transcript.timings.get("audio_fed_s"),
                        "guard_redecodes": transcript.timings.get("guard_redecodes"),
                        "wer": corpus_wer([b.ref], [transcript_text(transcript)]),
                        "cpu_s": round(cpu, 1),
                    }
                )
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        finally:
            runner.close()
    for kind, b in built.items():
        windows, fed = fw_chunks(b.mp4)
        rows.append({"name": "fw", "kind": kind, "windows": windows, "padded_s": 30.0 * windows, "audio_fed_s": fed})
    return rows


def kinds_markdown(rows: list[dict[str, Any]], kinds: Sequence[str]) -> str:
    """The per-input table: windows, encoder seconds, audio fed, WER and CPU s of each candidate, and fw's chunks."""
    head = ["candidate", *(f"{k}: windows · encoder s · fed s · WER · CPU s" for k in kinds)]
    lines = [
        "Per benchmark input: Whisper windows · seconds the encoder sees (30 s a window, guard re-decodes "
        "included) · the windows' own audio · WER · CPU s of the run (this process: decoding, VAD, "
        "transcription). fw: faster-whisper batched's chunks (its VAD and chunking).",
        "",
        "| " + " | ".join(head) + " |",
        "|---|" + "---:|" * len(kinds),
    ]
    for name in dict.fromkeys(r["name"] for r in rows):
        cells = [name]
        for kind in kinds:
            r = next((r for r in rows if r["name"] == name and r["kind"] == kind), None)
            if r is None:
                cells.append("")
                continue
            wer = f"{r['wer'] * 100:.1f}%" if r.get("wer") is not None else "–"
            cpu = f"{r['cpu_s']:.1f}" if r.get("cpu_s") is not None else "–"
            cells.append(f"{r['windows']} · {r['padded_s']:.0f} · {r['audio_fed_s']:.0f} · {wer} · {cpu}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown(rows: list[dict[str, Any]], fw: dict[str, Any], sets: Sequence[str]) -> str:
    """The table: per set ours − fw in points (and whether every set is within 0.5), then the 10-minute figures."""
    head = ["candidate", *sets, "all sets ≤ +0.5", "10 min WER", "windows", "CPU s"]
    lines = [
        "WER points ours − faster-whisper per set (negative: fewer errors); 10-minute input: WER, Whisper "
        "windows, CPU s of the run (user + system of this process: model load, VAD, transcription).",
        "",
        "| " + " | ".join(head) + " |",
        "|---|" + "---:|" * (len(head) - 1),
    ]
    for row in rows:
        diffs = [(row["wer_by_set"][s] - fw["wer_by_set"][s]) * 100 for s in sets]
        ok = "yes" if all(d <= 0.5 + 1e-9 for d in diffs) else "no"
        cells = [
            row["name"],
            *(f"{d:+.1f}" for d in diffs),
            ok,
            f"{row['long_wer'] * 100:.1f}%",
            str(row["long_windows"]),
            f"{row['long_cpu_s']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    fw_cells = [
        "faster-whisper batched (WER per set)",
        *(f"{fw['wer_by_set'][s] * 100:.1f}%" for s in sets),
        "",
        f"{fw['long_wer'] * 100:.1f}%",
        "",
        f"{fw['long_cpu_s']:.1f}",
    ]
    lines.append("| " + " | ".join(fw_cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the candidates; write ``windows.md`` and ``windows.json`` to the output folder.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code.
    """
    p = argparse.ArgumentParser(description="Windows, levelling and beam candidates: WER per set and speed proxies.")
    p.add_argument("--candidates", default=",".join(CANDIDATES), help="comma-separated names (see CANDIDATES)")
    p.add_argument("--out", type=Path, default=Path("bench-out"), help="scratch and results folder")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR, help="the test data folder (default: tests/data)")
    p.add_argument(
        "--kinds", default="", help="measure on these benchmark inputs instead (dense,pauses,silences,speakers)"
    )
    ns = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("faster_whisper").setLevel(logging.ERROR)
    names = [n.strip() for n in ns.candidates.split(",") if n.strip()]
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise SystemExit(f"unknown candidate(s) {', '.join(unknown)}: use {', '.join(CANDIDATES)}")
    out: Path = ns.out.resolve()
    if ns.kinds:
        kinds = [k.strip() for k in ns.kinds.split(",") if k.strip()]
        kind_rows = measure_kinds(names, kinds, out, ns.data)
        table = kinds_markdown(kind_rows, kinds)
        print(table)
        (out / "windows-kinds.md").write_text(table)
        (out / "windows-kinds.json").write_text(json.dumps(kind_rows, indent=1))
        return 0
    wav, ref = out / "inputs" / "10min.wav", out / "inputs" / "10min.ref.txt"
    if not wav.exists() or not ref.exists():
        raise SystemExit(f"{wav} is missing: build it with python benchmarks/compare.py --prepare-only --inputs 10min")
    all_sets = load_sets(ns.data)
    clips = [c for name in SET_NAMES for c in all_sets[name]]
    long_clip = Clip("10min", wav, ref.read_text())
    base = base_settings(out / "windows", device="cpu", compute_type="int8", batch_size=8)
    fw = fw_figures(clips, long_clip)
    rows = []
    for name in names:
        rows.append(measure(name, clips, long_clip, base))
        print(
            f"{name}: 10 min WER {rows[-1]['long_wer'] * 100:.1f}%, {rows[-1]['long_windows']} windows",
            file=sys.stderr,
            flush=True,
        )
    report = markdown(rows, fw, SET_NAMES)
    print(report)
    (out / "windows.md").write_text(report)
    (out / "windows.json").write_text(json.dumps({"fw": fw, "candidates": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
