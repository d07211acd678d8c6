"""Tests of the cue builder (the readability rules) and of the SRT / VTT / JSON writers."""

from __future__ import annotations

import html
import json
import math
import re
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pysubs2
import pytest
import srt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.errors import UsageError
from pipeline.core.settings import SubtitleSettings
from pipeline.core.types import Cue, SpeechSpan, TextSegment, Transcript, Word
from pipeline.text.cues import build_cues
from pipeline.text.writers import render, transcript_to_dict

DATA = Path(__file__).resolve().parent / "data"
DEFAULT = SubtitleSettings()
# An independent, deliberately simple notion of "CJK" for the checks: Han, kana, Hangul, CJK punctuation.
CJK = re.compile("[\u3000-\u9fff\uac00-\ud7af\uff00-\uffef]")
LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
HAN = (
    "我们你他她是的了在有这个人中大为上来说国年着就那和要出也得里后自以会家可下而过天去能对小多然于心学ひらがなカタカナ"
)
FRAME = 0.04

PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUND_TRIP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- strategies ------------------------------------------------------------------------------------

_short = st.text(LETTERS, min_size=1, max_size=10)
_long = st.text(LETTERS, min_size=43, max_size=60)  # longer than a default line
latin_words = st.builds(
    lambda core, mark: " " + core + mark,
    st.one_of(_short, _short, _short, _short, _short, _short, _long),
    st.sampled_from(["", "", "", "", "", ",", ".", "?", "!", ";", ":"]),
)
cjk_words = st.builds(
    lambda core, mark: core + mark,
    st.one_of(*[st.text(HAN, min_size=1, max_size=4)] * 6, st.text(HAN, min_size=17, max_size=24)),
    st.sampled_from(["", "", "", "", "，", "。", "、", "？", "！"]),
)
mixed_words = st.one_of(latin_words, latin_words, cjk_words, cjk_words, st.just("  "))

rules = st.one_of(
    st.just(DEFAULT),
    st.builds(
        SubtitleSettings,
        max_line_width=st.integers(12, 60),
        max_lines=st.integers(1, 3),
        cjk_line_width=st.integers(6, 20),
        max_cps=st.floats(8.0, 30.0),
        cjk_max_cps=st.floats(5.0, 20.0),
        min_duration=st.floats(0.3, 1.5),
        max_duration=st.floats(2.0, 10.0),
        tail=st.floats(0.0, 0.5),
    ),
)


@st.composite
def timed_words(draw: st.DrawFn, words: st.SearchStrategy[str], max_size: int = 60) -> list[Word]:
    """Words in time order, never overlapping; pauses from none to several seconds; a few very long words."""
    texts = draw(st.lists(words, max_size=max_size))
    t = draw(st.integers(0, 100_000))  # ms
    out = []
    for text in texts:
        t += draw(st.sampled_from([0, 0, 0, 0, 20, 100, 300, 800, 1500, 4000]))
        duration = draw(st.one_of(*[st.integers(20, 800)] * 5, st.integers(800, 9000)))
        out.append(Word(text, t / 1000, (t + duration) / 1000, 0.9))
        t += duration
    return out


@st.composite
def speech_spans(draw: st.DrawFn, words: Sequence[Word]) -> list[SpeechSpan]:
    if not words:
        return []
    end = int(words[-1].end * 1000) + 5000
    starts = sorted(set(draw(st.lists(st.integers(0, end), max_size=20))))
    return [SpeechSpan(s / 1000, (s + draw(st.integers(100, 3000))) / 1000) for s in starts]


def as_segments(words: Sequence[Word], size: int = 7) -> list[TextSegment]:
    chunks = [tuple(words[i : i + size]) for i in range(0, len(words), size)]
    return [TextSegment(c[0].start, c[-1].end, "".join(w.word for w in c), c) for c in chunks]


# --- checks ----------------------------------------------------------------------------------------


def ms(seconds: float) -> int:
    return round(seconds * 1000)


def kept(words: Sequence[Word]) -> list[Word]:
    return [w for w in words if w.word.strip()]


def words_per_line(cues: Sequence[Cue], words: Sequence[Word]) -> list[list[list[int]]]:
    """Which words each line holds; fails when a word is split, lost, repeated or out of order."""
    texts = ["".join(w.word.split()) for w in words]
    k = 0
    out = []
    for cue in cues:
        lines = []
        for line in cue.lines:
            flat, pos, held = "".join(line.split()), 0, []
            while pos < len(flat):
                assert k < len(texts), f"line {line!r} holds text that is not among the words"
                assert flat.startswith(texts[k], pos), f"line {line!r} does not go on with word {texts[k]!r}"
                pos += len(texts[k])
                held.append(k)
                k += 1
            lines.append(held)
        out.append(lines)
    assert k == len(texts), f"{len(texts) - k} words are missing from the cues"
    return out


def check_hard(cues: Sequence[Cue], words: Sequence[Word], rules: SubtitleSettings) -> list[list[int]]:
    """Every hard readability rule; returns the word indices (into ``kept(words)``) of each cue."""
    words = kept(words)
    layout = words_per_line(cues, words)
    for n, (cue, lines) in enumerate(zip(cues, layout)):
        assert cue.index == n + 1
        assert 1 <= len(cue.lines) <= rules.max_lines, cue
        for line, held in zip(cue.lines, lines):
            assert line and line == line.strip(), cue
            limit = rules.cjk_line_width if CJK.search(line) else rules.max_line_width
            assert len(line) <= limit or len(held) == 1, f"line too long: {line!r}"
        assert all(abs(t * 1000 - ms(t)) < 1e-6 for t in (cue.start, cue.end)), "times in whole ms"
        assert ms(cue.start) < ms(cue.end), cue
        assert ms(cue.end) - ms(cue.start) <= rules.max_duration * 1000 + 1e-6, cue
        held = [i for line in lines for i in line]
        assert ms(cue.start) == ms(words[held[0]].start), "a cue starts at its first word"
        for i in held[1:]:
            assert words[i].start - words[i - 1].end <= 1.0 + 1e-9, "a pause over 1 s ends a cue"
    for a, b in zip(cues, cues[1:]):
        assert ms(a.end) <= ms(b.start), (a, b)
    return [[i for line in lines for i in line] for lines in layout]


def next_speech(spans: Sequence[SpeechSpan], t: float) -> float:
    return min((s.start for s in spans if ms(s.start) > ms(t)), default=math.inf)


def check_soft(
    cues: Sequence[Cue], words: Sequence[Word], rules: SubtitleSettings, spans: Sequence[SpeechSpan] = ()
) -> None:
    """The soft rules wherever the next cue and the next speech leave room."""
    words = kept(words)
    held = check_hard(cues, words, rules)
    for n, cue in enumerate(cues):
        last = words[held[n][-1]]
        next_start = cues[n + 1].start if n + 1 < len(cues) else math.inf
        tail_end = last.end + rules.tail
        room = max(tail_end, next_speech(spans, last.end)) if spans else math.inf
        cps = rules.cjk_max_cps if any(CJK.search(line) for line in cue.lines) else rules.max_cps  # read by character
        need = max(rules.min_duration, sum(len(line) for line in cue.lines) / cps)
        longest = cue.start + rules.max_duration
        assert cue.end >= min(tail_end, next_start, longest) - 0.002, "the tail is kept when there is room"
        assert cue.end >= min(cue.start + need, next_start, room, longest) - 0.002, "min duration / cps"
        assert cue.end <= room + 0.001 or cue.end == next_start, "no extension into the next speech"
        gap = next_start - cue.end
        assert gap == 0 or gap >= FRAME - 1e-6 or next_start - cue.start > rules.max_duration, "sub-frame gap"


def transcript(cues: list[Cue], segments: list[TextSegment] | None = None) -> Transcript:
    return Transcript("en", 12.5, "tiny.en", segments or [], cues, {"decode": 0.1234, "total": 2.0})


def timed(text: str, step: float = 0.3, start: float = 0.0) -> list[Word]:
    return [Word(" " + w, start + i * step, start + (i + 1) * step, 0.9) for i, w in enumerate(text.split())]


def all_text(cues: Sequence[Cue]) -> str:
    return " ".join(line for cue in cues for line in cue.lines)


# --- properties ------------------------------------------------------------------------------------


@PROPERTY
@given(data=st.data(), rules=rules)
def test_latin_words_keep_every_hard_rule(data: st.DataObject, rules: SubtitleSettings) -> None:
    words = data.draw(timed_words(latin_words))
    cues = build_cues(as_segments(words), rules)
    check_hard(cues, words, rules)
    assert all_text(cues).split() == [w.word.strip() for w in words]


@PROPERTY
@given(data=st.data(), rules=rules)
def test_cjk_words_keep_every_hard_rule(data: st.DataObject, rules: SubtitleSettings) -> None:
    words = data.draw(timed_words(cjk_words))
    cues = build_cues(as_segments(words), rules)
    check_hard(cues, words, rules)
    assert "".join(line for c in cues for line in c.lines) == "".join(w.word for w in words)


@PROPERTY
@given(data=st.data(), rules=rules)
def test_mixed_words_keep_every_hard_rule(data: st.DataObject, rules: SubtitleSettings) -> None:
    words = data.draw(timed_words(mixed_words))
    check_hard(build_cues(as_segments(words), rules), words, rules)


@PROPERTY
@given(data=st.data(), rules=rules)
def test_soft_rules_hold_where_there_is_room(data: st.DataObject, rules: SubtitleSettings) -> None:
    words = data.draw(timed_words(mixed_words))
    check_soft(build_cues(as_segments(words), rules), words, rules)


@PROPERTY
@given(data=st.data(), rules=rules)
def test_cues_are_not_extended_into_the_next_speech(data: st.DataObject, rules: SubtitleSettings) -> None:
    words = data.draw(timed_words(latin_words))
    spans = data.draw(speech_spans(words))
    check_soft(build_cues(as_segments(words), rules, spans), words, rules, spans)


@PROPERTY
@given(text=st.lists(st.one_of(latin_words, cjk_words), max_size=40), duration=st.integers(0, 20_000))
def test_segments_without_word_times_are_spread_over_their_time(text: list[str], duration: int) -> None:
    joined = "".join(text)
    segment = TextSegment(3.0, 3.0 + duration / 1000, joined, ())
    cues = build_cues([segment], DEFAULT)
    assert "".join("".join(line for c in cues for line in c.lines).split()) == "".join(joined.split())
    for cue in cues:
        assert cue.start >= 3.0
        assert len(cue.lines) <= DEFAULT.max_lines
        for line in cue.lines:
            assert len(line) <= (DEFAULT.cjk_line_width if CJK.search(line) else DEFAULT.max_line_width) or (
                " " not in line and not CJK.search(line)
            )
    for a, b in zip(cues, cues[1:]):
        assert a.end <= b.start


@ROUND_TRIP
@given(data=st.data(), rules=rules)
def test_srt_and_vtt_round_trip(data: st.DataObject, rules: SubtitleSettings) -> None:
    words = data.draw(timed_words(st.one_of(latin_words, cjk_words), max_size=30))
    segments = as_segments(words)
    cues = build_cues(segments, rules)
    doc = transcript(cues, segments)

    text = render(doc, "srt")
    assert "\\N" not in text
    parsed = list(srt.parse(text))
    assert [(s.index, s.start, s.end, s.content) for s in parsed] == [
        (n + 1, timedelta(milliseconds=ms(c.start)), timedelta(milliseconds=ms(c.end)), c.text)
        for n, c in enumerate(cues)
    ]
    events = pysubs2.SSAFile.from_string(text, format_="srt").events
    assert [(e.start, e.end, e.plaintext) for e in events] == [(ms(c.start), ms(c.end), c.text) for c in cues]

    vtt = render(doc, "vtt")
    assert vtt.startswith("WEBVTT")
    events = pysubs2.SSAFile.from_string(vtt, format_="vtt").events
    assert [(e.start, e.end, html.unescape(e.plaintext)) for e in events] == [
        (ms(c.start), ms(c.end), c.text) for c in cues
    ]

    data_out = json.loads(render(doc, "json"))
    assert [(c["start"], c["end"], c["lines"]) for c in data_out["cues"]] == [
        (ms(c.start) / 1000, ms(c.end) / 1000, list(c.lines)) for c in cues
    ]


# --- concrete cases --------------------------------------------------------------------------------


def test_a_sentence_end_is_preferred_to_a_balanced_cut() -> None:
    text = (
        "We arrived late. Then everybody sat down at the long table and talked about the journey "
        "until it was very dark outside."
    )
    cues = build_cues(as_segments(timed(text, 0.25)), DEFAULT)
    assert cues[0].text == "We arrived late."
    check_soft(cues, timed(text, 0.25), DEFAULT)


def test_a_clause_end_is_preferred_inside_a_long_sentence() -> None:
    text = (
        "When the rain finally stopped late in the evening, all of the children ran outside to play "
        "in the deep puddles near the old barn"
    )
    cues = build_cues(as_segments(timed(text, 0.25)), DEFAULT)
    assert len(cues) == 2
    assert cues[0].lines[-1].endswith("evening,")


def test_two_lines_are_balanced_with_the_top_not_shorter() -> None:
    # Filling greedily would leave "and" alone on the bottom line.
    text = "the quick brown fox jumps over the lazy dog and"
    (cue,) = build_cues(as_segments(timed(text, 0.2)), DEFAULT)
    assert cue.lines == ("the quick brown fox jumps", "over the lazy dog and")
    text = "the quick brown fox jumps over the lazy dog while the farmer watches"
    (cue,) = build_cues(as_segments(timed(text, 0.2)), DEFAULT)
    top, bottom = cue.lines
    assert 0 <= len(top) - len(bottom) <= 5


def test_a_cjk_sentence_breaks_at_punctuation_without_spaces() -> None:
    text = "今天天气很好，我们一起去公园散步吧。"
    words = [Word(ch, i * 0.2, (i + 1) * 0.2, 0.9) for i, ch in enumerate(re.findall(r".[，。]?", text))]
    (cue,) = build_cues(as_segments(words), DEFAULT)
    assert cue.lines == ("今天天气很好，", "我们一起去公园散步吧。")
    check_soft([cue], words, DEFAULT)


def test_cjk_text_without_word_times_uses_the_cjk_width() -> None:
    text = "我们今天来讨论一下人工智能的发展，以及它对社会的影响。这是一个非常重要的话题，我们需要认真对待。"
    cues = build_cues([TextSegment(0.0, 10.0, text, ())], DEFAULT)
    assert "".join(line for c in cues for line in c.lines) == text
    assert all(len(line) <= DEFAULT.cjk_line_width for c in cues for line in c.lines)
    assert cues[0].lines[-1].endswith("。")


def test_mixed_latin_and_cjk_join_latin_with_spaces_only() -> None:
    words = [Word(w, i * 0.3, (i + 1) * 0.3, 0.9) for i, w in enumerate(["我用", " Python", "写代码。"])]
    (cue,) = build_cues(as_segments(words), DEFAULT)
    assert cue.lines == ("我用Python写代码。",)
    # A line with CJK characters gets the CJK width, counted in characters.
    texts = ["我用", " Python", " and", " Rust", "写代码。"]
    words = [Word(w, i * 0.3, (i + 1) * 0.3, 0.9) for i, w in enumerate(texts)]
    (cue,) = build_cues(as_segments(words), DEFAULT)
    assert len(cue.lines) == 2 and all(len(line) <= DEFAULT.cjk_line_width for line in cue.lines)
    assert " ".join(cue.lines) == "我用Python and Rust写代码。"


def test_korean_keeps_its_spaces() -> None:
    words = timed("안녕하세요 여러분 오늘은 날씨가 정말 좋네요")
    cues = build_cues(as_segments(words), DEFAULT)
    assert all_text(cues).split() == [w.word.strip() for w in words]
    assert all(len(line) <= DEFAULT.cjk_line_width for c in cues for line in c.lines)


def test_a_long_pause_ends_a_cue_and_tiny_fragments_merge() -> None:
    words = timed("Yes. I think so.") + timed("Right.", start=5.0)
    cues = build_cues(as_segments(words), DEFAULT)
    assert [c.text for c in cues] == ["Yes. I think so.", "Right."]
    check_soft(cues, words, DEFAULT)


def test_short_cue_stays_longer_but_not_into_the_next_speech() -> None:
    words = [Word(" Hi.", 0.0, 0.2, 0.9), Word(" Bye.", 5.0, 5.2, 0.9)]
    free = build_cues(as_segments(words), DEFAULT)
    assert free[0].end == pytest.approx(DEFAULT.min_duration)
    bounded = build_cues(as_segments(words), DEFAULT, [SpeechSpan(0.0, 0.2), SpeechSpan(0.6, 0.9)])
    assert bounded[0].end == pytest.approx(0.6)
    crowded = build_cues(as_segments([words[0], Word(" there", 0.25, 0.5, 0.9)]), DEFAULT)
    assert crowded[0].start == 0.0 and crowded[0].end >= 0.8


def test_a_word_longer_than_the_maximum_duration_is_cut_to_it() -> None:
    (cue,) = build_cues(as_segments([Word(" Hmmmm", 1.0, 12.0, 0.5)]), DEFAULT)
    assert (cue.start, cue.end) == (1.0, 1.0 + DEFAULT.max_duration)


def test_sub_frame_gaps_are_closed() -> None:
    words = timed("One two three four five six seven eight nine ten eleven twelve.", 0.6)
    words += [Word(" Next.", words[-1].end + 0.32, words[-1].end + 0.9, 0.9)]
    cues = build_cues(as_segments(words), DEFAULT)
    assert cues[0].end == cues[1].start


def test_empty_words_are_skipped_and_empty_input_gives_empty_files() -> None:
    assert build_cues([], DEFAULT) == []
    assert build_cues([TextSegment(0, 1, " ", (Word(" ", 0, 1, 0.1),))], DEFAULT) == []
    empty = transcript([])
    assert render(empty, "srt") == ""
    assert list(srt.parse(render(empty, "srt"))) == []
    assert pysubs2.SSAFile.from_string(render(empty, "vtt"), format_="vtt").events == []
    assert render(empty, "vtt").startswith("WEBVTT")
    assert json.loads(render(empty, "json"))["cues"] == []


def test_jfk_text_with_synthetic_times() -> None:
    text = (DATA / "jfk" / "jfk.txt").read_text(encoding="utf-8")
    words = timed(text, 0.3, start=0.5)
    cues = build_cues(as_segments(words), DEFAULT, [SpeechSpan(0.3, words[-1].end + 0.2)])
    check_soft(cues, words, DEFAULT)
    assert all_text(cues).split() == text.split()
    assert cues[-1].lines[-1].endswith("country.")
    assert all(c.lines[-1][-1] in ",." for c in cues), "every cue ends at punctuation"


def test_twenty_thousand_words_are_fast() -> None:
    marks = {0: ",", 5: "."}
    words = timed(" ".join(f"word{i % 97}{marks.get(i % 13, '')}" for i in range(20_000)))
    started = time.perf_counter()
    cues = build_cues(as_segments(words, 30), DEFAULT)
    assert time.perf_counter() - started < 10
    assert sum(len(line.split()) for c in cues for line in c.lines) == 20_000


# --- writers ---------------------------------------------------------------------------------------


def test_srt_layout_numbers_times_and_line_breaks() -> None:
    cues = [Cue(1, 0.0, 1.5, ("Hello there,", "my friend.")), Cue(2, 3661.001, 3662.25, ("Bye.",))]
    text = render(transcript(cues), "srt")
    assert text.splitlines()[:5] == ["1", "00:00:00,000 --> 00:00:01,500", "Hello there,", "my friend.", ""]
    assert "2\n01:01:01,001 --> 01:01:02,250\nBye.\n" in text


def test_writers_never_overlap_or_empty_cues_after_rounding() -> None:
    cues = [
        Cue(1, 1.0004, 1.0006, ("a",)),
        Cue(2, 1.0005, 2.0, ("b",)),
        Cue(3, 2.5, 3.0, ("  ",)),
        Cue(4, 3.0, 4.0, ("two\nlines",)),
    ]
    parsed = list(srt.parse(render(transcript(cues), "srt")))
    assert [s.content for s in parsed] == ["a", "b", "two\nlines"]
    for sub in parsed:
        assert sub.start < sub.end
    for a, b in zip(parsed, parsed[1:]):
        assert a.end <= b.start
    data = json.loads(render(transcript(cues), "json"))
    assert [c["index"] for c in data["cues"]] == [1, 2, 3]
    assert [(c["start"], c["end"]) for c in data["cues"]] == [
        (s.start.total_seconds(), s.end.total_seconds()) for s in parsed
    ]


def test_markup_like_text_survives() -> None:
    cues = [Cue(1, 0.0, 1.0, ("{music} AT&T <b>", "a --> b"))]
    doc = transcript(cues)
    assert "\n{music} AT&T <b>\na --> b\n" in render(doc, "srt")
    vtt = render(doc, "vtt")
    assert "AT&amp;T &lt;b&gt;" in vtt and "a --&gt; b" in vtt
    assert render(doc, "ass").startswith("[Script Info]")


def test_json_follows_the_spec() -> None:
    words = timed("Ask not what your country can do for you.")
    segments = as_segments(words, 100)
    doc = transcript(build_cues(segments, DEFAULT), segments)
    data = json.loads(render(doc, "json"))
    assert data == transcript_to_dict(doc)
    assert set(data) == {
        "language",
        "language_probability",
        "language_warning",
        "duration",
        "model",
        "model_reason",
        "segments",
        "cues",
        "timings",
        "task",
    }
    assert (data["language"], data["duration"], data["model"]) == ("en", 12.5, "tiny.en")
    assert set(data["segments"][0]) == {"start", "end", "text", "words"}
    assert set(data["segments"][0]["words"][0]) == {"word", "start", "end", "probability"}
    assert set(data["cues"][0]) == {"index", "start", "end", "lines"}
    assert data["timings"] == {"decode": 0.123, "total": 2.0}
    assert data["segments"][0]["text"] == "Ask not what your country can do for you."
    assert "不" in render(transcript([Cue(1, 0, 1, ("不",))]), "json")  # not escaped


def test_unknown_format_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        render(transcript([]), "docx")
