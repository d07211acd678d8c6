"""Side-by-side speed, memory and accuracy of video2srt against its peers, in one run.

Three tools transcribe the same inputs with the same model (the bundled tiny.en CTranslate2 folder),
device cpu, compute type int8 and batch size 8, each as its own subprocess:

- ``ours``: the ``video2srt`` CLI, in-process (``--workers 0``);
- ``fw``: faster-whisper's ``BatchedInferencePipeline`` (``benchmarks/fw_batched.py``);
- ``whisperx``: the ``whisperx`` CLI with ``--no_align`` (pyannote VAD, whose weights ship in the package).

For each run: wall time from process start to exit (the subtitle file is written by then), real-time
factor, peak RSS of the whole process tree (sampled every 50 ms), CPU seconds of the tree, the load
other processes put on the machine meanwhile, WER against the reference, cue count and longest cue.

Inputs are built once into the output folder (default ``bench-out/``, git-ignored) and reused:

- ``10min``: the test clips, looped to ~600 s, with 0.5–1.5 s pauses and three 8–15 s silences,
  muxed with a generated 320x240 10 fps H.264 video track (AAC audio) into an MP4;
- ``manifesto``: ``video/manifesto.mp4`` (reference: its automatic captions, approximate);
- ``2h``: the 10-minute audio looped 12× as AAC in M4A, for memory.

Usage::

    python benchmarks/compare.py [--tools ours,fw,whisperx] [--inputs 10min,manifesto,2h] [--repeat N]
                                 [--out bench-out]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
import wave
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (  # noqa: E402 - the scripts run as files, not as a package
    DEFAULT_DATA_DIR,
    bundled_model_path,
    corpus_wer,
    ffmpeg_tool,
    fmt,
    load_sets,
    media_duration,
    read_srt,
)

TOOLS = ("ours", "fw", "whisperx")
INPUTS = ("10min", "manifesto", "2h")
SAMPLE_RATE = 16000
#: Length the 10-minute input is built up to, in seconds.
TARGET_S = 600.0
#: Where the long silences go (seconds into the file) and how long each is.
LONG_SILENCES = ((150.0, 8.0), (300.0, 12.0), (450.0, 15.0))
#: How many times the 10-minute audio is repeated for the 2-hour input.
LOOPS_2H = 12
#: Bump when the way inputs are built changes, so old builds are not reused.
BUILD_VERSION = 1
POLL_S = 0.05
#: Busy cores (by other processes) under which the machine counts as quiet before a timed run.
QUIET_CORES = 0.3
BENCH_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class BenchInput:
    """One input of the comparison.

    Attributes:
        name: ``10min``, ``manifesto`` or ``2h``.
        path: The media file.
        duration: Its length in seconds.
        ref: The reference transcript ("" when there is none).
        ref_kind: ``exact``, ``approximate`` (automatic captions) or ``none``.
    """

    name: str
    path: Path
    duration: float
    ref: str
    ref_kind: str


@dataclass
class RunResult:
    """What one tool did on one input in one repetition."""

    tool: str
    input: str
    repeat: int
    cmd: list[str]
    rc: int
    wall_s: float
    rtf: float
    peak_rss_mb: float
    cpu_s: float
    other_load: float
    output: str | None = None
    cues: int | None = None
    longest_cue_s: float | None = None
    longest_cue_chars: int | None = None
    wer: float | None = None
    error: str | None = None
    log: str = ""
    extra: dict[str, object] = field(default_factory=dict)


@dataclass
class AlignCheck:
    """What WhisperX did when run once with alignment, offline."""

    cmd: list[str]
    rc: int
    wall_s: float
    transcribed_before_failure: bool
    tried_download: bool
    outputs_written: list[str]
    srt_written: bool
    error: str
    log: str


@dataclass
class Measured:
    """Resources of one finished subprocess tree."""

    rc: int
    wall_s: float
    peak_rss_mb: float
    cpu_s: float
    other_load: float


# ----------------------------------------------------------------------------------------------- inputs


def decode_pcm(path: Path) -> np.ndarray:
    """Decode any media file to 16 kHz mono int16 samples with ffmpeg.

    Args:
        path: The audio or video file.

    Returns:
        The samples.
    """
    raw = subprocess.run(
        [
            ffmpeg_tool(),
            "-nostdin",
            "-v",
            "error",
            "-i",
            str(path),
            "-f",
            "s16le",
            "-ac",
            "1",
            "-ar",
            str(SAMPLE_RATE),
            "-",
        ],
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(raw, dtype=np.int16)


def write_wav(path: Path, samples: np.ndarray) -> None:
    """Write 16 kHz mono int16 samples as a WAV file.

    Args:
        path: Where to write.
        samples: int16 samples.
    """
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.astype(np.int16).tobytes())


def build_10min(out: Path, data_dir: Path) -> tuple[Path, Path, str]:
    """Build (or reuse) the 10-minute video and its reference.

    The clips of jfk, fleurs_en, ljspeech, harvard and mfa follow each other, looped until ~600 s, with a
    0.5–1.5 s pause between clips (fixed seed) and three long silences; a generated test-pattern video
    track is muxed in.

    Args:
        out: The inputs folder.
        data_dir: The test data folder.

    Returns:
        (the MP4, its 16 kHz WAV audio, the reference text).
    """
    mp4, wav, ref_path, meta_path = out / "10min.mp4", out / "10min.wav", out / "10min.ref.txt", out / "10min.json"
    if all(p.exists() for p in (mp4, wav, ref_path, meta_path)):
        meta = json.loads(meta_path.read_text())
        if meta.get("version") == BUILD_VERSION:
            return mp4, wav, ref_path.read_text()
    sets = load_sets(data_dir)
    clips = [c for name in ("jfk", "fleurs_en", "ljspeech", "harvard", "mfa") for c in sets[name]]
    rng = random.Random(0)
    pieces: list[np.ndarray] = [np.zeros(SAMPLE_RATE, np.int16)]  # 1 s lead-in
    t = 1.0
    refs: list[str] = []
    layout: list[dict[str, object]] = []
    silences = list(LONG_SILENCES)
    i = 0
    while t < TARGET_S:
        clip = clips[i % len(clips)]
        i += 1
        samples = decode_pcm(clip.path)
        pieces.append(samples)
        layout.append({"clip": str(clip.path.relative_to(data_dir)), "start": round(t, 3)})
        t += samples.size / SAMPLE_RATE
        refs.append(clip.ref)
        if silences and t >= silences[0][0]:
            pause = silences.pop(0)[1]
        else:
            pause = round(rng.uniform(0.5, 1.5), 2)
        pieces.append(np.zeros(int(pause * SAMPLE_RATE), np.int16))
        t += pause
    out.mkdir(parents=True, exist_ok=True)
    write_wav(wav, np.concatenate(pieces))
    tmp = mp4.with_suffix(".tmp.mp4")
    subprocess.run(
        [
            ffmpeg_tool(),
            "-nostdin",
            "-y",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=10",
            "-i",
            str(wav),
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-shortest",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "96k",
            str(tmp),
        ],
        check=True,
    )
    tmp.replace(mp4)
    ref = " ".join(refs)
    ref_path.write_text(ref)
    meta_path.write_text(json.dumps({"version": BUILD_VERSION, "seconds": round(t, 3), "clips": layout}, indent=1))
    return mp4, wav, ref


def build_2h(out: Path, wav_10min: Path) -> Path:
    """Build (or reuse) the 2-hour audio: the 10-minute audio looped 12× as AAC in M4A.

    Args:
        out: The inputs folder.
        wav_10min: The 10-minute WAV.

    Returns:
        The M4A file.
    """
    m4a = out / "2h.m4a"
    stamp = out / "2h.json"
    if m4a.exists() and stamp.exists() and json.loads(stamp.read_text()).get("version") == BUILD_VERSION:
        return m4a
    tmp = out / "2h.tmp.m4a"
    subprocess.run(
        [
            ffmpeg_tool(),
            "-nostdin",
            "-y",
            "-v",
            "error",
            "-stream_loop",
            str(LOOPS_2H - 1),
            "-i",
            str(wav_10min),
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-ac",
            "1",
            str(tmp),
        ],
        check=True,
    )
    tmp.replace(m4a)
    stamp.write_text(json.dumps({"version": BUILD_VERSION, "loops": LOOPS_2H}))
    return m4a


def prepare_inputs(names: Sequence[str], out: Path, data_dir: Path) -> list[BenchInput]:
    """Build or find every requested input.

    Args:
        names: Input names, from :data:`INPUTS`.
        out: The benchmark output folder (inputs go to ``out/inputs``).
        data_dir: The test data folder.

    Returns:
        The inputs, in the order asked.
    """
    folder = out / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    result: list[BenchInput] = []
    for name in names:
        if name == "10min":
            mp4, _wav, ref = build_10min(folder, data_dir)
            result.append(BenchInput(name, mp4, media_duration(mp4), ref, "exact"))
        elif name == "manifesto":
            clip = load_sets(data_dir)["manifesto"][0]
            result.append(BenchInput(name, clip.path, media_duration(clip.path), clip.ref, "approximate"))
        elif name == "2h":
            _mp4, wav, ref = build_10min(folder, data_dir)
            m4a = build_2h(folder, wav)
            result.append(BenchInput(name, m4a, media_duration(m4a), " ".join([ref] * LOOPS_2H), "exact"))
        else:
            raise SystemExit(f"unknown input {name!r}: use {', '.join(INPUTS)}")
    return result


# ------------------------------------------------------------------------------------------------ tools


def venv_program(name: str) -> str:
    """A console script of the running Python's environment (or from PATH).

    Args:
        name: The program name.

    Returns:
        Its path.
    """
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found in {beside.parent} or on PATH")
    return found


def tool_command(tool: str, src: Path, run_dir: Path, model: Path, batch_size: int) -> tuple[list[str], Path]:
    """The command line of one tool on one input, and where its SRT will be.

    Args:
        tool: ``ours``, ``fw`` or ``whisperx``.
        src: The input file.
        run_dir: An empty folder for this run's outputs.
        model: The CTranslate2 model folder.
        batch_size: Windows per batched Whisper call.

    Returns:
        (argv, expected SRT path).
    """
    srt = run_dir / f"{src.stem}.srt"
    if tool == "ours":
        cmd = [
            venv_program("video2srt"),
            str(src),
            "-o",
            str(run_dir),
            "-f",
            "srt",
            "--model",
            str(model),
            "--language",
            "en",
            "--device",
            "cpu",
            "--compute-type",
            "int8",
            "--batch-size",
            str(batch_size),
            "--workers",
            "0",
            "--jobs-dir",
            str(run_dir / "jobs"),
        ]
    elif tool == "fw":
        cmd = [
            sys.executable,
            str(BENCH_DIR / "fw_batched.py"),
            str(src),
            str(srt),
            "--model",
            str(model),
            "--batch-size",
            str(batch_size),
            "--device",
            "cpu",
            "--compute-type",
            "int8",
            "--language",
            "en",
        ]
    elif tool == "whisperx":
        cmd = [
            venv_program("whisperx"),
            str(src),
            "--model",
            str(model),
            "--device",
            "cpu",
            "--compute_type",
            "int8",
            "--batch_size",
            str(batch_size),
            "--no_align",
            "--vad_method",
            "pyannote",
            "--output_format",
            "srt",
            "--output_dir",
            str(run_dir),
            "--language",
            "en",
        ]
    else:
        raise SystemExit(f"unknown tool {tool!r}: use {', '.join(TOOLS)}")
    return cmd, srt


def tool_env() -> dict[str, str]:
    """Environment of every tool: offline, so nothing can download behind our back.

    Returns:
        A copy of this environment with the Hugging Face hub offline.
    """
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _busy_cpu_s() -> float:
    import psutil

    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def measure(cmd: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> Measured:
    """Run a command and measure it: wall time, peak RSS of its process tree, CPU time, others' load.

    RSS is the sum over the process and all its descendants, sampled every 50 ms. CPU time comes from the
    kernel's accounting of the child and its reaped descendants. "Other load" is the machine's busy CPU time
    not spent by this tree, over the wall time (in cores): other work that disturbed the timing.

    Args:
        cmd: argv.
        log_path: Where stdout and stderr go.
        env: Environment (default: this one).

    Returns:
        The measurements.
    """
    import psutil

    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        busy0 = _busy_cpu_s()
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        root = psutil.Process(proc.pid)
        peak = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            total = 0
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                tree = []
            for p in tree:
                try:
                    total += p.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    pass
            peak = max(peak, total)
            time.sleep(POLL_S)
        wall = time.perf_counter() - t0
        busy = _busy_cpu_s() - busy0
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    # ru_maxrss (KiB) is the largest single process; keep it as a floor for very short runs.
    peak = max(peak, usage.ru_maxrss * 1024)
    return Measured(proc.returncode, wall, peak / 2**20, cpu, max(0.0, busy - cpu) / wall if wall else 0.0)


def wait_for_quiet(max_wait_s: float, threshold: float = QUIET_CORES, settle_s: int = 3) -> float:
    """Wait until other processes leave the CPUs nearly idle, so timings are fair.

    The machine counts as quiet when its busy CPU stays under ``threshold`` cores for ``settle_s``
    consecutive seconds. Gives up after ``max_wait_s`` (the run then goes ahead, and its "other load"
    column shows the disturbance).

    Args:
        max_wait_s: Longest wait in seconds; 0 does not wait.
        threshold: Busy cores still counted as quiet.
        settle_s: Quiet seconds in a row needed.

    Returns:
        Seconds waited.
    """
    import psutil

    t0 = time.monotonic()
    quiet = 0
    cores = os.cpu_count() or 1
    while quiet < settle_s and time.monotonic() - t0 < max_wait_s:
        busy = psutil.cpu_percent(interval=1.0) / 100 * cores
        quiet = quiet + 1 if busy < threshold else 0
    return time.monotonic() - t0


def log_tail(path: Path, lines: int = 3) -> str:
    """The last non-empty lines of a log file.

    Args:
        path: The log.
        lines: How many.

    Returns:
        Those lines, joined with `` | ``.
    """
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    kept = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(kept[-lines:])


def run_tool(
    tool: str, item: BenchInput, repeat: int, out: Path, model: Path, batch_size: int, quiet_wait_s: float = 0.0
) -> RunResult:
    """Run one tool on one input once and score its SRT.

    Args:
        tool: ``ours``, ``fw`` or ``whisperx``.
        item: The input.
        repeat: Repetition number, from 1.
        out: The benchmark output folder.
        model: The CTranslate2 model folder.
        batch_size: Windows per batched Whisper call.
        quiet_wait_s: Longest wait for other processes to go quiet before starting (see :func:`wait_for_quiet`).

    Returns:
        The run's result.
    """
    waited = wait_for_quiet(quiet_wait_s) if quiet_wait_s > 0 else 0.0
    run_dir = out / "runs" / tool / item.name / f"r{repeat}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    cmd, srt_path = tool_command(tool, item.path, run_dir, model, batch_size)
    log_path = run_dir / "log.txt"
    m = measure(cmd, log_path, tool_env())
    result = RunResult(
        tool,
        item.name,
        repeat,
        cmd,
        m.rc,
        round(m.wall_s, 2),
        round(m.wall_s / item.duration, 4),
        round(m.peak_rss_mb, 1),
        round(m.cpu_s, 1),
        round(m.other_load, 2),
        log=str(log_path),
        extra={"waited_for_quiet_s": round(waited, 1)},
    )
    if m.rc != 0 or not srt_path.exists():
        result.error = f"exit {m.rc}" + ("" if srt_path.exists() else ", no SRT written") + f": {log_tail(log_path)}"
        return result
    cues = read_srt(srt_path)
    result.output = str(srt_path)
    result.cues = len(cues)
    result.longest_cue_s = round(max((end - start for start, end, _ in cues), default=0.0), 2)
    result.longest_cue_chars = max((len(text) for _, _, text in cues), default=0)
    if item.ref:
        hyp = " ".join(text for _, _, text in cues)
        result.wer = corpus_wer([item.ref], [hyp])
    return result


def check_whisperx_align(out: Path, model: Path, clip: Path, batch_size: int) -> AlignCheck:
    """Run WhisperX once *with* alignment, offline, on a short clip, and record what happens.

    Its alignment model (wav2vec2) is downloaded after transcription; offline that download fails.

    Args:
        out: The benchmark output folder.
        model: The CTranslate2 model folder.
        clip: A short input.
        batch_size: Windows per batched Whisper call.

    Returns:
        Exit code, whether the transcript was printed first, which files were written, and the error.
    """
    run_dir = out / "runs" / "whisperx-align-check"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    cmd, srt_path = tool_command("whisperx", clip, run_dir, model, batch_size)
    cmd.remove("--no_align")
    log_path = run_dir / "log.txt"
    m = measure(cmd, log_path, tool_env())
    text = log_path.read_text(errors="replace")
    errors = [ln.strip() for ln in text.splitlines() if "Error" in ln and not ln.startswith(" ")]
    return AlignCheck(
        cmd=cmd,
        rc=m.rc,
        wall_s=round(m.wall_s, 2),
        transcribed_before_failure="Transcript:" in text,
        tried_download="Downloading" in text,
        outputs_written=sorted(p.name for p in run_dir.iterdir() if p.name != "log.txt"),
        srt_written=srt_path.exists(),
        error=errors[-1] if errors else log_tail(log_path, 1),
        log=str(log_path),
    )


def warm_up(tools: Sequence[str], out: Path, model: Path, clip: Path, batch_size: int) -> None:
    """Run each tool once on a short clip, untimed, so every tool starts with warm file caches.

    Args:
        tools: The tools.
        out: The benchmark output folder.
        model: The CTranslate2 model folder.
        clip: A short input.
        batch_size: Windows per batched Whisper call.
    """
    item = BenchInput("warmup", clip, media_duration(clip), "", "none")
    for tool in tools:
        r = run_tool(tool, item, 1, out, model, batch_size)
        print(
            f"  warm-up {tool}: exit {r.rc}, {r.wall_s:.1f} s" + (f" ({r.error})" if r.error else ""), file=sys.stderr
        )


# ----------------------------------------------------------------------------------------------- report


def pick(runs: list[RunResult]) -> RunResult:
    """The median run by wall time (the lower middle one for an even count).

    Args:
        runs: Repetitions of one tool on one input.

    Returns:
        That run.
    """
    ordered = sorted(runs, key=lambda r: (r.rc != 0, r.wall_s))
    return ordered[(len(ordered) - 1) // 2]


def markdown(
    inputs: list[BenchInput],
    tools: Sequence[str],
    chosen: dict[tuple[str, str], RunResult],
    repeat: int,
    align_check: AlignCheck | None,
) -> str:
    """The report: one row per (input, tool), the time ratios, and the memory ratios.

    Args:
        inputs: The inputs.
        tools: The tools, in column order.
        chosen: The reported run per (tool, input).
        repeat: Repetitions per cell.
        align_check: Result of :func:`check_whisperx_align`, if run.

    Returns:
        Markdown text.
    """
    lines = [
        f"Model: bundled tiny.en (CTranslate2), cpu, int8, batch size 8, language en; "
        f"{os.cpu_count()} CPU cores; median of {repeat} run(s) per cell.",
        "",
        "| input | audio s | tool | wall s | RTF | time / ours | peak RSS MB | CPU s | other load | WER | cues "
        "| longest cue s | longest cue chars | exit |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for item in inputs:
        ours = chosen.get(("ours", item.name))
        for tool in tools:
            r = chosen.get((tool, item.name))
            if r is None:
                continue
            ratio = r.wall_s / ours.wall_s if ours and ours.rc == 0 and r.rc == 0 and ours.wall_s else None
            wer = fmt(None if r.wer is None else r.wer * 100, 1, "%")
            if r.wer is not None and item.ref_kind == "approximate":
                wer += "*"
            lines.append(
                f"| {item.name} | {item.duration:.0f} | {tool} | {r.wall_s:.1f} | {r.rtf:.3f} | {fmt(ratio, 2, '×')} "
                f"| {r.peak_rss_mb:.0f} | {r.cpu_s:.0f} | {r.other_load:.2f} | {wer} | {fmt(r.cues, 0)} "
                f"| {fmt(r.longest_cue_s, 1)} | {fmt(r.longest_cue_chars, 0)} | {r.rc} |"
            )
    names = {i.name for i in inputs}
    if {"10min", "2h"} <= names:
        lines += ["", "| tool | peak RSS 10min MB | peak RSS 2h MB | 2h / 10min |", "|---|---:|---:|---:|"]
        for tool in tools:
            a, b = chosen.get((tool, "10min")), chosen.get((tool, "2h"))
            if a is None or b is None:
                continue
            ratio = b.peak_rss_mb / a.peak_rss_mb if a.peak_rss_mb and a.rc == 0 and b.rc == 0 else None
            lines.append(f"| {tool} | {a.peak_rss_mb:.0f} | {b.peak_rss_mb:.0f} | {fmt(ratio, 2, '×')} |")
    notes = []
    if any(i.ref_kind == "approximate" for i in inputs):
        notes.append("\\* reference is the video's automatic captions (approximate).")
    failed = [r for r in chosen.values() if r.error]
    for r in failed:
        notes.append(f"{r.tool} on {r.input}: {r.error}")
    if align_check is not None:
        notes.append(
            f"WhisperX with alignment, offline (jfk.wav): exit {align_check.rc}, "
            f"transcribed first: {'yes' if align_check.transcribed_before_failure else 'no'}, "
            f"files written: {', '.join(align_check.outputs_written) or 'none'}; error: {align_check.error}"
        )
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"


def versions() -> dict[str, str]:
    """Versions of the packages under the tools.

    Returns:
        Package → version.
    """
    found = {}
    for name in ("video2srt", "faster-whisper", "ctranslate2", "whisperx", "torch", "pyannote.audio"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script.

    Returns:
        The argument parser.
    """
    p = argparse.ArgumentParser(description="Compare video2srt with faster-whisper and WhisperX, side by side.")
    p.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated, from {','.join(TOOLS)}")
    p.add_argument("--inputs", default="10min,manifesto", help=f"comma-separated, from {','.join(INPUTS)}")
    p.add_argument("--repeat", type=int, default=1, help="runs per (tool, input); the median is reported")
    p.add_argument("--out", type=Path, default=Path("bench-out"), help="scratch and results folder")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR, help="the test data folder (default: tests/data)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--model", type=Path, help="CTranslate2 model folder (default: the bundled tiny.en)")
    p.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up run of each tool")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=180.0,
        help="before each timed run, wait up to this many seconds for other processes to leave the CPUs idle",
    )
    p.add_argument("--prepare-only", action="store_true", help="build the inputs and stop")
    p.add_argument(
        "--check-whisperx-align",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run WhisperX once with alignment (offline) and record what happens",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and write ``results.md`` and ``results.json`` to the output folder.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        0 when every run succeeded, else 1.
    """
    ns = build_parser().parse_args(argv)
    tools = [t.strip() for t in ns.tools.split(",") if t.strip()]
    for t in tools:
        if t not in TOOLS:
            raise SystemExit(f"unknown tool {t!r}: use {', '.join(TOOLS)}")
    if ns.repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    out: Path = ns.out.resolve()
    model = (ns.model or bundled_model_path()).resolve()
    started = dt.datetime.now().isoformat(timespec="seconds")
    print("preparing inputs …", file=sys.stderr)
    inputs = prepare_inputs([n.strip() for n in ns.inputs.split(",") if n.strip()], out, ns.data)
    if ns.prepare_only:
        for item in inputs:
            print(f"{item.name}: {item.path} ({item.duration:.1f} s, reference: {item.ref_kind})")
        return 0
    short_clip = load_sets(ns.data)["jfk"][0].path
    if not ns.no_warmup:
        print("warming up …", file=sys.stderr)
        warm_up(tools, out, model, short_clip, ns.batch_size)
    runs: list[RunResult] = []
    for item in inputs:
        for rep in range(1, ns.repeat + 1):
            for tool in tools:
                print(f"{tool} on {item.name} ({item.duration:.0f} s), run {rep} …", file=sys.stderr, flush=True)
                r = run_tool(tool, item, rep, out, model, ns.batch_size, ns.quiet_wait)
                runs.append(r)
                print(
                    f"  {r.wall_s:.1f} s (after {r.extra['waited_for_quiet_s']} s waiting for quiet), RTF {r.rtf:.3f}, peak {r.peak_rss_mb:.0f} MB, other load {r.other_load:.2f}"
                    + (f", WER {r.wer * 100:.1f}%" if r.wer is not None else "")
                    + (f" — {r.error}" if r.error else ""),
                    file=sys.stderr,
                    flush=True,
                )
    align_check = None
    if ns.check_whisperx_align and "whisperx" in tools:
        print("whisperx with alignment, offline (jfk) …", file=sys.stderr)
        align_check = check_whisperx_align(out, model, short_clip, ns.batch_size)
    chosen = {
        (tool, item.name): pick([r for r in runs if r.tool == tool and r.input == item.name])
        for item in inputs
        for tool in tools
    }
    report = markdown(inputs, tools, chosen, ns.repeat, align_check)
    print(report)
    (out / "results.md").write_text(report)
    raw = {
        "started": started,
        "finished": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "versions": versions(),
        "model": str(model),
        "batch_size": ns.batch_size,
        "inputs": [{**asdict(i), "path": str(i.path), "ref": i.ref[:200]} for i in inputs],
        "runs": [asdict(r) for r in runs],
        "reported": [asdict(r) for r in chosen.values()],
        "median_wall_s": {
            f"{t}/{i.name}": statistics.median(r.wall_s for r in runs if r.tool == t and r.input == i.name)
            for i in inputs
            for t in tools
        },
        "whisperx_align_check": asdict(align_check) if align_check else None,
    }
    (out / "results.json").write_text(json.dumps(raw, indent=1, default=str))
    print(f"wrote {out / 'results.md'} and {out / 'results.json'}", file=sys.stderr)
    return 0 if all(r.rc == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
