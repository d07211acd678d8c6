"""Charts (plotly) of the sweeps and the watched jobs; plotly is imported only when a chart is drawn."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipeline.lab.report import pct
from pipeline.lab.watch import JobWatch


def job_progress_figure(watch: JobWatch) -> Figure:
    """Each job's share of audio transcribed over time: when it started, how fast it went, when it ended."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for n, name in enumerate(dict.fromkeys(p["input"] for p in watch.progress)):
        points = [p for p in watch.progress if p["input"] == name]
        fig.add_scatter(
            x=[p["t"] for p in points],
            y=[p["fraction"] for p in points],
            mode="lines+markers",
            name=name,
            line={"color": _color(n), "shape": "hv"},
            hovertemplate="%{x:.1f} s: %{y:.0%}<extra>" + name + "</extra>",
        )
    fig.update_layout(
        title="Job progress",
        xaxis_title="seconds since the first job was submitted",
        yaxis={"title": "audio transcribed", "tickformat": ".0%", "range": [0, 1.05]},
        height=380,
    )
    return fig


def cluster_memory_figure(watch: JobWatch) -> Figure:
    """Memory of every worker process over time and, when there are GPUs, each GPU's used memory."""
    from plotly.subplots import make_subplots

    panels = ["Worker memory (MB, resident)"] + (["GPU memory used (MB)"] if watch.gpus else [])
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=panels)
    for n, name in enumerate(dict.fromkeys(w["worker"] for w in watch.workers)):
        points = [w for w in watch.workers if w["worker"] == name and w["memory_mb"] is not None]
        fig.add_scatter(
            x=[w["t"] for w in points],
            y=[w["memory_mb"] for w in points],
            mode="lines",
            name=str(name),
            line={"color": _color(n)},
            row=1,
            col=1,
        )
    # GPUs seen by several workers on one machine are the same device: one line per (worker, GPU) keeps
    # remote machines apart and costs nothing locally.
    for n, key in enumerate(dict.fromkeys((g["worker"], g["gpu"]) for g in watch.gpus)):
        points = [g for g in watch.gpus if (g["worker"], g["gpu"]) == key]
        fig.add_scatter(
            x=[g["t"] for g in points],
            y=[g["used_mb"] for g in points],
            mode="lines",
            name=f"{key[0]} · GPU {key[1]}",
            line={"color": _color(n + 5), "dash": "dot"},
            row=1,
            col=2,
        )
    for col in range(1, len(panels) + 1):
        fig.update_xaxes(title_text="seconds", row=1, col=col)
        fig.update_yaxes(rangemode="tozero", row=1, col=col)
    fig.update_layout(title="Memory over time", height=400)
    return fig


def use_offline_charts() -> None:
    """Make plotly figures render in Jupyter without a network: the MIME bundle (JupyterLab, VS Code) plus
    inline HTML with plotly.js embedded (classic notebook, nbconvert exports)."""
    import plotly.io as pio

    pio.renderers.default = "plotly_mimetype+notebook"


def vad_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Four panels against the speech threshold: WER, segment count, speech ratio, skipped silence.

    One line per (minimum silence, segment bounds); the library defaults are the star.
    """
    from plotly.subplots import make_subplots

    panels = [
        ("wer", "WER (lower is better)", ".1%"),
        ("segments", "Segments", "d"),
        ("speech_ratio", "Speech ratio (speech / audio)", ".0%"),
        ("silence_skipped_s", "Silence skipped (s)", ".1f"),
    ]
    fig = make_subplots(rows=2, cols=2, subplot_titles=[p[1] for p in panels], horizontal_spacing=0.1)
    groups: dict[tuple[int, float, float], list[Mapping[str, Any]]] = {}
    for r in sorted(rows, key=lambda r: r["threshold"]):
        groups.setdefault((r["min_silence_ms"], r["min_segment_s"], r["max_segment_s"]), []).append(r)
    for n, ((silence, low, high), members) in enumerate(groups.items()):
        name = f"silence {silence} ms · segments {low:g}–{high:g} s"
        for i, (key, _title, fmt) in enumerate(panels):
            fig.add_scatter(
                x=[r["threshold"] for r in members],
                y=[r[key] for r in members],
                mode="lines+markers",
                name=name,
                legendgroup=name,
                showlegend=i == 0,
                line={"color": _color(n)},
                hovertemplate=f"threshold %{{x}}<br>{key} %{{y:{fmt}}}<extra>{name}</extra>",
                row=i // 2 + 1,
                col=i % 2 + 1,
            )
    defaults = [r for r in rows if r.get("default")]
    for i, (key, _title, _fmt) in enumerate(panels):
        fig.add_scatter(
            x=[r["threshold"] for r in defaults],
            y=[r[key] for r in defaults],
            mode="markers",
            marker={"symbol": "star", "size": 14, "color": "black"},
            name="current defaults",
            legendgroup="defaults",
            showlegend=i == 0,
            row=i // 2 + 1,
            col=i % 2 + 1,
        )
        fig.update_xaxes(title_text="speech threshold", row=i // 2 + 1, col=i % 2 + 1)
    fig.update_yaxes(tickformat=".0%", row=1, col=1)
    fig.update_yaxes(tickformat=".0%", row=2, col=1)
    fig.update_layout(height=650, title="VAD sweep", legend={"orientation": "h", "y": -0.12})
    return fig


def segment_lengths_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Segment lengths of each VAD setting as box plots: how the length bounds shape the work units."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for n, r in enumerate(rows):
        fig.add_box(
            y=r["segment_lengths"],
            name=r["label"] + (" (defaults)" if r.get("default") else ""),
            boxpoints="all",
            marker={"color": _color(n)},
        )
    fig.update_layout(
        title="Segment lengths per setting",
        yaxis_title="seconds",
        showlegend=False,
        height=450,
        xaxis={"tickangle": -30},
    )
    return fig


def throughput_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Real-time factor, peak memory (and GPU memory when used) and time to first cue against batch size.

    One line per (workers, threads); the optimizer's choice is the star.
    """
    from plotly.subplots import make_subplots

    ok = [r for r in rows if not r.get("error")]
    panels = [
        ("rtf", "Real-time factor (lower is faster)", ".3f"),
        ("peak_rss_mb", "Peak memory, process tree (MB)", ".0f"),
        ("first_cue_s", "Time to first cue (s)", ".1f"),
    ]
    if any((r.get("peak_gpu_mb") or 0) > 0 for r in ok):
        panels.append(("peak_gpu_mb", "Peak GPU memory (MB)", ".0f"))
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[1] for p in panels])
    groups: dict[tuple[int, int], list[Mapping[str, Any]]] = {}
    for r in sorted(ok, key=lambda r: r["batch_size"]):
        groups.setdefault((r["workers"], r["cpu_threads"]), []).append(r)
    for n, ((workers, threads), members) in enumerate(sorted(groups.items())):
        name = f"{'in-process' if workers == 0 else f'{workers} workers'} · {threads} threads"
        for i, (key, _title, fmt) in enumerate(panels):
            fig.add_scatter(
                x=[str(r["batch_size"]) for r in members],
                y=[r[key] for r in members],
                mode="lines+markers",
                name=name,
                legendgroup=name,
                showlegend=i == 0,
                line={"color": _color(n)},
                hovertemplate=f"batch %{{x}}<br>%{{y:{fmt}}}<extra>{name}</extra>",
                row=1,
                col=i + 1,
            )
    chosen = [r for r in ok if r.get("optimizer")]
    for i, (key, _title, _fmt) in enumerate(panels):
        fig.add_scatter(
            x=[str(r["batch_size"]) for r in chosen],
            y=[r[key] for r in chosen],
            mode="markers",
            marker={"symbol": "star", "size": 14, "color": "black"},
            name="optimizer's choice",
            legendgroup="optimizer",
            showlegend=i == 0,
            row=1,
            col=i + 1,
        )
        fig.update_xaxes(title_text="batch size", type="category", row=1, col=i + 1)
        fig.update_yaxes(rangemode="tozero", row=1, col=i + 1)
    fig.update_layout(height=430, title="Throughput sweep", legend={"orientation": "h", "y": -0.25})
    return fig


def language_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """One bar per language: its error rate (WER or CER, as the bar's label says), from :func:`language_accuracy`."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_bar(
        x=[f"{r['language']} ({r['metric']})" for r in rows],
        y=[r["error"] for r in rows],
        text=[pct(r["error"]) for r in rows],
        marker={"color": [_color(n) for n in range(len(rows))]},
        hovertemplate="%{x}<br>%{y:.1%}<extra></extra>",
    )
    fig.update_yaxes(title_text="error rate (lower is better)", tickformat=".0%", rangemode="tozero")
    fig.update_layout(height=380, title="Accuracy per language")
    return fig


_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)

if TYPE_CHECKING:
    from plotly.graph_objects import Figure


def _color(n: int) -> str:
    return _PALETTE[n % len(_PALETTE)]
