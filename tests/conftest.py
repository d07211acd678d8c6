"""Shared fixtures: the real recordings in tests/data and one model cache for the whole session."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.asr.models import ModelCache
from pipeline.core.settings import JobSettings, ModelSettings, OutputSettings, Settings, TranscribeSettings

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    assert DATA.is_dir(), f"test data not found at {DATA}"
    return DATA


@pytest.fixture(scope="session")
def model_cache() -> ModelCache:
    """One loaded bundled tiny.en for every test that transcribes."""
    return ModelCache()


@pytest.fixture(scope="session")
def multilingual_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The catalogue name of the packaged multilingual Whisper base (99 languages): ``"base"``.

    It is assembled from its two packages into a session-private cache (``VIDEO2SRT_CACHE_DIR``, set for the
    session so that CLI subprocesses find it too), so the tests never depend on the user's cache.
    """
    from pipeline.asr.packaged import BASE_PACKAGED

    cache = tmp_path_factory.mktemp("video2srt-cache")
    old = os.environ.get("VIDEO2SRT_CACHE_DIR")
    os.environ["VIDEO2SRT_CACHE_DIR"] = str(cache)
    try:
        BASE_PACKAGED.assemble()
        yield BASE_PACKAGED.name
    finally:
        if old is None:
            os.environ.pop("VIDEO2SRT_CACHE_DIR", None)
        else:
            os.environ["VIDEO2SRT_CACHE_DIR"] = old


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a real run on the bundled model, writing into ``tmp_path``."""
    return Settings(
        model=ModelSettings(name="tiny.en", device="cpu", compute_type="int8"),
        transcribe=TranscribeSettings(language="en", batch_size=8),
        output=OutputSettings(output_dir=tmp_path / "out", formats=("srt", "vtt", "json")),
        jobs=JobSettings(jobs_dir=tmp_path / "jobs"),
    )


@pytest.fixture(scope="module")
def speech_input(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 80 s of real speech (the recordings joined with short pauses), as a 16 kHz WAV."""
    import soundfile as sf
    from media import concat_speech, speech_clips

    path = tmp_path_factory.mktemp("media") / "eighty_seconds.wav"
    sf.write(path, concat_speech(speech_clips(data_dir), 80, pauses=(0.8, 1.4, 0.6)), 16000)
    return path


@pytest.fixture(scope="module")
def reference_srt(speech_input: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The in-process (``--workers 0``) SRT of ``speech_input`` that every cluster run must reproduce byte for byte."""
    from helpers.cluster import job_settings

    from pipeline.jobs.engine import Runner

    base = tmp_path_factory.mktemp("reference")
    s = job_settings(Settings().replace(jobs=dataclasses.replace(Settings().jobs, jobs_dir=base / "jobs")), workers=0)
    runner = Runner(s)
    try:
        assert not runner.on_cluster
        result = runner.run(speech_input, s.replace(output=dataclasses.replace(s.output, output_dir=base)))
    finally:
        runner.close()
    return result.outputs["srt"].read_bytes()


def with_parts(settings: Settings, **parts: object) -> Settings:
    """Copy of ``settings`` with some fields of some parts changed: ``with_parts(s, vad={"enabled": False})``."""
    changes = {name: dataclasses.replace(getattr(settings, name), **values) for name, values in parts.items()}
    return settings.replace(**changes)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (the soak) run only when asked for, with ``pytest -m slow``."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="long-running: run with pytest -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
