"""The tuning library behind the notebooks: test recordings, grids, memory sampling, recommendations, scoring."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from pipeline.core.errors import InputError, UsageError
from pipeline.core.settings import VadSettings
from pipeline.lab import evaluation
from pipeline.lab.inputs import base_settings, mix_clips
from pipeline.lab.memory import MemorySampler, tree_rss_bytes
from pipeline.lab.plots import cluster_memory_figure, job_progress_figure
from pipeline.lab.recommend import recommend
from pipeline.lab.sweeps import VAD_FIELDS, default_thread_counts, throughput_grid, vad_grid, vad_label
from pipeline.lab.watch import cluster_available, cluster_report, open_runner, watch_jobs


def test_mix_clips_joins_whole_clips_with_pauses_and_keeps_the_reference_exact(data_dir: Path, tmp_path: Path) -> None:
    clips = evaluation.select_clips("jfk,fleurs_en", data_dir)
    mix = mix_clips(clips, tmp_path, seconds=20, long_pause_s=3.0, long_pause_every_s=10.0)
    samples, rate = soundfile.read(str(mix.path), dtype="float32")
    assert rate == 16000 and samples.size / rate >= 20
    used = mix.ref.count(" ") + 1
    # Whole clips in order: the reference starts with jfk's and holds only complete references.
    assert mix.ref.startswith(clips[0].ref) and clips[1].ref in mix.ref
    assert used < sum(c.ref.count(" ") + 1 for c in clips)
    # The long pause is real digital silence of at least 3 s somewhere after the first clip.
    silent = np.abs(samples) < 1e-6
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], silent.astype(np.int8), [0]]))))[::2]
    assert runs.max() >= 3.0 * 16000
    again = mix_clips(clips, tmp_path, seconds=20, long_pause_s=3.0, long_pause_every_s=10.0)
    assert again.path == mix.path and again.ref == mix.ref


def test_select_clips_rejects_unknown_sets(data_dir: Path) -> None:
    assert {c.set for c in evaluation.select_clips("all", data_dir)} == set(evaluation.SET_NAMES)
    with pytest.raises(InputError, match="unknown data set"):
        evaluation.select_clips("jfk,nope", data_dir)
    with pytest.raises(InputError, match="not found"):
        evaluation.data_dir("/nonexistent/data")


def test_corpus_wer_normalises_before_counting() -> None:
    assert evaluation.corpus_wer(["Hello, World! It's 25 degrees."], ["hello world it is twenty five degrees"]) == 0.0
    assert evaluation.corpus_wer(["the cat sat down"], ["the cat down"]) == pytest.approx(0.25)


def test_vad_grid_spans_every_combination_and_adds_the_defaults() -> None:
    grid = vad_grid([0.3, 0.6], [250], [(10, 30), (20, 60)])
    assert len(grid) == 5 and grid[-1] == VadSettings()
    assert {(v.threshold, v.min_segment_s, v.max_segment_s, v.target_segment_s) for v in grid[:4]} == {
        (0.3, 10, 30, 20),
        (0.3, 20, 60, 40),
        (0.6, 10, 30, 20),
        (0.6, 20, 60, 40),
    }
    d = VadSettings()
    assert len(vad_grid([d.threshold], [d.min_silence_ms], [(d.min_segment_s, d.max_segment_s)])) == 1
    for bad in (([1.5], [500], [(30, 90)]), ([0.5], [-1], [(30, 90)]), ([0.5], [500], [(60, 30)])):
        with pytest.raises(UsageError):
            vad_grid(*bad)


def _vad_row(vad: VadSettings, wer: float, windows: int) -> dict:
    return {
        "kind": "vad",
        "label": vad_label(vad),
        "vad": dataclasses.asdict(vad),
        "default": vad == VadSettings(),
        "wer": wer,
        "windows": windows,
        "segments": 1,
        "segment_mean_s": 1.0,
        "speech_ratio": 0.5,
        "silence_skipped_s": 0.0,
        **{k: getattr(vad, k) for k in VAD_FIELDS},
    }


def test_recommend_keeps_defaults_within_tolerance_and_otherwise_takes_the_best() -> None:
    low = VadSettings(threshold=0.3)
    rows = [_vad_row(VadSettings(), 0.100, 4), _vad_row(low, 0.097, 3)]
    kept = recommend(rows)
    assert kept.settings == VadSettings() and "keep them" in kept.reason
    rows = [_vad_row(VadSettings(), 0.100, 4), _vad_row(low, 0.080, 5), _vad_row(VadSettings(threshold=0.4), 0.084, 3)]
    better = recommend(rows)
    # 0.084 is within half a point of the best 0.080 and needs fewer windows.
    assert better.settings == VadSettings(threshold=0.4) and "threshold=0.4" in better.text
    with pytest.raises(UsageError):
        recommend(rows + [{"kind": "throughput"}])


def test_recommend_throughput_prefers_less_memory_among_equally_fast_runs() -> None:
    def row(batch: int, rtf: float, mb: float, optimizer: bool = False) -> dict:
        return {
            "kind": "throughput",
            "label": f"batch {batch}",
            "batch_size": batch,
            "cpu_threads": 2,
            "workers": 0,
            "rtf": rtf,
            "peak_rss_mb": mb,
            "error": None,
            "optimizer": optimizer,
        }

    rows = [row(1, 0.102, 300), row(8, 0.100, 400, optimizer=True), row(16, 0.150, 500)]
    rec = recommend(rows)
    assert rec.settings == {"batch_size": 1, "cpu_threads": 2, "workers": 0} and rec.baseline["batch_size"] == 8
    assert recommend(rows, tolerance=0.0).settings["batch_size"] == 8
    assert recommend(rows + [row(32, 0.05, 900)], memory_limit_mb=600).settings["batch_size"] == 1


def test_memory_sampler_sees_a_child_process_allocating(tmp_path: Path) -> None:
    code = "import time, numpy as np; a = np.ones(200 * 2**20 // 8); time.sleep(1.0)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    with MemorySampler(proc.pid) as mem:
        proc.wait(timeout=60)
    assert mem.peak_rss_mb >= 200 and len(mem.series) > 5
    assert tree_rss_bytes(proc.pid) == 0  # gone


def test_throughput_grid_adds_the_optimizers_choice() -> None:
    combos = throughput_grid([1, 8], [1], optimizer={"batch_size": 4, "workers": 0, "cpu_threads": 2})
    assert combos[-1] == {"batch_size": 4, "workers": 0, "cpu_threads": 2} and len(combos) == 3
    assert {c["cpu_threads"] for c in throughput_grid([1], [])} == set(default_thread_counts())
    with pytest.raises(UsageError):
        throughput_grid([0], [1])
    if not cluster_available():
        with pytest.raises(UsageError, match="pipeline.backends.dask"):
            throughput_grid([1], [1], [2])


def test_watch_jobs_in_process_records_progress_and_memory(data_dir: Path, tmp_path: Path) -> None:
    settings = base_settings(tmp_path, device="cpu", batch_size=8)
    runner, ready_s = open_runner(settings)
    try:
        assert ready_s > 0
        watch = watch_jobs(runner, evaluation.select_clips("jfk", data_dir), settings, every_s=0.2)
    finally:
        runner.close()
    [job] = watch.jobs
    assert job["error"] is None and job["wer"] is not None and job["wer"] < 0.1
    assert job["audio_s"] == pytest.approx(11, abs=0.1)
    assert watch.progress[-1]["stage"] == "done" and watch.progress[-1]["fraction"] == 1.0
    assert watch.workers and all(w["memory_mb"] > 100 for w in watch.workers)  # this process, model loaded
    assert "in this process" in cluster_report(watch.status).text
    assert len(cluster_memory_figure(watch).data) == 1 and len(job_progress_figure(watch).data) == 1


def test_the_runtime_never_imports_the_lab() -> None:
    """Every module of pipeline/ (outside lab/) and workbench/ imports without pipeline.lab or its scoring
    libraries, and transcription imports without the model manager (the dependency runs one way)."""
    repo = Path(__file__).resolve().parents[1]
    code = (
        "import importlib, pathlib, sys\n"
        "import pipeline.asr.transcribe, pipeline.asr.detect\n"
        "assert 'pipeline.asr.manager' not in sys.modules, 'transcription imported the model manager'\n"
        "for path in sorted([*pathlib.Path('pipeline').rglob('*.py'), *pathlib.Path('workbench').rglob('*.py')]):\n"
        "    parts = path.with_suffix('').parts\n"
        "    if parts[:2] == ('pipeline', 'lab') or parts[-1] == '__main__':\n"
        "        continue\n"
        "    importlib.import_module('.'.join(p for p in parts if p != '__init__'))\n"
        "bad = sorted(m for m in sys.modules if m.startswith('pipeline.lab') or m in ('jiwer', 'whisper_normalizer', 'srt'))\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
