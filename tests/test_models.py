"""Model resolution: bundled, folder path, standard names offline, clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.asr import models
from pipeline.core.errors import ModelError
from pipeline.core.settings import ModelSettings


def test_bundled_tiny_en_resolves_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = models.resolve(ModelSettings(name="tiny.en"))
    assert spec.source == "bundled" and (Path(spec.path) / "model.bin").exists()


def test_auto_on_cpu_is_the_bundled_model() -> None:
    assert models.resolve(ModelSettings(), device="cpu").name == "tiny.en"


def test_auto_on_gpu_with_nothing_cached_is_the_bundled_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "_cached_standard", lambda name: None)
    spec = models.resolve(ModelSettings(), device="cuda", gpu_memory_mb=24000)
    assert spec.name == "tiny.en"
    name, reason = models.choose_model("de", "cuda", 24000)
    assert name == "base" and "packaged" in reason  # no cached model on the GPU: the packaged multilingual one


def test_folder_path(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    shutil.copytree(models.bundled_model_path(), folder)
    spec = models.resolve(ModelSettings(name=str(folder)))
    assert spec.source == "path" and spec.path == str(folder)


def test_folder_without_model_bin(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no model.bin"):
        models.resolve(ModelSettings(name=str(tmp_path)))


def test_standard_name_not_cached_lists_what_is_available(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match=r"not in the local cache.*available offline: tiny\.en"):
        models.resolve(ModelSettings(name="large-v3"))


def test_unknown_name() -> None:
    with pytest.raises(ModelError, match="unknown model 'whisper-9000'"):
        models.resolve(ModelSettings(name="whisper-9000"))


def test_auto_placement_on_this_machine() -> None:
    placement = models.placement_for(ModelSettings())
    assert placement.device in ("cpu", "cuda")
    assert placement.compute_type == ("int8" if placement.device == "cpu" else "float16")


@pytest.mark.parametrize(
    ("threads", "replicas", "expected", "per_replica"),
    [
        (2, 0, 2, 1),  # few threads: one single-threaded replica each (measured on 2 cores)
        (3, 0, 3, 1),
        (1, 0, 1, 1),
        (4, 0, 1, 4),  # enough for one wide replica, the optimizer's per-worker share
        (0, 0, 1, 0),  # CTranslate2's own default
        (8, 2, 2, 4),  # the user's choice wins
    ],
)
def test_replicas_split_the_threads(threads: int, replicas: int, expected: int, per_replica: int) -> None:
    placement = models.placement_for(ModelSettings(device="cpu", cpu_threads=threads, replicas=replicas))
    assert (placement.replicas, placement.threads_per_replica) == (expected, per_replica)
    assert models.auto_replicas("cuda", threads) == 1  # one replica per GPU


def test_replicas_share_the_weights_and_load(model_cache: models.ModelCache) -> None:
    loaded = model_cache.get(ModelSettings(name="tiny.en", device="cpu", compute_type="int8", cpu_threads=2))
    assert loaded.placement.replicas == 2 and loaded.model.model.num_workers == 2


def test_cache_loads_once(model_cache: models.ModelCache) -> None:
    a = model_cache.get(ModelSettings(name="tiny.en", device="cpu", compute_type="int8"))
    b = model_cache.get(ModelSettings(name="tiny.en", device="cpu", compute_type="int8"))
    assert a is b and not a.multilingual
