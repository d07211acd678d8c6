"""Measuring one job: run it in a fresh process and sample the memory of its process tree (and GPUs)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pipeline.core.errors import PipelineError
from pipeline.core.settings import (
    Settings,
)
from pipeline.lab.evaluation import Clip, corpus_wer, transcript_text
from pipeline.lab.memory import MemorySampler
from pipeline.lab.watch import open_runner


def measure_job(clip: Clip, settings: Settings, *, timeout_s: float = 600.0) -> dict[str, Any]:
    """Run one job in a fresh Python process and measure it; see :func:`throughput_sweep`.

    The process is a plain ``python -c`` (not multiprocessing), so this works the same from a notebook,
    a script without a ``__main__`` guard, or a test.

    Returns:
        ``rtf``, ``wall_s``, ``first_cue_s``, ``model_load_s``, ``peak_rss_mb``, ``peak_gpu_mb``,
        ``audio_s``, ``wer`` and ``error`` (None when the job finished).
    """
    with tempfile.TemporaryDirectory(prefix="video2srt-measure-") as tmp:
        out, err = Path(tmp) / "result.json", Path(tmp) / "stderr.txt"
        request = json.dumps({"input": str(clip.path), "settings": settings.to_dict(), "out": str(out)})
        code = "import sys; from pipeline.lab.measure import job_main; sys.exit(job_main(sys.argv[1]))"
        with open(err, "wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-c", code, request],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            with MemorySampler(proc.pid) as mem:
                try:
                    proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if out.exists():
            message = json.loads(out.read_text())
        else:
            tail = err.read_text(errors="replace").strip().splitlines()[-1:] or [""]
            killed = proc.returncode is not None and proc.returncode < 0
            why = f"stopped after {timeout_s:.0f} s" if killed else f"exit code {proc.returncode}"
            message = {"error": f"the job process ended without a result ({why}) {tail[0]}".strip()}
    result: dict[str, Any] = {
        "rtf": None,
        "wall_s": None,
        "first_cue_s": None,
        "model_load_s": None,
        "audio_s": None,
        "wer": None,
        "peak_rss_mb": round(mem.peak_rss_mb, 1),
        "peak_gpu_mb": round(mem.peak_gpu_mb, 1),
        "error": None,
    }
    result.update(message)
    text = result.pop("text", None)
    if result["error"] is None and clip.ref and text is not None:
        result["wer"] = corpus_wer([clip.ref], [text])
    return result


def job_main(request: str) -> int:
    """The body of :func:`measure_job`'s process: load the model, then time one job; the figures go to a file.

    Args:
        request: JSON with ``input`` (the media file), ``settings`` (:meth:`Settings.to_dict`) and ``out``.

    Returns:
        The exit code: 0 when a result (figures or an error line) was written.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    req = json.loads(request)
    settings = Settings.from_dict(req["settings"])
    message: dict[str, Any]
    try:
        runner, load_s = open_runner(settings)
        try:
            started = time.perf_counter()
            result = runner.run(Path(req["input"]), settings)
            wall = time.perf_counter() - started
        finally:
            runner.close()
        duration = result.transcript.duration or 0.0
        message = {
            "rtf": wall / duration if duration else None,
            "wall_s": wall,
            "first_cue_s": result.transcript.timings.get("first_result"),
            "model_load_s": load_s,
            "audio_s": duration,
            "text": transcript_text(result.transcript),
        }
    except PipelineError as exc:
        message = {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - reported as the row's error; the sweep goes on
        message = {"error": f"{type(exc).__name__}: {exc}"}
    Path(req["out"]).write_text(json.dumps(message))
    return 0
