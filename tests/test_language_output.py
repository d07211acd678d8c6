"""Languages other than English: Chinese subtitles, translation, nothing spoken lost.

The multilingual model is Whisper base (fixture ``multilingual_model``), loaded once for the module.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import jiwer
import numpy as np
import pytest
import srt
from conftest import with_parts
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pipeline.asr.models import ModelCache
from pipeline.asr.timing import refine_words
from pipeline.cli import main
from pipeline.core.settings import ModelSettings, Settings, SubtitleSettings
from pipeline.core.types import SpeechSpan, TextSegment, Word
from pipeline.jobs.engine import Runner
from pipeline.media.segments import segment_audio
from pipeline.media.vad import SileroVad
from pipeline.text import cjk
from pipeline.text.cues import build_cues

# The multilingual model through whole jobs: the full suite runs these, the fast loop does not.
pytestmark = pytest.mark.heavy

HAN = re.compile("[\u4e00-\u9fff]")
ENGLISH = {"the", "a", "of", "and", "to", "in", "is", "that", "they", "for", "on", "it", "with", "be", "can"}


@pytest.fixture(scope="module")
def runner(multilingual_model: str, tmp_path_factory: pytest.TempPathFactory) -> Runner:
    s = Settings(model=ModelSettings(name=multilingual_model, device="cpu", compute_type="int8"))
    s = with_parts(s, jobs={"jobs_dir": tmp_path_factory.mktemp("jobs")}, cluster={"workers": 0})
    r = Runner(s, ModelCache())
    yield r
    r.close()


def run(runner: Runner, path: Path, settings: Settings, **parts: dict) -> tuple[object, dict[str, Path]]:
    s = with_parts(settings, model={"name": runner.settings.model.name}, cluster={"workers": 0}, **parts)
    result = runner.run(path, s)
    return result, result.outputs


def cues(path: Path) -> list[srt.Subtitle]:
    return list(srt.parse(path.read_text(encoding="utf-8")))


def zh_reference(data_dir: Path) -> dict[str, str]:
    lines = (data_dir / "zh" / "text").read_text(encoding="utf-8").splitlines()
    return {line.split(maxsplit=1)[0]: line.split(maxsplit=1)[1] for line in lines if line.strip()}


def cer(reference: str, hypothesis: str) -> float:
    def clean(text: str) -> str:
        return "".join(ch for ch in text if not ch.isspace() and not unicodedata.category(ch).startswith("P"))

    return jiwer.cer(clean(reference), clean(hypothesis))


# --- nothing spoken is lost ------------------------------------------------------------------------------


def test_vad_keeps_the_span_closed_by_the_last_frame(data_dir: Path) -> None:
    import soundfile as sf

    samples, rate = sf.read(data_dir / "fleurs_multi" / "fleurs-de-003.ogg", dtype="float32")
    assert rate == 16000
    segments, metrics = segment_audio(samples, Settings().vad, SileroVad())
    assert segments and metrics.speech_seconds > 5.0 and not metrics.fallback


def test_a_first_word_at_the_very_start_is_kept_and_silence_before_one_is_not(data_dir: Path) -> None:
    from pipeline.media.decode import decode_all

    def first_start(path: Path) -> float:
        segments, _ = segment_audio(decode_all(path), Settings().vad, SileroVad())
        return segments[0].spans[0].start

    assert first_start(data_dir / "zh" / "TEST_MEETING_T0000000001_S00000.wav") == 0.0  # "好" at 0-0.4 s
    assert first_start(data_dir / "jfk" / "jfk.wav") > 0.1  # 0.35 s of silence before "And"


def test_noise_without_speech_falls_back_to_fixed_windows() -> None:
    noise = np.random.default_rng(1).normal(0, 10 ** (-30 / 20), 16000 * 8).astype(np.float32)
    segments, metrics = segment_audio(noise, Settings().vad, SileroVad())
    assert segments and "fixed" in metrics.fallback and metrics.to_dict()["fallback"] == metrics.fallback


def test_quiet_german_clip_is_transcribed(runner: Runner, settings: Settings, data_dir: Path) -> None:
    _, out = run(runner, data_dir / "fleurs_multi" / "fleurs-de-003.ogg", settings, transcribe={"language": "de"})
    text = " ".join(c.content for c in cues(out["srt"])).lower()
    assert {"männer", "frauen", "juden"} & set(re.findall(r"\w+", text)), text


def test_coverage_guard_keeps_the_speech_base_skipped(runner: Runner, settings: Settings, data_dir: Path) -> None:
    _, out = run(runner, data_dir / "video" / "manifesto.mp4", settings, transcribe={"language": "en"})
    data = json.loads(out["json"].read_text())
    words = [w for seg in data["segments"] for w in seg["words"] if 10.8 <= w["start"] <= 29.8]
    assert len(words) >= 20, words
    # Whether the first pass skips this stretch depends on the CPU's int8 numerics (it does on some machines,
    # not on others), so the guard itself is tested on a fixed case in test_transcribe.py; here every stretch
    # it decoded again must be said in the JSON.
    assert len(data.get("recovered", [])) == data["timings"]["coverage_redecodes"], data.get("recovered")


# --- Chinese ---------------------------------------------------------------------------------------------


def check_cjk_rules(subs: list[srt.Subtitle]) -> None:
    assert subs
    for sub in subs:
        lines = sub.content.splitlines()
        assert 1 <= len(lines) <= 2, sub
        for line in lines:
            assert len(line) <= 16, line
            assert not re.search(f"{HAN.pattern}\\s+{HAN.pattern}", line), line


@pytest.mark.parametrize(("clip", "bound"), [("TEST_MEETING_T0000000001_S00000", 0.45), ("BAC009S0764W0121", 0.2)])
def test_chinese_subtitles_follow_the_rules(
    runner: Runner, settings: Settings, data_dir: Path, clip: str, bound: float
) -> None:
    _, out = run(runner, data_dir / "zh" / f"{clip}.wav", settings, transcribe={"language": "zh"})
    subs = cues(out["srt"])
    check_cjk_rules(subs)
    text = "".join(sub.content.replace("\n", "") for sub in subs)
    assert cjk.convert(text, "simplified") == text  # Simplified already: OpenCC t2s changes nothing
    assert cer(zh_reference(data_dir)[clip], text) <= bound
    data = json.loads(out["json"].read_text())
    assert data["chinese"] == "simplified" and data["task"] == "transcribe"


def test_traditional_chinese(runner: Runner, settings: Settings, data_dir: Path) -> None:
    clip = data_dir / "zh" / "BAC009S0764W0121.wav"
    _, out = run(runner, clip, settings, transcribe={"language": "zh"}, subtitles={"chinese": "traditional"})
    text = "".join(sub.content for sub in cues(out["srt"]))
    assert cjk.convert(text, "simplified") != text and "現" in text  # 出现 → 出現


def test_tokens_are_joined_into_words_with_their_times() -> None:
    tokens = [("我们", 0.0, 0.3), ("经", 0.3, 0.5), ("历", 0.5, 0.7), ("了", 0.7, 0.8), ("GPT", 0.8, 1.0)]
    tokens += [("-", 1.0, 1.1), ("4", 1.1, 1.2), ("，", 1.2, 1.2), ("很", 1.3, 1.5), ("好", 1.5, 1.7)]
    merged = cjk.merge_words([Word(t, a, b, 0.9) for t, a, b in tokens])
    texts = [w.word for w in merged]
    assert "".join(texts) == "".join(t for t, _, _ in tokens)
    assert "经历" in texts and "GPT-4，" in texts
    first = next(w for w in merged if w.word == "经历")
    assert (first.start, first.end) == (0.3, 0.7)


def test_a_chinese_character_after_a_pause_starts_late() -> None:
    words = (Word("首先", 1.0, 1.5, 0.9), Word("说", 11.94, 14.42, 0.9), Word("完", 14.42, 14.6, 0.9))
    seg = TextSegment(1.0, 14.6, "首先说完", words)
    refined = refine_words([seg], [SpeechSpan(0.9, 15.0)])[0].words
    assert refined[1].end - refined[1].start <= 0.7 + 1e-6 and refined[1].start > 13.5


_HANZI = st.sampled_from(list("我们今天在会议上讨论了模型和预算的问题首先说一下刚才这个经理完销售商场半年业绩部门汇报"))
_PUNCT = st.sampled_from(list("，。！？；：、"))
_LATIN = st.from_regex(r"[A-Za-z]{1,8}|[0-9]{1,4}(\.[0-9])?", fullmatch=True)


@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(_HANZI, _HANZI, _HANZI, _PUNCT, _LATIN.map(lambda w: f" {w} ")), min_size=1, max_size=80))
def test_cjk_line_breaking_property(parts: list[str]) -> None:
    text = "".join(parts).strip()
    if not text or not HAN.search(text):
        return
    seg = TextSegment(0.0, max(1.0, len(text) * 0.25), text, ())
    rules = SubtitleSettings()
    lines = [line for cue in build_cues([seg], rules) for line in cue.lines]
    assert all(len(line) <= rules.cjk_line_width for line in lines), lines
    assert all(len(cue.lines) <= rules.max_lines for cue in build_cues([seg], rules))
    # Nothing inserted, nothing lost, no space between Han characters.
    assert re.sub(r"\s", "", "".join(lines)) == re.sub(r"\s", "", text)
    assert not any(re.search(f"{HAN.pattern}\\s+{HAN.pattern}", line) for line in lines)
    # Latin words and numbers are never split across lines.
    shown = [set(re.findall(r"[A-Za-z0-9]+(?:\.[0-9])?", line)) for line in lines]
    for word in re.findall(r"[A-Za-z0-9]+(?:\.[0-9])?", text):
        assert any(word in found for found in shown), (word, lines)


# --- translation ---------------------------------------------------------------------------------------


def english_share(text: str) -> float:
    words = re.findall(r"[a-z']+", text.lower())
    return sum(w in ENGLISH for w in words) / max(1, len(words))


def test_translate_task_writes_english(runner: Runner, settings: Settings, data_dir: Path) -> None:
    clip = data_dir / "fleurs_multi" / "fleurs-es-001.ogg"
    # --chinese on a file that is not Chinese is ignored with a note.
    _, out = run(
        runner, clip, settings, transcribe={"language": "es", "task": "translate"}, subtitles={"chinese": "traditional"}
    )
    text = " ".join(c.content for c in cues(out["srt"]))
    assert sum(ch.isascii() for ch in text) / len(text) > 0.98 and english_share(text) > 0.15, text
    assert out["srt"].name == "fleurs-es-001.srt"  # one language: names as before
    data = json.loads(out["json"].read_text())
    assert data["task"] == "translate" and data["language"] == "en"
    assert "ignored" in data["chinese_note"] and "chinese" not in data


def test_translation_beside_the_transcription_and_bilingual(runner: Runner, settings: Settings, data_dir: Path) -> None:
    clip = data_dir / "fleurs_multi" / "fleurs-de-000.ogg"
    _, out = run(runner, clip, settings, transcribe={"language": "de", "translate": True}, output={"bilingual": True})
    assert out["srt"].name == "fleurs-de-000.de.srt" and out["en.srt"].name == "fleurs-de-000.en.srt"
    assert out["bilingual.srt"].name == "fleurs-de-000.de-en.srt"
    german = " ".join(c.content for c in cues(out["srt"]))
    english = " ".join(c.content for c in cues(out["en.srt"]))
    assert english_share(english) > english_share(german) + 0.1, (german, english)
    both = cues(out["bilingual.srt"])
    assert both and all(len(c.content.splitlines()) == 2 for c in both)
    assert english_share(" ".join(c.content.splitlines()[1] for c in both)) > 0.15
    assert both[0].content.splitlines()[0] in german.replace("\n", " ") or both[0].content.split()[0] in german


def test_translate_with_an_english_only_model_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["x.wav", "--task", "translate", "--model", "tiny.en"]) == 2
    assert "multilingual" in capsys.readouterr().err
    assert main(["x.wav", "--translate", "--task", "translate", "--model", "base"]) == 2


def test_api_fields_task_and_chinese(tmp_path: Path) -> None:
    from pipeline.core.errors import UsageError
    from pipeline.parse import settings_from_request as job_settings

    base = Settings(model=ModelSettings(name="base"))
    s = job_settings(base, {"task": "translate", "chinese": "traditional"}, tmp_path)
    assert (s.transcribe.task, s.subtitles.chinese) == ("translate", "traditional")
    assert job_settings(base, {"chinese": "simplified"}, tmp_path).transcribe.task == "transcribe"
    for bad in ({"task": "summarise"}, {"chinese": "cantonese"}):
        with pytest.raises(UsageError):
            job_settings(base, bad, tmp_path)
    with pytest.raises(UsageError, match="multilingual"):
        job_settings(Settings(model=ModelSettings(name="tiny.en")), {"task": "translate"}, tmp_path)


def test_cli_flags_reach_the_settings() -> None:
    from pipeline.parse import build_parser, settings_from_args

    s = settings_from_args(build_parser().parse_args(["a.mp4", "--model", "base", "--bilingual", "--chinese", "keep"]))
    assert s.transcribe.translate and s.output.bilingual and s.output.name_language is None
    assert s.subtitles.chinese == "keep" and s.transcribe.task == "transcribe"
    s = settings_from_args(build_parser().parse_args(["a.mp4", "--no-name-language", "--cjk-max-cps", "7"]))
    assert s.output.name_language is False and s.subtitles.cjk_max_cps == 7 and not s.transcribe.translate
    assert "task" in Settings().fingerprint_fields()["transcribe"]
