"""The hallucination guard: its rules on synthetic text, and silence, noise and loops through the Runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import srt
from conftest import with_parts
from media import speech_clips

from pipeline.asr.guard import drop_repeated_lines, judge, level_db
from pipeline.asr.inputs import SegmentAudio
from pipeline.asr.transcribe import transcribe_segments
from pipeline.core.settings import GuardSettings, Settings
from pipeline.core.types import Segment, SpeechSpan, TextSegment, Window, Word
from pipeline.jobs.engine import Runner
from pipeline.jobs.events import JobResult
from pipeline.jobs.store import JobStore

GUARD = GuardSettings()


def text_segment(
    text: str,
    *,
    logprob: float = -0.2,
    no_speech: float = 0.1,
    ratio: float = 1.4,
    start: float = 0.0,
    words: bool = False,
) -> TextSegment:
    ws: tuple[Word, ...] = ()
    if words:
        ws = tuple(Word(" " + t, start + i * 0.3, start + i * 0.3 + 0.25, 0.9) for i, t in enumerate(text.split()))
    return TextSegment(start, start + 2.0, text, ws, logprob, no_speech, ratio)


# --- rules -----------------------------------------------------------------------------------------


def test_speech_passes() -> None:
    speech = "The mute muffled the high tones of the horn. The gold ring sits only a pierced ear."
    assert judge([text_segment(speech)], GUARD) is None
    # Real repetition a speaker makes is not a loop: mfa's "words, words, words, words".
    assert judge([text_segment("And here are some more words. Words, words, words, words.")], GUARD) is None
    assert judge([], GUARD) is None


def test_no_speech_with_low_confidence_is_dropped_without_a_retry() -> None:
    problem = judge([text_segment("you", logprob=-1.5, no_speech=0.94)], GUARD)
    assert problem is not None and not problem.retry and "no speech" in problem.reason
    # High no-speech probability alone is not enough over audio that is not silent...
    loud = np.full(16000, 0.1, np.float32)
    assert judge([text_segment("you", logprob=-0.4, no_speech=0.95)], GUARD, loud) is None
    # ...but over silence it is: Whisper answers a confident "you" to digital silence.
    problem = judge([text_segment("you", logprob=-0.4, no_speech=0.95)], GUARD, np.zeros(16000, np.int16))
    assert problem is not None and not problem.retry and "silence" in problem.reason


def test_loops_are_retried() -> None:
    looped = "I think I've been there since " * 8
    for segment in (
        text_segment(looped, ratio=6.2),  # compression ratio
        text_segment("I feel the pain in my heart. " * 3),  # the same line three times in a row
        text_segment("S-not S-not S-not S-not S-not S-not S-not S-not S-not S-not S-not"),  # a 1-gram, 11 times
        text_segment("and his roots " * 5 + "and so on"),  # a 3-gram, 5 times
    ):
        problem = judge([segment], GUARD)
        assert problem is not None and problem.retry, segment.text


def test_the_guard_can_be_turned_off() -> None:
    assert judge([text_segment("you", logprob=-1.5, no_speech=0.94)], GuardSettings(enabled=False)) is None


def test_level_db() -> None:
    assert level_db(np.zeros(100, np.float32)) == -np.inf
    assert level_db(np.full(100, 0.5, np.float32)) == pytest.approx(-6.02, abs=0.01)
    assert level_db(np.full(100, 16384, np.int16)) == pytest.approx(-6.02, abs=0.01)


def test_a_line_never_appears_three_times_in_a_row_across_segments() -> None:
    segments = [text_segment("Thank you.", start=float(i), words=i % 2 == 0) for i in range(4)]
    segments.append(text_segment("Something else. Thank you.", start=5.0, words=True))
    kept, notes = drop_repeated_lines(segments, GUARD)
    texts = [s.text if s else None for s in kept]
    assert texts == ["Thank you.", "Thank you.", None, None, "Something else. Thank you."]
    assert [k for k, _ in notes] == [2, 3]
    # Inside one segment with word times: the words of the dropped line go too.
    one = text_segment("Bye now. Bye now. Bye now. Okay.", words=True)
    (kept_one,), _ = drop_repeated_lines([one], GUARD)
    assert kept_one is not None and kept_one.text == "Bye now. Bye now. Okay."
    assert [w.word.strip() for w in kept_one.words] == ["Bye", "now.", "Bye", "now.", "Okay."]
    assert (kept_one.start, kept_one.end) == (kept_one.words[0].start, kept_one.words[-1].end)


# --- through the Runner, with the real model ----------------------------------------------------------


def run(path: Path, settings: Settings, model_cache) -> tuple[JobResult, list[str]]:  # noqa: ANN001
    s = with_parts(settings, jobs={"keep_checkpoints": True})
    result = Runner(s, model_cache).run(path, s)
    results = JobStore(s.jobs.jobs_dir).open(result.job_id).load_results()
    dropped = [d for r in results.values() for d in r.dropped]
    # A valid SRT: it parses strictly, numbered from 1, each cue with text and in time order.
    subs = list(srt.parse(result.outputs["srt"].read_text(), ignore_errors=False))
    assert [sub.index for sub in subs] == list(range(1, len(subs) + 1))
    assert all(sub.content.strip() and sub.start < sub.end for sub in subs)
    assert all(a.end <= b.start for a, b in zip(subs, subs[1:]))
    return result, dropped


@pytest.mark.parametrize("vad", [True, False])
def test_two_minutes_of_silence_give_no_cue(
    tmp_path: Path,
    settings: Settings,
    model_cache,
    vad: bool,  # noqa: ANN001
) -> None:
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(16000 * 120, np.float32), 16000)
    result, dropped = run(path, with_parts(settings, vad={"enabled": vad}), model_cache)
    assert result.transcript.cues == []
    assert list(srt.parse(result.outputs["srt"].read_text())) == []
    assert json.loads(result.outputs["json"].read_text())["cues"] == []
    if not vad:
        # Whisper did say something ("you") over each window of silence; the guard dropped it.
        assert dropped and all("no speech" in d for d in dropped)


@pytest.mark.parametrize("vad", [True, False])
def test_a_minute_of_white_noise_gives_at_most_one_cue(
    tmp_path: Path,
    settings: Settings,
    model_cache,
    vad: bool,  # noqa: ANN001
) -> None:
    path = tmp_path / "noise.wav"
    sf.write(path, np.random.default_rng(0).normal(0, 0.1, 16000 * 60).astype(np.float32), 16000)
    result, dropped = run(path, with_parts(settings, vad={"enabled": vad}), model_cache)
    assert len(result.transcript.cues) <= 1
    if not vad:
        assert dropped


def test_a_looping_window_is_decoded_again_or_dropped(
    tmp_path: Path,
    settings: Settings,
    model_cache,
    data_dir: Path,  # noqa: ANN001
) -> None:
    # Speech slowed to half speed: tiny.en's beam search loops on it ("I feel the pain in my heart." ×3).
    slowed = np.repeat(np.concatenate(speech_clips(data_dir)[:4]), 2)[: 16000 * 28]
    path = tmp_path / "slowed.wav"
    sf.write(path, slowed, 16000)
    result, _ = run(path, with_parts(settings, vad={"enabled": False}), model_cache)
    for segment in result.transcript.segments:
        assert judge([segment], GUARD) is None, segment.text
    lines = [" ".join(c.lines).lower() for c in result.transcript.cues]
    assert not any(a == b == c for a, b, c in zip(lines, lines[1:], lines[2:]))


def test_what_fails_again_after_re_decoding_is_dropped_and_recorded(
    data_dir: Path,
    settings: Settings,
    model_cache,  # noqa: ANN001
) -> None:
    from pipeline.media.decode import decode_all

    samples = decode_all(data_dir / "jfk" / "jfk.wav")
    span = SpeechSpan(0.0, samples.size / 16000)
    item = SegmentAudio(Segment(0, span.start, span.end, (span,), (Window((span,)),)), (samples,))
    model = model_cache.get(settings.model)
    # Any real text compresses better than 0.1: every window is retried once, then dropped.
    strict = GuardSettings(compression_ratio=0.1)
    (result,) = transcribe_segments(model, [item], settings.transcribe, "en", strict)
    assert result.segments == ()
    assert len(result.dropped) == 1 and "after re-decoding" in result.dropped[0]
    assert "ask not what your country" in result.dropped[0].lower()
    (normal,) = transcribe_segments(model, [item], settings.transcribe, "en")
    assert normal.dropped == () and "ask not what your country" in normal.segments[0].text.lower()
