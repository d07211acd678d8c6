"""How fast does the workbench answer ``GET /api/jobs/{id}`` while it transcribes? (target: p95 under 300 ms)

Starts ``python app.py`` as its own process (tiny.en, a fresh jobs folder), waits for the model to be ready,
submits one input through ``POST /api/jobs`` and polls the job's status from ``--pollers`` client threads,
each every ``--interval`` seconds, until it is done. Latency is measured by the client, request to response,
over keep-alive connections; only answers given while the job was transcribing (state ``running``) count.
With ``--ui`` a headless chromium keeps the workbench page open meanwhile, so its timers (model status, job
table, charts) load the server as a user's browser would.

Run: ``python benchmarks/status_latency.py [--input 10min|manifesto|PATH] [--pollers 4] [--interval 0.05] [--ui]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from bench_common import DEFAULT_DATA_DIR, media_duration

REPO = Path(__file__).resolve().parents[1]
TARGET_P95_MS = 300.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def resolve_input(name: str, out: Path) -> Path:
    """``10min`` (built by compare.py's recipe into ``out/inputs``), ``manifesto``, or a path."""
    if name == "manifesto":
        return DEFAULT_DATA_DIR / "video" / "manifesto.mp4"
    if name == "10min":
        from compare import prepare_inputs

        return prepare_inputs(["10min"], out, DEFAULT_DATA_DIR)[0].path
    path = Path(name)
    if not path.is_file():
        raise SystemExit(f"no input {name!r}: use 10min, manifesto or a media file path")
    return path


@contextlib.contextmanager
def app_process(jobs_dir: Path) -> Iterator[str]:
    """``python app.py`` on a free port; yields its URL once the API answers and the model is ready."""
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    log = open(jobs_dir.parent / "app.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "app.py"), "--port", str(port), "--model", "tiny.en", "--jobs-dir", str(jobs_dir)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the app did not start; see {log.name}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/models/status", timeout=5).json().get("state") == "ready":
                    break
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextlib.contextmanager
def browser_on(url: str) -> Iterator[None]:
    """A headless chromium with the workbench open (its timers keep polling the server)."""
    from playwright.sync_api import sync_playwright

    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#v2s-model-status", timeout=60_000)
        try:
            yield
        finally:
            browser.close()


def poll(url: str, job_id: str, interval: float, stop: threading.Event, out: list[tuple[str, float]]) -> None:
    """GET the job's status until ``stop``; record (state, milliseconds) per answer."""
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            t = time.perf_counter()
            r = client.get(f"/api/jobs/{job_id}")
            ms = 1000 * (time.perf_counter() - t)
            r.raise_for_status()
            out.append((r.json()["state"], ms))
            stop.wait(interval)


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", default="10min", help="10min (default), manifesto, or a media file")
    p.add_argument("--pollers", type=int, default=4, help="client threads polling the status (default 4)")
    p.add_argument("--interval", type=float, default=0.05, help="seconds between one poller's requests")
    p.add_argument("--ui", action="store_true", help="keep the workbench open in a headless chromium meanwhile")
    p.add_argument("--out", type=Path, default=REPO / "bench-out")
    ns = p.parse_args(argv)
    media = resolve_input(ns.input, ns.out)
    samples: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp, app_process(Path(tmp) / "jobs") as url:
        ui = browser_on(url) if ns.ui else contextlib.nullcontext()
        with ui:
            with open(media, "rb") as fh:
                r = httpx.post(
                    f"{url}/api/jobs", files={"file": (media.name, fh)}, data={"formats": "srt"}, timeout=300
                )
            r.raise_for_status()
            job_id = r.json()["job_id"]
            stop = threading.Event()
            threads = [
                threading.Thread(target=poll, args=(url, job_id, ns.interval, stop, samples), daemon=True)
                for _ in range(ns.pollers)
            ]
            started = time.monotonic()
            for t in threads:
                t.start()
            status: dict[str, Any] = {}
            while status.get("state") not in ("done", "failed", "cancelled"):
                time.sleep(0.5)
                status = httpx.get(f"{url}/api/jobs/{job_id}", timeout=30).json()
            stop.set()
            for t in threads:
                t.join()
            took = time.monotonic() - started
    running = [ms for state, ms in samples if state == "running"]
    if status.get("state") != "done" or len(running) < 2:
        raise SystemExit(f"the job ended {status.get('state')} with {len(running)} samples while running: {status}")
    p95 = percentile(running, 95)
    print(
        f"Input: {media.name} ({media_duration(media):.0f} s), transcribed in {took:.1f} s; {ns.pollers} pollers "
        f"every {ns.interval * 1000:.0f} ms{', workbench open in chromium' if ns.ui else ''}.\n"
    )
    print("| answers while running | p50 ms | p95 ms | p99 ms | max ms | target p95 |")
    print("|---:|---:|---:|---:|---:|---|")
    print(
        f"| {len(running)} | {statistics.median(running):.1f} | {p95:.1f} | {percentile(running, 99):.1f} | "
        f"{max(running):.1f} | < {TARGET_P95_MS:.0f} ms: {'met' if p95 < TARGET_P95_MS else 'MISSED'} |"
    )
    return 0 if p95 < TARGET_P95_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
