"""The workbench end to end in a real browser (Debian chromium via Playwright) against the real server: the model
status goes from loading to ready, manifesto.mp4 is uploaded and transcribed with live progress, the SRT is
downloaded and checked, and every tab is screenshotted into test-artifacts/browser/. The same server then
takes the HTTP job flow (POST, poll, result.srt) and path traversal attempts. Auth and --share run last."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import srt
from app_server import ARTIFACTS, chromium, free_port, serve
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from pipeline.core.settings import (
    ClusterSettings,
    JobSettings,
    ModelSettings,
    OutputSettings,
    Settings,
    TranscribeSettings,
)
from pipeline.lab.evaluation import corpus_wer, srt_text

# A real server and Debian's chromium: deselect with -m "not browser".
pytestmark = pytest.mark.browser

#: Jobs run inside the app: on a bigger machine the optimizer could plan a local Dask cluster, whose
#: worker processes a test cannot hold or inspect.
IN_PROCESS = ClusterSettings(workers=0)
REPO = Path(__file__).resolve().parents[1]
#: Every tab, as its label and the artifact name of its screenshot.
TABS = ["Transcribe", "Jobs", "Models", "Hardware", "Cluster"]


@pytest.fixture(scope="module")
def gate() -> Iterator[threading.Event]:
    """Holds the model's load until the browser has seen "loading" (a real load of tiny.en is over too soon to see)."""
    import faster_whisper

    released = threading.Event()
    real = faster_whisper.WhisperModel

    class GatedWhisperModel(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401
            assert released.wait(120), "the browser test never released the model load"
            super().__init__(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(faster_whisper, "WhisperModel", GatedWhisperModel)
        yield released
    released.set()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory, gate: threading.Event) -> Iterator[str]:
    from workbench.server import build_server

    root = tmp_path_factory.mktemp("browser")
    settings = Settings(
        model=ModelSettings(name="tiny.en", device="cpu", compute_type="int8"),
        cluster=IN_PROCESS,
        transcribe=TranscribeSettings(batch_size=8),
        output=OutputSettings(output_dir=root / "out"),
        jobs=JobSettings(jobs_dir=root / "jobs"),
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serve(build_server(settings, preload=True)) as url:
        yield url


def _state(page: Any) -> str:  # noqa: ANN401
    return str(page.get_attribute("#v2s-model-status", "data-state"))


def test_workbench_in_a_browser(app_url: str, gate: threading.Event, data_dir: Path) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            _walk_through(page, app_url, gate, data_dir)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
            raise
        assert not errors, errors


def _walk_through(page: Any, app_url: str, gate: threading.Event, data_dir: Path) -> None:  # noqa: ANN401
    video = data_dir / "video" / "manifesto.mp4"
    page.goto(app_url)
    page.wait_for_selector("#v2s-model-status", timeout=60_000)

    # 1. The model status: loading while the load is held, then ready once it is let go.
    page.wait_for_function("document.querySelector('#v2s-model-status').dataset.state == 'loading'", timeout=30_000)
    assert "loading" in page.inner_text("#v2s-model-status").lower()
    page.screenshot(path=str(ARTIFACTS / "model-loading.png"))
    gate.set()
    page.wait_for_function("document.querySelector('#v2s-model-status').dataset.state == 'ready'", timeout=120_000)
    assert "ready" in page.inner_text("#v2s-model-status").lower()

    # 2. Upload and start; progress shows while it runs; the API answers meanwhile (the UI never blocks).
    # On a fresh install the first upload was once never listed (a fresh-clone CI run, 2026-12-07; the same
    # clone passed on rerun): it is sent once more before the test fails.
    for attempt in range(2):
        page.locator("#v2s-files input[type=file]").set_input_files(str(video))
        try:
            page.wait_for_selector("#v2s-files >> text=manifesto.mp4", timeout=30_000)
            break
        except PlaywrightTimeout:
            if attempt:
                raise
    page.click("#v2s-start")
    seen: set[str] = set()
    api_ms: list[float] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        stages = page.eval_on_selector_all("#v2s-progress .v2s-job", "els => els.map(e => e.dataset.stage)")
        seen.update(stages)
        if stages and "running" in stages and "running-shot" not in seen:
            seen.add("running-shot")
            page.screenshot(path=str(ARTIFACTS / "transcribe-running.png"), full_page=True)
        if stages == ["done"]:
            break
        t = time.monotonic()
        assert page.request.get(f"{app_url}/api/jobs").ok
        api_ms.append(1000 * (time.monotonic() - t))
        time.sleep(0.2)
    assert "done" in seen, f"the job did not finish: stages seen {seen}"
    assert seen & {"queued", "starting", "waiting_for_model", "running", "writing"}, seen
    assert api_ms, "the job finished before the progress could be seen"
    facts = page.inner_text("#v2s-progress")
    assert "Segments" in facts and "manifesto.mp4" in facts and "Done" in facts

    # 3. The subtitles, the preview with its subtitle track, and the SRT download.
    page.wait_for_selector("#v2s-downloads [data-testid=download-link]", timeout=60_000)
    shown = page.input_value("#v2s-subtitles textarea")
    assert "communist" in shown.lower()
    track = page.eval_on_selector("#v2s-preview video", "v => (v.querySelector('track') || {}).src")
    assert track and track.endswith(".vtt"), track
    page.eval_on_selector("#v2s-preview video", "v => { v.textTracks[0].mode = 'showing'; v.currentTime = 6; }")
    srt_link = page.locator("#v2s-downloads a[download$='.srt']")
    assert srt_link.count() == 1
    # Only the formats asked for (SRT alone by default): the JSON the job folder keeps for review is not offered.
    assert page.locator("#v2s-downloads a[download]").count() == 1
    with page.expect_download() as download:
        srt_link.click()
    saved = ARTIFACTS / "manifesto.srt"
    download.value.save_as(saved)
    text = saved.read_text(encoding="utf-8")
    cues = list(srt.parse(text))
    assert len(cues) >= 10 and all(c.end > c.start for c in cues)
    reference = srt_text(data_dir / "video" / "manifesto.auto-captions.srt")
    wer = corpus_wer([reference], [srt_text(saved)])
    assert wer is not None and wer < 0.25, f"WER {wer:.1%} against the video's captions"
    time.sleep(1)
    page.screenshot(path=str(ARTIFACTS / "transcribe.png"), full_page=True)

    # 4. Every tab, as a newcomer sees it.
    for tab in TABS[1:]:
        page.get_by_role("tab", name=tab).click()
        time.sleep(2.5)  # a refresh of the live parts (timers: 1–3 s)
        page.screenshot(path=str(ARTIFACTS / f"{tab.lower()}.png"), full_page=True)
        body = page.inner_text("body")
        if tab == "Jobs":
            assert "manifesto.mp4" in body and "Done" in body
            # Choose the job by its row, then get its files.
            page.locator("#v2s-jobs .body-cell", has_text="manifesto.mp4").first.click()
            page.wait_for_function("document.querySelector('#v2s-job-id textarea, #v2s-job-id input').value")
            page.get_by_role("button", name="Get files").click()
            page.wait_for_selector("#v2s-job-files a[download='manifesto.srt']", timeout=30_000)
        elif tab == "Models":
            assert "tiny.en" in body
        elif tab == "Hardware":
            assert "Settings chosen for this machine" in body and "Batch size" in body
            assert page.locator(".js-plotly-plot").count() >= 3
        elif tab == "Cluster":
            assert "where jobs run" in body.lower() and "in-process" in body


def _raw_get(url: str, path: str) -> tuple[int, str]:
    """GET a path exactly as written (no client-side normalising of ``..``)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", errors="replace")
    finally:
        conn.close()


def test_http_job_flow_on_the_real_server(app_url: str, gate: threading.Event, data_dir: Path) -> None:
    gate.set()
    with httpx.Client(base_url=app_url, timeout=60) as client:
        with open(data_dir / "video" / "manifesto.mp4", "rb") as fh:
            r = client.post("/api/jobs", files={"file": ("manifesto.mp4", fh, "video/mp4")}, data={"formats": "srt"})
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        deadline = time.monotonic() + 300
        while True:
            status = client.get(f"/api/jobs/{job_id}").json()
            if status["state"] == "done" and not status["active"]:
                break
            assert status["state"] not in ("failed", "cancelled") and time.monotonic() < deadline, status
            time.sleep(0.3)
        r = client.get(f"/api/jobs/{job_id}/result.srt")
        assert r.status_code == 200 and r.headers["x-partial"] == "0"
        assert len(list(srt.parse(r.text))) >= 10 and "communist" in r.text.lower()
        # The UI's job list is the API's: both jobs are there.
        names = [j["input_name"] for j in client.get("/api/jobs").json()]
        assert names.count("manifesto.mp4") == 2
    # Path traversal, sent raw: a JSON 400/404 from the API, never a file of the server.
    for path in (
        "/api/jobs/../../../../etc/passwd",
        "/api/jobs/..%2F..%2F..%2Fetc%2Fpasswd/result.srt",
        "/api/jobs/%2e%2e/%2e%2e/etc/passwd",
        "/api/jobs/20260101-120000-1a2b3c4d/../../../etc/passwd",
        "/gradio_api/file=/etc/passwd",
        "/file=/etc/passwd",
        "/gradio_api/file=../../../../etc/passwd",
    ):
        code, body = _raw_get(app_url, path)
        assert code in (400, 403, 404), (path, code)
        assert "root:" not in body, path


def test_auth_protects_the_ui_and_the_api(tmp_path: Path) -> None:
    from workbench.server import build_server

    settings = Settings(
        model=ModelSettings(name="tiny.en", device="cpu", compute_type="int8"),
        cluster=IN_PROCESS,
        jobs=JobSettings(jobs_dir=tmp_path / "jobs"),
    )
    with serve(build_server(settings, auth=("alice", "s3cret"))) as url:
        assert httpx.get(f"{url}/api/jobs").status_code == 401
        assert httpx.get(f"{url}/api/jobs", auth=("alice", "wrong")).status_code == 401
        assert httpx.get(f"{url}/api/hardware/basic", auth=("mallory", "s3cret")).status_code == 401
        assert httpx.get(f"{url}/api/jobs", auth=("alice", "s3cret")).json() == []
        assert httpx.get(f"{url}/gradio_api/info").status_code == 401
        with chromium() as browser:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("input[type=password]", timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "login.png"))
            page.fill("input[type=text]", "alice")
            page.fill("input[type=password]", "s3cret")
            page.keyboard.press("Enter")
            page.wait_for_selector("#v2s-model-status", timeout=60_000)
            # The browser's login session also opens the API.
            assert page.request.get(f"{url}/api/jobs").status == 200


def test_app_py_share_offline_keeps_serving_and_warns_without_auth(tmp_path: Path) -> None:
    port = free_port()
    # An unreachable share server: the tunnel fails here whether or not this machine has internet.
    env = {**os.environ, "GRADIO_SHARE_SERVER_ADDRESS": "127.0.0.1:9", "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "app.py"),
            "--port",
            str(port),
            "--share",
            "--no-preload",
            "--model",
            "tiny.en",
            "--workers",
            "0",
            "--jobs-dir",
            str(tmp_path / "jobs"),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not any("share link" in line for line in lines):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/api/jobs", timeout=30).json() == []
    finally:
        proc.terminate()
        proc.wait(30)
    log = "".join(lines)
    assert "WARNING: --share without --auth" in log
    note = next(line for line in lines if "share link" in line)
    assert re.match(r"note: no share link \(.+\); still serving locally at http://127\.0\.0\.1:\d+", note), note
    assert "Traceback" not in log
