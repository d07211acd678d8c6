"""What a job's results depend on: its fingerprint values, from its settings, its model files and the code.

The values cover every setting that can change a segment's result (audio, VAD, the model and its files'
identity, language, task and decoding, the hallucination guard) or what the job makes of the results (word
timing, cue rules), and the versions of the code: :data:`~pipeline.core.constants.RESULTS_VERSION` and the
installed ``video2srt`` package. :meth:`pipeline.jobs.store.Job.match_settings` compares them on every run.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pipeline.asr.catalogue import model_identity
from pipeline.core.constants import RESULTS_VERSION
from pipeline.core.settings import AUTO_MODEL, Settings


@lru_cache(maxsize=1)
def code_version() -> str:
    """The installed video2srt's version (``unknown`` when run from a tree that was never installed)."""
    try:
        return version("video2srt")
    except PackageNotFoundError:
        return "unknown"


def fingerprint_of(s: Settings) -> dict[str, Any]:
    """The values a job's fingerprint covers, as plain JSON.

    For a named model, the identity of its weights; ``auto`` records the model it picks (and its identity) in
    the job's checkpoint when it picks it, and a resume refuses other weights under that name.
    """
    values = s.fingerprint_fields()
    if s.model.name != AUTO_MODEL:
        values["model_identity"] = model_identity(s.model.name)
    values["versions"] = {"results": RESULTS_VERSION, "video2srt": code_version()}
    return values


#: The fingerprint values that change what a segment's stored result holds. The rest (word timing, cue
#: rules) is applied when the job is assembled from its results, which every run does again.
SEGMENT_PARTS = ("audio", "vad", "model", "model_identity", "transcribe", "guard", "versions")
#: Values whose change makes a stored segment plan (the cuts) wrong.
PLAN_PARTS = ("audio", "vad")


def segment_values(values: dict[str, Any]) -> dict[str, Any]:
    """The part of fingerprint ``values`` that a segment's result depends on."""
    return {k: values[k] for k in SEGMENT_PARTS if k in values}


def changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """What differs between two sets of fingerprint values, one ``name old -> new`` per leaf value."""
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(changes(a, b, f"{prefix}{key}."))
        elif a != b:
            out.append(f"{prefix}{key} {a!r} -> {b!r}")
    return out
