"""Which batched Whisper backend transcribes our segments better: faster-whisper or WhisperX?

Issue 2 offered two ways to run batched Whisper over the VAD windows: faster-whisper's
``BatchedInferencePipeline`` driven with our own clip timestamps (what ``pipeline.asr.transcribe`` does), or
WhisperX's ``FasterWhisperPipeline`` with a ``Vad`` adapter that hands it the same silero windows. Both
get the same model object, the same windows, beam size and batch size, so only the backend differs. This
prints WER per data set, the time each took, and whether each gives word timing.

Run: ``python benchmarks/backends.py`` (about two minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench_common import DEFAULT_DATA_DIR, SET_NAMES, corpus_wer, load_sets


def _windows(samples: Any, vad_model: Any) -> list[Any]:
    from pipeline.core.settings import VadSettings
    from pipeline.media.segments import segment_audio

    segments, _ = segment_audio(samples, VadSettings(), vad_model)
    return segments


def run_fw(model: Any, samples: Any, segments: list[Any], batch_size: int) -> tuple[str, bool]:
    """Our path: faster-whisper's batched pipeline over our windows, with word timing."""
    from pipeline.asr.inputs import SegmentAudio
    from pipeline.asr.transcribe import transcribe_segments
    from pipeline.core.settings import TranscribeSettings

    items = [SegmentAudio.read(s, lambda a, b: samples[int(a * 16000) : int(b * 16000)]) for s in segments]
    results = transcribe_segments(model, items, TranscribeSettings(batch_size=batch_size, language="en"), "en")
    segs = [t for r in results for t in r.segments]
    return " ".join(t.text for t in segs), all(t.words for t in segs)


def make_whisperx(model: Any, batch_size: int) -> Any:
    """WhisperX's pipeline on the same model folder, with a Vad adapter fed our windows."""
    import whisperx
    from whisperx.diarize import Segment as SegmentX
    from whisperx.vads.vad import Vad

    class OurWindows(Vad):
        """Hands WhisperX the silero windows we computed, so both backends see identical audio."""

        def __init__(self) -> None:
            super().__init__(0.5)
            self.windows: list[tuple[float, float]] = []

        @staticmethod
        def preprocess_audio(audio: Any) -> Any:
            return audio

        def __call__(self, audio: Any, **kwargs: Any) -> list[Any]:
            return [SegmentX(a, b, "UNKNOWN") for a, b in self.windows]

        @staticmethod
        def merge_chunks(segments: Any, chunk_size: Any, onset: float = 0.5, offset: float | None = None) -> list[Any]:
            # Our windows are already packed to at most 30 s: keep them one to one.
            return [{"start": s.start, "end": s.end, "segments": [(s.start, s.end)]} for s in segments]

    vad = OurWindows()
    # WhisperX needs its own WhisperModel subclass, so it loads the same model folder itself.
    pipe = whisperx.load_model(
        model.spec.path,
        device="cpu",
        compute_type="int8",
        vad_model=vad,
        language="en",
        asr_options={"beam_size": 5},
        local_files_only=True,
        threads=model.placement.cpu_threads or 2,
    )
    pipe._batch_size = batch_size
    return pipe, vad


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--sets", default=",".join(SET_NAMES))
    ns = p.parse_args(argv)

    from pipeline.asr.models import ModelCache
    from pipeline.core.settings import ModelSettings
    from pipeline.media.decode import decode_all
    from pipeline.media.vad import SileroVad

    model = ModelCache().get(ModelSettings(name="tiny.en", device="cpu", compute_type="int8"))
    wx, wx_vad = make_whisperx(model, ns.batch_size)
    vad_model = SileroVad()
    sets = load_sets(ns.data)
    rows = []
    totals = {"fw": 0.0, "wx": 0.0}
    for name in ns.sets.split(","):
        refs, hyp_fw, hyp_wx = [], [], []
        t_fw = t_wx = 0.0
        timed = True
        for clip in sets[name]:
            samples = decode_all(clip.path)
            segments = _windows(samples, vad_model)
            refs.append(clip.ref)
            t = time.perf_counter()
            text, has_words = run_fw(model, samples, segments, ns.batch_size)
            t_fw += time.perf_counter() - t
            timed &= has_words
            hyp_fw.append(text)
            wx_vad.windows = [(w.start, w.end) for s in segments for w in s.windows]
            t = time.perf_counter()
            out = (
                wx.transcribe(samples, batch_size=ns.batch_size, language="en") if wx_vad.windows else {"segments": []}
            )
            t_wx += time.perf_counter() - t
            hyp_wx.append(" ".join(s["text"].strip() for s in out["segments"]))
        totals["fw"] += t_fw
        totals["wx"] += t_wx
        rows.append((name, len(refs), corpus_wer(refs, hyp_fw), corpus_wer(refs, hyp_wx), t_fw, t_wx, timed))
    print(
        "| set | files | WER faster-whisper batched (ours) | WER WhisperX pipeline | time fw (s) | time WhisperX (s) |"
    )
    print("|---|---|---|---|---|---|")
    for name, n, w_fw, w_wx, t_fw, t_wx, _ in rows:
        print(f"| {name} | {n} | {100 * w_fw:.1f}% | {100 * w_wx:.1f}% | {t_fw:.1f} | {t_wx:.1f} |")
    print(
        f"\nTotal time: faster-whisper {totals['fw']:.1f} s (with word timing), WhisperX {totals['wx']:.1f} s "
        "(no timing inside its ~30 s chunks)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
