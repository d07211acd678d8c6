"""Small pieces the workbench tabs share: the theme and CSS, HTML snippets, and people-friendly numbers.

Everything here is pure formatting: no pipeline calls, no state.
"""

from __future__ import annotations

import html
import math
from typing import Any

from pipeline.core.states import JobState
from workbench.status import DELETED, INTERRUPTED, STARTING

#: Job stages as people read them (the job service's ``stage`` values: a job state, or a step within one).
STAGE_LABELS = {
    JobState.QUEUED.value: "Waiting in line",
    STARTING: "Starting",
    JobState.WAITING_FOR_MODEL.value: "Waiting for the model to load",
    "waiting_for_workers": "Waiting for a cluster worker",
    JobState.RUNNING.value: "Transcribing",
    "writing": "Writing subtitles",
    JobState.DONE.value: "Done",
    JobState.FAILED.value: "Failed",
    JobState.CANCELLED.value: "Cancelled",
    INTERRUPTED: "Interrupted — resume it in Jobs",
    DELETED: "Deleted",
}
#: Keyword arguments of events that only refresh a display: no spinner, never queued behind long work (a
#: chart must not wait for a transcription), and not part of the public client API.
QUIET: dict[str, Any] = {"show_progress": "hidden", "queue": False, "api_visibility": "private"}
#: The queue that GPU-bound handlers share (``concurrency_id``): the Transcribe handler; any other handler that
#: waits on the model or the GPU joins it.
GPU_QUEUE = "gpu"
#: Sessions following their jobs at once; the jobs themselves run one at a time in the job service.
GPU_QUEUE_LIMIT = 4
#: Stages after which nothing more happens to a job without a resume.
FINAL_STAGES = (JobState.DONE.value, JobState.FAILED.value, JobState.CANCELLED.value, INTERRUPTED, DELETED)

CSS = """
.v2s-header h1 { margin-bottom: 0.1em; }
.v2s-header p { margin-top: 0; opacity: 0.85; }
.v2s-badge { display: inline-flex; align-items: center; gap: 0.45em; padding: 0.35em 0.8em;
  border-radius: 999px; font-weight: 600; font-size: 0.95em; border: 1px solid var(--border-color-primary);
  background: var(--background-fill-secondary); white-space: nowrap; }
.v2s-dot { width: 0.7em; height: 0.7em; border-radius: 50%; display: inline-block; }
.v2s-ok { background: #16a34a; } .v2s-busy { background: #f59e0b; animation: v2s-pulse 1.2s infinite; }
.v2s-bad { background: #dc2626; } .v2s-idle { background: #9ca3af; }
@keyframes v2s-pulse { 50% { opacity: 0.35; } }
.v2s-status-row { justify-content: flex-end; }
.v2s-job { padding: 0.6em 0.2em; border-bottom: 1px solid var(--border-color-primary); }
.v2s-job:last-child { border-bottom: none; }
.v2s-job-head { display: flex; justify-content: space-between; gap: 1em; font-weight: 600; }
.v2s-bar { height: 0.65em; border-radius: 999px; background: var(--background-fill-secondary);
  border: 1px solid var(--border-color-primary); overflow: hidden; margin: 0.35em 0; }
.v2s-bar > div { height: 100%; background: var(--color-accent); transition: width 0.6s; }
.v2s-bar.v2s-done > div { background: #16a34a; } .v2s-bar.v2s-fail > div { background: #dc2626; }
.v2s-facts { display: flex; flex-wrap: wrap; gap: 0.3em 1.4em; font-size: 0.92em; opacity: 0.9; }
.v2s-facts b { font-variant-numeric: tabular-nums; }
.v2s-error { color: #dc2626; font-size: 0.92em; margin-top: 0.2em; }
.v2s-empty { opacity: 0.7; padding: 1.2em 0.2em; }
#v2s-progress { min-height: 4em; }
.v2s-cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr)); gap: 0.8em; }
.v2s-card { border: 1px solid var(--border-color-primary); border-radius: 0.6em; padding: 0.7em 0.9em;
  background: var(--background-fill-secondary); }
.v2s-card .v2s-k { font-size: 0.8em; text-transform: uppercase; letter-spacing: 0.04em; opacity: 0.7; }
.v2s-card .v2s-v { font-size: 1.15em; font-weight: 600; margin-top: 0.15em; }
.v2s-card .v2s-s { font-size: 0.85em; opacity: 0.8; margin-top: 0.1em; }
.v2s-table { width: 100%; border-collapse: collapse; font-size: 0.93em; border: none !important; }
.v2s-table th, .v2s-table td { text-align: left; padding: 0.45em 0.7em !important; border: none !important;
  border-bottom: 1px solid var(--border-color-primary) !important; vertical-align: top; background: none !important; }
.v2s-table tr { border: none !important; }
.v2s-table tr:last-child td { border-bottom: none !important; }
.v2s-panel { border: 1px solid var(--border-color-primary); border-radius: var(--radius-lg);
  background: var(--background-fill-primary); padding: 0.4em 1em; }
.v2s-table th { font-size: 0.8em; text-transform: uppercase; letter-spacing: 0.04em; opacity: 0.7; }
.v2s-note { font-size: 0.9em; opacity: 0.85; }
"""


def theme() -> Any:  # noqa: ANN401 - a gradio theme
    """The workbench's theme: local fonts only, so nothing is fetched from the internet."""
    import gradio as gr

    return gr.themes.Soft(primary_hue="indigo", secondary_hue="slate")


def esc(value: object) -> str:
    """HTML-escape any value's text."""
    return html.escape("" if value is None else str(value))


def badge(kind: str, text: str, title: str = "") -> str:
    """A rounded status pill; ``kind`` is ``ok``, ``busy``, ``bad`` or ``idle``."""
    tip = f' title="{esc(title)}"' if title else ""
    return f'<span class="v2s-badge"{tip}><span class="v2s-dot v2s-{kind}"></span>{esc(text)}</span>'


def human_seconds(seconds: float | None) -> str:
    """``75`` → ``1 min 15 s``; ``None`` or a non-finite value → ``—``."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def human_mb(mb: float | None) -> str:
    """``1536`` → ``1.5 GB``; small values stay in MB."""
    if mb is None:
        return "—"
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def card(key: str, value: str, sub: str = "") -> str:
    """One fact card (label, big value, small line) for a grid of ``v2s-cards``."""
    extra = f'<div class="v2s-s">{esc(sub)}</div>' if sub else ""
    return (
        f'<div class="v2s-card"><div class="v2s-k">{esc(key)}</div><div class="v2s-v">{esc(value)}</div>{extra}</div>'
    )


def table(headers: list[str], rows: list[list[str]]) -> str:
    """An HTML table; cells are already-escaped HTML."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return (
        f'<div class="v2s-panel"><table class="v2s-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )
