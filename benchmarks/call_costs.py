"""What one Whisper call costs on the CPU, per window: encoder, decoder and word timing, and their peak memory.

The windows are the ones ours cuts from a benchmark input (``benchmarks/inputs.py``; ``dense`` by default), the
model is the bundled tiny.en (int8, one thread, one replica: one lane, as each lane runs). For each batch size
and encoder mode, every window is decoded through :func:`pipeline.asr.decode.decode_windows`'s batched
pipeline, and this process measures:

* CPU seconds per window (``time.process_time``) of the whole call, and of CTranslate2's ``encode``, ``generate``
  and ``align`` (word timing) inside it;
* the peak RSS over the RSS before the call, sampled every 2 ms by a thread (the heap is trimmed before
  each call, so what a call allocates shows), and the largest rise within each of the three passes;
* whether the text is the same in both modes.

``batched`` is faster-whisper's own passes (every window of the call at once); ``per window`` is
:class:`pipeline.asr.decode.CallModel` with ``per_window``, what ours uses on the CPU: encoder and word timing a
window at a time, the decoder on the whole batch.

Usage::

    python benchmarks/call_costs.py [--input dense] [--windows 8] [--batches 1,2,4,8] [--repeat 2]
"""

from __future__ import annotations

import argparse
import collections
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import inputs as inputs_mod  # noqa: E402 - the scripts run as files, not as a package
from bench_common import bundled_model_path  # noqa: E402

from pipeline.asr import decode  # noqa: E402
from pipeline.asr.inputs import SegmentAudio, to_float  # noqa: E402
from pipeline.asr.models import LoadedModel, ModelSpec, Placement, load  # noqa: E402
from pipeline.core.constants import SAMPLE_RATE  # noqa: E402
from pipeline.core.settings import TranscribeSettings, VadSettings  # noqa: E402
from pipeline.core.types import Window  # noqa: E402
from pipeline.lab.evaluation import DEFAULT_DATA_DIR  # noqa: E402
from pipeline.media.decode import decode_all  # noqa: E402
from pipeline.media.segments import segment_audio  # noqa: E402
from pipeline.media.vad import SileroVad  # noqa: E402
from pipeline.system.memory import trim_heap  # noqa: E402

PHASES = ("encode", "generate", "align")


class PeakSampler:
    """This process's RSS read from ``/proc/self/statm`` every 2 ms on a daemon thread; ``reset`` starts a new peak.

    Not :class:`pipeline.lab.memory.MemorySampler`: it walks the process tree with psutil, which at 2 ms takes
    about two thirds of a core, and the CPU columns here count every thread of this process.
    """

    def __init__(self) -> None:
        self.peak = 0.0
        self.phase_peak = 0.0  # the same, restarted by each timed pass (Timed)
        threading.Thread(target=self._run, daemon=True).start()

    @staticmethod
    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20

    def _run(self) -> None:
        while True:
            rss = self.rss_mb()
            self.peak = max(self.peak, rss)
            self.phase_peak = max(self.phase_peak, rss)
            time.sleep(0.002)

    def reset(self) -> float:
        """Trim the heap, let it settle, and start a new peak from the RSS now (returned)."""
        trim_heap(force=True)
        time.sleep(0.05)
        self.peak = base = self.rss_mb()
        return base


class Timed:
    """CTranslate2's Whisper model with its ``encode``, ``generate`` and ``align`` timed (CPU seconds) and the
    largest RSS rise within each (MB)."""

    def __init__(self, inner: Any, sampler: PeakSampler) -> None:  # noqa: ANN401 - a ctranslate2.models.Whisper
        self._inner = inner
        self._sampler = sampler
        self.spent: collections.Counter[str] = collections.Counter()
        self.rise: dict[str, float] = {}

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401
        fn = getattr(self._inner, name)
        if name not in PHASES:
            return fn

        def timed(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
            t = time.process_time()
            self._sampler.phase_peak = base = self._sampler.rss_mb()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[name] += time.process_time() - t
                self.rise[name] = max(self.rise.get(name, 0.0), self._sampler.phase_peak - base)

        return timed


def cut_windows(path: Path, count: int) -> tuple[list[Window], list[np.ndarray]]:
    """The first ``count`` full windows ours cuts from ``path`` (the first, alone in its segment, skipped)."""
    x = to_float(decode_all(path))
    segments, _ = segment_audio(x, VadSettings(), SileroVad())
    read = [SegmentAudio.read(s, lambda a, b: x[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)]) for s in segments]
    pairs = [pair for item in read for pair in zip(item.segment.windows, item.windows)][1 : count + 1]
    return [w for w, _ in pairs], [samples for _, samples in pairs]


def run_mode(
    model: LoadedModel,
    timed: Timed,
    sampler: PeakSampler,
    windows: Sequence[Window],
    samples: Sequence[np.ndarray],
    batch: int,
    per_window: bool,
) -> dict[str, Any]:
    """Decode every window in calls of ``batch``; CPU per window per phase, the largest call peak, the text."""
    settings = TranscribeSettings(batch_size=batch)
    timed.spent.clear()
    timed.rise.clear()
    peaks: list[float] = []
    texts: list[str] = []
    original, mode = decode.CallModel, per_window

    def wrap(whisper: Any, per_window: bool, encoded: decode.EncoderCache | None = None) -> decode.CallModel:  # noqa: ANN401, ARG001
        return original(whisper, per_window=mode, encoded=encoded)

    # decode_windows wraps the model for its device; swapping the wrapper picks the mode under test.
    decode.CallModel = wrap  # type: ignore[assignment,misc]
    t = time.process_time()
    try:
        for i in range(0, len(windows), batch):
            base = sampler.reset()
            out = decode.decode_windows(model, samples[i : i + batch], windows[i : i + batch], settings, "en")
            peaks.append(sampler.peak - base)
            texts += [seg.text for segs in out for seg in segs]
    finally:
        decode.CallModel = original  # type: ignore[misc]
    n = len(windows)
    row = {"total": (time.process_time() - t) / n, "peak": max(peaks), "text": " ".join(texts)}
    row.update({p: timed.spent[p] / n for p in PHASES})
    row.update({f"{p} peak": timed.rise.get(p, 0.0) for p in PHASES})
    return row


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", default="dense", choices=inputs_mod.KINDS, help="benchmark input kind")
    p.add_argument("--windows", type=int, default=8, help="windows to decode (a multiple of every batch size)")
    p.add_argument("--batches", default="1,2,4,8", help="batch sizes")
    p.add_argument("--repeat", type=int, default=2, help="rounds; the table shows the last (the first warms up)")
    p.add_argument("--out", type=Path, default=Path("bench-out"), help="where inputs are built")
    ns = p.parse_args(argv)
    built = inputs_mod.build(ns.input, ns.out / "inputs", 600.0, DEFAULT_DATA_DIR)
    windows, samples = cut_windows(built.wav, ns.windows)
    spec = ModelSpec("tiny.en", str(bundled_model_path()), "bundled")
    model = load(spec, Placement("cpu", "int8", cpu_threads=1, replicas=1))
    sampler = PeakSampler()
    timed = Timed(model.model.model, sampler)
    model.model.model = timed
    modes = {"batched": False, "per window": True}
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for _ in range(ns.repeat):
        for batch in (int(b) for b in ns.batches.split(",")):
            for name, per_window in modes.items():
                rows[(batch, name)] = run_mode(model, timed, sampler, windows, samples, batch, per_window)
    audio_s = sum(s.size for s in samples) / SAMPLE_RATE
    print(f"{ns.input}: {len(windows)} windows, {audio_s:.1f} s of audio; tiny.en int8, 1 thread")
    print(
        "| batch | passes | CPU s / window | encode | generate | align (word timing) | call peak MB "
        "| encode · generate · align peak MB | same text |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for (batch, name), r in rows.items():
        same = r["text"] == rows[(batch, "batched")]["text"]
        print(
            f"| {batch} | {name} | {r['total']:.2f} | {r['encode']:.2f} | {r['generate']:.2f} | {r['align']:.2f} "
            f"| +{r['peak']:.0f} | +{r['encode peak']:.0f} · +{r['generate peak']:.0f} · +{r['align peak']:.0f} "
            f"| {'yes' if same else 'no'} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
