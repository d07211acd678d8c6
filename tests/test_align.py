"""Optional WhisperX alignment: skipped without a local model, and a failure never loses the transcript."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import with_parts

from pipeline.asr.align import align_segments, find_model
from pipeline.core.settings import Settings
from pipeline.core.types import TextSegment, Word
from pipeline.jobs.engine import Runner


def test_auto_without_a_local_model_skips_with_a_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert find_model("en", "auto") == (None, "no local alignment model for 'en'; keeping Whisper's word timing")
    assert find_model("en", "off")[0] is None
    assert "does not exist" in find_model("en", str(tmp_path / "nope"))[1]


def test_a_broken_model_folder_keeps_whisper_timing(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-wav2vec2-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    seg = TextSegment(0.5, 1.5, "hello world", (Word(" hello", 0.5, 0.9, 0.9), Word(" world", 1.0, 1.5, 0.9)))
    out, note = align_segments([seg], __import__("numpy").zeros(32000, "float32"), "en", str(folder))
    assert out == [seg] and note.startswith("alignment failed")


def test_job_with_a_failing_alignment_still_finishes(
    data_dir: Path, tmp_path: Path, settings: Settings, model_cache
) -> None:  # noqa: ANN001
    folder = tmp_path / "broken-align"
    folder.mkdir()
    s = with_parts(settings, transcribe={"align": str(folder)})
    result = Runner(s, model_cache).run(data_dir / "jfk" / "jfk.wav", s)
    assert "ask not what your country" in " ".join(t.text for t in result.transcript.segments).lower()
    note = json.loads((result.job_dir / "checkpoint.json").read_text())["alignment"]
    assert note.startswith("alignment failed")
