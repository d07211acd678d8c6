"""The bad-input corpus of the hardening tests, generated on the fly from the real recordings.

Every case is a file that people really feed subtitle tools: broken files, odd audio, content with little
or no speech, awkward names. :func:`build_corpus` writes them all into one folder, each with what must come
of it: subtitles (``"output"``, possibly empty) or one clear error naming what is wrong (``"error"`` with a
fragment of the message). The media stay short (seconds, the silence two minutes of a tiny FLAC) so the
whole corpus runs in a few seconds of CPU per pass.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from media import write_media, write_video_only

RATE = 16000


@dataclass(frozen=True)
class BadInput:
    """One corpus file and what must come of it.

    Attributes:
        kind: ``broken``, ``odd audio``, ``no speech`` or ``name`` (the groups of the hardening table in docs/reliability.md).
        path: The file.
        expect: ``"output"`` (valid subtitles, possibly empty) or ``"error"`` (one clear error).
        reason: For errors, a fragment the one-line message must contain; for outputs, a phrase the
            subtitles must contain ("" when there is no speech: then they must hold no cue; None when
            any valid subtitles will do, as for noise, where a cue or two is no failure).
    """

    kind: str
    path: Path
    expect: str
    reason: str | None


def _jfk(data_dir: Path) -> np.ndarray:
    samples, rate = sf.read(data_dir / "jfk" / "jfk.wav", dtype="float32")
    assert rate == RATE
    return samples


def _resample(samples: np.ndarray, rate: int) -> np.ndarray:
    # Linear interpolation is enough here: the point is the container's rate, not audio quality.
    t = np.arange(int(samples.size * rate / RATE)) / rate
    return np.interp(t, np.arange(samples.size) / RATE, samples).astype(np.float32)


def _lying_flac(path: Path, samples: np.ndarray, claimed_s: float) -> Path:
    """A FLAC whose STREAMINFO claims ``claimed_s`` seconds (36-bit total-samples field)."""
    sf.write(path, samples, RATE)
    data = bytearray(path.read_bytes())
    body = data.index(b"fLaC") + 8  # "fLaC", then the STREAMINFO block header (4 bytes)
    field = int.from_bytes(data[body + 10 : body + 18], "big")
    field = (field & ~((1 << 36) - 1)) | int(claimed_s * RATE)
    data[body + 10 : body + 18] = field.to_bytes(8, "big")
    path.write_bytes(bytes(data))
    return path


def _lying_wav(path: Path, samples: np.ndarray) -> Path:
    """A WAV whose RIFF and data sizes claim about 2 GiB (18 hours) of samples."""
    sf.write(path, samples, RATE, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    claimed = 0x7FFFFFF0
    struct.pack_into("<I", data, 4, claimed + 36)
    struct.pack_into("<I", data, data.index(b"data") + 4, claimed)
    path.write_bytes(bytes(data))
    return path


def _unknown_codec_wav(path: Path, samples: np.ndarray) -> Path:
    """A WAV whose format tag (0x7777) names no codec FFmpeg knows."""
    sf.write(path, samples, RATE, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    struct.pack_into("<H", data, data.index(b"fmt ") + 8, 0x7777)
    path.write_bytes(bytes(data))
    return path


def _tones(seconds: float, seed: int = 7) -> np.ndarray:
    """Music-like: chords of harmonic notes with attack/decay envelopes, a new chord every half second."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * RATE), np.float32)
    step = RATE // 2
    t = np.arange(step) / RATE
    envelope = np.minimum(1.0, t / 0.02) * np.exp(-3.0 * t)
    for start in range(0, out.size - step + 1, step):
        root = 110.0 * 2 ** (rng.integers(0, 24) / 12)
        note = sum(np.sin(2 * np.pi * root * ratio * k * t) / k for ratio in (1.0, 1.26, 1.5) for k in (1, 2, 3))
        out[start : start + step] = 0.1 * envelope * note
    return out


def build_corpus(data_dir: Path, folder: Path) -> dict[str, BadInput]:
    """Write every bad input into ``folder``; return them by case name (the names the tests report)."""
    folder.mkdir(parents=True, exist_ok=True)
    jfk = _jfk(data_dir)
    rng = np.random.default_rng(10)
    cases: dict[str, BadInput] = {}

    def add(name: str, kind: str, make: Callable[[], Path], expect: str, reason: str | None) -> None:
        cases[name] = BadInput(kind, make(), expect, reason)

    def text_file() -> Path:
        path = folder / "notes.mp4"
        path.write_text("this is a text file, not a video\n" * 40, encoding="utf-8")
        return path

    def truncated() -> Path:
        whole = write_media(folder / "whole.mp4", [jfk], RATE, video=True)
        data = whole.read_bytes()
        whole.unlink()
        path = folder / "truncated.mp4"
        path.write_bytes(data[: len(data) // 2])
        return path

    def empty() -> Path:
        path = folder / "empty.mp4"
        path.write_bytes(b"")
        return path

    # broken files
    add("zero bytes", "broken", empty, "error", "empty")
    add("truncated mp4", "broken", truncated, "error", "not a readable video or audio file")
    add("text file named .mp4", "broken", text_file, "error", "not a readable video or audio file")
    add(
        "header claims 1 h (FLAC, 3 s real)",
        "broken",
        lambda: _lying_flac(folder / "claims_an_hour.flac", jfk[: 3 * RATE], 3600.0),
        "output",
        "americans",
    )
    add(
        "header claims 2 GiB (WAV, 3 s real)",
        "broken",
        lambda: _lying_wav(folder / "claims_2gib.wav", jfk[: 3 * RATE]),
        "output",
        "americans",
    )
    add(
        "unsupported codec (WAV tag 0x7777)",
        "broken",
        lambda: _unknown_codec_wav(folder / "alien_codec.wav", jfk[: 2 * RATE]),
        "error",
        "codec",
    )
    # odd audio
    add("no audio track", "odd audio", lambda: write_video_only(folder / "video_only.mp4"), "error", "no audio track")
    add(
        "8 kHz mono",
        "odd audio",
        lambda: (sf.write(folder / "phone_8k.wav", _resample(jfk, 8000), 8000), folder / "phone_8k.wav")[1],
        "output",
        "ask not what your country",
    )

    def six_channels() -> Path:
        # Dialogue on the centre channel of a 5.1 mix, as in films; the other channels silent.
        mix = np.zeros((int(jfk.size * 3), 6), np.float32)
        mix[:, 2] = _resample(jfk, 48000)
        path = folder / "surround_6ch_48k.flac"
        sf.write(path, mix, 48000)
        return path

    add("6 channels at 48 kHz", "odd audio", six_channels, "output", "ask not what your country")
    add(
        "0.3 s clip",
        "odd audio",
        lambda: (sf.write(folder / "blip.wav", jfk[: int(0.3 * RATE)], RATE), folder / "blip.wav")[1],
        "output",
        "",
    )
    # little or no speech
    add(
        "2 minutes of silence",
        "no speech",
        lambda: (sf.write(folder / "silence.flac", np.zeros(120 * RATE, np.float32), RATE), folder / "silence.flac")[1],
        "output",
        "",
    )
    add(
        "white noise (20 s)",
        "no speech",
        lambda: (
            sf.write(folder / "noise.wav", (0.05 * rng.standard_normal(20 * RATE)).astype(np.float32), RATE),
            folder / "noise.wav",
        )[1],
        "output",
        None,
    )
    add(
        "music-like tones (20 s)",
        "no speech",
        lambda: (sf.write(folder / "tones.ogg", _tones(20.0), RATE), folder / "tones.ogg")[1],
        "output",
        None,
    )
    # awkward names
    add(
        "unicode name",
        "name",
        lambda: (sf.write(folder / "Ünïcödé 日本語 — ✓.wav", jfk, RATE), folder / "Ünïcödé 日本語 — ✓.wav")[1],
        "output",
        "ask not what your country",
    )
    add(
        "spaces in the name",
        "name",
        lambda: (sf.write(folder / " a  talk  with spaces .wav", jfk, RATE), folder / " a  talk  with spaces .wav")[1],
        "output",
        "ask not what your country",
    )
    long_name = "l" * 120 + "ö" * 60 + ".wav"  # 244 bytes in UTF-8: the longest a file system takes is 255
    add(
        "very long name (244 bytes)",
        "name",
        lambda: (sf.write(folder / long_name, jfk, RATE), folder / long_name)[1],
        "output",
        "ask not what your country",
    )
    return cases
