"""The ``video2srt`` command end to end: real media through the real model, files out, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pysubs2
import pytest
import srt
from media import write_video_only

from pipeline.cli import main

SPEC_KEYS = {"language", "duration", "model", "segments", "cues", "timings"}


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def test_manifesto_to_srt_vtt_json(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli(
        str(data_dir / "video" / "manifesto.mp4"),
        "-o",
        str(out),
        "-f",
        "srt,vtt,json",
        "--jobs-dir",
        str(tmp_path / "jobs"),
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr

    subs = list(srt.parse((out / "manifesto.srt").read_text(encoding="utf-8")))
    assert len(subs) >= 10
    text = " ".join(s.content.replace("\n", " ") for s in subs).lower()
    for phrase in ("public domain", "communist party", "spectre", "europe"):
        assert phrase in text.replace("specter", "spectre"), phrase
    assert subs[0].start.total_seconds() > 1.0, "the first cue starts with the speech, not at 0"
    assert subs[-1].end.total_seconds() <= 88.1

    vtt = (out / "manifesto.vtt").read_text(encoding="utf-8")
    assert vtt.startswith("WEBVTT")
    assert len(pysubs2.SSAFile.from_string(vtt)) == len(subs)

    data = json.loads((out / "manifesto.json").read_text(encoding="utf-8"))
    assert SPEC_KEYS <= data.keys()
    assert data["language"] == "en" and data["model"] == "tiny.en"
    assert data["duration"] == pytest.approx(88.07, abs=0.2)
    assert {"decode", "vad", "transcribe", "total"} <= data["timings"].keys()
    words = [w for s in data["segments"] for w in s["words"]]
    assert words and all({"word", "start", "end", "probability"} <= w.keys() for w in words)
    assert all(a["start"] <= b["start"] for a, b in zip(words, words[1:])), "word times increase"
    assert [c["index"] for c in data["cues"]] == list(range(1, len(data["cues"]) + 1))
    # The job folder holds the results; its intermediates are cleaned up after success.
    (job,) = [p for p in (tmp_path / "jobs").iterdir() if p.name != "vad_cache"]
    assert json.loads((job / "checkpoint.json").read_text())["state"] == "done"
    assert not (job / "audio.wav").exists() and (job / "output" / "result.srt").exists()


def test_several_inputs_one_call(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = [
        data_dir / "jfk" / "jfk.flac",
        data_dir / "fleurs_en" / "fleurs-en-001.ogg",
        data_dir / "mfa" / "cold_corpus.wav",
    ]
    code = main([*map(str, inputs), "-o", str(tmp_path), "-f", "srt,json", "--jobs-dir", str(tmp_path / "jobs")])
    assert code == 0
    for p in inputs:
        assert (tmp_path / f"{p.stem}.srt").stat().st_size > 0
        assert json.loads((tmp_path / f"{p.stem}.json").read_text())["cues"]
    jfk_text = " ".join(c.content.replace("\n", " ") for c in srt.parse((tmp_path / "jfk.srt").read_text()))
    assert "ask not what your country can do for you" in jfk_text.lower()
    assert capsys.readouterr().out.count("\n") == 6  # each written file's path


def test_default_output_is_beside_the_input(data_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "clip.wav"
    src.write_bytes((data_dir / "jfk" / "jfk.wav").read_bytes())
    assert main([str(src), "--jobs-dir", str(tmp_path / "jobs")]) == 0
    assert (tmp_path / "clip.srt").exists()


def _bad_inputs(data_dir: Path, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 20)
    truncated = tmp_path / "truncated.mp4"
    data = (data_dir / "video" / "manifesto.mp4").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    empty = tmp_path / "empty.mp4"
    empty.touch()
    return {
        "text file named .mp4": (text, "not a readable video or audio file"),
        "truncated mp4": (truncated, "not a readable video or audio file"),
        "no audio track": (write_video_only(tmp_path / "silent.mp4"), "no audio track"),
        "zero bytes": (empty, "empty"),
        "missing path": (tmp_path / "missing.mkv", "no such file"),
        "directory": (tmp_path, "is a directory"),
    }


@pytest.mark.parametrize(
    "case", ["text file named .mp4", "truncated mp4", "no audio track", "zero bytes", "missing path", "directory"]
)
def test_bad_input_gives_one_clear_error(
    case: str, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, reason = _bad_inputs(data_dir, tmp_path)[case]
    code = main([str(path), "-o", str(tmp_path / "o"), "--jobs-dir", str(tmp_path / "jobs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert str(path) in err[0] and reason in err[0]
    assert "Traceback" not in "\n".join(err)


def test_bad_inputs_beside_good_ones_in_a_subprocess(data_dir: Path, tmp_path: Path) -> None:
    """One bad file does not stop the others; exit 1, one error line per bad file, no traceback."""
    bad = _bad_inputs(data_dir, tmp_path)
    args = [str(bad["zero bytes"][0]), str(data_dir / "jfk" / "jfk.wav"), str(bad["no audio track"][0])]
    proc = run_cli(*args, "-o", str(tmp_path / "o"), "--jobs-dir", str(tmp_path / "jobs"))
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 2 and all(e.startswith("error: ") for e in errors), proc.stderr
    assert (tmp_path / "o" / "jfk.srt").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["-f", "docx"], "unknown output format 'docx'"),
        (["--batch-size", "0"], "bad --batch-size '0': use a whole number from 1 to 256, such as 8"),
        (["--cpu-affinity", "some"], "bad --cpu-affinity"),
        (["--language", "english!"], "unknown --language"),
        ([], "give at least one input file"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = [] if not args else [str(tmp_path / "x.mp4")]
    assert main([*inputs, *args]) == 2
    assert message in capsys.readouterr().err


def test_unknown_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--frobnicate"])
    assert exc.value.code == 2


def test_hardware_json() -> None:
    proc = run_cli("--hardware")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    required = {
        "gpu_count",
        "gpu_memory_mb",
        "cuda_available",
        "cpu_cores",
        "cpu_threads",
        "memory_total_mb",
        "memory_available_mb",
        "temp_space_available_gb",
    }
    assert required <= report["hardware"].keys()
    assert {
        "batch_size",
        "concurrency",
        "use_memory_mapping",
        "cpu_affinity_cores",
        "device",
        "compute_type",
        "model",
    } <= report["optimized"].keys()
