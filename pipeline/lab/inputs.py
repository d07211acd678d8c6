"""Sweep inputs: a scratch folder, test clips mixed into one long input, and the base settings of a sweep."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.core.constants import SAMPLE_RATE
from pipeline.core.errors import UsageError
from pipeline.core.settings import (
    ClusterSettings,
    JobSettings,
    ModelSettings,
    OutputSettings,
    Settings,
    TranscribeSettings,
    VadSettings,
)
from pipeline.lab.evaluation import Clip


def scratch_dir(path: str | Path | None = None) -> Path:
    """Where a sweep writes its inputs, job folders and outputs: ``path`` (created), or a new temporary folder."""
    if path:
        folder = Path(path).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return Path(tempfile.mkdtemp(prefix="video2srt-tuning-"))


def mix_clips(
    clips: Sequence[Clip],
    out_dir: Path,
    *,
    seconds: float = 0.0,
    pause_s: tuple[float, float] = (0.4, 1.5),
    long_pause_s: float = 6.0,
    long_pause_every_s: float = 20.0,
    seed: int = 0,
    name: str = "mix",
) -> Clip:
    """One longer recording made of ``clips`` in order, like a talk: short pauses and now and then a long one.

    Whole clips are taken in order (looping when needed) until there are ``seconds`` of audio, or each
    once when ``seconds`` is 0, so the reference stays exact. Between clips goes a pause drawn from
    ``pause_s`` (fixed ``seed``); after every ``long_pause_every_s`` seconds a silence of ``long_pause_s``,
    which segmentation should skip. The file is a 16 kHz WAV in ``out_dir``, reused while the recipe is
    unchanged.

    Returns:
        The mix as a :class:`Clip` of set ``name``.

    Raises:
        UsageError: No clips.
    """
    import soundfile

    from pipeline.media.decode import decode_all

    if not clips:
        raise UsageError("no clips to mix: choose at least one data set")
    recipe = json.dumps(
        [[str(c.path) for c in clips], seconds, list(pause_s), long_pause_s, long_pause_every_s, seed], sort_keys=True
    )
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    wav, ref_path = out_dir / f"{name}-{digest}.wav", out_dir / f"{name}-{digest}.txt"
    if wav.exists() and ref_path.exists():
        return Clip(name, wav, ref_path.read_text())
    rng = random.Random(seed)
    pieces: list[np.ndarray] = [np.zeros(SAMPLE_RATE // 2, np.float32)]
    refs: list[str] = []
    total = since_long = pieces[0].size / SAMPLE_RATE
    decoded: dict[Path, np.ndarray] = {}
    i = 0
    while (total < seconds) if seconds > 0 else (i < len(clips)):
        clip = clips[i % len(clips)]
        i += 1
        if clip.path not in decoded:
            decoded[clip.path] = decode_all(clip.path)
        pieces.append(decoded[clip.path])
        refs.append(clip.ref)
        length = decoded[clip.path].size / SAMPLE_RATE
        if long_pause_s > 0 and since_long + length >= long_pause_every_s:
            pause, since_long = long_pause_s, 0.0
        else:
            pause, since_long = round(rng.uniform(*pause_s), 2), since_long + length
        pieces.append(np.zeros(int(pause * SAMPLE_RATE), np.float32))
        total += length + pause
    out_dir.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(wav), np.concatenate(pieces), SAMPLE_RATE, subtype="PCM_16")
    ref_path.write_text(" ".join(refs))
    return Clip(name, wav, " ".join(refs))


def base_settings(
    scratch: Path,
    *,
    model: str = "tiny.en",
    device: str = "auto",
    compute_type: str = "auto",
    language: str | None = "en",
    align: str = "off",
    batch_size: int = 0,
    workers: int = 0,
    scheduler: str = "",
    dashboard_address: str = ":8787",
    segment_bounds: tuple[float, float] | None = None,
) -> Settings:
    """Settings for tuning runs: outputs and job folders under ``scratch``, everything else the defaults.

    Jobs run in this process unless ``workers`` (a local Dask cluster of that many worker processes) or
    ``scheduler`` (the address of a running one) say otherwise. ``segment_bounds`` (shortest, longest
    segment in seconds) replaces the default 30–90 s. Alignment is off by default: it only moves word
    times, costs the same under every setting swept here, and would only slow the sweep down.
    """
    vad = VadSettings() if segment_bounds is None else with_segment_bounds(VadSettings(), *segment_bounds)
    cluster = ClusterSettings(
        scheduler=scheduler.strip() or None,
        workers=None if scheduler.strip() else workers,
        dashboard_address=dashboard_address,
    )
    return Settings(
        model=ModelSettings(name=model, device=device, compute_type=compute_type),
        transcribe=TranscribeSettings(language=language, align=align, batch_size=batch_size),
        vad=vad,
        output=OutputSettings(output_dir=scratch / "out", formats=("srt",)),
        cluster=cluster,
        jobs=JobSettings(jobs_dir=scratch / "jobs"),
    )


def with_segment_bounds(vad: VadSettings, low: float, high: float) -> VadSettings:
    """``vad`` with segments of ``low``–``high`` seconds, cut preferably at the midpoint (as ``--segment-length``).

    Raises:
        UsageError: Not a range of positive lengths.
    """
    if not 0 < low <= high:
        raise UsageError(f"segment bounds ({low}, {high}) are not a range: use (shortest, longest) seconds")
    return dataclasses.replace(
        vad, min_segment_s=float(low), max_segment_s=float(high), target_segment_s=(low + high) / 2
    )
