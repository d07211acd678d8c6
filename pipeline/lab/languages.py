"""Accuracy per language: the German, Spanish and Mandarin test clips transcribed with a multilingual model
and scored per language (WER, or CER for Chinese; :func:`pipeline.lab.evaluation.score_language`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.core.errors import UsageError
from pipeline.core.settings import (
    Settings,
)
from pipeline.lab.evaluation import language_clips, language_metric, score_language, transcript_text
from pipeline.lab.report import Progress, pct, say


def language_accuracy(
    languages: Sequence[str],
    settings: Settings,
    *,
    data_dir: str | Path | None = None,
    clips_per_language: int = 0,
    on_progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Transcribe each language's test clips with that language given, and score them.

    Each language's clips (:func:`pipeline.lab.evaluation.language_clips`) go through the pipeline with
    ``settings`` (its model must be multilingual) and ``transcribe.language`` set to the language; the text
    is scored by :func:`pipeline.lab.evaluation.score_language` (WER after Whisper's basic normaliser, CER for
    Chinese, Japanese, Korean and Cantonese). One model serves every language.

    Args:
        languages: Language codes with test data (``de``, ``es``, ``zh``).
        settings: Everything else (see :func:`base_settings`).
        data_dir: The test data folder (default: ``VIDEO2SRT_DATA_DIR``, else the repository's ``tests/data``).
        clips_per_language: At most this many clips per language (the first ones); 0 for all.
        on_progress: Called with one line per finished language.

    Returns:
        One row per language: ``language``, ``metric`` (``WER`` or ``CER``), ``error`` (0.0 is perfect),
        ``clips``, ``audio_s``, ``wall_s``, ``rtf`` and ``texts`` (reference and hypothesis per clip).

    Raises:
        UsageError: No language given.
        InputError: A language has no clips in the data folder.
    """
    from pipeline.jobs.engine import Runner

    if not languages:
        raise UsageError("no language to score: give at least one of de, es, zh")
    runner = Runner(settings)
    rows: list[dict[str, Any]] = []
    try:
        for language in languages:
            clips = language_clips(language, data_dir, limit=clips_per_language)
            s = settings.replace(transcribe=dataclasses.replace(settings.transcribe, language=language))
            started = time.perf_counter()
            results = [runner.run(clip.path, s) for clip in clips]
            wall_s = time.perf_counter() - started
            hyps = [transcript_text(r.transcript) for r in results]
            duration = sum(r.vad.duration for r in results)
            rows.append(
                {
                    "kind": "language",
                    "language": language,
                    "metric": language_metric(language),
                    "error": score_language(language, hyps, [c.ref for c in clips]),
                    "clips": len(clips),
                    "audio_s": duration,
                    "wall_s": wall_s,
                    "rtf": wall_s / duration if duration else 0.0,
                    "texts": [{"clip": c.path.name, "ref": c.ref, "hyp": h} for c, h in zip(clips, hyps)],
                }
            )
            row = rows[-1]
            say(on_progress, f"{language}: {row['metric']} {pct(row['error'])} on {len(clips)} clip(s)")
    finally:
        runner.close()
    return rows
