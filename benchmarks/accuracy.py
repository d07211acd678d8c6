"""Word error rate per data set: video2srt against faster-whisper's batched pipeline, same model.

Both run in this process, each loading the model once for all files: ours through the Python API (one
:class:`pipeline.jobs.engine.Runner`), faster-whisper through one ``WhisperModel`` wrapped in a
``BatchedInferencePipeline`` with its default VAD. Model: the bundled tiny.en, cpu, int8, batch size 8,
language en. WER is corpus WER per set (all errors over all reference words), both sides normalised
with Whisper's English normaliser. ``manifesto`` is scored against automatic captions (approximate).

Usage::

    python benchmarks/accuracy.py [--sets jfk,fleurs_en,ljspeech,harvard,mfa,manifesto] [--out bench-out]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.lab.evaluation import DEFAULT_DATA_DIR, SET_NAMES, Clip, corpus_wer, load_sets, transcript_text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import bundled_model_path, fmt  # noqa: E402 - the scripts run as files, not as a package


def transcribe_ours(clips: Sequence[Clip], scratch: Path, batch_size: int = 8) -> tuple[list[str], float]:
    """Transcribe every clip with video2srt's runner, in this process, with one model for all.

    Args:
        clips: The clips.
        scratch: Folder for outputs and job folders.
        batch_size: Windows per batched Whisper call.

    Returns:
        (one hypothesis text per clip, seconds spent).
    """
    from pipeline.core.settings import JobSettings, ModelSettings, OutputSettings, Settings, TranscribeSettings
    from pipeline.jobs.engine import Runner

    settings = Settings(
        output=OutputSettings(output_dir=scratch / "ours", formats=("srt",)),
        jobs=JobSettings(jobs_dir=scratch / "jobs"),
        model=ModelSettings(name="tiny.en", device="cpu", compute_type="int8"),
        transcribe=TranscribeSettings(language="en", batch_size=batch_size),
    )
    runner = Runner(settings)
    hyps: list[str] = []
    started = time.perf_counter()
    try:
        for clip in clips:
            result = runner.run(clip.path, settings)
            hyps.append(transcript_text(result.transcript))
    finally:
        runner.close()
    return hyps, time.perf_counter() - started


def transcribe_fw(clips: Sequence[Clip], model_path: Path, batch_size: int = 8) -> tuple[list[str], float]:
    """Transcribe every clip with faster-whisper's ``BatchedInferencePipeline`` (default VAD), one model for all.

    Args:
        clips: The clips.
        model_path: The CTranslate2 model folder.
        batch_size: Windows per batched Whisper call.

    Returns:
        (one hypothesis text per clip, seconds spent, model load included).
    """
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    started = time.perf_counter()
    pipeline = BatchedInferencePipeline(WhisperModel(str(model_path), device="cpu", compute_type="int8"))
    hyps: list[str] = []
    for clip in clips:
        segments, _info = pipeline.transcribe(str(clip.path), batch_size=batch_size, language="en")
        hyps.append(" ".join(seg.text.strip() for seg in segments))
    return hyps, time.perf_counter() - started


def _pct(value: object) -> str:
    return fmt(value * 100, 1, "%") if isinstance(value, float) else "—"


def markdown(rows: list[dict[str, object]]) -> str:
    """The report table.

    Args:
        rows: One dict per set with ``set``, ``files``, ``wer_ours``, ``wer_fw`` (float or None), ``exact``.

    Returns:
        Markdown text.
    """
    lines = [
        "Model: bundled tiny.en (CTranslate2), cpu, int8, batch size 8, language en; corpus WER per set.",
        "",
        "| set | files | WER ours | WER fw | ours − fw (points) |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        ours, fw = row["wer_ours"], row["wer_fw"]
        diff = f"{(ours - fw) * 100:+.1f}" if isinstance(ours, float) and isinstance(fw, float) else "—"
        star = "" if row["exact"] else "*"
        lines.append(f"| {row['set']}{star} | {row['files']} | {_pct(ours)} | {_pct(fw)} | {diff} |")
    lines += ["", "Negative difference: ours has fewer errors."]
    if not all(row["exact"] for row in rows):
        lines.append("\\* reference is the video's automatic captions (approximate).")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script.

    Returns:
        The argument parser.
    """
    p = argparse.ArgumentParser(description="WER per data set: video2srt vs faster-whisper's batched pipeline.")
    p.add_argument("--sets", default=",".join(SET_NAMES), help=f"comma-separated, from {','.join(SET_NAMES)}")
    p.add_argument("--out", type=Path, default=Path("bench-out"), help="scratch and results folder")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR, help="the test data folder (default: tests/data)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--ours-batch-size", type=int, help="ours' batch size (0: its optimizer's choice; default: --batch-size)"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Score both tools on every requested set; write ``accuracy.md`` and ``accuracy.json``.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code.
    """
    ns = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("faster_whisper").setLevel(logging.ERROR)
    all_sets = load_sets(ns.data)
    names = [n.strip() for n in ns.sets.split(",") if n.strip()]
    for name in names:
        if name not in all_sets:
            raise SystemExit(f"unknown set {name!r}: use {', '.join(SET_NAMES)}")
    clips = [c for name in names for c in all_sets[name]]
    out: Path = ns.out.resolve()
    scratch = out / "accuracy"
    scratch.mkdir(parents=True, exist_ok=True)

    print(f"ours on {len(clips)} files …", file=sys.stderr, flush=True)
    ours_batch = ns.batch_size if ns.ours_batch_size is None else ns.ours_batch_size
    ours, ours_s = transcribe_ours(clips, scratch, ours_batch)
    print(f"  {ours_s:.1f} s", file=sys.stderr)
    print(f"faster-whisper on {len(clips)} files …", file=sys.stderr, flush=True)
    fw, fw_s = transcribe_fw(clips, bundled_model_path(), ns.batch_size)
    print(f"  {fw_s:.1f} s", file=sys.stderr)

    rows: list[dict[str, object]] = []
    for name in names:
        idx = [i for i, c in enumerate(clips) if c.set == name]
        refs = [clips[i].ref for i in idx]
        rows.append(
            {
                "set": name,
                "files": len(idx),
                "exact": all(clips[i].exact for i in idx),
                "wer_ours": corpus_wer(refs, [ours[i] for i in idx]),
                "wer_fw": corpus_wer(refs, [fw[i] for i in idx]),
            }
        )
    report = markdown(rows)
    print(report)
    (out / "accuracy.md").write_text(report)
    raw = {
        "seconds": {"ours": round(ours_s, 1), "fw": round(fw_s, 1)},
        "sets": rows,
        "files": [
            {"set": c.set, "path": str(c.path), "ref": c.ref, "ours": ours[i], "fw": fw[i]} for i, c in enumerate(clips)
        ],
    }
    (out / "accuracy.json").write_text(json.dumps(raw, indent=1))
    print(f"wrote {out / 'accuracy.md'} and {out / 'accuracy.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
