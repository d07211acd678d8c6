"""The warm-up: a short clip of real speech run through a freshly loaded model the way a job runs it."""

from __future__ import annotations

import wave
from functools import lru_cache
from pathlib import Path

import numpy as np

from pipeline.asr.detect import detect_language
from pipeline.asr.inputs import SegmentAudio
from pipeline.asr.models import LoadedModel, Placement
from pipeline.asr.transcribe import transcribe_segments
from pipeline.core.constants import SAMPLE_RATE
from pipeline.core.settings import TranscribeSettings
from pipeline.core.types import Segment, SpeechSpan, Window

#: The short real clip every model hears right after loading (see pipeline/assets/README.md).
WARMUP_CLIP = Path(__file__).resolve().parents[1] / "assets" / "warmup.wav"


@lru_cache(maxsize=1)
def warmup_clip() -> np.ndarray:
    """The bundled warm-up clip: 2 s of real speech, 16 kHz mono int16."""
    with wave.open(str(WARMUP_CLIP), "rb") as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).copy()


def warm_up(model: LoadedModel) -> str:
    """Run the warm-up clip through ``model`` the way a job does (language detection, batched decoding with
    word times), so the first job pays no lazy initialization. Call it on the thread that uses the model.

    Returns:
        What the model heard (the clip says "And so my fellow Americans").
    """
    samples = warmup_clip()
    span = SpeechSpan(0.0, samples.size / SAMPLE_RATE)
    segment = Segment(0, span.start, span.end, (span,), (Window((span,)),))
    language = detect_language(model, samples).language or "en"
    results = transcribe_segments(
        model, [SegmentAudio(segment, (samples,))], TranscribeSettings(language=language, batch_size=1), language
    )
    return " ".join(seg.text for result in results for seg in result.segments)


def warms(mode: str | bool, placement: Placement) -> bool:
    """Whether to warm up: ``on``; ``auto`` on CUDA only (on the CPU it does not pay off: benchmarks/README.md)."""
    if isinstance(mode, bool):
        return mode
    return mode == "on" or (mode == "auto" and placement.device == "cuda")
