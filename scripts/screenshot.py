"""Screenshot of the workbench for the README: ``python scripts/screenshot.py`` writes docs/img/workbench.png.

Starts ``python app.py`` on a free port (in-process jobs, a temporary jobs folder), transcribes the test video
through the Transcribe tab in Debian's headless chromium (Playwright), and saves the page once the subtitles are
shown. Needs the test extra (playwright) and ``/usr/bin/chromium``.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(url: str, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"error: app.py exited with {proc.returncode} before serving")
        try:
            with urllib.request.urlopen(f"{url}/api/models/status", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"error: app.py did not answer at {url} in {timeout:.0f} s")


def shoot(video: Path, out: Path) -> None:
    """Transcribe ``video`` in the workbench and save a screenshot of the Transcribe tab to ``out``."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as jobs:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "app.py"), "--port", str(port), "--workers", "0", "--jobs-dir", jobs],
            cwd=REPO,
        )
        try:
            _wait_up(url, proc)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(url)
                page.wait_for_function(
                    "document.querySelector('#v2s-model-status')?.dataset.state == 'ready'", timeout=180_000
                )
                page.locator("#v2s-files input[type=file]").set_input_files(str(video))
                page.wait_for_selector(f"#v2s-files >> text={video.name}", timeout=30_000)
                page.click("#v2s-start")
                page.wait_for_selector("#v2s-downloads [data-testid=download-link]", timeout=600_000)
                page.eval_on_selector(
                    "#v2s-preview video", "v => { v.textTracks[0].mode = 'showing'; v.currentTime = 6; }"
                )
                time.sleep(2)
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out), full_page=True)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(30)


def main() -> None:
    """Parse the flags and take the screenshot."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", type=Path, default=REPO / "tests" / "data" / "video" / "manifesto.mp4")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "workbench.png")
    ns = p.parse_args()
    shoot(ns.video, ns.out)
    print(ns.out)


if __name__ == "__main__":
    main()
