"""The Python API for notebooks and scripts: one call from a media file to its subtitle files.

from pipeline import Settings, transcribe_file

result = transcribe_file("talk.mp4", output_dir="subs")
print(result.outputs["srt"], len(result.cues), result.words[0])
"""

from __future__ import annotations

import dataclasses
from os import PathLike
from pathlib import Path

from pipeline.core.settings import Settings
from pipeline.jobs.engine import Runner
from pipeline.jobs.events import EventCallback, JobResult

__all__ = ["JobResult", "Settings", "transcribe_file"]


def transcribe_file(
    path: str | PathLike[str],
    settings: Settings | None = None,
    *,
    output_dir: str | PathLike[str] | None = None,
    on_event: EventCallback | None = None,
) -> JobResult:
    """Transcribe one media file and write its subtitle files, as the ``video2srt`` command does.

    The model is loaded (or the cluster started) for this call and let go at its end; to transcribe many
    files with one model load, use :class:`pipeline.jobs.engine.Runner` directly.

    Args:
        path: A video or audio file.
        settings: Every setting (default: :class:`Settings`' defaults).
        output_dir: Where the files go (default: the settings' output folder, else beside the input).
        on_event: Called with each :class:`~pipeline.jobs.events.JobEvent` (progress) as the job runs.

    Returns:
        The result: ``outputs`` (the files written, by format), ``cues`` and ``words``, and the whole
        ``transcript``.

    Raises:
        InputError: The file is missing, unreadable or has no audio.
        ModelError: The model cannot be had.
        PipelineError: Any other failure, with a one-line message (its ``kind`` says which sort).
    """
    s = settings if settings is not None else Settings()
    if output_dir is not None:
        s = s.replace(output=dataclasses.replace(s.output, output_dir=Path(output_dir)))
    runner = Runner(s)
    try:
        return runner.run(Path(path), s, on_event)
    finally:
        runner.close()
