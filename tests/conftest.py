"""Shared fixtures: the real recordings in tests/data and one model cache for the whole session."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.models import ModelCache
from pipeline.settings import JobSettings, ModelSettings, OutputSettings, Settings, TranscribeSettings

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
    from pipeline.catalogue import BASE_PACKAGED

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
