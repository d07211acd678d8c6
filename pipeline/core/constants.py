"""Constants every stage shares."""

from __future__ import annotations

#: Whisper's input rate; every stage after decoding works on 16 kHz mono samples.
SAMPLE_RATE = 16000

#: The version of what a segment's stored result means: raise it whenever a change of code makes the same
#: settings give a different result for a segment (decoding, the guard, the cutting), so that a job resumed
#: across the change transcribes its earlier segments again instead of mixing the two (pipeline.jobs.store).
RESULTS_VERSION = 1
