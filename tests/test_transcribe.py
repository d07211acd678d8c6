"""Batched transcription over windows: file-time mapping, and results independent of batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from media import concat_speech, speech_clips

from pipeline.asr import decode, transcribe
from pipeline.asr.detect import detect_language
from pipeline.asr.inputs import SegmentAudio, to_float
from pipeline.asr.models import ModelCache
from pipeline.asr.transcribe import level_window, transcribe_segments
from pipeline.core.settings import GuardSettings, ModelSettings, TranscribeSettings, VadSettings
from pipeline.core.types import Segment, SpeechSpan, Window
from pipeline.media.decode import decode_all
from pipeline.media.segments import segment_audio
from pipeline.media.vad import SileroVad

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


@pytest.mark.heavy
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


def _check_per_window_model(model, clips: list[np.ndarray], language: str, monkeypatch) -> None:  # noqa: ANN001
    """Encoding and word-timing a call's windows one by one (less memory at once, docs/benchmarks.md "Cost of a
    Whisper call") changes neither the encoder's output nor the text and word times of a CPU call."""
    from faster_whisper.tokenizer import Tokenizer

    whisper = model.model
    features = np.stack([whisper.feature_extractor(np.pad(c, (0, 30 * 16000 - c.size)))[:, :3000] for c in clips])
    sizes: list[int] = []
    aligned: list[int] = []
    real_encode, real_align = whisper.encode, whisper.find_alignment

    def counted(f: np.ndarray):  # noqa: ANN202
        sizes.append(1 if f.ndim == 2 else f.shape[0])
        return real_encode(f)

    def counted_align(tokenizer, text_tokens, *args):  # noqa: ANN001, ANN002, ANN202
        aligned.append(len(text_tokens))
        return real_align(tokenizer, text_tokens, *args)

    monkeypatch.setattr(whisper, "encode", counted)
    monkeypatch.setattr(whisper, "find_alignment", counted_align)
    n = len(clips)
    batched = np.asarray(whisper.encode(features))
    one_by_one = np.asarray(decode.CallModel(whisper).encode(features))
    assert sizes == [n] + [1] * n
    assert one_by_one.shape == batched.shape and one_by_one.shape[:2] == (n, 1500)
    np.testing.assert_allclose(one_by_one, batched, atol=1e-3)
    # Through a whole call: the same text and word times as with faster-whisper's batched encoder pass.
    windows = [Window((SpeechSpan(60.0 * i, 60.0 * i + c.size / 16000),)) for i, c in enumerate(clips)]
    sizes.clear()
    ours = decode.decode_windows(model, clips, windows, SETTINGS, language)
    assert sizes == [1] * n and aligned == [1] * n
    monkeypatch.setattr(decode, "CallModel", lambda m, **_: m)
    theirs = decode.decode_windows(model, clips, windows, SETTINGS, language)
    assert sizes[n:] == [n] and aligned[n:] == [n]
    assert [[s.text for s in w] for w in ours] == [[s.text for s in w] for w in theirs]
    assert sum(len(s.words) for w in ours for s in w) > 40
    # Bit-identical where measured; the margin leaves room for another CPU's float summation order.
    for a, b in zip(ours, theirs):
        for x, y in zip((w for s in a for w in s.words), (w for s in b for w in s.words)):
            assert x.word == y.word and abs(x.start - y.start) <= 0.02 and abs(x.end - y.end) <= 0.02
    # A window with no text among others (it happens: the guard then drops or re-decodes it) gets no words either way.
    tokenizer = Tokenizer(whisper.hf_tokenizer, whisper.model.is_multilingual, task="transcribe", language=language)
    tokens = [tokenizer.encode(" " + " ".join(s.text for s in w)) for w in theirs]
    tokens[1] = []
    encoded = whisper.encode(features)
    one_by_one = decode.CallModel(whisper).find_alignment(tokenizer, tokens, encoded, [3000] * n)
    together = real_align(tokenizer, tokens, encoded, [3000] * n)
    assert one_by_one[1] == together[1] == [] and all(one_by_one[i] for i in range(n) if i != 1)
    for a, b in zip(one_by_one, together):
        assert [w["word"] for w in a] == [w["word"] for w in b]
        assert all(abs(x["start"] - y["start"]) <= 0.02 and abs(x["end"] - y["end"]) <= 0.02 for x, y in zip(a, b))


def test_cpu_encodes_and_word_times_a_window_at_a_time_with_the_batched_numbers(
    model, data_dir: Path, monkeypatch
) -> None:  # noqa: ANN001
    names = ("jfk/jfk.wav", "harvard/harvard-sentences-list30.mp3", "mfa/acoustic_corpus.wav")
    clips = [decode_all(data_dir / name)[: 25 * 16000] for name in names]
    _check_per_window_model(model, [to_float(c) for c in clips], "en", monkeypatch)


def test_cpu_encodes_and_word_times_german_a_window_at_a_time_with_the_batched_numbers(
    model_cache: ModelCache, multilingual_model: str, data_dir: Path, monkeypatch
) -> None:  # noqa: ANN001
    base = model_cache.get(ModelSettings(name=multilingual_model, device="cpu", compute_type="int8"))
    names = ("fleurs-de-003.ogg", "fleurs-de-004.ogg")
    clips = [to_float(decode_all(data_dir / "fleurs_multi" / name))[: 25 * 16000] for name in names]
    _check_per_window_model(base, clips, "de", monkeypatch)


class _Forgetful(decode.EncoderCache):
    """An encoder cache that never finds anything: every decoding encodes its windows again."""

    def get(self, features: np.ndarray) -> None:
        return None


def _count_encoded(whisper, monkeypatch) -> list[int]:  # noqa: ANN001
    """The windows of each encoder pass ``whisper`` runs from now on."""
    sizes: list[int] = []
    real = whisper.encode

    def counted(f: np.ndarray):  # noqa: ANN202
        sizes.append(1 if f.ndim == 2 else f.shape[0])
        return real(f)

    monkeypatch.setattr(whisper, "encode", counted)
    return sizes


def test_the_translation_pass_encodes_no_window_again(
    model_cache: ModelCache, multilingual_model: str, data_dir: Path, monkeypatch
) -> None:  # noqa: ANN001
    """German speech transcribed and translated in one call: each window is encoded once, for the transcription
    pass, and both texts are exactly what encoding every window again for the translation gives."""
    base = model_cache.get(ModelSettings(name=multilingual_model, device="cpu", compute_type="int8"))
    clips = [to_float(decode_all(data_dir / "fleurs_multi" / f"fleurs-de-00{i}.ogg")) for i in (3, 4)]
    items = []
    for i, clip in enumerate(clips):
        span = SpeechSpan(60.0 * i, round(60.0 * i + clip.size / 16000, 3))
        items.append(SegmentAudio(Segment(i, span.start, span.end, (span,), (Window((span,)),)), (clip,)))
    settings = TranscribeSettings(language="de", batch_size=8, translate=True)
    sizes = _count_encoded(base.model, monkeypatch)
    once = transcribe_segments(base, items, settings, "de")
    encoded_once = sum(sizes)
    monkeypatch.setattr(transcribe, "EncoderCache", _Forgetful)
    twice = transcribe_segments(base, items, settings, "de")
    covered = once[0].stats["coverage_redecodes"]
    assert covered == twice[0].stats["coverage_redecodes"]
    assert encoded_once == len(clips) + covered and sum(sizes) - encoded_once == 2 * (len(clips) + covered)
    assert once[0].stats["padded_s"] == 30.0 * encoded_once
    assert [(r.segments, r.translation, r.dropped, r.recovered) for r in once] == [
        (r.segments, r.translation, r.dropped, r.recovered) for r in twice
    ]
    german = " ".join(t.text for r in once for t in r.segments).lower()
    english = " ".join(t.text for r in once for t in r.translation).lower()
    assert len(english.split()) > 20 and " the " in f" {english} " and " die " not in f" {english} ", english
    assert " die " in f" {german} " or " der " in f" {german} ", german


def test_a_window_decoded_again_with_other_options_is_not_encoded_again(model, data_dir: Path, monkeypatch) -> None:  # noqa: ANN001
    """What the guard's retry does (the same windows, 3-grams blocked): with the call's encoder cache it runs no
    encoder pass, and gives what encoding again gives."""
    clips = [to_float(decode_all(data_dir / name)[: 25 * 16000]) for name in ("jfk/jfk.wav", "mfa/acoustic_corpus.wav")]
    windows = [Window((SpeechSpan(60.0 * i, 60.0 * i + c.size / 16000),)) for i, c in enumerate(clips)]
    sizes = _count_encoded(model.model, monkeypatch)
    cache = decode.EncoderCache()
    first = decode.decode_windows(model, clips, windows, SETTINGS, "en", encoded=cache)
    assert sizes == [1, 1] and cache.windows == 2
    again = decode.decode_windows(model, clips, windows, SETTINGS, "en", no_repeat_ngram_size=3, encoded=cache)
    assert sizes == [1, 1] and cache.windows == 2
    fresh = decode.decode_windows(model, clips, windows, SETTINGS, "en", no_repeat_ngram_size=3)
    assert sizes == [1, 1, 1, 1]
    assert again == fresh and sum(len(s.words) for w in first for s in w) > 30
    # One window alone is found too (a retry of one window of the call).
    decode.decode_windows(model, clips[1:], windows[1:], SETTINGS, "en", encoded=cache)
    assert sizes == [1, 1, 1, 1] and cache.windows == 2
    # On a GPU the batch is encoded at once, and found again as a whole (the translation pass).
    features = np.stack([model.model.feature_extractor(np.pad(c, (0, 30 * 16000 - c.size)))[:, :3000] for c in clips])
    batched = decode.CallModel(model.model, per_window=False, encoded=decode.EncoderCache())
    output = batched.encode(features)
    assert sizes[4:] == [2] and batched.encode(features) is output and sizes[4:] == [2]


def test_english_only_model_needs_no_detection(model) -> None:  # noqa: ANN001
    guess = detect_language(model, np.zeros(16000, np.float32))
    assert (guess.language, guess.probability) == ("en", 1.0)


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


def _loud_then_quiet(data_dir: Path) -> tuple[np.ndarray, Segment]:
    """One window: an LJ Speech sentence, 1 s of silence, then a FLEURS sentence recorded ~40 dB quieter."""
    from pipeline.media.decode import decode_all

    loud = decode_all(data_dir / "ljspeech" / "LJ001-0001.wav").astype(np.float32)
    quiet = decode_all(data_dir / "fleurs_en" / "fleurs-en-002.ogg").astype(np.float32)
    audio = np.concatenate([loud, np.zeros(16000, np.float32), quiet])
    first = SpeechSpan(0.0, round(loud.size / 16000, 3))
    second = SpeechSpan(round(first.end + 1.0, 3), round(audio.size / 16000, 3))
    return audio, Segment(0, 0.0, second.end, (first, second), (Window((SpeechSpan(0.0, second.end),)),))


def test_a_quiet_speaker_after_a_loud_one_is_raised_and_kept(model, data_dir: Path) -> None:  # noqa: ANN001
    """tiny.en drops a whole utterance ~40 dB below its window's other speech; levelling the spans keeps it."""
    audio, seg = _loud_then_quiet(data_dir)
    items = [SegmentAudio(seg, (audio,))]
    unlevelled = TranscribeSettings(language="en", batch_size=8, level_boost_db=0)
    # Without the coverage re-decode, which would recover the skipped utterance on its own (next test).
    no_cover = GuardSettings(coverage_gap_s=0)
    (plain,) = transcribe_segments(model, items, unlevelled, "en", no_cover)
    (levelled,) = transcribe_segments(model, items, SETTINGS, "en", no_cover)
    plain_text = " ".join(t.text for t in plain.segments).lower()
    text = " ".join(t.text for t in levelled.segments).lower()
    assert "printing" in plain_text and "sintra" not in plain_text, plain_text
    assert "printing" in text and "sintra" in text and "byron" in text, text
    assert any(w.start > seg.spans[1].start for t in levelled.segments for w in t.words)
    assert plain.stats["coverage_redecodes"] == 0


def test_speech_a_window_skipped_is_decoded_again_on_its_own(model, data_dir: Path) -> None:  # noqa: ANN001
    """The quiet utterance the unlevelled window skips is VAD speech without words: the guard decodes it again."""
    audio, seg = _loud_then_quiet(data_dir)
    unlevelled = TranscribeSettings(language="en", batch_size=8, level_boost_db=0)
    (result,) = transcribe_segments(model, [SegmentAudio(seg, (audio,))], unlevelled, "en")
    text = " ".join(t.text for t in result.segments).lower()
    assert "printing" in text and "sintra" in text, text
    assert result.stats["coverage_redecodes"] == 1 and result.stats["windows"] == 1 and result.recovered
    starts = [t.start for t in result.segments]
    assert starts == sorted(starts) and result.segments[-1].start >= seg.spans[1].start - 0.5


def test_level_window_raises_only_spans_far_below_the_loudest(data_dir: Path) -> None:
    audio, seg = _loud_then_quiet(data_dir)
    window = seg.windows[0]
    out = level_window(audio, window, seg.spans, boost_db=40.0, gap_db=10.0)
    (l0, l1), (q0, q1) = ((round(s.start * 16000), round(s.end * 16000)) for s in seg.spans)

    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))

    assert rms(audio[q0:q1]) < rms(audio[l0:l1]) / 50  # the FLEURS clip really is ~40 dB quieter
    assert np.array_equal(out[l0:l1], audio[l0:l1])  # the loud span is untouched
    gain = min(rms(audio[l0:l1]) / rms(audio[q0:q1]), 100.0)  # up to the loud span's level, at most +40 dB
    assert rms(out[q0:q1]) == pytest.approx(rms(audio[q0:q1]) * gain, rel=0.01)
    assert np.array_equal(out[l1 + 16 : q0 - 16], audio[l1 + 16 : q0 - 16])  # the pause is untouched
    capped = level_window(audio, window, seg.spans, boost_db=20.0, gap_db=10.0)
    assert rms(capped[q0:q1]) == pytest.approx(rms(audio[q0:q1]) * 10, rel=0.01)
    as_int16 = level_window((audio * 32767).astype(np.int16), window, seg.spans, boost_db=40.0, gap_db=10.0)
    assert as_int16.dtype == np.float32 and rms(as_int16[q0:q1]) == pytest.approx(rms(out[q0:q1]), rel=0.05)
    # Nothing to do: levels within gap_db, one span only, or levelling off.
    assert level_window(audio, window, seg.spans, boost_db=40.0, gap_db=60.0) is audio
    assert level_window(audio, window, seg.spans[:1], boost_db=40.0, gap_db=10.0) is audio
    assert level_window(audio, window, seg.spans, boost_db=0.0, gap_db=10.0) is audio


def test_uncovered_speech_is_what_no_word_comes_near() -> None:
    from pipeline.asr.redecode import _uncovered
    from pipeline.core.types import Word

    words = [Word("a", 1.0, 1.5, 1.0), Word("b", 2.0, 2.4, 1.0), Word("c", 9.0, 9.5, 1.0)]
    # Speech 0-12 s: covered within 0.5 s of each word; 2.9-8.5 s and 10-12 s are not.
    assert _uncovered(0.0, 12.0, words, 0.5) == [(0.0, 0.5), (2.9, 8.5), (10.0, 12.0)]
    assert _uncovered(1.2, 2.2, words, 0.5) == []
    assert _uncovered(0.0, 5.0, [], 0.5) == [(0.0, 5.0)]
