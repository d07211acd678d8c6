"""Peer baseline: faster-whisper's own ``BatchedInferencePipeline``, as a user would script it.

Decodes the whole input into memory, transcribes it with the pipeline's default VAD, and writes an SRT
with one cue per Whisper segment. ``benchmarks/compare.py`` runs this as a subprocess, so its wall time
and memory include process start, imports, model load, decoding and writing, as for the other tools.

Usage::

    python benchmarks/fw_batched.py INPUT OUT.srt --model PATH [--batch-size 8] [--language en] [--timings T.json]
    python benchmarks/fw_batched.py INPUT OUT.srt --model PATH --language de --translate   # also OUT.en.srt

``--translate`` also writes an English translation (``<OUT stem>.en.srt``) with a second ``transcribe`` call
(``task="translate"``) on the same decoded audio and loaded model: what a faster-whisper user scripts for
subtitles in the spoken language and in English.

``--timings`` writes the time of each stage (imports, model load, decoding, VAD, transcription, writing)
and what the model was fed (chunks, their audio seconds, 30 s each once padded) as JSON. It only observes:
faster-whisper's own VAD and chunking functions are wrapped to time and count them, never changed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


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
    p.add_argument("--timings", type=Path, help="write each stage's time and the chunk counts here (JSON)")
    p.add_argument("--translate", action="store_true", help="also write an English translation, <OUT stem>.en.srt")
    return p


def transcribe_to_srt(
    input_path: Path,
    output_path: Path,
    model_path: str,
    batch_size: int = 8,
    device: str = "cpu",
    compute_type: str = "int8",
    language: str | None = None,
    timings: dict[str, float] | None = None,
    translate: bool = False,
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
        timings: Filled with each stage's seconds and the chunk counts when given.
        translate: Also write an English translation beside ``output_path`` (``<stem>.en.srt``), a second pass.

    Returns:
        The number of cues written.
    """
    t = timings if timings is not None else {}
    t0 = time.perf_counter()
    import pysubs2
    from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio
    from faster_whisper import transcribe as fw_transcribe

    if timings is not None:
        _observe(fw_transcribe, t)
    t1 = time.perf_counter()
    audio = decode_audio(str(input_path))
    t2 = time.perf_counter()
    model = WhisperModel(model_path, device=device, compute_type=compute_type)
    t3 = time.perf_counter()
    pipeline = BatchedInferencePipeline(model)
    segments, _info = pipeline.transcribe(audio, batch_size=batch_size, language=language)
    t4 = time.perf_counter()

    def cues(segments: Iterable[Any]) -> pysubs2.SSAFile:
        subs = pysubs2.SSAFile()
        for seg in segments:  # a generator: transcription happens while iterating
            text = seg.text.strip()
            if text:
                subs.append(pysubs2.SSAEvent(start=int(seg.start * 1000), end=int(seg.end * 1000), text=text))
        return subs

    subs = cues(segments)
    t5 = time.perf_counter()
    output_path.parent.mkdir(parents=True, exist_ok=True)
    subs.save(str(output_path), format_="srt")
    t6 = time.perf_counter()
    if translate:
        english, _info = pipeline.transcribe(audio, batch_size=batch_size, language=language, task="translate")
        cues(english).save(str(output_path.with_suffix(".en.srt")), format_="srt")
        t["translate"] = round(time.perf_counter() - t6, 3)
    t.update(
        imports=round(t1 - t0, 3),
        decode=round(t2 - t1, 3),
        model_load=round(t3 - t2, 3),
        # VAD and features run inside transcribe() before it returns its generator.
        vad_and_features=round(t4 - t3, 3),
        transcribe=round(t5 - t4, 3),
        write=round(t6 - t5, 3),
    )
    return len(subs)


def _observe(module: object, t: dict[str, float]) -> None:
    """Wrap faster-whisper's VAD and chunking in ``module`` to time and count them (results unchanged)."""
    speech, collect = module.get_speech_timestamps, module.collect_chunks  # type: ignore[attr-defined]

    def timed_speech(*args: object, **kwargs: object) -> object:
        start = time.perf_counter()
        out = speech(*args, **kwargs)
        t["vad"] = round(t.get("vad", 0.0) + time.perf_counter() - start, 3)
        return out

    def counted_collect(*args: object, **kwargs: object) -> object:
        chunks, meta = collect(*args, **kwargs)
        t["windows"] = t.get("windows", 0) + len(chunks)
        t["audio_fed_s"] = round(t.get("audio_fed_s", 0.0) + sum(c.size for c in chunks) / 16000, 3)
        t["padded_s"] = 30.0 * t["windows"]
        return chunks, meta

    module.get_speech_timestamps = timed_speech  # type: ignore[attr-defined]
    module.collect_chunks = counted_collect  # type: ignore[attr-defined]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the script.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code.
    """
    started = time.perf_counter()
    ns = build_parser().parse_args(argv)
    timings: dict[str, float] | None = {} if ns.timings else None
    transcribe_to_srt(
        ns.input, ns.output, ns.model, ns.batch_size, ns.device, ns.compute_type, ns.language, timings, ns.translate
    )
    if ns.timings and timings is not None:
        timings["total"] = round(time.perf_counter() - started, 3)
        ns.timings.write_text(json.dumps(timings, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
