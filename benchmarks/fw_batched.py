"""Peer baseline: faster-whisper's own ``BatchedInferencePipeline``, as a user would script it.

Decodes the whole input into memory, transcribes it with the pipeline's default VAD, and writes an SRT
with one cue per Whisper segment. ``benchmarks/compare.py`` runs this as a subprocess, so its wall time
and memory include process start, imports, model load, decoding and writing, as for the other tools.

Usage::

    python benchmarks/fw_batched.py INPUT OUT.srt --model PATH [--batch-size 8] [--language en]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script.

    Returns:
        The argument parser.
    """
    p = argparse.ArgumentParser(description="Transcribe with faster-whisper's BatchedInferencePipeline → SRT.")
    p.add_argument("input", type=Path, help="audio or video file")
    p.add_argument("output", type=Path, help="SRT file to write")
    p.add_argument("--model", required=True, help="CTranslate2 model folder (or a faster-whisper model name)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--compute-type", default="int8")
    p.add_argument("--language", default=None, help="language code; detected when omitted")
    return p


def transcribe_to_srt(
    input_path: Path,
    output_path: Path,
    model_path: str,
    batch_size: int = 8,
    device: str = "cpu",
    compute_type: str = "int8",
    language: str | None = None,
) -> int:
    """Transcribe ``input_path`` and write one SRT cue per segment to ``output_path``.

    Args:
        input_path: The audio or video file.
        output_path: Where the SRT goes (its folder is created).
        model_path: A CTranslate2 Whisper model folder or name.
        batch_size: Windows per batched Whisper call.
        device: ``cpu`` or ``cuda``.
        compute_type: CTranslate2 compute type, e.g. ``int8``.
        language: Language code, or None to detect it.

    Returns:
        The number of cues written.
    """
    import pysubs2
    from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio

    audio = decode_audio(str(input_path))
    model = WhisperModel(model_path, device=device, compute_type=compute_type)
    pipeline = BatchedInferencePipeline(model)
    segments, _info = pipeline.transcribe(audio, batch_size=batch_size, language=language)
    subs = pysubs2.SSAFile()
    for seg in segments:  # a generator: transcription happens while iterating
        text = seg.text.strip()
        if text:
            subs.append(pysubs2.SSAEvent(start=int(seg.start * 1000), end=int(seg.end * 1000), text=text))
    output_path.parent.mkdir(parents=True, exist_ok=True)
    subs.save(str(output_path), format_="srt")
    return len(subs)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the script.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code.
    """
    ns = build_parser().parse_args(argv)
    transcribe_to_srt(ns.input, ns.output, ns.model, ns.batch_size, ns.device, ns.compute_type, ns.language)
    return 0


if __name__ == "__main__":
    sys.exit(main())
