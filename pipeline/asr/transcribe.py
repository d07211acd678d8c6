"""Transcription: batched Whisper (faster-whisper) over the windows of one or more segments.

The windows of several segments go to one batched call (:mod:`pipeline.asr.decode`), each window's result
passes the hallucination guard and the coverage check (:mod:`pipeline.asr.redecode`), and the results are
regrouped per segment. :func:`batch_future` runs it on a model manager's inference lane, in process or on
a Dask worker.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future

import numpy as np

from pipeline.asr.decode import EncoderCache, decode_windows
from pipeline.asr.guard import drop_repeated_lines, level_db
from pipeline.asr.inputs import SegmentAudio
from pipeline.asr.models import LoadedModel, ModelRunner
from pipeline.asr.redecode import apply_guard, cover_skipped_speech, note_dropped
from pipeline.core.constants import SAMPLE_RATE
from pipeline.core.errors import UsageError
from pipeline.core.settings import GuardSettings, ModelSettings, TranscribeSettings
from pipeline.core.types import SegmentResult, SpeechSpan, TextSegment, Window
from pipeline.system.memory import trim_heap

log = logging.getLogger(__name__)


def level_window(
    samples: np.ndarray, window: Window, spans: Sequence[SpeechSpan], boost_db: float, gap_db: float
) -> np.ndarray:
    """Raise the speech spans of one window that are much quieter than its loudest span to that span's level.

    tiny.en skips whole utterances of a quiet speaker that shares a window with a loud one, although it
    transcribes each of them well alone: what hurts is the jump in level, not the level (the effect on WER
    is in docs/benchmarks.md, "Against faster-whisper and WhisperX").
    A span whose RMS is more than ``gap_db`` below the loudest span of the window is scaled up to the
    loudest level, by at most ``boost_db``; everything else, and the pauses, stay as they are. Only the
    window's own samples count, so the result never depends on which windows share a batch.

    Args:
        samples: The window's samples (its pieces laid end to end), int16 or float32.
        window: Where the pieces lie in the file.
        spans: The speech spans of the segment, in file time.
        boost_db: The largest gain; 0 returns ``samples`` unchanged.
        gap_db: Spans within this many dB of the loudest are left alone.

    Returns:
        ``samples``, or a float32 copy with the quiet spans raised.
    """
    if boost_db <= 0:
        return samples
    regions: list[tuple[int, int]] = []
    offset = 0
    for piece in window.pieces:
        length = round(piece.duration * SAMPLE_RATE)
        for span in spans:
            a, b = max(span.start, piece.start), min(span.end, piece.end)
            if b - a >= 0.1:
                lo = offset + round((a - piece.start) * SAMPLE_RATE)
                regions.append((lo, min(offset + round((b - piece.start) * SAMPLE_RATE), samples.size)))
        offset += length
    if len(regions) < 2:
        return samples
    levels = [level_db(samples[lo:hi]) for lo, hi in regions]
    loudest = max(levels)
    if not math.isfinite(loudest) or all(loudest - level <= gap_db for level in levels):
        return samples
    out = samples.astype(np.float32) / 32768.0 if samples.dtype == np.int16 else samples.astype(np.float32, copy=True)
    for (lo, hi), level in zip(regions, levels):
        if loudest - level > gap_db:
            out[lo:hi] *= 10 ** (min(loudest - level, boost_db) / 20)
    return np.clip(out, -1.0, 1.0, out=out)


def transcribe_segments(
    model: LoadedModel,
    items: Sequence[SegmentAudio],
    settings: TranscribeSettings,
    language: str,
    guard: GuardSettings | None = None,
) -> list[SegmentResult]:
    """Transcribe the windows of ``items`` in full batches and return one result per segment, in order.

    Each window's result passes the hallucination guard (:mod:`pipeline.asr.guard`): a window that loops is
    decoded once more with fallback settings, all such windows in one more batched call; what still fails
    is dropped, logged and listed in ``SegmentResult.dropped``.

    Args:
        model: The loaded Whisper model.
        items: Segments with their window samples.
        settings: Batch size, beam size, word timing.
        language: The language to decode in (detect it first with :func:`detect_language`).
        guard: Hallucination guard thresholds (``Settings.guard``); defaults to :class:`GuardSettings`.
    """
    guard = guard or GuardSettings()
    owner: list[int] = []  # the item of each window
    placed: list[Window] = []  # each window, for its mapping to file time
    speech: list[Sequence[SpeechSpan]] = []  # the speech spans of each window's segment
    audio: list[np.ndarray] = []
    for i, item in enumerate(items):
        for window, samples in zip(item.segment.windows[item.first :], item.windows):
            samples = samples[: 30 * SAMPLE_RATE]
            if samples.size < SAMPLE_RATE // 10:
                continue  # under 0.1 s: nothing Whisper could read
            owner.append(i)
            placed.append(window)
            item_spans = item.segment.spans
            speech.append(item_spans)
            audio.append(level_window(samples, window, item_spans, settings.level_boost_db, settings.level_gap_db))
    # English speech needs no translation pass, so an English-only model may serve it.
    translating = settings.translate and settings.task != "translate" and language != "en"
    if (settings.task == "translate" and language != "en") or translating:
        check_multilingual(model)
    dropped: list[list[str]] = [[] for _ in items]
    recovered: list[list[str]] = [[] for _ in items]
    passes = [settings.task] + (["translate"] if translating else [])
    per_pass: list[list[list[TextSegment]]] = []
    redecoded = covered = 0
    infer_s = 0.0
    # The translation pass and the guard's retries decode the same windows again: each is encoded once.
    encoded = EncoderCache()
    t0 = time.perf_counter()
    for task in passes:
        t = time.perf_counter()
        decoded = decode_windows(model, audio, placed, settings, language, task=task, encoded=encoded)
        infer_s += time.perf_counter() - t
        redecoded += apply_guard(
            model, audio, placed, decoded, settings, language, guard, [dropped[i] for i in owner], task, encoded
        )
        covered += cover_skipped_speech(
            model,
            audio,
            placed,
            speech,
            decoded,
            settings,
            language,
            guard,
            [recovered[i] for i in owner],
            task,
            encoded,
        )
        # Lines repeated inside each window. Repeats across windows are removed by the runner over the whole
        # file: doing it per call would make a window's result depend on which windows shared its batch.
        per_item: list[list[TextSegment]] = [[] for _ in items]
        for w, segs in enumerate(decoded):
            kept, notes = drop_repeated_lines(segs, guard)
            for k, reason in notes:
                note_dropped(dropped[owner[w]], segs[k], reason)
            per_item[owner[w]].extend(seg for seg in kept if seg is not None)
        per_pass.append(per_item)
    fed = sum(a.size for a in audio) / SAMPLE_RATE
    stats = {
        "windows": len(audio),
        "calls": 1,
        "audio_fed_s": round(fed, 3),
        # What the encoder sees: every window it encodes is padded to Whisper's 30 s context.
        "padded_s": round(30.0 * encoded.windows, 3),
        "infer_s": round(infer_s, 4),
        "guard_redecodes": redecoded + covered,
        "coverage_redecodes": covered,
        "guard_s": round(time.perf_counter() - t0 - infer_s, 4),
    }
    return [
        SegmentResult(
            index=item.segment.index,
            language=language,
            segments=tuple(per_pass[0][i]),
            dropped=tuple(dropped[i]),
            translation=tuple(per_pass[1][i]) if len(per_pass) > 1 else (),
            recovered=tuple(recovered[i]),
            # The call's figures go with its first result only, so that summing over results counts each once.
            stats=stats if i == 0 else {},
        )
        for i, item in enumerate(items)
    ]


def check_multilingual(model: LoadedModel) -> None:
    """Translation needs a multilingual model.

    Raises:
        UsageError: ``model`` is English-only.
    """
    if not model.multilingual:
        raise UsageError(
            f"translation needs a multilingual model, and {model.spec.name} is English-only: "
            "use --model base (or small, medium, a multilingual CTranslate2 folder)"
        )


def batch_future(
    models: ModelRunner,
    items: list[SegmentAudio],
    settings: TranscribeSettings,
    language: str,
    model: ModelSettings,
    guard: GuardSettings | None = None,
) -> Future[tuple[list[SegmentResult], str]]:
    """Start transcribing one batch with ``models``' model for ``model``, on one of its inference lanes.

    The same call serves the in-process runner and every Dask worker (:func:`pipeline.backends.dask.transcribe_task`),
    which imports this module and not the runner's.

    Returns:
        A future of the segments' results, in order, and the model's name.
    """

    def run(loaded: LoadedModel) -> tuple[list[SegmentResult], str]:
        started = time.monotonic()
        try:
            results = transcribe_segments(loaded, items, settings, language, guard)
        finally:
            trim_heap()
        if results and results[0].stats:
            # Which lane ran the call and when: the runner reports how evenly the lanes finished.
            results[0].stats.update(lane=threading.current_thread().name, started=started, ended=time.monotonic())
        return results, loaded.spec.name

    return models.infer(model, run)
