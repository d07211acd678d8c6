"""Benchmark inputs of several kinds, built from the repository's recordings (tests/data) at benchmark time.

Every kind is the real clips of jfk, fleurs_en, ljspeech, harvard and mfa, shuffled with a fixed seed and
looped to the asked length, muxed with a generated H.264 video track and AAC audio into an MP4 (PyAV, so
no ffmpeg binary is needed). Nothing is committed: the files go to the benchmark's output folder and are
rebuilt only when :data:`BUILD_VERSION` changes.

Kinds:

- ``dense``: speech with few pauses (0.05–0.3 s between clips);
- ``pauses``: speech with many short pauses (0.3–1.2 s, now and then 2–3 s);
- ``silences``: talks of 60–100 s separated by 15–40 s of silence or of music-like sound (a chord of
  sine tones with a tremolo over pink noise), which has no words in the reference;
- ``speakers``: the clips at four levels (0, −8, −16, −24 dB) in turn, as several speakers near and far.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from pipeline.core.constants import SAMPLE_RATE
from pipeline.lab.evaluation import DEFAULT_DATA_DIR, load_sets

KINDS = ("dense", "pauses", "silences", "speakers")
#: Bump when the way inputs are built changes, so old builds are not reused.
BUILD_VERSION = 1
#: The sets whose clips make the inputs (exact references only).
SETS = ("jfk", "fleurs_en", "ljspeech", "harvard", "mfa")
LEVELS_DB = (0.0, -8.0, -16.0, -24.0)


@dataclass(frozen=True)
class Built:
    """A built input: the video, its 16 kHz audio, the reference text and the layout."""

    mp4: Path
    wav: Path
    ref: str
    seconds: float


@cache
def _clip_samples(path: str) -> np.ndarray:
    from pipeline.media.decode import decode_all

    return decode_all(Path(path)).astype(np.float32)


def music_bed(seconds: float, seed: int = 0) -> np.ndarray:
    """Music-like sound without words: a slowly changing chord of sine tones with a tremolo, over pink noise.

    Args:
        seconds: Length.
        seed: Noise seed.

    Returns:
        float32 samples at 16 kHz, peaking near -12 dBFS.
    """
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n, dtype=np.float64) / SAMPLE_RATE
    chords = ((220.0, 277.2, 329.6), (196.0, 246.9, 293.7), (174.6, 220.0, 261.6), (246.9, 311.1, 370.0))
    out = np.zeros(n, np.float64)
    step = 2 * SAMPLE_RATE  # a new chord every 2 s
    for k in range(0, n, step):
        freqs = chords[(k // step) % len(chords)]
        seg = t[k : k + step]
        for j, f in enumerate(freqs):
            out[k : k + step] += (0.08 / (j + 1)) * np.sin(2 * np.pi * f * seg)
    out *= 0.6 + 0.4 * np.sin(2 * np.pi * 3.0 * t)  # tremolo
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(n)
    # Pink-ish noise: white noise through a one-pole low-pass, mixed low.
    from scipy.signal import lfilter

    pink = lfilter([0.02], [1.0, -0.98], white)
    out += 0.15 * pink
    return (out / max(1e-9, np.abs(out).max()) * 0.25).astype(np.float32)


def compose(kind: str, seconds: float, data_dir: Path = DEFAULT_DATA_DIR) -> tuple[np.ndarray, list[str], list[dict]]:
    """The audio of one kind, its reference texts in order, and where each clip lies.

    Args:
        kind: One of :data:`KINDS`.
        seconds: Target length (the last clip may end a little later).
        data_dir: The test data folder.

    Returns:
        (float32 samples, reference texts, layout).
    """
    if kind not in KINDS:
        raise SystemExit(f"unknown input kind {kind!r}: use {', '.join(KINDS)}")
    sets = load_sets(data_dir)
    clips = [c for name in SETS for c in sets[name]]
    rng = random.Random(f"{kind}-{BUILD_VERSION}")
    order = clips[:]
    rng.shuffle(order)
    bed = music_bed(40.0) if kind == "silences" else None
    parts: list[np.ndarray] = [np.zeros(SAMPLE_RATE // 2, np.float32)]
    t = 0.5
    refs: list[str] = []
    layout: list[dict] = []
    i = 0
    talk_left = rng.uniform(60, 100)
    while t < seconds:
        clip = order[i % len(order)]
        samples = _clip_samples(str(clip.path))
        if kind == "speakers":
            level = LEVELS_DB[i % len(LEVELS_DB)]
            samples = samples * (10 ** (level / 20))
        else:
            level = 0.0
        parts.append(samples)
        layout.append({"clip": clip.path.name, "start": round(t, 3), "level_db": level})
        refs.append(clip.ref)
        t += samples.size / SAMPLE_RATE
        talk_left -= samples.size / SAMPLE_RATE
        i += 1
        if kind == "dense":
            pause = rng.uniform(0.05, 0.3)
        elif kind == "silences" and talk_left <= 0:
            pause = rng.uniform(15, 40)
            talk_left = rng.uniform(60, 100)
            if bed is not None and len(layout) % 2:
                gap = np.resize(bed, int(pause * SAMPLE_RATE))
                layout.append({"music": round(pause, 2), "start": round(t, 3)})
                parts.append(gap)
                t += gap.size / SAMPLE_RATE
                continue
            layout.append({"silence": round(pause, 2), "start": round(t, 3)})
        elif kind == "pauses" and rng.random() < 0.15:
            pause = rng.uniform(2.0, 3.0)
        else:
            pause = rng.uniform(0.3, 1.2)
        parts.append(np.zeros(int(pause * SAMPLE_RATE), np.float32))
        t += pause
    return np.clip(np.concatenate(parts), -1.0, 1.0), refs, layout


def write_wav(path: Path, samples: np.ndarray) -> None:
    """Write float32 samples in [-1, 1] as a 16 kHz mono PCM16 WAV file.

    Args:
        path: Where to write.
        samples: The samples.
    """
    import wave

    pcm = samples if samples.dtype == np.int16 else (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())


def _encode_audio(out, stream, samples: np.ndarray) -> None:  # noqa: ANN001 - PyAV objects
    import av

    layout = "mono"
    resampler = av.AudioResampler(format=stream.codec_context.format.name, layout=layout, rate=stream.rate)
    step = SAMPLE_RATE * 10
    pcm = samples if samples.dtype == np.int16 else (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    pts = 0
    for k in range(0, pcm.size, step):
        frame = av.AudioFrame.from_ndarray(pcm[None, k : k + step].copy(), format="s16", layout=layout)
        frame.sample_rate = SAMPLE_RATE
        frame.pts = pts
        pts += frame.samples
        for f in resampler.resample(frame):
            for packet in stream.encode(f):
                out.mux(packet)
    for f in resampler.resample(None):
        for packet in stream.encode(f):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def mux_video(path: Path, samples: np.ndarray) -> None:
    """Mux ``samples`` as AAC with a generated 320x240 10 fps H.264 track into an MP4.

    Args:
        path: The MP4 to write.
        samples: 16 kHz mono float32 or int16 samples.
    """
    import av

    seconds = samples.size / SAMPLE_RATE
    tmp = path.with_suffix(".tmp.mp4")
    out = av.open(str(tmp), "w", format="mp4")
    v = out.add_stream("libx264", rate=10)
    v.width, v.height, v.pix_fmt = 320, 240, "yuv420p"
    v.options = {"preset": "veryfast", "crf": "30"}
    a = out.add_stream("aac", rate=44100, layout="mono")
    a.bit_rate = 96000
    base = np.zeros((240, 320, 3), np.uint8)
    base[:, :, 0] = np.arange(320, dtype=np.uint8)[None, :]
    base[:, :, 1] = np.arange(240, dtype=np.uint8)[:, None]
    for i in range(int(seconds * 10)):
        img = np.roll(base, i, axis=1)
        for packet in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            out.mux(packet)
    for packet in v.encode():
        out.mux(packet)
    _encode_audio(out, a, samples)
    out.close()
    tmp.replace(path)


def write_m4a(path: Path, samples: np.ndarray, loops: int = 1) -> None:
    """Write ``samples`` repeated ``loops`` times as AAC 64 kb/s mono in an M4A (long inputs, audio only).

    Args:
        path: The M4A to write.
        samples: 16 kHz mono samples.
        loops: Repetitions.
    """
    import av

    tmp = path.with_suffix(".tmp.m4a")
    out = av.open(str(tmp), "w", format="ipod")
    a = out.add_stream("aac", rate=16000, layout="mono")
    a.bit_rate = 64000
    _encode_audio(out, a, np.tile(samples, loops))
    out.close()
    tmp.replace(path)


def media_duration(path: Path) -> float:
    """Duration of a media file in seconds (from its container).

    Args:
        path: The file.

    Returns:
        Seconds.
    """
    from pipeline.media.decode import probe

    return float(probe(path).duration)


def build(kind: str, out: Path, seconds: float = 600.0, data_dir: Path = DEFAULT_DATA_DIR) -> Built:
    """Build (or reuse) one input of ``kind`` about ``seconds`` long in ``out``.

    Args:
        kind: One of :data:`KINDS`.
        out: The inputs folder.
        seconds: Target length.
        data_dir: The test data folder.

    Returns:
        The built input.
    """
    stem = f"{kind}-{int(seconds)}s"
    mp4, wav, meta_path = out / f"{stem}.mp4", out / f"{stem}.wav", out / f"{stem}.json"
    if mp4.exists() and wav.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("version") == BUILD_VERSION:
            return Built(mp4, wav, meta["ref"], meta["seconds"])
    out.mkdir(parents=True, exist_ok=True)
    samples, refs, layout = compose(kind, seconds, data_dir)
    write_wav(wav, samples)
    mux_video(mp4, samples)
    ref = " ".join(refs)
    total = round(samples.size / SAMPLE_RATE, 3)
    meta_path.write_text(
        json.dumps({"version": BUILD_VERSION, "kind": kind, "seconds": total, "ref": ref, "layout": layout}, indent=1)
    )
    return Built(mp4, wav, ref, total)


def build_all(kinds: Sequence[str], out: Path, seconds: float, data_dir: Path = DEFAULT_DATA_DIR) -> list[Built]:
    """Build every kind in ``kinds``.

    Args:
        kinds: Kinds, from :data:`KINDS`.
        out: The inputs folder.
        seconds: Target length of each.
        data_dir: The test data folder.

    Returns:
        The built inputs, in order.
    """
    return [build(k, out, seconds, data_dir) for k in kinds]
