"""What a transcription call is given: segments with the samples of their windows, as Whisper reads them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.core.types import Segment

#: Reads float32 samples of [start, end) seconds of the file.
AudioReader = Callable[[float, float], np.ndarray]


@dataclass(frozen=True)
class SegmentAudio:
    """A segment and the samples of each of its windows: everything a worker needs, no shared disk.

    Samples are 16 kHz mono, int16 (half the memory and bytes on the wire) or float32 in [-1, 1].
    """

    segment: Segment
    windows: tuple[np.ndarray, ...]
    #: Which of the segment's windows these are: from ``first``; part ``part`` of ``parts`` (see :meth:`split`).
    first: int = 0
    part: int = 0
    parts: int = 1

    def split(self) -> list[SegmentAudio]:
        """One part per window, so calls can take a window at a time; the runner joins the parts' results."""
        if len(self.windows) <= 1:
            return [self]
        n = len(self.windows)
        return [SegmentAudio(self.segment, (w,), self.first + k, k, n) for k, w in enumerate(self.windows)]

    @classmethod
    def read(cls, segment: Segment, reader: AudioReader) -> SegmentAudio:
        """Read each window's pieces with ``reader`` and lay them end to end."""
        windows = []
        for w in segment.windows:
            parts = [reader(p.start, p.end) for p in w.pieces]
            windows.append(parts[0] if len(parts) == 1 else np.concatenate(parts))
        return cls(segment, tuple(windows))


def to_float(samples: np.ndarray) -> np.ndarray:
    """float32 samples in [-1, 1] (Whisper's input) from int16 or float samples."""
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / 32768.0
    return samples.astype(np.float32, copy=False)
