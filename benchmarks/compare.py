"""Side-by-side speed, memory and accuracy of video2srt against its peers, in one run.

Three tools transcribe the same inputs with the same model (the bundled tiny.en CTranslate2 folder),
device cpu, compute type int8, language en, each as its own subprocess:

- ``ours``: the ``video2srt`` CLI, in-process (``--workers 0``), batch size and lanes from its optimizer;
- ``fw``: faster-whisper's ``BatchedInferencePipeline`` (``benchmarks/fw_batched.py``), batch size 8;
- ``whisperx``: the ``whisperx`` CLI with ``--no_align`` (pyannote VAD, whose weights ship in the package),
  when it is installed.

Runs are interleaved (every tool on an input, then the next input, and again for each repetition, the
tools' order rotating), so a load that comes and goes hits every tool alike. For each run: wall time from
process start to exit, peak RSS of the whole process tree (sampled every 50 ms), CPU seconds of the tree,
the load other processes put on the machine meanwhile, WER against the reference, cue count, and each
stage's time (ours: the job's JSON ``timings``; faster-whisper: ``fw_batched.py --timings``).

Inputs are built from tests/data into the output folder (default ``bench-out/``, git-ignored) and reused
(:mod:`inputs`): ``dense``, ``pauses``, ``silences`` (with music-like noise), ``speakers`` (four levels),
each ~10 minutes of H.264 + AAC video; ``manifesto`` (``video/manifesto.mp4``); ``2h``: the ``pauses``
audio looped 12x (memory only: run once per tool).

Usage::

    python benchmarks/compare.py                # everything, 3 repeats; writes docs/benchmarks.md's section
    python benchmarks/compare.py --quick        # smoke run: 2-minute inputs, one repeat, ours and fw
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import inputs as inputs_mod  # noqa: E402 - the scripts run as files, not as a package
from bench_common import (  # noqa: E402
    DEFAULT_DATA_DIR,
    bundled_model_path,
    corpus_wer,
    fmt,
    load_sets,
    read_srt,
)
from inputs import media_duration  # noqa: E402

TOOLS = ("ours", "fw", "whisperx")
INPUTS = (*inputs_mod.KINDS, "manifesto", "2h")
DEFAULT_INPUTS = INPUTS
QUICK_INPUTS = (*inputs_mod.KINDS, "manifesto")
#: Length each input kind is built up to, in seconds (``--quick``: QUICK_S).
TARGET_S = 600.0
QUICK_S = 120.0
#: How many times the ``pauses`` audio is repeated for the 2-hour input.
LOOPS_2H = 12
#: Inputs measured for memory only: one run per tool whatever ``--repeat`` says.
MEMORY_ONLY = ("2h",)
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
SECTION = "## Speed and memory"
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


def prepare_inputs(names: Sequence[str], out: Path, data_dir: Path, seconds: float = TARGET_S) -> list[BenchInput]:
    """Build or find every requested input.

    Args:
        names: Input names, from :data:`INPUTS`.
        out: The benchmark output folder (inputs go to ``out/inputs``).
        data_dir: The test data folder.
        seconds: Length of each built kind (the 2-hour input loops the ``pauses`` kind 12x).

    Returns:
        The inputs, in the order asked.
    """
    folder = out / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    result: list[BenchInput] = []
    for name in names:
        if name in inputs_mod.KINDS:
            built = inputs_mod.build(name, folder, seconds, data_dir)
            result.append(BenchInput(name, built.mp4, media_duration(built.mp4), built.ref, "exact"))
        elif name == "manifesto":
            clip = load_sets(data_dir)["manifesto"][0]
            result.append(BenchInput(name, clip.path, media_duration(clip.path), clip.ref, "approximate"))
        elif name == "2h":
            built = inputs_mod.build("pauses", folder, seconds, data_dir)
            m4a = folder / f"2h-{int(seconds)}s.m4a"
            stamp = m4a.with_suffix(".json")
            if not (m4a.exists() and stamp.exists() and json.loads(stamp.read_text()) == {"from": built.wav.name}):
                from pipeline.media.decode import decode_all

                inputs_mod.write_m4a(m4a, decode_all(built.wav), LOOPS_2H)
                stamp.write_text(json.dumps({"from": built.wav.name}))
            result.append(BenchInput(name, m4a, media_duration(m4a), " ".join([built.ref] * LOOPS_2H), "exact"))
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


def tool_command(
    tool: str, src: Path, run_dir: Path, model: Path, batch_size: int, ours_batch: int | None = None
) -> tuple[list[str], Path]:
    """The command line of one tool on one input, and where its SRT will be.

    Args:
        tool: ``ours``, ``fw`` or ``whisperx``.
        src: The input file.
        run_dir: An empty folder for this run's outputs.
        model: The CTranslate2 model folder.
        batch_size: Windows per batched Whisper call of the peers.
        ours_batch: Ours' batch size; None leaves it to its optimizer (as a user gets it).

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
            "srt,json",
            "--model",
            str(model),
            "--language",
            "en",
            "--device",
            "cpu",
            "--compute-type",
            "int8",
            *(["--batch-size", str(ours_batch)] if ours_batch else []),
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
            "--timings",
            str(run_dir / "timings.json"),
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


def _high_water(pid: int) -> int:
    """A process's own peak RSS in bytes (``VmHWM``), or 0 where the kernel does not say."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def measure(cmd: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> Measured:
    """Run a command and measure it: wall time, peak RSS of its process tree, CPU time, others' load.

    RSS is the sum over the process and all its descendants, sampled every 50 ms; each process's own high-water
    mark (``VmHWM``) is a floor, so that a peak between two samples is not missed. CPU time comes from the
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
                    peak = max(peak, _high_water(p.pid))
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    pass
            peak = max(peak, total)
            time.sleep(POLL_S)
        wall = time.perf_counter() - t0
        busy = _busy_cpu_s() - busy0
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    # Not wait4's ru_maxrss: a child started by vfork inherits, at exec, the high-water mark of the
    # benchmark's own process, so a large parent (one that built the 2-hour input) set every tool's floor.
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
    tool: str,
    item: BenchInput,
    repeat: int,
    out: Path,
    model: Path,
    batch_size: int,
    quiet_wait_s: float = 0.0,
    ours_batch: int | None = None,
    ours_tree: Path | None = None,
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
        ours_tree: A checkout whose ``pipeline`` package ours runs from (``python -m pipeline`` there, with
            this environment's packages); None: the installed CLI.

    Returns:
        The run's result.
    """
    waited = wait_for_quiet(quiet_wait_s) if quiet_wait_s > 0 else 0.0
    run_dir = out / "runs" / tool / item.name / f"r{repeat}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    cmd, srt_path = tool_command(tool, item.path, run_dir, model, batch_size, ours_batch)
    if tool == "ours" and ours_tree is not None:
        inner = shlex.join([sys.executable, "-m", "pipeline", *cmd[1:]])
        cmd = ["bash", "-c", f"cd {shlex.quote(str(ours_tree))} && exec {inner}"]
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
    result.extra["timings"] = read_timings(tool, run_dir, srt_path)
    cues = read_srt(srt_path)
    result.output = str(srt_path)
    result.cues = len(cues)
    result.longest_cue_s = round(max((end - start for start, end, _ in cues), default=0.0), 2)
    result.longest_cue_chars = max((len(text) for _, _, text in cues), default=0)
    if item.ref:
        hyp = " ".join(text for _, _, text in cues)
        result.wer = corpus_wer([item.ref], [hyp])
    return result


def read_timings(tool: str, run_dir: Path, srt_path: Path) -> dict[str, float]:
    """Each stage's seconds and the feed counts of one run, as the tool reported them ({} when it does not).

    Args:
        tool: The tool.
        run_dir: The run's folder.
        srt_path: The run's SRT (ours writes its JSON beside it).

    Returns:
        Stage or count → value.
    """
    path = srt_path.with_suffix(".json") if tool == "ours" else run_dir / "timings.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    timings = data.get("timings", {}) if tool == "ours" else data
    return {k: v for k, v in timings.items() if isinstance(v, (int, float))}


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


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def markdown(
    inputs: list[BenchInput],
    tools: Sequence[str],
    runs: list[RunResult],
    repeat: int,
    align_check: AlignCheck | None,
) -> str:
    """The report: per input and tool the medians and the ratios, each tool's stages, and memory scaling.

    Args:
        inputs: The inputs.
        tools: The tools, in row order.
        runs: Every run.
        repeat: Repetitions per cell (memory-only inputs ran once).
        align_check: Result of :func:`check_whisperx_align`, if run.

    Returns:
        Markdown text.
    """

    def cell(tool: str, name: str) -> list[RunResult]:
        return [r for r in runs if r.tool == tool and r.input == name and r.rc == 0]

    def med(tool: str, name: str, attr: str) -> float | None:
        return _median([getattr(r, attr) for r in cell(tool, name) if getattr(r, attr) is not None])

    def ratio(a: float | None, b: float | None) -> str:
        return fmt(a / b if a is not None and b else None, 2, "×")

    lines = [
        f"Model: bundled tiny.en (CTranslate2), cpu, int8, language en; faster-whisper and WhisperX batch size 8, "
        f"ours as its optimizer chooses; {os.cpu_count()} CPU cores; medians of {repeat} interleaved run(s) "
        f"per cell (memory-only inputs: one). Ratios are this tool's median over faster-whisper's (below 1: "
        f"less than faster-whisper).",
        "",
        "| input | audio s | tool | wall s | wall min–max | CPU s | peak RSS MB | WER | time ÷ fw | CPU ÷ fw "
        "| RSS ÷ fw | time ÷ whisperx | other load |",
        "|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for item in inputs:
        for tool in tools:
            got = cell(tool, item.name)
            failed = [r for r in runs if r.tool == tool and r.input == item.name and r.rc != 0]
            if not got:
                if failed:
                    lines.append(f"| {item.name} | {item.duration:.0f} | {tool} | failed: {failed[0].error} |")
                continue
            wall, cpu, rss = (med(tool, item.name, k) for k in ("wall_s", "cpu_s", "peak_rss_mb"))
            wer = med(tool, item.name, "wer")
            wer_text = fmt(None if wer is None else wer * 100, 1, "%")
            if wer is not None and item.ref_kind == "approximate":
                wer_text += "*"
            walls = [r.wall_s for r in got]
            lines.append(
                f"| {item.name} | {item.duration:.0f} | {tool} | {fmt(wall, 1)} | {min(walls):.1f}–{max(walls):.1f} "
                f"| {fmt(cpu, 1)} | {fmt(rss, 0)} | {wer_text} "
                f"| {ratio(wall, med('fw', item.name, 'wall_s'))} | {ratio(cpu, med('fw', item.name, 'cpu_s'))} "
                f"| {ratio(rss, med('fw', item.name, 'peak_rss_mb'))} "
                f"| {ratio(wall, med('whisperx', item.name, 'wall_s'))} "
                f"| {fmt(med(tool, item.name, 'other_load'), 2)} |"
            )
    lines += _stage_tables(inputs, tools, runs)
    names = {i.name for i in inputs}
    if {"pauses", "2h"} <= names:
        lines += [
            "",
            "Memory over length (the 2-hour input is the `pauses` audio looped 12×):",
            "",
            "| tool | peak RSS pauses MB | peak RSS 2h MB | 2h ÷ pauses |",
            "|---|---:|---:|---:|",
        ]
        for tool in tools:
            a, b = med(tool, "pauses", "peak_rss_mb"), med(tool, "2h", "peak_rss_mb")
            if a is not None and b is not None:
                lines.append(f"| {tool} | {a:.0f} | {b:.0f} | {ratio(b, a)} |")
    notes = []
    if any(i.ref_kind == "approximate" for i in inputs):
        notes.append("\\* reference is the video's automatic captions (approximate).")
    if align_check is not None:
        notes.append(
            f"WhisperX with alignment, offline (jfk.wav): exit {align_check.rc}, "
            f"transcribed first: {'yes' if align_check.transcribed_before_failure else 'no'}, "
            f"files written: {', '.join(align_check.outputs_written) or 'none'}; error: {align_check.error}"
        )
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"


#: (row label, timing key or a function of the timings and the run) of each tool's stage table.
OURS_STAGES: tuple[tuple[str, str], ...] = (
    ("start-up, imports, writing outputs, exit (wall − job total)", "startup"),
    ("waiting for the model (load not hidden by decoding)", "model_wait"),
    ("decoding (PyAV)", "decode"),
    ("VAD and cutting", "vad"),
    ("windows", "windows"),
    ("Whisper calls", "calls"),
    ("audio s fed (windows' own audio)", "audio_fed_s"),
    ("audio s the encoder sees (30 s a window)", "padded_s"),
    ("transcription, first call to last result", "transcribe"),
    ("lane-seconds in calls (encoder, decoder, word timing)", "infer_s"),
    ("guard re-decodes (windows)", "guard_redecodes"),
    ("lane tail: last lane on alone", "lane_tail_s"),
    ("word refinement and cues", "subtitles"),
    ("first result", "first_result"),
)
FW_STAGES: tuple[tuple[str, str], ...] = (
    ("start-up, imports, exit (wall − script total)", "startup"),
    ("imports (faster-whisper, pysubs2)", "imports"),
    ("decoding (decode_audio)", "decode"),
    ("model load", "model_load"),
    ("VAD (inside transcribe)", "vad"),
    ("VAD and features, before the first batch", "vad_and_features"),
    ("windows (chunks)", "windows"),
    ("audio s fed (chunks' own audio)", "audio_fed_s"),
    ("audio s the encoder sees (30 s a window)", "padded_s"),
    ("transcription (batched generator)", "transcribe"),
    ("writing the SRT", "write"),
)


def _stage_tables(inputs: list[BenchInput], tools: Sequence[str], runs: list[RunResult]) -> list[str]:
    lines: list[str] = []
    for tool, stages, total_key in (("ours", OURS_STAGES, "total"), ("fw", FW_STAGES, "total")):
        if tool not in tools:
            continue
        shown = [i for i in inputs if any(r.tool == tool and r.input == i.name and r.rc == 0 for r in runs)]
        if not shown:
            continue
        lines += [
            "",
            f"Stages of {tool} (seconds unless counted; median over runs):",
            "",
            "| stage | " + " | ".join(i.name for i in shown) + " |",
            "|---|" + "---:|" * len(shown),
        ]
        for label, key in stages:
            cells = []
            for item in shown:
                values = []
                for r in runs:
                    if r.tool != tool or r.input != item.name or r.rc != 0:
                        continue
                    t = r.extra.get("timings") or {}
                    if key == "startup":
                        if total_key in t:
                            values.append(r.wall_s - float(t[total_key]))
                    elif key in t:
                        values.append(float(t[key]))
                v = _median(values)
                integer = key in ("windows", "calls", "guard_redecodes", "padded_s")
                cells.append(fmt(v, 0 if integer else (1 if key == "audio_fed_s" else 2)))
            if any(c != "—" for c in cells):
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def write_docs(report: str, command: str, docs: Path = DOCS) -> None:
    """Put ``report`` into ``docs`` under :data:`SECTION`, replacing only that section.

    Args:
        report: The section's body.
        command: The command that measured it.
        docs: The Markdown file (created when absent).
    """
    text = docs.read_text() if docs.exists() else "# Benchmarks\n"
    body = f"{SECTION}\n\nMeasured by `{command}` ({dt.date.today().isoformat()}).\n\n{report}"
    start = text.find(SECTION + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + body
    else:
        nxt = text.find("\n## ", start + len(SECTION))
        text = text[:start] + body + ("" if nxt < 0 else "\n" + text[nxt + 1 :])
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text(text)


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
    p.add_argument("--tools", help=f"comma-separated, from {','.join(TOOLS)} (default: all installed)")
    p.add_argument("--inputs", help=f"comma-separated, from {','.join(INPUTS)} (default: all)")
    p.add_argument("--repeat", type=int, help="runs per (tool, input); the median is reported (default 3)")
    p.add_argument("--seconds", type=float, help=f"length of each built input (default {TARGET_S:.0f})")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_S:.0f} s inputs, no 2h, one repeat, ours and fw, no waiting for quiet, "
        "results not written to docs/",
    )
    p.add_argument("--out", type=Path, default=Path("bench-out"), help="scratch and results folder")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR, help="the test data folder")
    p.add_argument("--batch-size", type=int, default=8, help="faster-whisper's and WhisperX's batch size")
    p.add_argument("--ours-batch-size", type=int, help="ours' batch size (default: its optimizer's choice)")
    p.add_argument("--model", type=Path, help="CTranslate2 model folder (default: the bundled tiny.en)")
    p.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up run of each tool")
    p.add_argument(
        "--quiet-wait",
        type=float,
        help="before each timed run, wait up to this many seconds for other processes to leave the CPUs idle "
        "(default 60; --quick: 0)",
    )
    p.add_argument("--prepare-only", action="store_true", help="build the inputs and stop")
    p.add_argument(
        "--docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"write the report into {DOCS.relative_to(DOCS.parents[1])} under '{SECTION}' (default: on, "
        "off with --quick)",
    )
    p.add_argument(
        "--check-whisperx-align",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run WhisperX once with alignment (offline) and record what happens (default: on, off with --quick)",
    )
    return p


def installed_tools() -> list[str]:
    """The tools this environment can run: ours and fw always, whisperx when its CLI is installed.

    Returns:
        Tool names.
    """
    found = ["ours", "fw"]
    if importlib.util.find_spec("whisperx") is not None:
        found.append("whisperx")
    return found


def schedule(inputs: list[BenchInput], tools: Sequence[str], repeat: int) -> list[tuple[int, BenchInput, str]]:
    """The run order: repetition by repetition, input by input, every tool in turn with the order rotating.

    Args:
        inputs: The inputs.
        tools: The tools.
        repeat: Repetitions (memory-only inputs get one).

    Returns:
        (repetition, input, tool) in run order.
    """
    order = []
    for rep in range(1, repeat + 1):
        for k, item in enumerate(inputs):
            if item.name in MEMORY_ONLY and rep > 1:
                continue
            shift = (rep - 1 + k) % len(tools)
            for tool in [*tools[shift:], *tools[:shift]]:
                order.append((rep, item, tool))
    return order


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; write ``results.md``/``results.json`` to the output folder and the docs section.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        0 when every run succeeded, else 1.
    """
    ns = build_parser().parse_args(argv)
    quick = ns.quick
    tools = [t.strip() for t in ns.tools.split(",") if t.strip()] if ns.tools else installed_tools()
    if quick and not ns.tools:
        tools = ["ours", "fw"]
    for t in tools:
        if t not in TOOLS:
            raise SystemExit(f"unknown tool {t!r}: use {', '.join(TOOLS)}")
    names = (
        [n.strip() for n in ns.inputs.split(",") if n.strip()]
        if ns.inputs
        else list(QUICK_INPUTS if quick else DEFAULT_INPUTS)
    )
    repeat = ns.repeat or (1 if quick else 3)
    if repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    seconds = ns.seconds or (QUICK_S if quick else TARGET_S)
    quiet_wait = ns.quiet_wait if ns.quiet_wait is not None else (0.0 if quick else 60.0)
    write_to_docs = ns.docs if ns.docs is not None else not quick
    align = ns.check_whisperx_align if ns.check_whisperx_align is not None else not quick
    out: Path = ns.out.resolve()
    model = (ns.model or bundled_model_path()).resolve()
    started = dt.datetime.now().isoformat(timespec="seconds")
    print("preparing inputs …", file=sys.stderr)
    inputs = prepare_inputs(names, out, ns.data, seconds)
    if ns.prepare_only:
        for item in inputs:
            print(f"{item.name}: {item.path} ({item.duration:.1f} s, reference: {item.ref_kind})")
        return 0
    short_clip = load_sets(ns.data)["jfk"][0].path
    if not ns.no_warmup:
        print("warming up …", file=sys.stderr)
        warm_up(tools, out, model, short_clip, ns.batch_size)
    runs: list[RunResult] = []
    for rep, item, tool in schedule(inputs, tools, repeat):
        print(f"{tool} on {item.name} ({item.duration:.0f} s), run {rep} …", file=sys.stderr, flush=True)
        r = run_tool(tool, item, rep, out, model, ns.batch_size, quiet_wait, ns.ours_batch_size)
        runs.append(r)
        print(
            f"  {r.wall_s:.1f} s, CPU {r.cpu_s:.1f} s, peak {r.peak_rss_mb:.0f} MB, other load {r.other_load:.2f}"
            + (f", WER {r.wer * 100:.1f}%" if r.wer is not None else "")
            + (f" — {r.error}" if r.error else ""),
            file=sys.stderr,
            flush=True,
        )
    align_check = None
    if align and "whisperx" in tools:
        print("whisperx with alignment, offline (jfk) …", file=sys.stderr)
        align_check = check_whisperx_align(out, model, short_clip, ns.batch_size)
    report = markdown(inputs, tools, runs, repeat, align_check)
    print(report)
    (out / "results.md").write_text(report)
    raw = {
        "started": started,
        "finished": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "versions": versions(),
        "model": str(model),
        "batch_size": ns.batch_size,
        "ours_batch_size": ns.ours_batch_size,
        "inputs": [{**asdict(i), "path": str(i.path), "ref": i.ref[:200]} for i in inputs],
        "runs": [asdict(r) for r in runs],
        "whisperx_align_check": asdict(align_check) if align_check else None,
    }
    (out / "results.json").write_text(json.dumps(raw, indent=1, default=str))
    print(f"wrote {out / 'results.md'} and {out / 'results.json'}", file=sys.stderr)
    if write_to_docs:
        write_docs(report, shlex.join(["python", "benchmarks/compare.py", *(sys.argv[1:] if argv is None else argv)]))
        print(f"wrote the '{SECTION}' section of {DOCS}", file=sys.stderr)
    return 0 if all(r.rc == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
