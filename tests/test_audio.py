"""Decoding any container into 16 kHz mono, track choice, bad inputs, and memory-mapped reads."""

from __future__ import annotations

import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from media import CONTAINERS, write_media, write_video_only

from pipeline.core.errors import InputError
from pipeline.core.settings import AudioSettings
from pipeline.media import decode as audio


@pytest.fixture(scope="module")
def jfk(data_dir: Path) -> np.ndarray:
    samples, rate = sf.read(data_dir / "jfk" / "jfk.wav", dtype="float32")
    assert rate == 16000
    return samples


@pytest.mark.parametrize("ext", sorted(CONTAINERS))
def test_every_container_decodes_to_16k_mono(tmp_path: Path, jfk: np.ndarray, ext: str) -> None:
    path = write_media(tmp_path / f"jfk.{ext}", [jfk], 16000, video=ext in ("mp4", "mkv", "webm", "mov", "avi"))
    decoded = audio.decode_all(path)
    assert abs(decoded.size / 16000 - jfk.size / 16000) < 0.15
    # The speech survives the round trip: the envelopes of original and decoded audio correlate.
    n = min(decoded.size, jfk.size) // 1600 * 1600
    env_a = np.abs(jfk[:n]).reshape(-1, 1600).mean(axis=1)
    env_b = np.abs(decoded[:n]).reshape(-1, 1600).mean(axis=1)
    assert np.corrcoef(env_a, env_b)[0, 1] > 0.9


@pytest.mark.parametrize(
    "name",
    ["jfk/jfk.flac", "fleurs_en/fleurs-en-000.ogg", "harvard/harvard-sentences-list30.mp3", "video/manifesto.mp4"],
)
def test_real_files_decode(data_dir: Path, name: str) -> None:
    path = data_dir / name
    info = audio.probe(path)
    chunks = list(audio.decode(path))
    assert all(c.dtype == np.int16 and c.ndim == 1 for c in chunks)
    seconds = sum(c.size for c in chunks) / 16000
    assert abs(seconds - info.duration) < 0.5
    assert all(c.size <= audio.CHUNK_SAMPLES * 2 for c in chunks), "decoding must stream in small chunks"


def test_audio_track_choice(tmp_path: Path, jfk: np.ndarray) -> None:
    silence = np.zeros_like(jfk)
    path = write_media(tmp_path / "two.mkv", [silence, jfk], 16000)
    assert audio.probe(path).audio_tracks == 2
    first = audio.decode_all(path)
    second = audio.decode_all(path, AudioSettings(audio_track=1))
    assert np.abs(first).max() < 0.01 < np.abs(second).max()
    with pytest.raises(InputError, match="has 2 audio track"):
        audio.probe(path, AudioSettings(audio_track=2))


def test_progress_callback_reports_seconds(data_dir: Path) -> None:
    seen: list[tuple[float, float]] = []
    list(audio.decode(data_dir / "video" / "manifesto.mp4", on_progress=lambda d, t: seen.append((d, t))))
    assert seen and seen[-1][0] == pytest.approx(88.07, abs=0.2)
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))


# --- bad inputs -------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        audio.probe(tmp_path / "nope.mp4")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory"):
        audio.probe(tmp_path)


def test_zero_bytes(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(InputError, match="empty"):
        audio.probe(path)


def test_text_file_named_mp4(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    with pytest.raises(InputError, match="not a readable video or audio file"):
        list(audio.decode(path))


def test_truncated_mp4(data_dir: Path, tmp_path: Path) -> None:
    data = (data_dir / "video" / "manifesto.mp4").read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.mp4"):
        list(audio.decode(path))


def _faststart(src_path: Path, fast: Path) -> Path:
    """``src_path`` remuxed with its index at the front, so that a cut file still plays up to the cut."""
    import av

    with av.open(str(src_path)) as src, av.open(str(fast), "w", options={"movflags": "faststart"}) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    return fast


def test_truncated_faststart_mp4(data_dir: Path, tmp_path: Path) -> None:
    """With the index at the front the first half still plays; the cut is reported, not hidden."""
    fast = _faststart(data_dir / "video" / "manifesto.mp4", tmp_path / "fast.mp4")
    data = fast.read_bytes()
    cut = tmp_path / "fast_cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        list(audio.decode(cut))


def test_a_damaged_last_moment_keeps_all_that_decoded(data_dir: Path, tmp_path: Path) -> None:
    """Cut at 97%: every audio packet whole before the cut is kept, including what the resampler still held."""
    import av

    fast = _faststart(data_dir / "video" / "manifesto.mp4", tmp_path / "fast.mp4")
    data = fast.read_bytes()
    cut = tmp_path / "cut97.mp4"
    cut.write_bytes(data[: int(len(data) * 0.97)])
    with av.open(str(fast)) as container:
        stream = container.streams.audio[0]
        size = cut.stat().st_size
        whole = [p for p in container.demux(stream) if p.size and p.pos is not None and p.pos + p.size <= size]
        complete_s = float(sum(p.duration for p in whole) * stream.time_base)
    seconds = sum(c.size for c in audio.decode(cut)) / 16000
    assert complete_s - 0.25 <= seconds <= complete_s + 0.25, (seconds, complete_s)


def test_video_without_audio(tmp_path: Path) -> None:
    path = write_video_only(tmp_path / "silent_film.mp4")
    with pytest.raises(InputError, match="no audio track"):
        audio.probe(path)


# --- memory-mapped reads ----------------------------------------------------------------------------


def _wav_bytes(samples: np.ndarray, *, fmt: str, rate: int = 16000, channels: int = 1) -> bytes:
    """Hand-built RIFF bytes, so the header parser is tested against the format itself."""
    if fmt == "pcm16":
        body = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
        tag, bits = 1, 16
    else:
        body = samples.astype("<f4").tobytes()
        tag, bits = 3, 32
    block = channels * bits // 8
    if fmt == "extensible":
        guid = struct.pack("<H", 3) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt_chunk = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * block, block, bits, 22, bits, 0) + guid
    else:
        fmt_chunk = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    # A LIST chunk before data, as many tools write, must be skipped.
    extra = b"LIST" + struct.pack("<I", 4) + b"INFO"
    chunks = (
        b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk + extra + b"data" + struct.pack("<I", len(body)) + body
    )
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


@pytest.mark.parametrize("fmt", ["pcm16", "float32", "extensible"])
def test_memory_mapped_ranges(tmp_path: Path, jfk: np.ndarray, fmt: str) -> None:
    path = tmp_path / f"{fmt}.wav"
    path.write_bytes(_wav_bytes(jfk, fmt=fmt))
    with audio.MemoryMappedAudio(path) as wav:
        assert wav.mode == "mmap"
        assert wav.duration == pytest.approx(jfk.size / 16000)
        part = wav.read(2.0, 3.5)
        assert part.dtype == np.float32 and part.size == 24000
        np.testing.assert_allclose(part, jfk[32000:56000], atol=1e-4)
        assert wav.read(10.9, 99).size == jfk.size - int(10.9 * 16000)


def test_stereo_is_mixed_to_mono(tmp_path: Path, jfk: np.ndarray) -> None:
    stereo = np.stack([jfk, np.zeros_like(jfk)], axis=1).reshape(-1)
    path = tmp_path / "stereo.wav"
    path.write_bytes(_wav_bytes(stereo, fmt="float32", channels=2))
    with audio.MemoryMappedAudio(path) as wav:
        np.testing.assert_allclose(wav.read(1, 2), jfk[16000:32000] / 2, atol=1e-6)


def test_fallback_to_soundfile_when_mapping_fails(
    tmp_path: Path, jfk: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "pcm24.wav"
    sf.write(path, jfk, 16000, subtype="PCM_24")  # 24-bit: the mmap reader declines, soundfile reads it
    with caplog.at_level("INFO"), audio.MemoryMappedAudio(path) as wav:
        assert wav.mode == "soundfile"
        np.testing.assert_allclose(wav.read(1.0, 2.0), jfk[16000:32000], atol=1e-4)
    assert "memory mapping failed" in caplog.text


def test_thread_safe_reads_and_clean_close(tmp_path: Path, jfk: np.ndarray) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(_wav_bytes(jfk, fmt="pcm16"))
    wav = audio.MemoryMappedAudio(path)
    errors: list[BaseException] = []

    def reader(offset: float) -> None:
        try:
            for i in range(200):
                start = (offset + i * 0.01) % 9
                assert wav.read(start, start + 1).size == 16000
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    wav.close()
    with pytest.raises(ValueError, match="after close"):
        wav.read(0, 1)


def _envelope_match(a: np.ndarray, b: np.ndarray) -> float:
    n = min(a.size, b.size) // 1600 * 1600
    return float(np.corrcoef(np.abs(a[:n]).reshape(-1, 1600).mean(1), np.abs(b[:n]).reshape(-1, 1600).mean(1))[0, 1])


def test_a_stream_that_changes_its_rate_midway_decodes_whole(data_dir: Path, tmp_path: Path, jfk: np.ndarray) -> None:
    """Concatenated ADTS AAC switches from 44.1 to 22.05 kHz mid-stream (faster-whisper's decoder refuses it)."""
    import subprocess

    parts = []
    for rate in (44100, 22050):
        part = tmp_path / f"jfk-{rate}.aac"
        cmd = ["ffmpeg", "-v", "error", "-i", str(data_dir / "jfk" / "jfk.wav"), "-ar", str(rate), str(part)]
        subprocess.run(cmd, check=True)
        parts.append(part.read_bytes())
    both = tmp_path / "both.aac"
    both.write_bytes(b"".join(parts))
    decoded = audio.decode_all(both)
    half = jfk.size
    assert abs(decoded.size - 2 * half) < 0.3 * 16000, decoded.size / 16000
    assert _envelope_match(jfk, decoded[:half]) > 0.9
    assert _envelope_match(jfk, decoded[-half:]) > 0.9


@pytest.mark.parametrize("name", ["video/manifesto.mp4", "fleurs_multi/fleurs-de-003.ogg"])
def test_samples_match_faster_whispers_decoder(data_dir: Path, name: str) -> None:
    """Frames are resampled in groups, as faster-whisper does: the same samples, bit for bit, on real files."""
    from faster_whisper.audio import decode_audio

    path = data_dir / name
    ours, theirs = audio.decode_all(path), decode_audio(str(path))
    assert ours.size == theirs.size and np.array_equal(ours, theirs)
