"""Recommendations: settings picked from sweep rows, each with the figures behind the choice."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.core.errors import UsageError
from pipeline.core.settings import (
    Settings,
    VadSettings,
)
from pipeline.lab.evaluation import Clip
from pipeline.lab.report import Progress, Recommendation, Report, pct, table
from pipeline.lab.sweeps import RTF_TOLERANCE, VAD_FIELDS, WER_TOLERANCE, vad_sweep


def recommend(
    rows: Sequence[Mapping[str, Any]],
    *,
    tolerance: float | None = None,
    memory_limit_mb: float | None = None,
) -> Recommendation:
    """Pick settings from sweep rows (all from :func:`vad_sweep`, or all from :func:`throughput_sweep`).

    VAD: the lowest WER; every row within ``tolerance`` (absolute, default 0.5 points) of it counts as
    equally accurate, and among those the library defaults win when present (no change for noise), else
    the one with the fewest windows (the least transcription work). Throughput: the lowest real-time factor
    among rows under ``memory_limit_mb``; within ``tolerance`` (relative, default 5 %) the one using the
    least memory.

    Raises:
        UsageError: No rows, rows of mixed kinds, or no row that finished.
    """
    kinds = {r.get("kind") for r in rows}
    if not rows or len(kinds) != 1:
        raise UsageError("recommend needs the rows of one sweep (all VAD rows or all throughput rows)")
    kind = kinds.pop()
    if kind == "vad":
        return _recommend_vad(rows, WER_TOLERANCE if tolerance is None else tolerance)
    if kind == "throughput":
        return _recommend_throughput(rows, RTF_TOLERANCE if tolerance is None else tolerance, memory_limit_mb)
    raise UsageError(f"unknown kind of rows {kind!r}: use rows from vad_sweep or throughput_sweep")


def _recommend_vad(rows: Sequence[Mapping[str, Any]], tolerance: float) -> Recommendation:
    scored = [r for r in rows if r.get("wer") is not None]
    if not scored:
        raise UsageError("no VAD row has a WER: the clips need reference transcripts")
    best_wer = min(r["wer"] for r in scored)
    close = [r for r in scored if r["wer"] <= best_wer + tolerance]
    default = next((r for r in scored if r.get("default")), None)
    if default is not None and default in close:
        chosen = default
        reason = (
            f"the current defaults are within {tolerance * 100:.1f} WER points of the best setting "
            f"({pct(default['wer'])} vs {pct(best_wer)}): keep them"
        )
    else:
        chosen = min(close, key=lambda r: (r["windows"], r["wer"]))
        reason = (
            f"lowest WER ({pct(chosen['wer'])})"
            if chosen["wer"] == best_wer
            else (
                f"WER {pct(chosen['wer'])}, within {tolerance * 100:.1f} points of the best ({pct(best_wer)}), "
                f"with the fewest windows to transcribe ({chosen['windows']})"
            )
        )
        if default is not None:
            reason += f"; the current defaults score {pct(default['wer'])}"
    vad = (
        VadSettings(**chosen["vad"])
        if isinstance(chosen.get("vad"), dict)
        else dataclasses.replace(VadSettings(), **{k: chosen[k] for k in VAD_FIELDS})
    )
    changed = {k: getattr(vad, k) for k in VAD_FIELDS if getattr(vad, k) != getattr(VadSettings(), k)}
    code = "VadSettings(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"
    text = "\n".join(
        [
            f"**Recommended VAD settings:** {chosen['label']}",
            "",
            f"Why: {reason}.",
            "",
            table(
                [chosen] + ([default] if default is not None and default is not chosen else []),
                ["label", "wer", "segments", "segment_mean_s", "windows", "speech_ratio", "silence_skipped_s"],
            ).text,
            "",
            f"In code: `Settings(vad={code})`"
            + (
                f"; on the command line: `--segment-length {vad.min_segment_s:g}-{vad.max_segment_s:g}`"
                if (vad.min_segment_s, vad.max_segment_s) != (VadSettings().min_segment_s, VadSettings().max_segment_s)
                else ""
            ),
        ]
    )
    return Recommendation(
        text,
        list(map(dict, rows)),
        kind="vad",
        row=dict(chosen),
        baseline=dict(default) if default else None,
        settings=vad,
        reason=reason,
    )


def _recommend_throughput(
    rows: Sequence[Mapping[str, Any]], tolerance: float, memory_limit_mb: float | None
) -> Recommendation:
    ok = [r for r in rows if not r.get("error") and r.get("rtf")]
    if memory_limit_mb is not None:
        ok = [r for r in ok if r["peak_rss_mb"] <= memory_limit_mb]
    if not ok:
        raise UsageError("no throughput run finished" + (" within the memory limit" if memory_limit_mb else ""))
    best_rtf = min(r["rtf"] for r in ok)
    close = [r for r in ok if r["rtf"] <= best_rtf * (1 + tolerance)]
    chosen = min(close, key=lambda r: (r["peak_rss_mb"], r["rtf"]))
    optimizer = next((r for r in rows if r.get("optimizer")), None)
    reason = f"real-time factor {chosen['rtf']:.3f}" + (
        " (the fastest)"
        if chosen["rtf"] == best_rtf
        else f", within {tolerance:.0%} of the fastest ({best_rtf:.3f}), with the least memory"
    )
    if optimizer is not None and not optimizer.get("error"):
        reason += f"; the optimizer's choice measured {optimizer['rtf']:.3f}"
    settings = {k: chosen[k] for k in ("batch_size", "cpu_threads", "workers")}
    text = "\n".join(
        [
            f"**Recommended:** {chosen['label']}",
            "",
            f"Why: {reason}.",
            "",
            f"On the command line: `--batch-size {chosen['batch_size']} --cpu-threads {chosen['cpu_threads']} "
            f"--workers {chosen['workers']}`",
        ]
    )
    return Recommendation(
        text,
        list(map(dict, rows)),
        kind="throughput",
        row=dict(chosen),
        baseline=dict(optimizer) if optimizer else None,
        settings=settings,
        reason=reason,
    )


def check_against_defaults(
    clips: Sequence[Clip],
    vad: VadSettings,
    settings: Settings,
    *,
    on_progress: Progress | None = None,
) -> Report:
    """Transcribe ``clips`` (each file on its own) with ``vad`` and with the library defaults; WER per set.

    This is the check before a sweep's winner may become a default: it must not lose on material it was
    not tuned on.

    Returns:
        A table with one column per data set (and ``all``), one line per setting; ``rows`` holds the sweep rows.
    """
    candidates = list(dict.fromkeys([vad, VadSettings()]))
    rows = vad_sweep(clips, candidates, settings, on_progress=on_progress)
    sets = list(dict.fromkeys(name for r in rows for name in r["wer_by_set"]))
    shown = [
        {
            "label": r["label"] + (" (defaults)" if r["default"] else ""),
            **{n: r["wer_by_set"].get(n) for n in sets},
            "all": r["wer"],
            "windows": r["windows"],
        }
        for r in rows
    ]
    lines = [table(shown, ["label", *sets, "all", "windows"]).text, ""]
    if len(rows) == 1:
        lines.append("The recommendation is the library defaults: nothing to compare.")
    else:
        diff = (rows[0]["wer"] or 0.0) - (rows[1]["wer"] or 0.0)
        verdict = "better than" if diff < -WER_TOLERANCE else "worse than" if diff > WER_TOLERANCE else "as good as"
        lines.append(
            f"On these files the recommendation is **{verdict}** the defaults ({diff * 100:+.1f} WER points over all)."
        )
    return Report("\n".join(lines), rows)
