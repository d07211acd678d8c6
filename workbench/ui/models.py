"""The Models tab: the model status indicator, switch model, retry, and what
each worker holds in its cache.

Everything shown comes from one call, the app-level model status (``Runner.model_status``, the same dict as
``GET /api/models/status``), read by a ``gr.Timer``; loads go through the same call as ``POST
/api/models/load``. The tab never looks inside the model manager.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.asr.manager import ModelBusyError
from pipeline.core.errors import ModelError, PipelineError
from workbench.ui.common import badge, card, esc, human_mb, human_seconds, table

#: How often the tab and the header read the model status.
REFRESH_S = 1.0

StatusFn = Callable[[], dict[str, Any]]
LoadFn = Callable[[str | None], dict[str, Any]]

_KIND = {"ready": "ok", "loading": "busy", "failed": "bad", "idle": "idle"}
_STAGES = {
    "queued": "queued behind other work",
    "resolve": "finding the files",
    "download": "downloading",
    "assemble": "assembling the packaged model (once)",
    "load": "reading the weights",
    "warm-up": "warming up",
}


def _percent(status: dict[str, Any]) -> str:
    return f"{100 * float(status.get('progress') or 0):.0f}%"


def status_text(status: dict[str, Any], compact: bool = False) -> str:
    """One line for the state: ``Model tiny.en: loading 40% (warming up)``, ``…: failed — reason``.

    ``compact`` (the header's pill, which has little room) leaves out the loading stage and the failure's
    reason; the pill's tooltip has them.
    """
    model = status.get("model")
    state = status.get("state") or "idle"
    if not model:
        return "No model loaded yet" if state != "failed" else "Model: failed — " + str(status.get("error") or "")
    if state == "loading":
        stage = "" if compact else _STAGES.get(str(status.get("stage")), "")
        return f"Model {model}: loading {_percent(status)}" + (f" ({stage})" if stage else "")
    if state == "failed":
        if compact:
            return f"Model {model}: failed"
        return f"Model {model}: failed — {status.get('error') or status.get('message') or 'unknown reason'}"
    if state == "ready":
        return f"Model {model}: ready"
    return f"Model {model}: not loaded yet"


def status_badge(status: dict[str, Any]) -> str:
    """The header's status pill; ``data-state`` lets browser tests follow it."""
    state = str(status.get("state") or "idle")
    pill = badge(_KIND.get(state, "idle"), status_text(status, compact=True), str(status.get("message") or ""))
    return f'<div id="v2s-model-status" data-state="{esc(state)}">{pill}</div>'


def status_html(status: dict[str, Any]) -> str:
    """The tab's big indicator: the pill, a progress bar while loading, the message or the failure reason."""
    state = str(status.get("state") or "idle")
    progress = float(status.get("progress") or 0.0)
    bar_class = {"ready": " v2s-done", "failed": " v2s-fail"}.get(state, "")
    bar = (
        f'<div class="v2s-bar{bar_class}"><div style="width:{100 * progress:.0f}%"></div></div>'
        if state in ("loading", "failed", "ready")
        else ""
    )
    detail = esc(status.get("message") or "")
    if state == "failed":
        detail = (
            f'<div class="v2s-error">{esc(status.get("error") or status.get("message") or "")}</div>'
            '<div class="v2s-note">Fix the cause and press <b>Retry</b>, or load another model.</div>'
        )
    else:
        detail = f'<div class="v2s-note">{detail}</div>'
    workers = status.get("workers") or []
    cards = [
        card("State", state, _STAGES.get(str(status.get("stage")), "") if state == "loading" else ""),
        card("Model", str(status.get("model") or "none")),
        card("Progress", _percent(status)),
        card("Workers ready", f"{status.get('ready_workers', 0)} of {status.get('total_workers', len(workers))}"),
    ]
    text = status_text(status, compact=True) if state == "failed" else status_text(status)
    pill = badge(_KIND.get(state, "idle"), text, str(status.get("message") or ""))
    return (
        f'<div id="v2s-models-indicator" data-state="{esc(state)}">{pill}{bar}{detail}'
        f'<div class="v2s-cards" style="margin-top:0.6em">{"".join(cards)}</div></div>'
    )


def cache_html(status: dict[str, Any]) -> str:
    """Every model each worker knows: its state, where it runs, memory (estimated and measured), timings."""
    rows = []
    for worker in status.get("workers") or []:
        cached = set(worker.get("cache") or [])
        for model in reversed(worker.get("models") or []):
            state = str(model.get("state") or "idle")
            rows.append(
                [
                    esc(worker.get("worker")),
                    esc(model.get("model")),
                    badge(
                        _KIND.get(state, "idle"),
                        state + (" (cached)" if model.get("model") in cached and state == "ready" else ""),
                    ),
                    esc(f"{model.get('device') or '—'}/{model.get('compute_type') or '—'}"),
                    esc(f"~{human_mb(model.get('memory_mb'))}" if model.get("memory_mb") else "—"),
                    esc(human_mb(model.get("measured_mb")) if model.get("measured_mb") is not None else "—"),
                    esc(_secs(model.get("load_s"))),
                    esc(_secs(model.get("warmup_s"))),
                    esc(model.get("error") or model.get("message") or ""),
                ]
            )
    if not rows:
        return '<div class="v2s-empty">No model loaded or loading yet.</div>'
    limits = "; ".join(
        f"{esc(w.get('worker'))}: {len(w.get('cache') or [])} of {w.get('max_cached')} cached, "
        f"warm-up {w.get('warmup')}" + _memory_note(w.get("memory") or {})
        for w in status.get("workers") or []
    )
    headers = ["Worker", "Model", "State", "Device", "Memory (est.)", "Measured", "Load", "Warm-up", "Message"]
    return table(headers, rows) + f'<div class="v2s-note" style="margin-top:0.4em">{limits}</div>'


def _memory_note(memory: dict[str, Any]) -> str:
    if not memory:
        return ""
    parts = [f"RAM {human_mb(memory.get('ram_available_mb'))} free"]
    for i, (free, total) in enumerate(zip(memory.get("gpu_free_mb") or [], memory.get("gpu_total_mb") or [])):
        parts.append(f"GPU {i} {human_mb(free)} of {human_mb(total)} free")
    return " (" + ", ".join(parts) + " at the last load)"


def _secs(value: Any) -> str:  # noqa: ANN401
    if value is None:
        return "—"
    return f"{float(value):.1f} s" if float(value) < 60 else human_seconds(float(value))


def catalogue_html(rows: list[dict[str, Any]]) -> str:
    """The models catalogue: which model speaks which languages, its size, whether it is here, how fast it would
    run on this machine, and a download's progress."""
    if not rows:
        return '<div class="v2s-empty">No models known.</div>'
    body = []
    for m in rows:
        download = m.get("download") or {}
        if download.get("state") == "downloading":
            note = f"downloading {100 * float(download.get('progress') or 0):.0f}%"
        elif download.get("state") == "failed":
            note = str(download.get("message") or "download failed")
        else:
            note = str(m.get("note") or "")
        body.append(
            [
                esc(m.get("name")),
                esc(m.get("languages")),
                esc(f"{m['size_mb']:.0f} MB" if m.get("size_mb") is not None else "—"),
                badge("ok" if m.get("present") else "idle", "present" if m.get("present") else "not here"),
                esc(m.get("source")),
                esc(f"~{m['rtf']:.2g}" if m.get("rtf") is not None else "—"),
                esc(note),
            ]
        )
    headers = ["Model", "Languages", "Size", "Here", "Source", "Speed (RTF)", "Note"]
    return (
        table(headers, body)
        + '<div class="v2s-note" style="margin-top:0.4em">Speed: a rough real-time factor (seconds of work per '
        "second of audio) on this machine, from tiny.en measured on a 2-core CPU scaled by model size. With the "
        "model <b>auto</b>, English runs on tiny.en and other languages on the best multilingual model here.</div>"
    )


def load_answer(load: LoadFn, name: str | None) -> str:
    """Ask for a load; the one-line answer to show (a busy worker is an answer, not an error)."""
    try:
        answer = load(name)
    except ModelBusyError as exc:
        return f'<div class="v2s-note">{esc(exc)}</div>'
    except ModelError as exc:
        return f'<div class="v2s-error">{esc(exc)}</div>'
    return f'<div class="v2s-note">Loading {esc(answer.get("model") or name or "the model")}…</div>'


def build_models_tab(  # noqa: ANN401
    demo: Any,  # noqa: ANN401
    status: StatusFn,
    load: LoadFn,
    choices: Callable[[], list[str]] | None = None,
    catalogue: Callable[[], list[dict[str, Any]]] | None = None,
    download: Callable[[str], dict[str, Any]] | None = None,
) -> None:
    """Add the Models tab to the Blocks being built.

    Args:
        demo: The Blocks (its ``load`` event fills the tab when a page opens).
        status: The app-level model status.
        load: Starts a load (a name, or None to retry the selected model); raises ModelBusyError while one runs.
        choices: Models offered in the picker (default: those available offline); any name or folder may
            be typed too.
        catalogue: The models catalogue rows (the Models table; none: no table).
        download: Starts a model download (the Download button; none: no button).
    """
    import gradio as gr

    from pipeline.asr.models import available_models

    offered = choices or available_models

    def refresh() -> tuple[str, str, Any]:
        now = status()
        return status_html(now), cache_html(now), gr.update(visible=now.get("state") == "failed")

    def tick() -> tuple[Any, str, str, Any]:
        # The answer to the last click stays while a load runs; the indicator says the rest.
        now = status()
        return (
            gr.update() if now.get("busy") else "",
            status_html(now),
            cache_html(now),
            gr.update(visible=now.get("state") == "failed"),
        )

    def picker() -> Any:  # noqa: ANN401
        names = list(offered())
        now = status()
        workers = now.get("workers") or [{}]
        # The model as asked for (a folder's full path), so that "Load" never picks another one silently.
        current = workers[0].get("request") or now.get("model")
        if current and current not in names:
            names.append(current)
        return gr.update(choices=names, value=current or (names[0] if names else None))

    def switch(name: str | None) -> tuple[str, str, str, Any]:
        note = load_answer(load, (name or "").strip() or None)
        return (note, *refresh())

    def retry() -> tuple[str, str, str, Any]:
        return (load_answer(load, None), *refresh())

    with gr.Tab("Models", id="models"):
        gr.Markdown(
            "The model every new job uses. It loads at start; while it loads, new jobs wait in line and start "
            "when it is ready. Switching starts a new load; running jobs finish with the model they started with."
        )
        indicator = gr.HTML('<div class="v2s-empty">Reading the model status…</div>')
        with gr.Row(equal_height=True):
            model = gr.Dropdown(
                label="Model (a name, or type the path of a CTranslate2 model folder)", allow_custom_value=True, scale=4
            )
            switch_button = gr.Button("Load this model", variant="primary", scale=1)
            retry_button = gr.Button("Retry", variant="secondary", visible=False, scale=1)
        note = gr.HTML()
        gr.Markdown("### Loaded models and cache")
        cache = gr.HTML()
        if catalogue is not None:
            gr.Markdown("### Models catalogue: languages, size, speed here")
            listing = gr.HTML(elem_id="v2s-models-catalogue")
            if download is not None:
                with gr.Row(equal_height=True):
                    wanted = gr.Dropdown(
                        [m["name"] for m in catalogue() if not m.get("present") and m.get("repo")],
                        label="Download a standard model into the Hugging Face cache (needs the internet)",
                        allow_custom_value=True,
                        scale=4,
                    )
                    download_button = gr.Button("Download", variant="secondary", scale=1)
                download_note = gr.HTML()

                def start_download(name: str | None) -> tuple[str, str]:
                    try:
                        answer = download((name or "").strip())
                    except PipelineError as exc:
                        return f'<div class="v2s-error">{esc(exc)}</div>', catalogue_html(catalogue())
                    return f'<div class="v2s-note">{esc(answer.get("message"))}</div>', catalogue_html(catalogue())

                download_button.click(start_download, [wanted], [download_note, listing], show_progress="hidden")
            gr.Timer(2 * REFRESH_S).tick(
                lambda: catalogue_html(catalogue()), None, [listing], show_progress="hidden", queue=False
            )
            demo.load(lambda: catalogue_html(catalogue()), None, [listing], show_progress="hidden")
        switch_button.click(switch, [model], [note, indicator, cache, retry_button], show_progress="hidden")
        retry_button.click(retry, None, [note, indicator, cache, retry_button], show_progress="hidden")
        gr.Timer(REFRESH_S).tick(
            tick, None, [note, indicator, cache, retry_button], show_progress="hidden", queue=False
        )
    demo.load(refresh, None, [indicator, cache, retry_button], show_progress="hidden")
    demo.load(picker, None, [model], show_progress="hidden")


__all__ = [
    "build_models_tab",
    "cache_html",
    "catalogue_html",
    "load_answer",
    "status_badge",
    "status_html",
    "status_text",
]
