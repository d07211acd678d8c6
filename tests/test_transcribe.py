"""Batched transcription over windows: file-time mapping, and results independent of batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from media import concat_speech, speech_clips
from pipeline.models import ModelCache
from pipeline.settings import ModelSettings, TranscribeSettings, VadSettings
from pipeline.transcribe import SegmentAudio, detect_language, transcribe_segments
from pipeline.types import Segment, SpeechSpan, Window
from pipeline.vad import SileroVad, segment_audio

SETTINGS = TranscribeSettings(language="en", batch_size=8)


@pytest.fixture(scope="module")
def model(model_cache: ModelCache):  # noqa: ANN201
    return model_cache.get(ModelSettings(name="tiny.en", device="cpu", compute_type="int8"))


def _items(samples: np.ndarray, segments: list[Segment]) -> list[SegmentAudio]:
    return [SegmentAudio.read(s, lambda a, b: samples[round(a * 16000) : round(b * 16000)]) for s in segments]


def test_words_land_in_file_time(model, data_dir: Path) -> None:  # noqa: ANN001
    jfk, _ = sf.read(data_dir / "jfk" / "jfk.wav", dtype="float32")
    alone = Segment(0, 0.0, 11.0, (SpeechSpan(0.0, 11.0),), (Window((SpeechSpan(0.0, 11.0),)),))
    (ref,) = transcribe_segments(model, _items(jfk, [alone]), SETTINGS, "en")
    padded = np.concatenate([np.zeros(100 * 16000, np.float32), jfk])
    later = Segment(3, 100.0, 111.0, (SpeechSpan(100.0, 111.0),), (Window((SpeechSpan(100.0, 111.0),)),))
    (moved,) = transcribe_segments(model, _items(padded, [later]), SETTINGS, "en")
    assert moved.index == 3
    a = [w for s in ref.segments for w in s.words]
    b = [w for s in moved.segments for w in s.words]
    assert [w.word for w in a] == [w.word for w in b] and len(a) > 15
    for x, y in zip(a, b):
        assert y.start == pytest.approx(x.start + 100, abs=0.0011)
        assert y.end == pytest.approx(x.end + 100, abs=0.0011)


def test_same_grouping_gives_identical_results_and_any_grouping_the_same_text(model, data_dir: Path) -> None:  # noqa: ANN001
    """Deterministic for a given grouping (what resume and the cluster rely on); text is grouping-free.

    Batched word alignment can move a word by a few centiseconds with different batch neighbours, which is
    why the runner forms its groups from the segment plan alone.
    """
    samples = concat_speech(speech_clips(data_dir)[4:], 100, pauses=(0.7, 1.1))
    segments, _ = segment_audio(samples, VadSettings(min_segment_s=30, max_segment_s=45), SileroVad())
    assert len(segments) >= 2
    items = _items(samples, segments)
    together = transcribe_segments(model, items, SETTINGS, "en")
    again = transcribe_segments(model, items, SETTINGS, "en")
    assert [r.to_dict() for r in together] == [r.to_dict() for r in again]
    apart = [r for item in items for r in transcribe_segments(model, [item], SETTINGS, "en")]
    assert [[t.text for t in r.segments] for r in together] == [[t.text for t in r.segments] for r in apart]
    for a, b in zip(together, apart):
        for x, y in zip((w for t in a.segments for w in t.words), (w for t in b.segments for w in t.words)):
            assert abs(x.start - y.start) < 0.5


def test_english_only_model_needs_no_detection(model) -> None:  # noqa: ANN001
    assert detect_language(model, np.zeros(16000, np.float32)) == ("en", 1.0)


def test_empty_and_tiny_windows_give_empty_results(model) -> None:  # noqa: ANN001
    seg = Segment(0, 0.0, 0.05, (SpeechSpan(0.0, 0.05),), (Window((SpeechSpan(0.0, 0.05),)),))
    (result,) = transcribe_segments(model, [SegmentAudio(seg, (np.zeros(800, np.int16),))], SETTINGS, "en")
    assert result.segments == ()


def test_a_window_of_pieces_maps_words_back_across_the_cut_silence(model, data_dir: Path) -> None:  # noqa: ANN001
    """Long silence inside a window is cut out; words after the cut land at their true file time."""
    jfk, _ = sf.read(data_dir / "jfk" / "jfk.wav", dtype="float32")
    audio = np.concatenate([jfk[: 5 * 16000], np.zeros(20 * 16000, np.float32), jfk[5 * 16000 :]])
    window = Window((SpeechSpan(0.0, 5.5), SpeechSpan(24.5, 31.0)))
    seg = Segment(0, 0.0, 31.0, (SpeechSpan(0.0, 5.0), SpeechSpan(25.0, 31.0)), (window,))
    (result,) = transcribe_segments(model, _items(audio, [seg]), SETTINGS, "en")
    words = [w for s in result.segments for w in s.words]
    late = [w for w in words if w.word.strip(" ,.").lower() in ("country", "ask")]
    assert words and all(w.start < 5.5 or w.start >= 24.5 for w in words)
    assert any(w.start > 25 for w in late), [(w.word, w.start) for w in words]
