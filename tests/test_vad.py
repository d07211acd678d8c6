"""VAD: spans from the real silero model, segments of 30–90 s cut in pauses, streaming, fallbacks."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from media import concat_speech, speech_clips

from pipeline.core.settings import VadSettings
from pipeline.core.types import SpeechSpan
from pipeline.media import vad
from pipeline.media.decode import decode_all
from pipeline.media.segments import Segmenter, segment_audio, segment_stream


@pytest.fixture(scope="module")
def model() -> vad.SileroVad:
    return vad.SileroVad()


@pytest.fixture(scope="module")
def long_audio(data_dir: Path) -> np.ndarray:
    """Five minutes of real speech, with short pauses and two long silences."""
    return concat_speech(speech_clips(data_dir), 300, pauses=(0.7, 1.2, 0.5, 9.0, 0.9, 1.5, 0.6, 12.0))


def test_harvard_sentences_are_separate_spans(data_dir: Path, model: vad.SileroVad) -> None:
    samples = decode_all(data_dir / "harvard" / "harvard-sentences-list30.mp3")
    segments, metrics = segment_audio(samples, VadSettings(), model)
    # Ten read sentences with pauses between them.
    assert 8 <= metrics.span_count <= 14
    assert 0.5 < metrics.speech_ratio < 0.95
    # 54 s: one segment, whose first window is a segment of its own (the first subtitles come sooner).
    assert len(segments) == 2 and [len(seg.windows) for seg in segments] == [1, 1]
    whole, _ = segment_audio(samples, VadSettings(first_window_alone=False), model)
    assert len(whole) == 1 and whole[0].windows == segments[0].windows + segments[1].windows
    assert whole[0].spans == segments[0].spans + segments[1].spans


def test_segments_are_30_to_90_s_and_cut_in_pauses(long_audio: np.ndarray, model: vad.SileroVad) -> None:
    s = VadSettings()
    segments, metrics = segment_audio(long_audio, s, model)
    assert metrics.mode == "silero" and len(segments) >= 3
    # The first window is a segment of its own; with the segment after it, it spans 30-90 s as the others do.
    assert len(segments[0].windows) == 1 and segments[0].duration <= s.window_s
    assert s.min_segment_s <= segments[1].end - segments[0].start <= s.max_segment_s
    for seg in segments[2:-1]:
        assert s.min_segment_s <= seg.duration <= s.max_segment_s, seg.duration
    for a, b in zip(segments, segments[1:]):
        assert a.end <= b.start, "segments overlap"
    for seg in segments:
        assert [x.index for x in segments] == list(range(len(segments)))
        for w in seg.windows:
            assert w.duration <= s.window_s + 1e-6
        # Every span lies inside exactly one window of its segment.
        for span in seg.spans:
            assert sum(w.start <= span.start and span.end <= w.end for w in seg.windows) == 1
    # The long silences are skipped: two of 9 and 12 s at least.
    assert metrics.silence_skipped > 15
    assert metrics.to_dict()["segment_count"] == len(segments)


def test_cuts_fall_where_the_model_hears_no_speech(long_audio: np.ndarray, model: vad.SileroVad) -> None:
    segments, _ = segment_audio(long_audio, VadSettings(), model)
    probs = model.stream().feed(long_audio)
    for a, b in zip(segments, segments[1:]):
        lo, hi = int(a.end / vad.FRAME_S), int(b.start / vad.FRAME_S)
        assert hi > lo
        assert probs[lo:hi].min() < 0.35, "a cut must fall in a pause"


def test_streaming_gives_the_same_cuts_for_any_chunking(long_audio: np.ndarray, model: vad.SileroVad) -> None:
    expected, _ = segment_audio(long_audio, VadSettings(), model)
    for size in (512 * 7 + 3, 16000 * 5 + 11):
        chunks = [long_audio[i : i + size] for i in range(0, long_audio.size, size)]
        got = list(segment_stream(chunks, VadSettings(), model))
        assert got == expected


def test_segments_stream_out_before_the_end(long_audio: np.ndarray, model: vad.SileroVad) -> None:
    fed = 0

    def chunks():  # noqa: ANN202
        nonlocal fed
        for i in range(0, long_audio.size, 32000):
            fed = i + 32000
            yield long_audio[i : i + 32000]

    first = next(iter(segment_stream(chunks(), VadSettings(), model)))
    assert first.index == 0
    assert fed < long_audio.size / 2, "the first segment must come before half the audio is decoded"


def test_continuous_speech_is_split_at_a_quiet_frame(data_dir: Path, model: vad.SileroVad) -> None:
    clips = speech_clips(data_dir)[14:]  # LJ Speech, one reader
    audio = concat_speech(clips, 75, pauses=(0.05,))  # no pause long enough to end a span
    segments, _ = segment_audio(audio, VadSettings(), model)
    windows = [w for s in segments for w in s.windows]
    assert all(w.duration <= 30.0 + 1e-6 for w in windows)
    assert sum(w.duration for w in windows) > 60


def test_silence_gives_no_segments(model: vad.SileroVad) -> None:
    segments, metrics = segment_audio(np.zeros(16000 * 120, np.float32), VadSettings(), model)
    assert segments == [] and metrics.span_count == 0 and metrics.silence_skipped == pytest.approx(120, abs=0.1)


def test_no_vad_cuts_at_fixed_lengths(long_audio: np.ndarray) -> None:
    segments, metrics = segment_audio(long_audio, VadSettings(enabled=False), None)
    assert metrics.mode == "fixed" and "disabled" in metrics.reason
    assert [round(s.duration) for s in segments] == [60, 60, 60, 60, 60]
    assert all(len(s.windows) == math.ceil(60 / VadSettings().window_s) for s in segments)


def test_vad_failure_falls_back_to_fixed_cuts(
    long_audio: np.ndarray, model: vad.SileroVad, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def run(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("onnx exploded")

    broken = vad.SileroVad()
    broken.session = Broken()
    with caplog.at_level("WARNING"):
        segments, metrics = segment_audio(long_audio, VadSettings(), broken)
    assert metrics.mode == "fixed" and "onnx exploded" in metrics.reason
    assert "falling back" in caplog.text
    assert segments[0].start == 0 and segments[-1].end == pytest.approx(300, abs=0.01)
    assert all(a.end == b.start for a, b in zip(segments, segments[1:]))


@hsettings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.25, VadSettings().window_s - 0.4), st.floats(0.1, 12.0)), min_size=1, max_size=60),
    st.floats(30, 45),
    st.floats(60, 120),
)
def test_segmenter_invariants(spans_spec: list[tuple[float, float]], min_s: float, max_s: float) -> None:
    """For any spans (each shorter than a window, as SpanTracker makes them), segments keep every span once, in order."""
    s = dataclasses.replace(
        VadSettings(), min_segment_s=min_s, max_segment_s=max_s, target_segment_s=(min_s + max_s) / 2
    )
    spans, t = [], 0.0
    for length, gap in spans_spec:
        t += gap
        spans.append(SpeechSpan(round(t, 3), round(t + length, 3)))
        t += length
    seg = Segmenter(s)
    out = []
    for span in spans:
        out += seg.push([span], span.end)
    out += seg.finish()
    assert [sp for o in out for sp in o.spans] == spans
    for o in out:
        assert o.duration <= max_s + 1e-6
        assert all(w.duration <= s.window_s + 1e-6 for w in o.windows)
