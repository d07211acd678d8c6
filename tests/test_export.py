"""Finishing a video: ``video2srt -f srt,ass --embed --burn`` on the first 12 s of manifesto.mp4, checked with
ffprobe and by comparing frames; karaoke timing; container fallback, audio-only, a full disk, a cancel, an
ffmpeg without libass; the cue edit rules on the real cues."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pysubs2
import pytest
import srt

from pipeline.cli import main
from pipeline.core.errors import CancelledError, CueEditError, ExportError, InputError, UsageError
from pipeline.core.settings import ExportSettings, SubtitleSettings
from pipeline.core.types import Cue
from pipeline.text import ass, mux
from pipeline.text.cue_edit import merge_rows, review_cues, split_row, transcript_from_dict, validate_cues, with_cues

# ffmpeg encodes video (burn) and remuxes: the full suite runs these, the fast loop does not.
pytestmark = pytest.mark.heavy

CLIP_S = 12


def _ffprobe(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)["streams"]


def _frame(path: Path, t: float) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.time is not None and frame.time >= t:
                return frame.to_ndarray(format="rgb24").astype(np.float32)
    raise AssertionError(f"no frame at {t} s in {path}")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """The first 12 s of manifesto.mp4 (stream copy: the same H.264 and AAC packets)."""
    path = tmp_path_factory.mktemp("clip") / "manifesto.mp4"
    src = data_dir / "video" / "manifesto.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-t", str(CLIP_S), "-c", "copy", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def cli_run(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The done-when command on the clip; returns the output folder."""
    root = tmp_path_factory.mktemp("cli")
    out = root / "OUT"
    argv = [str(clip), "-f", "srt,ass,json", "--embed", "--burn", "-o", str(out)]
    argv += ["--model", "tiny.en", "--language", "en", "--workers", "0", "--jobs-dir", str(root / "jobs")]
    assert main(argv) == 0
    return out


def test_cli_writes_ass_embedded_and_burned_video(cli_run: Path, clip: Path) -> None:
    names = sorted(p.name for p in cli_run.iterdir())
    assert names == sorted(
        ["manifesto.srt", "manifesto.ass", "manifesto.json", "manifesto.subtitled.mp4", "manifesto.burned.mp4"]
    )
    cues = list(srt.parse((cli_run / "manifesto.srt").read_text(encoding="utf-8")))
    assert len(cues) >= 2

    # The embedded file: the input's video packets, every one, copied; a subtitle stream tagged eng.
    source, embedded = _ffprobe(clip), _ffprobe(cli_run / "manifesto.subtitled.mp4")
    for kind in ("video", "audio"):
        a = next(s for s in source if s["codec_type"] == kind)
        b = next(s for s in embedded if s["codec_type"] == kind)
        assert (b["codec_name"], b["nb_read_packets"]) == (a["codec_name"], a["nb_read_packets"])
    subs = [s for s in embedded if s["codec_type"] == "subtitle"]
    assert len(subs) == 1 and subs[0]["codec_name"] == "mov_text"
    assert subs[0]["tags"]["language"] == "eng"
    assert int(subs[0]["nb_read_packets"]) >= len(cues)

    # The ASS: one event per cue, the readable default style.
    ass = pysubs2.load(str(cli_run / "manifesto.ass"))
    assert len(ass.events) == len(cues)
    assert [e.plaintext.replace("\n", " ") for e in ass.events] == [c.content.replace("\n", " ") for c in cues]
    style = ass.styles["Default"]
    assert style.fontname == "Noto Sans" and style.outline >= 2 and style.alignment == pysubs2.Alignment.BOTTOM_CENTER
    assert ass.info["PlayResX"] == "1920" and ass.info["PlayResY"] == "1080"  # the clip is 16:9

    # The burned video: H.264, same size; at a cue's middle the bottom differs, the top does not.
    burned = _ffprobe(cli_run / "manifesto.burned.mp4")
    video = next(s for s in burned if s["codec_type"] == "video")
    assert video["codec_name"] == "h264" and (video["width"], video["height"]) == (320, 180)
    assert next(s for s in burned if s["codec_type"] == "audio")["codec_name"] == "aac"
    cue = cues[1]
    middle = (cue.start + (cue.end - cue.start) / 2).total_seconds()
    a, b = _frame(clip, middle), _frame(cli_run / "manifesto.burned.mp4", middle)
    diff = np.abs(a - b).mean(axis=(1, 2))
    top, bottom = float(diff[: 180 // 2].mean()), float(diff[int(180 * 0.75) :].mean())
    assert top < 2.0, f"re-encode noise above the subtitles is too large: {top:.2f}"
    assert bottom > 3 * top and bottom > 3.0, f"no subtitles in the bottom quarter: {bottom:.2f} vs top {top:.2f}"
    # Between cues there is nothing to draw: the bottom is as close as the top.
    gap = (cues[0].end + (cues[1].start - cues[0].end) / 2).total_seconds()
    if cues[1].start - cues[0].end > timedelta(seconds=0.2):
        a, b = _frame(clip, gap), _frame(cli_run / "manifesto.burned.mp4", gap)
        assert float(np.abs(a - b)[int(180 * 0.75) :].mean()) < 2.0


def test_karaoke_tags_follow_the_word_times(cli_run: Path) -> None:
    transcript = transcript_from_dict(json.loads((cli_run / "manifesto.json").read_text(encoding="utf-8")))
    text = ass.ass_text(transcript, ExportSettings(karaoke=True), (320, 180))
    events = pysubs2.SSAFile.from_string(text).events
    assert len(events) == len(transcript.cues)
    for event, cue in zip(events, transcript.cues, strict=True):
        ks = [int(k) for k in re.findall(r"\\k(\d+)", event.text)]
        assert len(ks) >= len(cue.text.split())
        # The highlight ends with the cue's last word, within the cue.
        assert sum(ks) * 10 <= event.end - event.start + 10
        assert event.plaintext.replace("\n", " ") == " ".join(cue.lines)
    # An edited cue (text no longer the recognised words) still gets one \k per word, spread over its time.
    first = transcript.cues[0]
    edited = with_cues(transcript, [Cue(1, first.start, first.end, ("Corrected words here",))])
    event = pysubs2.SSAFile.from_string(ass.ass_text(edited, ExportSettings(karaoke=True))).events[0]
    assert len(re.findall(r"\\k\d+", event.text)) == 3 and event.plaintext == "Corrected words here"
    # CJK lines get the CJK font by default.
    zh = with_cues(transcript, transcript.cues)
    zh.language = "zh"
    assert pysubs2.SSAFile.from_string(ass.ass_text(zh)).styles["Default"].fontname == "Noto Sans CJK SC"


def test_embed_keeps_an_existing_track_and_mp4_falls_back_to_mkv(cli_run: Path, tmp_path: Path) -> None:
    transcript = transcript_from_dict(json.loads((cli_run / "manifesto.json").read_text(encoding="utf-8")))
    german = with_cues(transcript, transcript.cues)
    german.language = "de"
    # The embedded MP4 as input: its English track stays, a German one is added (MKV keeps SRT as subrip).
    done = mux.embed(cli_run / "manifesto.subtitled.mp4", [german], tmp_path / "two.mkv")
    subs = [s for s in _ffprobe(done.path) if s["codec_type"] == "subtitle"]
    assert [s["tags"]["language"] for s in subs] == ["eng", "deu"]
    assert subs[1]["codec_name"] == "subrip" and subs[1]["tags"]["title"] == "German (video2srt)"

    # A video codec MP4 cannot hold (FFV1) with PCM audio: the MP4 asked for becomes an MKV, and says so.
    odd = tmp_path / "odd.mkv"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=10:duration=2", "-f", "lavfi"]
        + ["-i", "sine=duration=2", "-c:v", "ffv1", "-c:a", "pcm_s16le", "-shortest", str(odd)],
        check=True,
    )
    done = mux.embed(odd, [transcript], tmp_path / "odd.subtitled.mp4")
    assert done.path == tmp_path / "odd.subtitled.mkv" and "instead of odd.subtitled.mp4" in done.note
    assert not (tmp_path / "odd.subtitled.mp4").exists()
    assert [s["codec_name"] for s in _ffprobe(done.path)] == ["ffv1", "pcm_s16le", "subrip"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_audio_only_embeds_into_mka_and_cannot_burn(cli_run: Path, data_dir: Path, tmp_path: Path) -> None:
    transcript = transcript_from_dict(json.loads((cli_run / "manifesto.json").read_text(encoding="utf-8")))
    jfk = data_dir / "jfk" / "jfk.wav"
    done = mux.export_video("embed", jfk, transcript, tmp_path)
    assert done.path == tmp_path / "jfk.subtitled.mka"
    assert [s["codec_type"] for s in _ffprobe(done.path)] == ["audio", "subtitle"]
    with pytest.raises(InputError, match="has no video to burn"):
        mux.export_video("burn", jfk, transcript, tmp_path)


def test_cancel_and_full_disk_leave_nothing_behind(cli_run: Path, clip: Path, tmp_path: Path) -> None:
    transcript = transcript_from_dict(json.loads((cli_run / "manifesto.json").read_text(encoding="utf-8")))
    cancel = threading.Event()
    seen: list[float] = []

    def on_progress(share: float) -> None:
        seen.append(share)
        cancel.set()

    with pytest.raises(CancelledError):
        mux.burn(clip, transcript, tmp_path / "x.burned.mp4", on_progress=on_progress, cancel=cancel)
    assert list(tmp_path.iterdir()) == []

    small = tmp_path / "small"
    small.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("a full disk needs a small tmpfs: mount needs root")
    try:
        keep = small / "manifesto.srt"
        keep.write_text("1\n00:00:00,000 --> 00:00:01,000\nkept\n", encoding="utf-8")
        with pytest.raises(ExportError, match="the disk filled while writing manifesto.burned.mp4") as info:
            mux.export_video("burn", clip, transcript, small)
        assert "\n" not in str(info.value)
        assert sorted(p.name for p in small.iterdir()) == ["manifesto.srt"] and "kept" in keep.read_text()
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_an_ffmpeg_without_libass_is_named(cli_run: Path, clip: Path, tmp_path: Path, monkeypatch: Any) -> None:  # noqa: ANN401
    transcript = transcript_from_dict(json.loads((cli_run / "manifesto.json").read_text(encoding="utf-8")))
    fake = tmp_path / "bin" / "ffmpeg"
    fake.parent.mkdir()
    # An ffmpeg whose filter list lacks libass's filters (as a build without --enable-libass prints it).
    fake.write_text('#!/bin/sh\necho "Filters:"\necho " ... scale             V->V       Scale the input video."\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    assert not mux.has_libass()
    with pytest.raises(ExportError, match="lacks libass"):
        mux.burn(clip, transcript, tmp_path / "x.mp4")
    assert mux.has_libass("/usr/bin/ffmpeg") or not Path("/usr/bin/ffmpeg").exists()


def test_edit_rules_on_the_real_cues(cli_run: Path) -> None:
    transcript = transcript_from_dict(json.loads((cli_run / "manifesto.json").read_text(encoding="utf-8")))
    rules = SubtitleSettings()
    reviewed = review_cues(transcript, rules)
    assert [r["text"] for r in reviewed] == [c.text for c in transcript.cues]
    assert sum(len(r["words"]) for r in reviewed) == len(transcript.words)
    rows = [{"start": r["start"], "end": r["end"], "text": r["text"]} for r in reviewed]
    assert [c.lines for c in validate_cues(rows, rules)] == [c.lines for c in transcript.cues]

    def error(rows: list[dict[str, Any]]) -> tuple[int, str]:
        with pytest.raises(CueEditError) as info:
            validate_cues(rows, rules)
        return info.value.index, info.value.reason

    bad = [dict(r) for r in rows]
    bad[1]["start"] = bad[0]["end"] - 0.5
    assert error(bad)[0] == 2 and "overlap" in error(bad)[1]
    bad = [dict(r) for r in rows]
    bad[0]["end"] = bad[0]["start"]
    assert error(bad) == (1, f"ends at {bad[0]['end']:.3f} s, not after its start {bad[0]['start']:.3f} s")
    bad = [dict(r) for r in rows]
    bad[1]["text"] = "  \n "
    assert error(bad)[0] == 2 and "no text" in error(bad)[1]
    bad = [dict(r) for r in rows]
    bad[0]["text"] = "word " * 30
    assert error(bad)[0] == 1 and "over the limit of 2" in error(bad)[1]
    bad = [dict(r) for r in rows]
    bad[0]["text"] = "x" * 50
    assert "over the limit of 42" in error(bad)[1]
    with pytest.raises(UsageError):
        validate_cues([], rules)
    # A long line typed as one is wrapped into the cue's lines.
    long = [dict(r) for r in rows]
    long[0]["text"] = "This audiobook is in the public domain and you may share it freely."
    assert len(validate_cues(long, rules)[0].lines) == 2
    # Split and merge give valid lists back.
    split = split_row(rows, 1)
    assert len(split) == len(rows) + 1 and validate_cues(split, rules)
    merged = merge_rows(split, 1)
    assert len(merged) == len(rows) and merged[1]["text"] == " ".join(rows[1]["text"].split())
