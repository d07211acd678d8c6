"""Plain data passed between stages: media → audio → speech spans → segments → timed words → cues.

Times are seconds in file time (from the start of the input) everywhere outside ``transcribe``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class SpeechSpan:
    """A stretch of audio that VAD calls speech."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Window:
    """What Whisper hears at once: stretches (pieces) of the file laid end to end, at most 30 s in all.

    Pauses between spans are kept up to ``VadSettings.keep_pause_s`` (5 s); longer silence is cut down to
    that, so a window is filled with speech (each window costs a full 30 s of compute however little it
    holds) while sentences keep the pauses Whisper reads them by.
    """

    pieces: tuple[SpeechSpan, ...]

    @property
    def start(self) -> float:
        return self.pieces[0].start

    @property
    def end(self) -> float:
        return self.pieces[-1].end

    @property
    def duration(self) -> float:
        """Seconds of audio in the window (the pieces' total, not end - start)."""
        return sum(p.duration for p in self.pieces)

    def to_file(self, t: float) -> float:
        """File time of ``t`` seconds into the window."""
        for p in self.pieces:
            if t <= p.duration:
                return p.start + max(t, 0.0)
            t -= p.duration
        return self.end

    def to_list(self) -> list[list[float]]:
        return [[p.start, p.end] for p in self.pieces]

    @classmethod
    def from_list(cls, data: list) -> Window:  # noqa: ANN401 - JSON
        if data and not isinstance(data[0], (list, tuple)):
            data = [data]  # a plain [start, end]
        return cls(tuple(SpeechSpan(float(a), float(b)) for a, b in data))


@dataclass(frozen=True, slots=True)
class Segment:
    """A unit of work: 30–90 s of audio cut at pauses, transcribed as a few windows of at most 30 s.

    The file's first window is a segment of its own, so that the first subtitles come after one window.

    Attributes:
        index: Position in the file, from 0.
        start: First sample's time.
        end: Last sample's time.
        spans: The speech inside, in file time.
        windows: What is given to Whisper: consecutive spans packed into windows of at most 30 s.
    """

    index: int
    start: float
    end: float
    spans: tuple[SpeechSpan, ...]
    windows: tuple[Window, ...]

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start": self.start,
            "end": self.end,
            "spans": [[s.start, s.end] for s in self.spans],
            "windows": [w.to_list() for w in self.windows],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segment:
        return cls(
            index=int(data["index"]),
            start=float(data["start"]),
            end=float(data["end"]),
            spans=tuple(SpeechSpan(float(a), float(b)) for a, b in data["spans"]),
            windows=tuple(Window.from_list(w) for w in data["windows"]),
        )


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word with its time and the model's confidence."""

    word: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True, slots=True)
class TextSegment:
    """A stretch of recognised text as Whisper returns it, with its words."""

    start: float
    end: float
    text: str
    words: tuple[Word, ...]
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["words"] = [asdict(w) for w in self.words]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextSegment:
        return cls(
            start=float(data["start"]),
            end=float(data["end"]),
            text=str(data["text"]),
            words=tuple(Word(**w) for w in data.get("words", [])),
            avg_logprob=float(data.get("avg_logprob", 0.0)),
            no_speech_prob=float(data.get("no_speech_prob", 0.0)),
            compression_ratio=float(data.get("compression_ratio", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class SegmentResult:
    """What transcribing one :class:`Segment` gives: its text segments, in file time."""

    index: int
    language: str
    segments: tuple[TextSegment, ...]
    #: Lines the hallucination guard removed, with the reason, for the log and the JSON.
    dropped: tuple[str, ...] = ()
    #: The same windows translated into English (``TranscribeSettings.translate``), in file time.
    translation: tuple[TextSegment, ...] = ()
    #: Window tails the coverage guard decoded again (pipeline.asr.transcribe), for the log and the JSON.
    recovered: tuple[str, ...] = ()
    #: Counts and times of the call that made this result (windows, seconds fed, lane, ...); kept in memory
    #: for the job's ``timings`` only, never stored: a stored result is the same whatever ran it.
    stats: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "language": self.language,
            "segments": [s.to_dict() for s in self.segments],
            "dropped": list(self.dropped),
            "translation": [s.to_dict() for s in self.translation],
            "recovered": list(self.recovered),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentResult:
        return cls(
            index=int(data["index"]),
            language=str(data["language"]),
            segments=tuple(TextSegment.from_dict(s) for s in data["segments"]),
            dropped=tuple(data.get("dropped", ())),
            translation=tuple(TextSegment.from_dict(s) for s in data.get("translation", ())),
            recovered=tuple(data.get("recovered", ())),
        )


@dataclass(frozen=True, slots=True)
class Cue:
    """One subtitle: at most a few short lines shown from ``start`` to ``end``."""

    index: int
    start: float
    end: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass(slots=True)
class Transcript:
    """The finished result of one input, ready for the writers.

    ``language`` is None only when no speech was found (no language is forced then).
    """

    language: str | None
    duration: float
    model: str
    segments: list[TextSegment]
    cues: list[Cue]
    timings: dict[str, float] = field(default_factory=dict)
    #: How sure the language detection was (None: the language was given, or there was no speech).
    language_probability: float | None = None
    #: One line when detection was unsure (below 0.5) or found no speech.
    language_warning: str | None = None
    #: Why this model transcribed the file (``auto`` picks per language).
    model_reason: str = ""
    #: ``transcribe``, or ``translate`` (the text is Whisper's English translation).
    task: str = "transcribe"
    #: Further JSON keys (``vad_fallback``, ``recovered``, ``chinese``, ``translation`` ...), written when set.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]
