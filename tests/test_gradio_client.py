"""Gradio's own client API: a script submits a job to the workbench's ``/transcribe`` endpoint (the Transcribe
tab's Start button) and gets the subtitles and files back; the job is in the same job list as the HTTP API's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import srt
from app_server import serve

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

#: Jobs run inside the app: on a bigger machine the optimizer could plan a local Dask cluster, whose
#: worker processes a test cannot hold or inspect.
IN_PROCESS = ClusterSettings(workers=0)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory, model_cache: ModelCache) -> Iterator[str]:
    from workbench.server import build_server
    from workbench.service import JobManager

    root = tmp_path_factory.mktemp("client")
    settings = Settings(
        model=ModelSettings(name="tiny.en", device="cpu", compute_type="int8"),
        cluster=IN_PROCESS,
        transcribe=TranscribeSettings(batch_size=8),
        output=OutputSettings(output_dir=root / "out"),
        jobs=JobSettings(jobs_dir=root / "jobs"),
    )
    manager = JobManager(settings, Runner(settings, model_cache))  # the session's loaded model
    with serve(build_server(settings, manager=manager)) as url:
        yield url


def test_gradio_client_submits_a_job(app_url: str, data_dir: Path) -> None:
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert "/transcribe" in endpoints
    # The page's own refresh events (charts, status, tables) stay out of the client API.
    assert not {"/charts", "/model_badge", "/get_files", "/chosen", "/lambda"} & set(endpoints), list(endpoints)
    progress, subtitles, _preview, files = client.predict(
        [handle_file(str(data_dir / "jfk" / "jfk.wav"))],  # files
        "en",  # language
        ["srt", "json"],  # formats
        4,  # batch size
        5,  # beam size
        True,  # cut at pauses (VAD)
        42,  # characters per line
        2,  # lines per subtitle
        api_name="/transcribe",
    )
    assert 'data-stage="done"' in progress and "jfk.wav" in progress
    text = subtitles["value"] if isinstance(subtitles, dict) else subtitles
    cues = list(srt.parse(text))
    words = " ".join(c.content.replace("\n", " ") for c in cues).lower()
    assert cues and "ask not what your country can do for you" in words
    paths = files["value"] if isinstance(files, dict) else files
    names = sorted(Path(p if isinstance(p, str) else p["path"]).name for p in paths)
    assert names == ["jfk.json", "jfk.srt"]
    # One job list: the client's job is the HTTP API's too, done, with the chosen settings' results.
    jobs = httpx.get(f"{app_url}/api/jobs", timeout=30).json()
    assert [(j["input_name"], j["state"]) for j in jobs] == [("jfk.wav", "done")]
    # VTT was not chosen, so none was written; the API still serves it, made from the job's transcript.
    vtt = httpx.get(f"{app_url}/api/jobs/{jobs[0]['job_id']}/result.vtt", timeout=30)
    assert vtt.status_code == 200 and vtt.text.startswith("WEBVTT") and vtt.text.count(" --> ") == len(cues)


def test_gradio_client_gets_a_clear_error_for_a_bad_file(app_url: str, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n" * 100)
    client = Client(app_url, verbose=False)
    with pytest.raises(AppError, match="notes.mp4: cannot be read|notes.mp4.*not"):
        client.predict([handle_file(str(notes))], "en", ["srt"], 4, 5, True, 42, 2, api_name="/transcribe")


def test_ui_uploads_keep_the_size_and_type_limits(tmp_path: Path, data_dir: Path) -> None:
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from workbench.server import build_server
    from workbench.service import JobManager

    settings = Settings(
        model=ModelSettings(name="tiny.en", device="cpu", compute_type="int8"),
        cluster=IN_PROCESS,
        jobs=JobSettings(jobs_dir=tmp_path / "jobs"),
    )
    manager = JobManager(settings, max_upload_bytes=100_000)
    with serve(build_server(settings, manager=manager)) as url:
        client = Client(url, verbose=False)
        text = tmp_path / "notes.txt"
        text.write_text("not media\n")
        with pytest.raises(AppError, match="(?i)invalid file type|not a known video or audio file type"):
            client.predict([handle_file(str(text))], "en", ["srt"], 4, 5, True, 42, 2, api_name="/transcribe")
        # jfk.wav is 352 kB: over the limit, refused before any job exists.
        with pytest.raises(Exception, match="(?i)exceeds the maximum file size|larger than the limit"):
            client.predict(
                [handle_file(str(data_dir / "jfk" / "jfk.wav"))],
                "en",
                ["srt"],
                4,
                5,
                True,
                42,
                2,
                api_name="/transcribe",
            )
        assert httpx.get(f"{url}/api/jobs", timeout=30).json() == []
