"""Accuracy per language: video2srt against plain faster-whisper with the same multilingual model.

For each language (German and Spanish FLEURS clips, Mandarin clips of tests/data/zh) three systems
transcribe every clip with the language given:

- ``video2srt``: the pipeline (VAD windows, batched decoding, guards), text read from its cues;
- ``faster-whisper``: ``WhisperModel.transcribe`` with its defaults (beam 5, its temperature fallback);
- ``fw-batched``: faster-whisper's ``BatchedInferencePipeline`` (its VAD, batch size 8).

German and Spanish are scored by WER after Whisper's basic normaliser
(``whisper_normalizer.basic.BasicTextNormalizer``), Chinese by CER with spaces and punctuation removed
(:func:`pipeline.lab.evaluation.score_language`, as the tuning notebook scores them).
Speeds are the summed wall time over the clips (the machine may be shared: indicative only).

Usage::

    python benchmarks/languages.py --model /path/to/whisper-base [--languages de,es,zh] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.lab.evaluation import language_clips, language_metric, score_language  # noqa: E402


def systems(model_path: str, batch_size: int) -> dict[str, Callable[[Path, str], str]]:
    """The three transcribers, each ``(clip, language) -> text``; the models load once."""
    from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio

    from pipeline.asr.models import ModelCache
    from pipeline.core.settings import (
        ClusterSettings,
        JobSettings,
        ModelSettings,
        OutputSettings,
        Settings,
        TranscribeSettings,
    )
    from pipeline.jobs.engine import Runner

    model = WhisperModel(model_path, device="cpu", compute_type="int8")
    batched = BatchedInferencePipeline(model)
    jobs = Path(tempfile.mkdtemp(prefix="v2s-languages-"))
    base = Settings(
        model=ModelSettings(name=model_path, device="cpu", compute_type="int8"),
        transcribe=TranscribeSettings(batch_size=batch_size),
        cluster=ClusterSettings(workers=0),
        output=OutputSettings(output_dir=jobs / "out"),  # never beside the test data
        jobs=JobSettings(jobs_dir=jobs),
    )
    runner = Runner(base, ModelCache())

    def ours(clip: Path, language: str) -> str:
        import dataclasses

        s = base.replace(transcribe=dataclasses.replace(base.transcribe, language=language))
        result = runner.run(clip, s)
        glue = "" if language == "zh" else " "
        return glue.join(glue.join(cue.lines) for cue in result.transcript.cues)

    def plain(clip: Path, language: str) -> str:
        segments, _ = model.transcribe(decode_audio(str(clip)), language=language)
        return " ".join(seg.text.strip() for seg in segments)

    def fw_batched(clip: Path, language: str) -> str:
        segments, _ = batched.transcribe(decode_audio(str(clip)), language=language, batch_size=batch_size)
        return " ".join(seg.text.strip() for seg in segments)

    return {"video2srt": ours, "faster-whisper": plain, "fw-batched": fw_batched}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print a Markdown table; returns the exit code."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="multilingual CTranslate2 Whisper folder (or name)")
    p.add_argument("--languages", default="de,es,zh")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--json", type=Path, help="also write the figures here")
    ns = p.parse_args(argv)
    run = systems(ns.model, ns.batch_size)
    for transcribe in run.values():  # warm up: first-call costs out of the timings
        transcribe(language_clips("de")[0].path, "de")
    rows = []
    for language in ns.languages.split(","):
        items = language_clips(language)
        audio = 0.0
        for clip in items:
            import soundfile as sf

            audio += sf.info(str(clip.path)).duration
        for name, transcribe in run.items():
            t = time.monotonic()
            hyps = [transcribe(clip.path, language) for clip in items]
            wall = time.monotonic() - t
            metric = language_metric(language)
            error = score_language(language, hyps, [clip.ref for clip in items])
            rows.append(
                {
                    "language": language,
                    "system": name,
                    "metric": metric,
                    "error": round(100 * (error or 0.0), 2),
                    "clips": len(items),
                    "audio_s": round(audio, 1),
                    "wall_s": round(wall, 2),
                    "speed": round(audio / wall, 1),
                }
            )
            print(f"{language} {name}: {metric} {rows[-1]['error']:.2f}% in {wall:.1f} s", file=sys.stderr)
            for clip, hyp in zip(items, hyps):
                print(f"  {clip.path.name}: {hyp[:100]!r}", file=sys.stderr)
    print("| language | system | metric | error % | clips | audio s | wall s | x real time |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['language']} | {r['system']} | {r['metric']} | {r['error']:.2f} | {r['clips']} | "
            f"{r['audio_s']} | {r['wall_s']} | {r['speed']} |"
        )
    if ns.json:
        ns.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
