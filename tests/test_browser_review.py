"""The Review tab in a real browser (Debian chromium via Playwright) against the real server: a finished job (the
first 12 s of manifesto.mp4) is opened, its video plays with the subtitle track, a cue is corrected and saved,
and the downloaded SRT holds the correction; the video with a subtitle track is made and offered for download. Screenshots go to test-artifacts/browser/."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import srt
from app_server import ARTIFACTS, chromium, serve

from pipeline.asr.models import ModelCache
from pipeline.core.settings import (
    ClusterSettings,
    JobSettings,
    ModelSettings,
    OutputSettings,
    Settings,
    TranscribeSettings,
)
from pipeline.jobs.engine import Runner
from workbench.service import JobManager

# A real browser (Playwright and Debian's chromium).
pytestmark = pytest.mark.browser

EDIT = "Workers of all countries, unite!"


@pytest.fixture(scope="module")
def review_url(tmp_path_factory: pytest.TempPathFactory, model_cache: ModelCache) -> Iterator[str]:
    from workbench.server import build_server

    root = tmp_path_factory.mktemp("browser-review")
    settings = Settings(
        model=ModelSettings(name="tiny.en", device="cpu", compute_type="int8"),
        cluster=ClusterSettings(workers=0),
        transcribe=TranscribeSettings(language="en", batch_size=8),
        output=OutputSettings(output_dir=root / "out"),
        jobs=JobSettings(jobs_dir=root / "jobs"),
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    manager = JobManager(settings, Runner(settings, model_cache))
    with serve(build_server(settings, manager=manager)) as url:
        yield url


@pytest.fixture(scope="module")
def finished_job(review_url: str, tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> str:
    clip = tmp_path_factory.mktemp("clip") / "manifesto.mp4"
    src = data_dir / "video" / "manifesto.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-t", "12", "-c", "copy", str(clip)], check=True)
    with open(clip, "rb") as fh:
        r = httpx.post(f"{review_url}/api/jobs", files={"file": ("manifesto.mp4", fh)}, timeout=60)
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = httpx.get(f"{review_url}/api/jobs/{job_id}", timeout=30).json()
        if status["state"] in ("done", "failed", "cancelled") and not status["active"]:
            break
        time.sleep(0.3)
    assert status["state"] == "done", status
    return job_id


def test_review_edit_save_and_download(review_url: str, finished_job: str, tmp_path: Path) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            _review(page, review_url, finished_job, tmp_path)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "review-failure.png"), full_page=True)
            raise
        assert not errors, errors


def _review(page: Any, url: str, job_id: str, tmp_path: Path) -> None:  # noqa: ANN401
    page.goto(url)
    page.get_by_role("tab", name="Review").click()
    # Choose the finished job: the list offers it (typing its id filters the list to it).
    box = page.locator("#v2s-review-job input")
    box.click()
    box.fill(job_id)
    page.get_by_role("option", name=f"manifesto.mp4 · {job_id}").click()
    page.click("#v2s-review-open")
    page.wait_for_selector("#v2s-review-summary", timeout=60_000)
    count = page.locator("#v2s-review-cues [data-testid^='cell-'][data-col='0']").count()
    assert count >= 2, count
    # The video plays the job's input with the subtitle track.
    track = page.eval_on_selector("#v2s-review-video video", "v => (v.querySelector('track') || {}).src")
    assert track and track.endswith(".vtt"), track
    page.screenshot(path=str(ARTIFACTS / "review-open.png"), full_page=True)

    # Choose the last cue, correct its words, apply and save.
    page.click(f"#v2s-review-cues [data-testid='cell-{count - 1}-3']")
    page.wait_for_function(
        f"Number(document.querySelector('#v2s-review-index input').value) === {count}", timeout=30_000
    )
    page.fill("#v2s-review-text textarea", EDIT)
    page.click("#v2s-review-apply")
    page.wait_for_selector(f"#v2s-review-cues >> text={EDIT}", timeout=30_000)
    page.click("#v2s-review-save")
    page.wait_for_selector("#v2s-review-summary[data-edited='1']", timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "review-saved.png"), full_page=True)

    # The downloaded SRT holds the edit.
    link = page.locator("#v2s-review-files a[download$='.srt']")
    link.wait_for(timeout=30_000)
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "review.srt"
    download.value.save_as(saved)
    cues = list(srt.parse(saved.read_text(encoding="utf-8")))
    assert len(cues) == count and cues[-1].content == EDIT

    # The video with a subtitle track is made in the background and joins the downloads.
    page.click("#v2s-review-embed")
    page.wait_for_selector("#v2s-review-exports [data-kind=embed][data-state=done]", timeout=120_000)
    page.locator("#v2s-review-files a[download='manifesto.subtitled.mp4']").wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "review-exported.png"), full_page=True)
