"""Hardening, the long soak: ``benchmarks/soak.py`` for a few minutes (``pytest -m slow``).

The app under a steady stream of good and bad jobs, killed with SIGKILL and restarted every minute: every
accepted job ends done with its solo subtitles (or, for an input that must fail, failed clearly), no answer
is a 5xx, and nothing is lost. The figures (latency, memory) are printed, not asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_soak_loses_nothing(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "soak.py"),
            "--minutes",
            "5",
            "--kill-every",
            "60",
            "--in-flight",
            "6",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "soak.json").read_text())
    assert result["files_lost"] == 0 and not result["server_errors"], result
    assert result["kills"] >= 4 and result["jobs_accepted"] >= 20, result
    assert result["jobs_done_identical"] + result["bad_inputs_failed_clearly"] == result["jobs_accepted"]
