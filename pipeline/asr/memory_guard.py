"""The model manager's memory guard: refuse a model that would not fit, and say which cached ones to evict first.

The need of a model is estimated from its size and compute type (:mod:`pipeline.asr.footprint`); free RAM (free
GPU memory on CUDA) comes from a fresh measurement; models the LRU policy would evict count as free.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from pipeline.asr.footprint import model_memory_mb
from pipeline.asr.models import CacheKey, ModelCache, Placement
from pipeline.core.errors import ModelError
from pipeline.core.settings import ModelManagerSettings

log = logging.getLogger(__name__)


class ModelMemoryError(ModelError):
    """The memory guard refused a model: it would not fit with the headroom kept free."""


def check_room(
    name: str,
    need: int,
    placement: Placement,
    cache: ModelCache,
    config: ModelManagerSettings,
    snapshot: Mapping[str, Any],
) -> list[CacheKey]:
    """Refuse a model that would not fit; return the cached models to evict before loading it.

    Args:
        name: The model's name, for the messages.
        need: Its estimated memory (MiB) with one batch item.
        placement: Where it loads (the pool: RAM, or that GPU's memory).
        cache: The models already loaded; its LRU policy names the victims.
        config: Cache size, headroom and limit.
        snapshot: A fresh memory measurement (:meth:`pipeline.asr.manager.ModelManager.memory`).

    Raises:
        ModelMemoryError: It does not fit even after evicting what the LRU policy would evict.
    """
    headroom = config.headroom_mb
    victims = cache.victims(config.max_cached)
    cached = [key for key, _ in cache.entries()]
    freed = sum(estimate_mb(k) for k in victims)
    kept = sum(estimate_mb(k) for k in cached if k not in victims)
    if placement.device == "cuda":
        free, pool = gpu_free_mb(snapshot, placement), f"GPU {placement.device_index} memory"
    else:
        free, pool = snapshot["ram_available_mb"], "RAM"
    limit = config.memory_limit_mb
    if limit and kept + need > limit:
        raise ModelMemoryError(
            f"not enough memory for {name}: it needs ~{need} MB ({placement.compute_type}) and the model "
            f"memory limit of {limit} MB leaves {max(0, limit - kept)} MB; pick a smaller model, lower "
            "--max-cached-models or raise --model-memory-limit"
        )
    if free is None:
        log.warning("free %s is unknown; loading %s without the memory check", pool, name)
        return []
    if need + headroom > free + freed:
        raise ModelMemoryError(
            f"not enough memory for {name}: it needs ~{need} MB of {pool} ({placement.compute_type}) "
            f"plus {headroom} MB headroom, but only {free + freed} MB is free"
            + (f" even after evicting {len(victims)} cached model(s)" if victims else "")
            + "; close other programs, pick a smaller model or lower --memory-headroom"
        )
    # Evict first only when the new model fits just thanks to it: otherwise a failing load keeps the old.
    return victims if need + headroom > free else []


def gpu_free_mb(snapshot: Mapping[str, Any], placement: Placement) -> int | None:
    """Free memory (MiB) of the placement's GPU in ``snapshot``, or None when it was not measured."""
    frees = snapshot.get("gpu_free_mb") or []
    index = _physical_gpu(placement.device_index)
    return int(frees[index]) if index < len(frees) else None


def estimate_mb(key: CacheKey) -> int:
    """Estimated memory (MiB) of a cached model with one batch item."""
    return model_memory_mb(key[0], key[1].compute_type, 1)


def _physical_gpu(index: int) -> int:
    """NVML numbers GPUs physically; CUDA_VISIBLE_DEVICES renumbers them for CTranslate2."""
    visible = [p.strip() for p in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if p.strip()]
    if index < len(visible) and visible[index].isdigit():
        return int(visible[index])
    return index
