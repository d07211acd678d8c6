"""The Hardware tab: what was detected, what the optimizer chose and why, and live usage charts.

:class:`~workbench.usage.UsageHistory` keeps the samples; the charts are plotly figures redrawn by a ``gr.Timer``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import gradio as gr

from workbench.ui.common import QUIET, card, esc, human_mb, table
from workbench.usage import SAMPLE_EVERY_S, WINDOW_S, UsageHistory

#: Optimizer fields in the order people read them, with a label.
OPTIMIZED_FIELDS = (
    ("device", "Device"),
    ("model", "Model"),
    ("compute_type", "Precision"),
    ("batch_size", "Batch size"),
    ("concurrency", "Parallel workers"),
    ("cpu_threads", "Threads per worker"),
    ("replicas", "Batches at once per worker"),
    ("cpu_affinity_cores", "CPU cores used"),
    ("use_memory_mapping", "Memory-mapped audio"),
)


# --------------------------------------------------------------------------------------------------------------
# Charts


def _figure(title: str, y_title: str, y_range: list[float] | None = None) -> Any:  # noqa: ANN401 - plotly Figure
    import plotly.graph_objects as go

    now = datetime.fromtimestamp(time.time())
    fig = go.Figure()
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        template="plotly_white",
        height=270,
        margin={"l": 50, "r": 12, "t": 42, "b": 36},
        legend={"orientation": "h", "y": -0.22, "x": 0},
        hovermode="x unified",
        yaxis={"title": y_title, "range": y_range, "rangemode": "tozero"},
        xaxis={"type": "date", "range": [datetime.fromtimestamp(time.time() - WINDOW_S), now], "tickformat": "%H:%M"},
    )
    return fig


def _line(fig: Any, name: str, samples: list[dict[str, Any]], value: Callable[[dict[str, Any]], float | None]) -> None:  # noqa: ANN401
    import plotly.graph_objects as go

    xs, ys = [], []
    for sample in samples:
        y = value(sample)
        if y is not None:
            xs.append(datetime.fromtimestamp(float(sample["time"])))
            ys.append(y)
    if xs:
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name, line={"width": 2}))


def _no_data(fig: Any, text: str) -> None:  # noqa: ANN401
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5, font={"size": 13})


def usage_figures(history: dict[str, list[dict[str, Any]]]) -> tuple[Any, Any, Any]:
    """Three plotly figures from :meth:`UsageHistory.snapshot`: CPU %, RAM used (GB), GPU memory used (GB)."""
    cpu = _figure("CPU use (%)", "%", [0, 100])
    ram_total = max((s.get("ram_total_mb") or 0 for samples in history.values() for s in samples[-1:]), default=0)
    ram = _figure(f"RAM used (GB{f', of {ram_total / 1024:.0f} GB' if len(history) == 1 and ram_total else ''})", "GB")
    gpu = _figure("GPU memory used (GB)", "GB")
    gpu_lines = 0
    for source, samples in history.items():
        _line(cpu, source, samples, lambda s: s.get("cpu_percent"))
        _line(ram, source, samples, lambda s: (s.get("ram_used_mb") or 0) / 1024)
        gpus = {(g.get("index"), g.get("name")) for s in samples for g in s.get("gpus") or []}
        for index, name in sorted(gpus, key=lambda g: (g[0] is None, g[0])):

            def used(s: dict[str, Any], index: Any = index) -> float | None:  # noqa: ANN401
                match = [g for g in s.get("gpus") or [] if g.get("index") == index]
                return (match[0].get("used_mb") or 0) / 1024 if match else None

            _line(gpu, f"{source} · GPU {index} ({name})", samples, used)
            gpu_lines += 1
    if not history:
        for fig in (cpu, ram, gpu):
            _no_data(fig, "collecting the first samples…")
    elif not gpu_lines:
        _no_data(gpu, "No GPU on the app host or any worker:<br>transcription runs on the CPU")
    return cpu, ram, gpu


# --------------------------------------------------------------------------------------------------------------
# Detected hardware and optimized settings


def hardware_cards(report: dict[str, Any]) -> str:
    """Cards for the detected GPU(s), CPU, RAM, storage and platform."""
    hw = report["hardware"]
    if hw["gpu_count"]:
        names = hw.get("gpu_names") or [f"GPU {i}" for i in range(hw["gpu_count"])]
        gpu = card(
            "GPU",
            f"{hw['gpu_count']} × {names[0]}",
            ", ".join(f"{human_mb(m)}" for m in hw["gpu_memory_mb"]) + " memory",
        )
    else:
        gpu = card("GPU", "None found", "CUDA available" if hw["cuda_available"] else "runs on the CPU")
    cards = [
        gpu,
        card("CPU", f"{hw['cpu_cores']} cores", f"{hw['cpu_threads']} threads"),
        card("RAM", human_mb(hw["memory_total_mb"]), f"{human_mb(hw['memory_available_mb'])} available"),
        card("Free disk (jobs folder)", f"{hw['temp_space_available_gb']:.0f} GB"),
        card("Platform", hw.get("platform") or "unknown"),
    ]
    warnings = "".join(f'<div class="v2s-error">⚠ {esc(w)}</div>' for w in hw.get("warnings") or [])
    return f'<div class="v2s-cards">{"".join(cards)}</div>{warnings}'


def _shown(name: str, value: Any, optimized: dict[str, Any]) -> str:  # noqa: ANN401
    if name == "cpu_affinity_cores":
        from pipeline.system.affinity import format_core_list

        return f"{format_core_list(value)} ({optimized.get('cpu_affinity_strategy')})" if value else "not bound"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def optimized_table(report: dict[str, Any]) -> str:
    """The optimizer's choices, one row each: setting, value, and the reason (its text after ``value:``)."""
    optimized = report["optimized"]
    reasons = optimized.get("reasons") or {}
    rows = []
    for name, label in OPTIMIZED_FIELDS:
        if name not in optimized:
            continue
        reason = str(reasons.get(name) or "")
        _, sep, why = reason.partition(": ")
        shown = _shown(name, optimized[name], optimized)
        rows.append([f"<b>{esc(label)}</b>", esc(shown), esc(why if sep else reason)])
    return table(["Setting", "Chosen", "Why"], rows)


def build_hardware_tab(demo: Any, report: Callable[..., dict[str, Any]], usage: UsageHistory) -> None:  # noqa: ANN401
    """The Hardware tab.

    Args:
        demo: The enclosing ``gr.Blocks`` (the charts are drawn when a page loads).
        report: ``report(refresh=False)`` gives :func:`~pipeline.optimize.report.hardware_report` for the app's settings.
        usage: The app's usage history (already sampling).
    """
    with gr.Tab("Hardware", id="hardware") as tab:
        gr.Markdown(
            "What this machine offers, and the settings video2srt chose for it — every job starts from these. "
            f"The charts cover the last {WINDOW_S / 60:.0f} minutes and update every {SAMPLE_EVERY_S:.0f} seconds, "
            "for this machine and for each cluster worker that reports its load."
        )
        first = report()
        cards = gr.HTML(hardware_cards(first))
        gr.Markdown("### Settings chosen for this machine")
        chosen = gr.HTML(optimized_table(first))
        gr.Markdown("### Live load")
        timer = gr.Timer(SAMPLE_EVERY_S)
        with gr.Row(equal_height=True):
            plots = (
                gr.Plot(show_label=False, min_width=300),
                gr.Plot(show_label=False, min_width=300),
                gr.Plot(show_label=False, min_width=300),
            )
        with gr.Accordion("All detected values (JSON)", open=False):
            raw = gr.JSON(first, show_label=False)
            refresh = gr.Button("Detect again", size="sm")

        def charts() -> tuple[Any, Any, Any]:
            return usage_figures(usage.snapshot())

        def detect_again() -> tuple[str, str, dict[str, Any]]:
            fresh = report(refresh=True)
            return hardware_cards(fresh), optimized_table(fresh), fresh

        # Not through the queue: a chart refresh must never wait behind a long-running event.
        timer.tick(charts, None, list(plots), **QUIET)
        demo.load(charts, None, list(plots), **QUIET)
        # Timers only tick in the visible tab: refresh at once when it is opened.
        tab.select(charts, None, list(plots), **QUIET)
        refresh.click(detect_again, None, [cards, chosen, raw])
