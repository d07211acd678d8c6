"""Subtitles in the spoken language and in English from one job, against faster-whisper run for both.

The input of each language is its clips of the test data (German and Spanish FLEURS, Mandarin; see
:func:`pipeline.lab.evaluation.language_clips`) laid end to end with 1.5 s pauses, written once as a WAV under
``--out/inputs``. The tools, each a process measured as ``compare.py`` measures them (wall and CPU seconds of the
process tree, its peak RSS):

- ``ours``: the CLI with ``--model base --language L --translate`` (the packaged multilingual base, CPU, int8):
  one job, a transcription pass and a translation pass over the same windows;
- ``fw``: ``benchmarks/fw_batched.py --translate`` on the same model: faster-whisper's
  ``BatchedInferencePipeline`` (batch 8) transcribing, then translating, the decoded audio in one process;
- with ``--revisions A,B``: ours from two git revisions instead (worktrees as ``revisions.py`` makes them),
  interleaved, and whether their two files are byte-identical.

Scores: the transcript's WER (CER for Mandarin) against the clips' references, and the translation's word count
(there is no reference translation).

Usage::

    python benchmarks/translate.py [--languages de,es,zh] [--repeat 2] [--out bench-out/translate]
    python benchmarks/translate.py --revisions 1d8d1b0,. --languages de --repeat 2
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import compare
import numpy as np
import soundfile as sf
from revisions import worktree

from pipeline.asr.inputs import to_float
from pipeline.asr.packaged import BASE_PACKAGED
from pipeline.core.errors import InputError
from pipeline.lab.evaluation import language_clips, read_srt, score_language
from pipeline.media.decode import decode_all

HERE = Path(__file__).resolve().parent
PAUSE_S = 1.5


@dataclass
class Input:
    """One language's input file and its reference transcript."""

    language: str
    path: Path
    ref: str
    duration: float


def build_input(language: str, folder: Path) -> Input:
    """The clips of ``language`` end to end with pauses between them, as a WAV in ``folder`` (built once)."""
    clips = language_clips(language, compare.DEFAULT_DATA_DIR)
    glue = "" if language == "zh" else " "
    ref = glue.join(clip.ref for clip in clips)
    path = folder / f"{language}-clips.wav"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        pause = np.zeros(round(PAUSE_S * 16000), np.float32)
        parts = [part for clip in clips for part in (to_float(decode_all(clip.path)), pause)]
        sf.write(path, np.concatenate(parts), 16000)
    return Input(language, path, ref, sf.info(path).duration)


def command(tool: str, item: Input, run_dir: Path, tree: Path | None) -> tuple[list[str], Path, Path]:
    """The command line of one run, and where its transcript and translation SRTs will be."""
    if tool == "fw":
        srt = run_dir / f"{item.path.stem}.srt"
        cmd = [
            sys.executable,
            str(HERE / "fw_batched.py"),
            str(item.path),
            str(srt),
            "--model",
            str(BASE_PACKAGED.assemble()),
            "--language",
            item.language,
            "--translate",
        ]
        return cmd, srt, srt.with_suffix(".en.srt")
    args = [str(item.path), "-o", str(run_dir), "-f", "srt", "--model", "base", "--language", item.language]
    args += ["--translate", "--device", "cpu", "--compute-type", "int8", "--workers", "0"]
    args += ["--jobs-dir", str(run_dir / "jobs")]
    if tree is None:
        cmd = [compare.venv_program("video2srt"), *args]
    else:
        inner = shlex.join([sys.executable, "-m", "pipeline", *args])
        cmd = ["bash", "-c", f"cd {shlex.quote(str(tree))} && exec {inner}"]
    stem = run_dir / item.path.stem
    return cmd, Path(f"{stem}.{item.language}.srt"), Path(f"{stem}.en.srt")


def run(tool: str, label: str, item: Input, r: int, out: Path, tree: Path | None) -> dict[str, object]:
    """Run one tool once on one input; its figures and output files."""
    run_dir = out / "runs" / label.replace("/", "_") / item.language / f"r{r}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    cmd, transcript, translation = command(tool, item, run_dir, tree)
    m = compare.measure(cmd, run_dir / "log.txt", compare.tool_env())
    row: dict[str, object] = {"wall": m.wall_s, "cpu": m.cpu_s, "rss": m.peak_rss_mb, "rc": m.rc}
    if m.rc != 0 or not (transcript.exists() and translation.exists()):
        row["error"] = f"exit {m.rc}: {compare.log_tail(run_dir / 'log.txt')}"
        return row
    glue = "" if item.language == "zh" else " "
    hyp = glue.join(text for _, _, text in read_srt(transcript))
    row["error_rate"] = score_language(item.language, [hyp], [item.ref])
    row["english_words"] = sum(len(text.split()) for _, _, text in read_srt(translation))
    row["files"] = (transcript.read_bytes(), translation.read_bytes())
    return row


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--languages", default="de,es,zh", help="languages of the test data")
    p.add_argument("--repeat", type=int, default=2, help="rounds (the order of the tools flips each round)")
    p.add_argument("--revisions", help="two git revisions of ours, 'A,B' ('.': the working tree), instead of the peers")
    p.add_argument("--out", type=Path, default=Path("bench-out/translate"), help="inputs and runs")
    ns = p.parse_args(argv)
    if ns.revisions and len(ns.revisions.split(",")) != 2:
        p.error(f"--revisions takes two revisions, A,B (got {ns.revisions!r})")
    out = ns.out.resolve()
    try:
        items = [build_input(language, out / "inputs") for language in ns.languages.split(",")]
    except InputError as exc:
        raise SystemExit(f"error: {exc}") from None
    tools: list[tuple[str, str, Path | None]] = [("ours", "ours", None), ("fw", "fw", None)]
    if ns.revisions:
        tools = [("ours", rev, worktree(rev, out)) for rev in ns.revisions.split(",")]
    print("| language | audio s | tool | wall s | CPU s | peak RSS MB | transcript error | English words |")
    print("|---|---:|---|---:|---:|---:|---:|---:|", flush=True)
    files: dict[tuple[str, str], set[tuple[bytes, bytes]]] = {}
    for r in range(ns.repeat):
        for item in items:
            for tool, label, tree in tools if r % 2 == 0 else tools[::-1]:
                row = run(tool, label, item, r + 1, out, tree)
                if "error" in row:
                    print(f"| {item.language} | {item.duration:.0f} | {label} | {row['error']} |", flush=True)
                    continue
                files.setdefault((item.language, label), set()).add(row["files"])  # type: ignore[arg-type]
                rate = f"{row['error_rate']:.2%}" if row["error_rate"] is not None else "—"
                print(
                    f"| {item.language} | {item.duration:.0f} | {label} | {row['wall']:.1f} | {row['cpu']:.1f} | "
                    f"{row['rss']:.0f} | {rate} | {row['english_words']} |",
                    flush=True,
                )
    if ns.revisions:
        for item in items:
            outputs = [files.get((item.language, label), set()) for _, label, _ in tools]
            same = all(len(o) == 1 for o in outputs) and outputs[0] == outputs[1]
            print(f"{item.language}: both files {'identical' if same else 'DIFFER'} across revisions and runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
