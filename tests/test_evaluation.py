"""Scoring per language (no model needed): WER after Whisper's basic normaliser, CER for Chinese."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.errors import InputError
from pipeline.lab import evaluation


def test_chinese_is_scored_by_characters_without_spaces_or_punctuation() -> None:
    ref = "甚至  出现  交易  几乎  停滞  的  情况"
    assert evaluation.language_metric("zh") == "CER"
    assert evaluation.score_language("zh", ["甚至出现交易，几乎停滞的情况。"], [ref]) == 0.0
    # One character wrong (现 → 线) and one missing (的) out of 13.
    assert evaluation.score_language("zh", ["甚至出线 交易几乎停滞情况"], [ref]) == pytest.approx(2 / 13)


def test_german_and_spanish_wer_uses_the_basic_normaliser() -> None:
    assert evaluation.language_metric("de") == "WER"
    refs = ["für die besten aussichten auf hongkong", "se recomienda a los viajeros"]
    hyps = ["Für die besten Aussichten auf Hongkong!", "Se recomienda a las viajeras."]
    # Case and punctuation do not count; two Spanish words are wrong out of 11 words.
    assert evaluation.score_language("es", hyps, refs) == pytest.approx(2 / 11)
    assert evaluation.score_language("de", [""], ["   "]) is None


def test_language_clips_read_the_references(data_dir: Path) -> None:
    zh = evaluation.language_clips("zh", data_dir)
    assert [c.path.name for c in zh][:2] == ["BAC009S0764W0121.wav", "IT0011W0001.wav"]
    assert zh[1].ref == "换一首歌" and all(c.path.exists() for c in zh)
    de = evaluation.language_clips("de", data_dir, limit=2)
    assert [c.path.name for c in de] == ["fleurs-de-000.ogg", "fleurs-de-001.ogg"]
    assert de[0].set == "de" and de[0].ref.startswith("für die besten aussichten")
    with pytest.raises(InputError, match="no 'xx' clips"):
        evaluation.language_clips("xx", data_dir)
