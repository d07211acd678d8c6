"""Optional WhisperX alignment (wav2vec2), used only when an alignment model is on this machine.

``--align auto`` (the default) uses WhisperX's alignment model for the language when it is already in the
local torch or Hugging Face cache, and otherwise says so in one info line and keeps Whisper's own word
timing; ``--align off`` never tries; ``--align PATH`` uses a local wav2vec2 model folder. Nothing here
downloads anything, and a failed alignment never costs the transcript: the job finishes with Whisper's
timing and a warning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.core.types import TextSegment, Word

log = logging.getLogger(__name__)

#: WhisperX's default torchaudio alignment checkpoints, by language (the file torchaudio caches). ``auto``
#: looks only for these: importing WhisperX to learn its other defaults would load torch (seconds and
#: hundreds of MB) on every job. Other languages take an explicit ``--align PATH``.
_TORCH_CHECKPOINTS = {
    "en": "wav2vec2_fairseq_base_ls960_asr_ls960.pth",
    "fr": "wav2vec2_voxpopuli_base_10k_asr_fr.pt",
    "de": "wav2vec2_voxpopuli_base_10k_asr_de.pt",
    "es": "wav2vec2_voxpopuli_base_10k_asr_es.pt",
    "it": "wav2vec2_voxpopuli_base_10k_asr_it.pt",
}


def _torch_hub_dir() -> Path:
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch"
    )
    return Path(home) / "hub" / "checkpoints"


def find_model(language: str, setting: str) -> tuple[str | None, str]:
    """Which alignment model to use, without touching the network.

    Returns:
        (model name or path, or None to skip; a one-line reason).
    """
    if setting == "off":
        return None, "alignment off"
    if setting != "auto":
        path = Path(setting).expanduser()
        if not path.is_dir():
            return None, f"alignment model folder {path} does not exist; keeping Whisper's word timing"
        return str(path), f"aligning with {path}"
    checkpoint = _TORCH_CHECKPOINTS.get(language)
    if checkpoint and (_torch_hub_dir() / checkpoint).exists():
        return "auto", f"aligning with WhisperX's cached {language} model"
    return None, f"no local alignment model for {language!r}; keeping Whisper's word timing"


def align_segments(
    segments: Sequence[TextSegment], audio: np.ndarray, language: str, model_name: str, device: str = "cpu"
) -> tuple[list[TextSegment], str]:
    """Re-time the words of ``segments`` with WhisperX alignment.

    Args:
        segments: Text segments in file time.
        audio: The whole file, 16 kHz mono float32.
        language: The transcript's language.
        model_name: What :func:`find_model` chose: ``auto`` (WhisperX's cached default) or a model folder.
        device: ``cpu`` or ``cuda``.

    Returns:
        The segments (re-timed, or unchanged after a failure) and a one-line note on what happened.
    """
    note = f"aligned with {model_name}"
    if not segments:
        return [], note
    try:
        import whisperx

        model, metadata = whisperx.load_align_model(
            language, device, model_name=None if model_name == "auto" else model_name, model_cache_only=True
        )
        result = whisperx.align(
            [{"start": s.start, "end": s.end, "text": s.text} for s in segments], model, metadata, audio, device
        )
    except Exception as exc:  # noqa: BLE001 - any failure keeps the transcript (issue: never lose work)
        note = f"alignment failed ({type(exc).__name__}: {str(exc)[:120]}); keeping Whisper's word timing"
        log.warning("%s", note)
        return list(segments), note
    out: list[TextSegment] = []
    aligned = result.get("segments", [])
    for original, new in zip(segments, aligned):
        words = new.get("words") or []
        if not words or any("start" not in w or "end" not in w for w in words):
            out.append(original)  # numbers and symbols the aligner cannot place: keep Whisper's times
            continue
        out.append(
            TextSegment(
                start=round(float(words[0]["start"]), 3),
                end=round(float(words[-1]["end"]), 3),
                text=original.text,
                words=tuple(
                    Word(
                        " " + str(w["word"]).strip(),
                        round(float(w["start"]), 3),
                        round(float(w["end"]), 3),
                        round(float(w.get("score", 0.0)), 4),
                    )
                    for w in words
                ),
                avg_logprob=original.avg_logprob,
                no_speech_prob=original.no_speech_prob,
                compression_ratio=original.compression_ratio,
            )
        )
    if len(aligned) != len(segments):
        return list(segments), "alignment returned a different number of segments; keeping Whisper's word timing"
    return out, note
