"""What a job tells the outside: :class:`JobEvent` values through a plain callback, and its :class:`JobResult`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.types import Cue, Transcript, Word
from pipeline.media.segments import VadMetrics


@dataclass(frozen=True)
class JobEvent:
    """Progress of one job, sent to the ``on_event`` callback."""

    job_id: str
    input: str
    stage: str  # queued | waiting_for_model | waiting_for_workers | running | writing | done | failed | cancelled
    segments_done: int = 0
    segments_total: int | None = None
    audio_done: float = 0.0
    duration: float = 0.0
    elapsed: float = 0.0
    message: str = ""

    @property
    def rtf(self) -> float:
        """Real-time factor so far: wall seconds per second of audio transcribed."""
        return self.elapsed / self.audio_done if self.audio_done else 0.0


@dataclass
class JobResult:
    """What a finished job leaves: its transcript, the files written, and its VAD metrics."""

    job_id: str
    input_path: Path
    transcript: Transcript
    outputs: dict[str, Path]
    vad: VadMetrics
    job_dir: Path

    @property
    def cues(self) -> list[Cue]:
        """The subtitles as written, in order."""
        return self.transcript.cues

    @property
    def words(self) -> list[Word]:
        """Every recognised word with its time, in order."""
        return self.transcript.words


EventCallback = Callable[[JobEvent], None]


class Emitter:
    """Sends one job's events, each with the time since the job started; nothing when no callback is given."""

    def __init__(
        self, job_id: str, input_path: Path, duration: float, started: float, cb: EventCallback | None
    ) -> None:
        self.job_id, self.input, self.duration, self.started, self.cb = job_id, str(input_path), duration, started, cb

    def __call__(
        self, stage: str, done: int = 0, total: int | None = None, audio_done: float = 0.0, message: str = ""
    ) -> None:
        if self.cb is None:
            return
        self.cb(
            JobEvent(
                self.job_id,
                self.input,
                stage,
                done,
                total,
                audio_done,
                self.duration,
                time.monotonic() - self.started,
                message,
            )
        )
