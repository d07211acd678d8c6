"""Audio: decode any container FFmpeg reads (through PyAV) into 16 kHz mono, and read time ranges back.

Decoding streams: :func:`decode` yields small chunks, so a two-hour film never sits in memory, and the
caller writes them to the job's WAV and feeds VAD at the same time. :class:`MemoryMappedAudio` then reads
any time range of that WAV through ``mmap`` (no copy per segment), falling back to soundfile reads.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.errors import InputError
from pipeline.core.settings import AudioSettings

log = logging.getLogger(__name__)

#: Samples per chunk handed downstream (2 s at 16 kHz): small enough to stream, big enough to be cheap.
CHUNK_SAMPLES = 32000
#: A decoding error before this share of the declared duration means the file is truncated, not just scuffed.
TRUNCATED_SHARE = 0.9


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` finds in a file."""

    path: Path
    duration: float
    audio_tracks: int
    track: int
    codec: str
    sample_rate: int
    channels: int
    has_video: bool


def check_input(path: Path) -> None:
    """Fail early and clearly on a path that cannot be media.

    Raises:
        InputError: The path is missing, a directory, or an empty file.
    """
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give a video or audio file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes); give a complete video or audio file")


def _open(path: Path) -> Any:  # noqa: ANN401 - an av input container
    import av

    check_input(path)
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(
            f"{path}: not a readable video or audio file ({reason}); check that it is complete and not corrupt"
        ) from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc}); check the file's permissions") from exc


def _pick_track(container: Any, path: Path, settings: AudioSettings) -> tuple[Any, int]:  # noqa: ANN401
    streams = list(container.streams.audio)
    if not streams:
        raise InputError(f"{path}: has no audio track; give a file with sound")
    index = settings.audio_track or 0
    if index >= len(streams):
        raise InputError(
            f"{path}: has {len(streams)} audio track(s), so --audio-track {index} does not exist; "
            f"use 0 to {len(streams) - 1}"
        )
    if streams[index].codec_context is None:
        # FFmpeg found the track but knows no decoder for its codec: say so before anything is stored.
        raise InputError(
            f"{path}: audio track {index} uses a codec FFmpeg cannot decode; convert it first, e.g. "
            "`ffmpeg -i INPUT -c:a flac OUTPUT.flac`"
        )
    return streams[index], len(streams)


def _duration(container: Any, stream: Any) -> float:  # noqa: ANN401
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return 0.0


def probe(path: Path, settings: AudioSettings | None = None) -> MediaInfo:
    """Open a file and describe its chosen audio track, without decoding it.

    Raises:
        InputError: The file is missing, unreadable, or has no (such) audio track.
    """
    settings = settings or AudioSettings()
    with _open(path) as container:
        stream, count = _pick_track(container, path, settings)
        ctx = stream.codec_context
        return MediaInfo(
            path=path,
            duration=_duration(container, stream),
            audio_tracks=count,
            track=settings.audio_track or 0,
            codec=ctx.name if ctx is not None else "?",
            sample_rate=int(ctx.sample_rate or 0) if ctx is not None else 0,
            channels=int(ctx.channels or 0) if ctx is not None else 0,
            has_video=bool(container.streams.video),
        )


class _Resampler:
    """Decoded frames in, 16 kHz mono int16 arrays out, gathered into large frames first.

    Frames go through a FIFO into the resampler a chunk's length (:data:`CHUNK_SAMPLES`) at a time, as
    faster-whisper's ``decode_audio`` does: a call per decoded frame (1024 samples of AAC) made resampling cost
    more than decoding (docs/benchmarks.md, "Process housekeeping"). A stream that changes its format or rate mid-way (concatenated ADTS AAC does) gets a
    new FIFO and resampler from that frame on, after what was gathered in the old format.
    """

    def __init__(self, rate: int) -> None:
        self._rate = rate
        self._setup: tuple[str, str, int] | None = None
        self._group = 0  # input samples a resampler call takes
        self._fifo: Any = None
        self._resampler: Any = None

    def feed(self, frame: Any) -> Iterator[np.ndarray]:  # noqa: ANN401 - av.AudioFrame
        """Take one decoded frame; yield samples whenever enough have gathered."""
        import av

        setup = (frame.format.name, frame.layout.name, frame.sample_rate)
        if setup != self._setup:
            yield from self.finish()
            self._setup = setup
            self._group = CHUNK_SAMPLES * frame.sample_rate // self._rate
            self._fifo = av.AudioFifo()
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=self._rate)
        frame.pts = None  # the FIFO checks that timestamps follow on; gaps do not matter here
        self._fifo.write(frame)
        if self._fifo.samples >= self._group:
            yield from self._resample(self._fifo.read())

    def finish(self) -> Iterator[np.ndarray]:
        """Yield what has gathered and the resampler's last samples."""
        if self._fifo is not None and self._fifo.samples:
            yield from self._resample(self._fifo.read())
        if self._resampler is not None:
            yield from self._resample(None)
        self._setup = self._fifo = self._resampler = None

    def _resample(self, frame: Any) -> Iterator[np.ndarray]:  # noqa: ANN401 - av.AudioFrame or None
        for out in self._resampler.resample(frame):
            yield out.to_ndarray().reshape(-1)


def decode(
    path: Path,
    settings: AudioSettings | None = None,
    on_progress: Callable[[float, float], None] | None = None,
) -> Iterator[np.ndarray]:
    """Decode the chosen audio track into 16 kHz mono int16 chunks.

    Args:
        path: Any file FFmpeg reads.
        settings: Track and sample rate.
        on_progress: Called with (seconds decoded, total seconds or 0) after each chunk.

    Yields:
        1-D int16 arrays of about :data:`CHUNK_SAMPLES` samples.

    Raises:
        InputError: Missing, unreadable, no audio track, or nothing decodable in it.
    """
    import av

    settings = settings or AudioSettings()
    rate = settings.sample_rate
    container = _open(path)
    damage: av.error.FFmpegError | None
    try:
        stream, _ = _pick_track(container, path, settings)
        total = _duration(container, stream)
        resampler = _Resampler(rate)
        pending: list[np.ndarray] = []
        pending_n = 0
        produced = 0
        try:
            # Only the chosen stream is demuxed and decoded; other streams never are.
            for packet in container.demux(stream):
                for frame in packet.decode():
                    for arr in resampler.feed(frame):
                        pending.append(arr)
                        pending_n += arr.size
                if pending_n >= CHUNK_SAMPLES:
                    chunk = np.concatenate(pending)
                    pending, pending_n = [], 0
                    produced += chunk.size
                    yield chunk
                    if on_progress:
                        on_progress(produced / rate, total)
        except av.error.FFmpegError as exc:
            damage = exc
        else:
            damage = None
        # What the resampler still holds, also when damage ended the decoding: it decoded before the damage.
        for arr in resampler.finish():
            pending.append(arr)
            pending_n += arr.size
        if pending_n:
            chunk = np.concatenate(pending)
            produced += chunk.size
            yield chunk
        if produced == 0:
            raise InputError(f"{path}: the audio track holds no decodable sound (zero duration); check the file")
        if damage is not None:
            done = produced / rate
            if total and done < TRUNCATED_SHARE * total:
                raise InputError(
                    f"{path}: the file is truncated or damaged: its audio decodes to {done:.1f} s of "
                    f"{total:.1f} s; use a complete copy"
                )
            # A damaged last moment: keep what decoded, as players do.
            log.warning("%s: decoding stopped early at %.1f s of %.1f s (%s)", path, done, total, damage)
        if on_progress:
            on_progress(produced / rate, total)
    finally:
        container.close()


def decode_all(path: Path, settings: AudioSettings | None = None) -> np.ndarray:
    """Decode a whole (short) file into float32 samples in [-1, 1]. For tests, notebooks and small clips."""
    chunks = list(decode(path, settings))
    return np.concatenate(chunks).astype(np.float32) / 32768.0


@dataclass(frozen=True)
class WavFormat:
    """What a WAV header says about its samples."""

    sample_rate: int
    channels: int
    dtype: np.dtype
    data_offset: int
    frames: int


_EXTENSIBLE = 0xFFFE
_PCM = 1
_FLOAT = 3


def parse_wav_header(buf: bytes | mmap.mmap, file_size: int) -> WavFormat:
    """Parse the RIFF chunks of a WAV: PCM16, float32 and WAVE_FORMAT_EXTENSIBLE.

    Raises:
        ValueError: Not a WAV this reader supports.
    """
    if len(buf) < 12 or buf[0:4] not in (b"RIFF", b"RF64") or buf[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= file_size:
        cid = bytes(buf[pos : pos + 4])
        (size,) = struct.unpack("<I", buf[pos + 4 : pos + 8])
        body = pos + 8
        if cid == b"fmt ":
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", buf[body : body + 16])
            if tag == _EXTENSIBLE and size >= 40:
                (tag,) = struct.unpack("<H", buf[body + 24 : body + 26])
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            if fmt is None:
                raise ValueError("data chunk before fmt chunk")
            tag, channels, rate, bits = fmt
            dtype: np.dtype[Any]
            if tag == _PCM and bits == 16:
                dtype = np.dtype("<i2")
            elif tag == _FLOAT and bits == 32:
                dtype = np.dtype("<f4")
            else:
                raise ValueError(f"unsupported WAV sample format (tag {tag}, {bits} bits)")
            # Streaming writers may leave 0 or 0xFFFFFFFF here: trust the file's real length instead.
            available = file_size - body
            if size == 0 or size == 0xFFFFFFFF or size > available:
                size = available
            frames = size // (dtype.itemsize * channels)
            return WavFormat(rate, channels, dtype, body, frames)
        pos = body + size + (size & 1)
    raise ValueError("no data chunk")


class MemoryMappedAudio:
    """Float32 samples of any time range of a WAV file, read through ``mmap``.

    Thread-safe; several transcription threads may read at once. When mapping fails (a file system
    without mmap, a WAV format the header parser does not know) it falls back to soundfile reads and logs
    which path it took. Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._mmap: mmap.mmap | None = None
        self._file = None
        self._closed = False
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 - held open for the map's lifetime
            size = os.fstat(self._file.fileno()).st_size
            self._mmap = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self.format = parse_wav_header(self._mmap, size)
            self.mode = "mmap"
        except (OSError, ValueError) as exc:
            self._release()
            import soundfile

            info = soundfile.info(str(self.path))
            self.format = WavFormat(info.samplerate, info.channels, np.dtype("<f4"), 0, info.frames)
            self.mode = "soundfile"
            log.info("%s: memory mapping failed (%s); reading with soundfile", self.path, exc)
        else:
            log.debug("%s: memory-mapped, %d frames", self.path, self.format.frames)

    @property
    def sample_rate(self) -> int:
        return self.format.sample_rate

    @property
    def duration(self) -> float:
        return self.format.frames / self.format.sample_rate

    def read(self, start: float = 0.0, end: float | None = None) -> np.ndarray:
        """Return mono float32 samples in [-1, 1] from ``start`` to ``end`` seconds (clipped to the file)."""
        fmt = self.format
        a = max(0, min(fmt.frames, int(round(start * fmt.sample_rate))))
        b = fmt.frames if end is None else max(a, min(fmt.frames, int(round(end * fmt.sample_rate))))
        with self._lock:
            if self._closed:
                raise ValueError(f"{self.path}: read after close")
            if self._mmap is None:
                import soundfile

                data, _ = soundfile.read(str(self.path), start=a, stop=b, dtype="float32", always_2d=True)
                return data.mean(axis=1).astype(np.float32) if data.shape[1] > 1 else data[:, 0].copy()
            count = (b - a) * fmt.channels
            offset = fmt.data_offset + a * fmt.channels * fmt.dtype.itemsize
            raw = np.frombuffer(self._mmap, dtype=fmt.dtype, count=count, offset=offset)
            samples = raw.astype(np.float32)  # copies, so nothing refers to the map after close
        if fmt.dtype.kind == "i":
            samples /= 32768.0
        if fmt.channels > 1:
            samples = samples.reshape(-1, fmt.channels).mean(axis=1)
        return samples

    def _release(self) -> None:
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def close(self) -> None:
        """Unmap and close the file. Reads after this raise ``ValueError``."""
        with self._lock:
            self._closed = True
            self._release()

    def __enter__(self) -> MemoryMappedAudio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
