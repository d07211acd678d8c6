"""Approximate memory of a Whisper model: its weights, and the extra per batch item, by size and compute type.

The optimizer sizes batches and workers with it; the model manager's memory guard checks a load against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024


@dataclass(frozen=True)
class ModelFootprint:
    """Approximate memory of one Whisper model size at float16.

    Attributes:
        weights_mb: Weights plus the runtime's fixed buffers, loaded and ready (batch of one).
        per_item_mb: Extra memory per batch item (encoder activations for 30 s, decoder KV cache, beam 5).
    """

    weights_mb: int
    per_item_mb: int


#: Rough figures for CTranslate2 at float16 (faster-whisper's published measurements scaled by size:
#: large-v2 takes ~4.7 GB with beam 5 and ~6 GB at batch 8). Per-item cost grows with width × depth,
#: so it is roughly proportional to the weights (~7-8 %); turbo and distil have large encoders but tiny
#: decoders. Checked in the order given, so "turbo" and "distil" win over "large".
MODEL_FOOTPRINTS: tuple[tuple[str, ModelFootprint], ...] = (
    ("turbo", ModelFootprint(1700, 200)),
    ("distil-large", ModelFootprint(1700, 200)),
    ("large", ModelFootprint(4700, 350)),
    ("medium", ModelFootprint(2600, 200)),
    ("small", ModelFootprint(1000, 80)),
    ("base", ModelFootprint(300, 30)),
    ("tiny", ModelFootprint(150, 20)),
)
#: An unknown model is sized as a large one, so that a guess never overfills the GPU.
UNKNOWN_MODEL_FOOTPRINT = ModelFootprint(4700, 350)

#: Weights relative to float16: int8 halves them; float32 doubles them.
_WEIGHT_FACTOR = {"float32": 2.0, "int8": 0.5, "int8_float16": 0.5, "int8_bfloat16": 0.5, "int8_float32": 0.5}
#: Activations relative to float16: int8 on the CPU computes in float32.
_ACTIVATION_FACTOR = {"float32": 2.0, "int8": 2.0, "int8_float32": 2.0}


def model_footprint(model: str) -> ModelFootprint:
    """Approximate float16 memory of ``model`` (a Whisper name or a CTranslate2 folder); see MODEL_FOOTPRINTS."""
    path = Path(model).expanduser()
    name = path.name.lower() if path.name else model.lower()
    for family, footprint in MODEL_FOOTPRINTS:
        if family in name:
            return footprint
    weights = path / "model.bin"
    if weights.is_file():
        # An unnamed converted model: its file is about its float16 weights; scale the per-item cost alike.
        size_mb = weights.stat().st_size // MIB
        return ModelFootprint(int(size_mb * 1.5) + 100, max(20, int(size_mb * 0.075)))
    return UNKNOWN_MODEL_FOOTPRINT


def model_memory_mb(model: str, compute_type: str, batch_size: int = 1) -> int:
    """Approximate memory (MiB) of ``model`` in ``compute_type`` decoding ``batch_size`` windows at once."""
    footprint = model_footprint(model)
    weights = footprint.weights_mb * _WEIGHT_FACTOR.get(compute_type, 1.0)
    per_item = footprint.per_item_mb * _ACTIVATION_FACTOR.get(compute_type, 1.0)
    return int(weights + batch_size * per_item)
