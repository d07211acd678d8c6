"""Planning a job's work: which model, which segments go together in one call, and which windows tell the
language. Plain functions of the settings and the segment plan, never of timing, so a resumed or distributed
job does exactly the same work."""

from __future__ import annotations

import dataclasses
import queue
from collections import deque
from collections.abc import Callable, Iterator

import numpy as np

from pipeline.asr.catalogue import model_identity, usable
from pipeline.asr.inputs import SegmentAudio
from pipeline.asr.models import choose_model, placement_for
from pipeline.asr.packaged import PACKAGED
from pipeline.core.constants import SAMPLE_RATE
from pipeline.core.errors import CancelledError, CheckpointError
from pipeline.core.settings import AUTO_MODEL, ModelSettings, Settings
from pipeline.core.types import Segment, SegmentResult
from pipeline.jobs.feed import DONE, Lookahead, Stop
from pipeline.optimize.optimizer import optimize
from pipeline.resolve import resolve

#: Speech windows the language is detected on at most (each one encoder pass of the detecting model).
DETECT_WINDOWS = 3
#: A first window this sure decides alone.
CLEAR_LANGUAGE = 0.9
#: Windows of the next segments looked at to spread the detection windows (the first ~3 minutes of speech):
#: transcription streams, so the end of a long file is not decoded yet when its language must be known.
LOOKAHEAD_WINDOWS = 8


def use_cluster(settings: Settings) -> bool:
    """Whether jobs go to Dask: a scheduler or a worker count was given, or the optimizer plans several
    workers (one per GPU, or several CPU workers) for this machine. One planned worker runs in-process: on a
    small CPU a one-worker cluster only adds process start-up to the same work."""
    cs = settings.cluster
    if cs.scheduler:
        return True
    if cs.workers is not None:
        return cs.workers > 0
    if cs.adaptive is not None:
        return True
    return optimize(settings).concurrency > 1


def pick_model(
    s: Settings, language: str | None, recorded: str | None, recorded_identity: str | None = None
) -> tuple[ModelSettings, str]:
    """The job's model and why: as asked; for ``auto``, the one recorded when the job started (a resume
    gives the same output), else :func:`pipeline.asr.models.choose_model` for ``language``.

    Raises:
        CheckpointError: The recorded model's weights changed since the job started.
    """
    if s.model.name != AUTO_MODEL:
        return s.model, f"{s.model.name} as requested"
    if recorded:
        if recorded_identity and model_identity(recorded) != recorded_identity:
            raise CheckpointError(
                f"the model {recorded} this job started with has changed since ({recorded_identity}); "
                "start the job again"
            )
        return dataclasses.replace(s.model, name=recorded), f"{recorded}: chosen when the job started"
    resolved, reasons = resolve(s, language=language, pick_model=True)
    return dataclasses.replace(s.model, name=resolved.model.name), reasons["model.name"]


def detection_model(s: Settings) -> ModelSettings:
    """The model that detects the language: the job's own when named; for ``auto`` the multilingual base."""
    if s.model.name != AUTO_MODEL:
        return s.model
    name = PACKAGED if usable(PACKAGED) else choose_model("xx", placement_for(s.model).device)[0]
    return dataclasses.replace(s.model, name=name)


def first_models(s: Settings) -> tuple[list[ModelSettings], bool]:
    """The models worth loading before the first job: ``(models, preload)``, where ``preload`` says whether
    the configured preload list comes first. ``auto`` for a known language other than English loads its
    multilingual model only; for a language still unknown, the multilingual base (which detects it) queues
    behind the preload list when the cache holds two."""
    language = s.transcribe.language
    if s.model.name == AUTO_MODEL and language not in (None, "en"):
        return [pick_model(s, language, None)[0]], False
    if s.model.name == AUTO_MODEL and language is None and s.models.max_cached >= 2:
        return [detection_model(s)], True
    return [], True


def spread(windows: list[np.ndarray], count: int) -> list[np.ndarray]:
    """Up to ``count`` of the windows with speech, spread evenly from the first to the last."""
    speech = [w for w in windows if w.size >= SAMPLE_RATE // 10]
    if len(speech) <= count:
        return speech
    if count <= 1:
        return speech[:count]
    step = (len(speech) - 1) / (count - 1)
    return [speech[round(i * step)] for i in range(count)]


def batches(
    q: queue.Queue[object] | Lookahead, batch_size: int, stop: Stop, idle: Callable[[], None] | None = None
) -> Iterator[tuple[list[SegmentAudio], object]]:
    """Group the queued segments' windows so each Whisper call gets ``batch_size`` windows.

    Segments are split into their windows (:meth:`SegmentAudio.split`), so a call is a small unit of
    equal size whatever the segments' lengths: lanes that pull the next call as they free up then end
    within about one call of each other. The first group is the first window alone, so the first
    subtitles appear after one short call rather than a full batch (figures in docs/benchmarks.md). The
    groups depend only on the segment plan, never on timing: batched word alignment is not exactly
    independent of what shares the batch, so the same grouping is what makes a resumed (or distributed) job
    give byte-identical output. Yields (batch, finished) where finished is False, True (producer done,
    nothing left) or the producer's exception. ``idle`` is called while waiting for the producer.
    """
    finished: object = False
    first = True
    parts: deque[SegmentAudio] = deque()
    while True:
        batch: list[SegmentAudio] = []
        while len(batch) < (1 if first else batch_size):
            if parts:
                batch.append(parts.popleft())
                continue
            if finished is not False:
                break
            try:
                item = q.get(timeout=0.1)
            except queue.Empty:
                # A stopped producer may never put anything again: do not wait for it.
                if stop.is_set():
                    finished = CancelledError("cancelled")
                    break
                if idle is not None:
                    idle()
                continue
            if item is DONE:
                finished = True
                break
            if isinstance(item, BaseException):
                finished = item
                break
            assert isinstance(item, SegmentAudio)
            parts.extend(item.split())
        first = first and not batch
        if isinstance(finished, BaseException):
            parts.clear()
        yield batch, (False if parts else finished)
        if finished is not False and not parts:
            return


def priority(items: list[SegmentAudio], job_priority: float) -> float:
    """A batch's priority where a backend queues them: among a job's queued batches the longest starts first
    (longest-processing-time order), so the last wave ends evenly; the job's first batch goes before all (its
    subtitles show first). The fraction never outranks a higher job priority (figures in docs/benchmarks.md)."""
    audio_s = sum(w.size for item in items for w in item.windows) / SAMPLE_RATE
    first = items[0].segment.index == 0
    return job_priority + (0.95 if first else min(0.9, audio_s / 1000.0))


def join_parts(
    results: list[SegmentResult], items: list[SegmentAudio], waiting: dict[int, list[SegmentResult | None]]
) -> list[SegmentResult]:
    """The whole segments among ``results``: a segment split over calls is returned once all its parts are in.

    ``waiting`` keeps the parts that came so far, by segment index.
    """
    whole: list[SegmentResult] = []
    for r, item in zip(results, items, strict=True):
        if item.parts == 1:
            whole.append(r)
            continue
        parts = waiting.setdefault(r.index, [None] * item.parts)
        parts[item.part] = r
        if any(p is None for p in parts):
            continue
        del waiting[r.index]
        got = [p for p in parts if p is not None]
        whole.append(
            SegmentResult(
                index=r.index,
                language=r.language,
                segments=tuple(seg for p in got for seg in p.segments),
                dropped=tuple(d for p in got for d in p.dropped),
                translation=tuple(seg for p in got for seg in p.translation),
                recovered=tuple(x for p in got for x in p.recovered),
            )
        )
    return whole


def contiguous_end(results: dict[int, SegmentResult], plan: list[Segment]) -> float:
    """Audio seconds covered by the finished prefix of segments."""
    by_index = {seg.index: seg for seg in plan}
    i, end = 0, 0.0
    while i in results and i in by_index:
        end = by_index[i].end
        i += 1
    return end
