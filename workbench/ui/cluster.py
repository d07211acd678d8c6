"""The Cluster tab: where transcription runs — the mode, the scheduler, each worker's state, load, model and
tasks — and the Dask dashboard link. It renders whatever :meth:`~pipeline.jobs.engine.Runner.cluster_status`
reports, so fields added there later show up as extra columns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from workbench.ui.common import QUIET, badge, card, esc, human_mb, table

#: How often the tab reads the cluster's status.
REFRESH_S = 3.0

MODE_LABELS = {
    "in-process": ("In this process", "no Dask cluster: jobs run inside the app (start with --workers N for one)"),
    "local": ("Local Dask cluster", "worker processes on this machine"),
    "remote": ("Remote Dask cluster", "workers on other machines"),
    "starting": ("Starting the Dask cluster", "workers appear here as they join"),
    "unreachable": ("Cluster unreachable", "check the scheduler address, then restart the app"),
}
#: Worker fields shown in their own columns (everything else scalar goes to extra columns).
_KNOWN = (
    "name",
    "address",
    "state",
    "nthreads",
    "resources",
    "models",
    "model",
    "model_state",
    "jobs",
    "tasks",
    "usage",
    "cpu_percent",
    "memory_mb",
)
_STATE_KIND = {
    "running": "ok",
    "ready": "ok",
    "idle": "ok",
    "loading": "busy",
    "paused": "busy",
    "starting": "busy",
    "closing": "bad",
    "closed": "bad",
    "failed": "bad",
    "error": "bad",
}


def _usage_cells(worker: dict[str, Any]) -> tuple[str, str, str]:
    usage = worker.get("usage")
    if not isinstance(usage, dict):
        cpu, memory = worker.get("cpu_percent"), worker.get("memory_mb")
        return (f"{float(cpu):.0f}%" if cpu is not None else "—", human_mb(memory) if memory is not None else "—", "—")
    cpu = f"{float(usage.get('cpu_percent') or 0):.0f}%"
    ram = f"{human_mb(usage.get('ram_used_mb'))} of {human_mb(usage.get('ram_total_mb'))}"
    gpus = usage.get("gpus") or []
    gpu = "<br>".join(
        f"GPU {g.get('index')}: {human_mb(g.get('used_mb'))} of {human_mb(g.get('total_mb'))}" for g in gpus
    )
    return cpu, esc(ram), gpu or "no GPU"


def _models(worker: dict[str, Any]) -> str:
    state = f" ({esc(worker['model_state'])})" if worker.get("model_state") else ""
    return _model_names(worker) + state


def _model_names(worker: dict[str, Any]) -> str:
    models = worker.get("models", worker.get("model"))
    if isinstance(models, dict):  # a model status per name, if the worker reports one
        return "<br>".join(f"{esc(k)}: {esc(v.get('state') if isinstance(v, dict) else v)}" for k, v in models.items())
    if isinstance(models, (list, tuple)):
        return esc(", ".join(str(m) for m in models)) or "none loaded yet"
    return esc(models) if models else "none loaded yet"


def _plain(value: Any) -> str:  # noqa: ANN401
    if isinstance(value, dict):
        return esc(", ".join(f"{k}={v}" for k, v in value.items())) or "—"
    if isinstance(value, (list, tuple)):
        return esc(", ".join(str(v) for v in value)) or "—"
    return esc(value) if value not in (None, "") else "—"


def summary_html(status: dict[str, Any] | None) -> str:
    """Cards for the mode, the scheduler, the workers and the dashboard link."""
    if status is None:
        return '<div class="v2s-empty">Starting the transcription backend…</div>'
    mode = str(status.get("mode") or "unknown")
    label, note = MODE_LABELS.get(mode, (mode, ""))
    workers = status.get("workers") or []
    running = sum(1 for w in workers if str(w.get("state")) in ("running", "ready", "idle"))
    dashboard = status.get("dashboard")
    link = (
        f'<div class="v2s-card"><div class="v2s-k">Dask dashboard</div><div class="v2s-v">'
        f'<a href="{esc(dashboard)}" target="_blank" rel="noopener">Open the dashboard ↗</a></div>'
        f'<div class="v2s-s">{esc(dashboard)}</div></div>'
        if dashboard
        else card("Dask dashboard", "Not available", "there is a dashboard when jobs run on a Dask cluster")
    )
    cards = [
        card("Where jobs run", label, note),
        card("Scheduler", str(status.get("scheduler") or "none")),
        card("Workers", f"{running} of {len(workers)} running"),
        link,
    ]
    error = f'<div class="v2s-error">{esc(status["error"])}</div>' if status.get("error") else ""
    return f'<div class="v2s-cards">{"".join(cards)}</div>{error}'


def workers_html(status: dict[str, Any] | None) -> str:
    """One row per worker: state, threads, load, RAM, GPU memory, models, tasks, resources, then extra fields."""
    workers = (status or {}).get("workers") or []
    if not workers:
        return '<div class="v2s-empty">No workers connected yet.</div>'
    extra = sorted({k for w in workers for k, v in w.items() if k not in _KNOWN and not isinstance(v, (dict, list))})
    headers = [
        "Worker",
        "Address",
        "State",
        "Threads",
        "CPU",
        "RAM",
        "GPU memory",
        "Model",
        "Tasks in flight",
        "Resources",
        *[k.replace("_", " ").capitalize() for k in extra],
    ]
    rows = []
    for w in workers:
        state = str(w.get("state") or "unknown")
        cpu, ram, gpu = _usage_cells(w)
        tasks = w.get("tasks", w.get("jobs"))
        rows.append(
            [
                f"<b>{esc(w.get('name') or '—')}</b>",
                esc(w.get("address") or "—"),
                badge(_STATE_KIND.get(state, "idle"), state),
                _plain(w.get("nthreads")),
                cpu,
                ram,
                gpu,
                _models(w),
                _plain(tasks),
                _plain(w.get("resources")),
                *[_plain(w.get(k)) for k in extra],
            ]
        )
    return table(headers, rows)


def build_cluster_tab(demo: Any, status: Callable[[], dict[str, Any] | None]) -> None:  # noqa: ANN401
    """The Cluster tab.

    Args:
        demo: The enclosing ``gr.Blocks`` (the tab is filled when a page loads).
        status: Returns ``Runner.cluster_status()``, or None while the runner is still starting.
    """
    with gr.Tab("Cluster", id="cluster") as tab:
        gr.Markdown(
            "Where transcription runs. On one machine jobs run inside the app; with `--workers N` or "
            "`--scheduler ADDRESS` they are spread over a Dask cluster, whose dashboard shows every task live."
        )
        summary = gr.HTML(summary_html(None))
        gr.Markdown("### Workers")
        workers = gr.HTML(workers_html(None))

        def refresh() -> tuple[str, str]:
            current = status()
            return summary_html(current), workers_html(current)

        gr.Timer(REFRESH_S).tick(refresh, None, [summary, workers], **QUIET)
        demo.load(refresh, None, [summary, workers], **QUIET)
        # Timers only tick in the visible tab: refresh at once when it is opened.
        tab.select(refresh, None, [summary, workers], **QUIET)
