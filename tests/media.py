"""Builds small media files for tests with PyAV: other containers, extra tracks, no audio, broken files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: (container extension) -> (PyAV format, audio codec, sample rate)
CONTAINERS = {
    "mp4": ("mp4", "aac", 44100),
    "m4a": ("ipod", "aac", 44100),
    "mov": ("mov", "aac", 48000),
    "mkv": ("matroska", "libopus", 48000),
    "webm": ("webm", "libopus", 48000),
    "avi": ("avi", "libmp3lame", 44100),
    "mp3": ("mp3", "libmp3lame", 44100),
    "ogg": ("ogg", "libopus", 48000),
    "opus": ("ogg", "libopus", 48000),
    "flac": ("flac", "flac", 22050),
    "wav": ("wav", "pcm_s16le", 8000),
}


def write_media(
    path: Path,
    tracks: Sequence[np.ndarray],
    rate: int = 16000,
    *,
    video: bool = False,
    channels: int = 1,
) -> Path:
    """Write float32 mono ``tracks`` (at ``rate``) into ``path``; the extension picks container and codec."""
    import av

    fmt, codec, out_rate = CONTAINERS[path.suffix.lstrip(".")]
    out = av.open(str(path), "w", format=fmt)
    layout = "mono" if channels == 1 else ("stereo" if channels == 2 else "5.1")
    vstream = None
    if video:
        vcodec = "libvpx" if fmt == "webm" else "mpeg4"
        vstream = out.add_stream(vcodec, rate=10)
        vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
    streams = []
    for _ in tracks:
        a = out.add_stream(codec, rate=out_rate, layout=layout)
        streams.append(a)
    duration = max((t.size / rate for t in tracks), default=1.0)
    if vstream is not None:
        for i in range(int(duration * 10)):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), (i * 7) % 255, np.uint8), format="rgb24")
            for packet in vstream.encode(frame):
                out.mux(packet)
        for packet in vstream.encode():
            out.mux(packet)
    for a, samples in zip(streams, tracks):
        data = np.tile(samples.astype(np.float32)[None, :], (channels, 1))
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="fltp", layout=layout)
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=a.codec_context.format.name, layout=layout, rate=out_rate)
        for f in resampler.resample(frame) + resampler.resample(None):
            for packet in a.encode(f):
                out.mux(packet)
        for packet in a.encode():
            out.mux(packet)
    out.close()
    return path


def write_video_only(path: Path, seconds: float = 2.0) -> Path:
    """An mp4 with a video track and no audio track."""
    import av

    out = av.open(str(path), "w", format="mp4")
    v = out.add_stream("mpeg4", rate=10)
    v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
    for i in range(int(seconds * 10)):
        frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 10 % 255, np.uint8), format="rgb24")
        for packet in v.encode(frame):
            out.mux(packet)
    for packet in v.encode():
        out.mux(packet)
    out.close()
    return path


def speech_clips(data_dir: Path) -> list[np.ndarray]:
    """Every real recording in tests/data as 16 kHz mono float32, in a fixed order."""
    from pipeline.media.decode import decode_all

    names = (
        ["jfk/jfk.wav", "harvard/harvard-sentences-list30.mp3", "mfa/acoustic_corpus.wav", "mfa/cold_corpus.wav"]
        + [f"fleurs_en/fleurs-en-{i:03d}.ogg" for i in range(10)]
        + [f"ljspeech/LJ001-{i:04d}.wav" for i in range(1, 17)]
    )
    return [decode_all(data_dir / n) for n in names]


def concat_speech(clips: Sequence[np.ndarray], seconds: float, pauses: Sequence[float] = (0.8,)) -> np.ndarray:
    """Loop ``clips`` with the given pauses (cycled) between them until ``seconds`` of audio."""
    parts: list[np.ndarray] = []
    total, i = 0, 0
    while total < seconds * 16000:
        clip = clips[i % len(clips)]
        gap = np.zeros(int(pauses[i % len(pauses)] * 16000), np.float32)
        parts += [clip, gap]
        total += clip.size + gap.size
        i += 1
    return np.concatenate(parts)[: int(seconds * 16000)]
