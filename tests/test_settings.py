"""Settings: one validator per setting, so the CLI, the HTTP API and the UI refuse the same bad values with the
same words and fall back to the same defaults; guard and timing settings set from flags and the environment;
``auto`` resolved in one function with a reason per value."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers.jobs import api_client, api_settings

from pipeline.asr.models import ModelCache
from pipeline.cli import main
from pipeline.core.errors import UsageError
from pipeline.core.settings import DEFAULT_FORMATS, GuardSettings, Settings, TimingSettings
from pipeline.core.validate import RULES, parse_language
from pipeline.jobs.engine import Runner
from pipeline.parse import build_parser, settings_from_args, settings_from_env, settings_from_request
from pipeline.resolve import resolve
from workbench.service import JobManager
from workbench.ui.transcribe import form_request

#: A good UI form: (language, formats, batch_size, beam_size, vad, width, lines).
GOOD_FORM: dict[str, Any] = {
    "language": "en",
    "formats": ["srt"],
    "batch_size": 4,
    "beam_size": 5,
    "vad": True,
    "width": 42,
    "lines": 2,
}

#: (case, CLI flags, HTTP form fields, UI form changes, the message all three must give).
BAD_VALUES: list[tuple[str, list[str], dict[str, str], dict[str, Any], str]] = [
    (
        "batch size 0",
        ["--batch-size", "0"],
        {"batch_size": "0"},
        {"batch_size": 0},
        "bad --batch-size '0': use a whole number from 1 to 256, such as 8",
    ),
    (
        "batch size 1000",
        ["--batch-size", "1000"],
        {"batch_size": "1000"},
        {"batch_size": 1000},
        "bad --batch-size '1000': use a whole number from 1 to 256, such as 8",
    ),
    (
        "negative beam size",
        ["--beam-size", "-1"],
        {"beam_size": "-1"},
        {"beam_size": -1},
        "bad --beam-size '-1': use a whole number from 1 to 20, such as 5",
    ),
    (
        "too many lines",
        ["--max-lines", "99"],
        {"max_lines": "99"},
        {"lines": 99},
        "bad --max-lines '99': use a whole number from 1 to 10, such as 2",
    ),
    (
        "unknown format",
        ["-f", "docx"],
        {"formats": "docx"},
        {"formats": ["docx"]},
        "unknown output format 'docx': use one or more of srt, vtt, json, ass",
    ),
]


def _language_message() -> str:
    with pytest.raises(UsageError) as exc:
        parse_language("germn")
    return str(exc.value)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, model_cache: ModelCache) -> Iterator[TestClient]:
    settings = api_settings(tmp_path_factory.mktemp("settings-api"))
    manager = JobManager(settings, Runner(settings, model_cache))
    with api_client(manager) as client:
        yield client
    manager.close()


def _cli_error(args: list[str], data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code = main([str(data_dir / "jfk" / "jfk.wav"), *args, "--jobs-dir", str(tmp_path / "jobs"), "-o", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1, err  # one line
    return err.strip().removeprefix("video2srt: error: ")


def _api_error(client: TestClient, form: dict[str, str], data_dir: Path) -> str:
    path = data_dir / "jfk" / "jfk.wav"
    with open(path, "rb") as fh:
        r = client.post("/api/jobs", files={"file": (path.name, fh)}, data=form)
    assert r.status_code in (400, 422), r.text
    return str(r.json()["detail"])


def _ui_error(changes: dict[str, Any]) -> str:
    with pytest.raises(UsageError) as exc:
        form_request(Settings(), **{**GOOD_FORM, **changes})
    return str(exc.value)


@pytest.mark.parametrize("case, cli, form, ui, message", BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_the_three_edges_refuse_the_same_values_with_the_same_words(
    case: str,
    cli: list[str],
    form: dict[str, str],
    ui: dict[str, Any],
    message: str,
    api: TestClient,
    data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _cli_error(cli, data_dir, tmp_path, capsys) == message
    assert _api_error(api, form, data_dir) == message
    assert _ui_error(ui) == message


def test_a_bad_language_reads_the_same_everywhere(
    api: TestClient, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = _language_message()
    assert message.startswith("unknown --language 'germn'")
    assert _cli_error(["--language", "germn"], data_dir, tmp_path, capsys) == message
    assert _api_error(api, {"language": "germn"}, data_dir) == message
    assert _ui_error({"language": "germn"}) == message


def test_the_installed_command_exits_2_with_the_message(data_dir: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", str(data_dir / "jfk" / "jfk.wav"), "--batch-size", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "video2srt: error: bad --batch-size '0': use a whole number from 1 to 256, such as 8"


def test_the_edges_share_their_defaults(tmp_path: Path) -> None:
    cli = settings_from_args(build_parser().parse_args(["a.mp4"]), env={})
    request = settings_from_request(Settings(), {}, tmp_path)
    assert cli.output.formats == request.output.formats == DEFAULT_FORMATS == Settings().output.formats
    assert cli.transcribe.beam_size == request.transcribe.beam_size
    assert cli.subtitles == Settings().subtitles and cli.guard == GuardSettings() and cli.timing == TimingSettings()
    # The UI's sliders span the validators' ranges.
    assert (RULES["transcribe.batch_size"].low, RULES["transcribe.batch_size"].high) == (1, 256)


def test_good_values_pass_every_edge(tmp_path: Path) -> None:
    ns = build_parser().parse_args(["a.mp4", "--batch-size", "256", "--beam-size", "1", "--max-lines", "10"])
    cli = settings_from_args(ns, env={})
    request = settings_from_request(
        Settings(), {"batch_size": "256", "beam_size": "1", "max_lines": "10", "vad": "off"}, tmp_path
    )
    assert (cli.transcribe.batch_size, cli.transcribe.beam_size, cli.subtitles.max_lines) == (256, 1, 10)
    assert (request.transcribe.batch_size, request.transcribe.beam_size, request.subtitles.max_lines) == (256, 1, 10)
    assert not request.vad.enabled
    assert form_request(Settings(), **{**GOOD_FORM, "batch_size": 256.0})["batch_size"] == 256


def test_guard_and_timing_are_set_from_flags_and_the_environment() -> None:
    env = {
        "VIDEO2SRT_GUARD_COMPRESSION_RATIO": "2.0",
        "VIDEO2SRT_GUARD_MAX_LINE_REPEATS": "3",
        "VIDEO2SRT_TIMING_SHIFT_S": "0.05",
        "VIDEO2SRT_TIMING_ENABLED": "off",
    }
    s = settings_from_args(build_parser().parse_args(["a.mp4"]), env=env)
    assert (s.guard.compression_ratio, s.guard.max_line_repeats) == (2.0, 3)
    assert (s.timing.shift_s, s.timing.enabled) == (0.05, False)
    # A flag wins over the environment.
    ns = build_parser().parse_args(["a.mp4", "--compression-ratio-threshold", "2.2", "--no-speech-threshold", "0.5"])
    s = settings_from_args(ns, env=env)
    assert (s.guard.compression_ratio, s.guard.no_speech_prob) == (2.2, 0.5)
    with pytest.raises(UsageError, match="VIDEO2SRT_GUARD_LOOP_WORDS: bad .* 'many'"):
        settings_from_env(Settings(), {"VIDEO2SRT_GUARD_LOOP_WORDS": "many"})
    with pytest.raises(UsageError, match="bad --no-speech-threshold '2'"):
        settings_from_args(build_parser().parse_args(["a.mp4", "--no-speech-threshold", "2"]), env={})
    # Stored with the job and read back (an old job's settings, without them, take the defaults).
    round_trip = Settings.from_dict(s.to_dict())
    assert round_trip.guard == s.guard and round_trip.timing == s.timing
    old = {k: v for k, v in s.to_dict().items() if k not in ("guard", "timing")}
    assert Settings.from_dict(old).guard == GuardSettings()


def test_auto_is_resolved_in_one_place_with_a_reason_each() -> None:
    s, reasons = resolve(Settings())
    assert s.transcribe.batch_size > 0 and s.model.cpu_threads > 0 and s.model.replicas > 0
    assert s.model.name == "auto"  # a job picks its model when it knows the language
    assert set(reasons) == {"transcribe.batch_size", "model.cpu_threads", "model.replicas"}
    assert all(reason.strip() for reason in reasons.values())
    chosen, reasons = resolve(Settings(), language="en", pick_model=True)
    assert chosen.model.name == "tiny.en" and "English" in reasons["model.name"]
    # What the user chose is kept, and needs no reason.
    fixed = Settings().replace(
        transcribe=dataclasses.replace(Settings().transcribe, batch_size=3),
        model=dataclasses.replace(Settings().model, name="tiny.en", cpu_threads=1, replicas=1),
    )
    assert resolve(fixed, pick_model=True) == (fixed, {})
