"""Runs the real workbench server (uvicorn, a free port, a thread of the test process) and a headless Debian
chromium for browser tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Debian's chromium, installed by .ci/run (apt-get install chromium).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Screenshots and downloads of the browser tests (git-ignored).
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "browser"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(app: Any, timeout: float = 60.0) -> Iterator[str]:  # noqa: ANN401 - a FastAPI app
    """Serve ``app`` with uvicorn on a free port in a daemon thread; yield its base URL; stop it after."""
    import uvicorn

    port = free_port()
    # Clients (browsers, gradio_client) keep streams open: do not wait for them at shutdown.
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        app.state.jobs.close()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless chromium browser (Playwright)."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), f"chromium not found at {CHROMIUM}: run .ci/run as root, or apt-get install chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
