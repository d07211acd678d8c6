"""The Transcribe tab: upload files, choose settings (the optimizer's by default), start, and watch each job —
stage, segments, real-time factor, time left and the subtitles as they grow — then preview and download.

Jobs go through the app's :class:`~workbench.service.JobManager`, the same queue and job list as the HTTP API.
The Start handler only copies the uploads into job folders (on a worker thread, never the event loop) and
then follows the jobs by polling their status; transcription itself runs on the manager's worker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from pipeline.core.errors import PipelineError, UsageError
from pipeline.core.settings import DEFAULT_FORMATS, Settings
from pipeline.core.states import JobState
from pipeline.core.validate import RULES
from pipeline.parse import settings_from_request
from workbench.bench import Workbench
from workbench.errors import one_line
from workbench.status import DELETED
from workbench.ui.common import FINAL_STAGES, GPU_QUEUE, GPU_QUEUE_LIMIT, STAGE_LABELS, esc, human_seconds
from workbench.uploads import MEDIA_EXTENSIONS

#: How often a running job's progress and subtitles are refreshed in the page.
POLL_S = 1.0
#: Containers browsers play directly; other videos get no preview (converting them would cost minutes).
PREVIEW_EXTENSIONS = ("mp4", "webm", "m4v", "mov")


#: "Detect automatically" first, then every Whisper language in its own script with its English name
#: ("中文 — Chinese"), so typing either finds it; built on first use (pipeline.core.languages).
def language_choices() -> list[tuple[str, str]]:
    """The language picker's (label, code) pairs."""
    from pipeline.core.languages import language_choices as choices

    return choices()


GROWING = "Subtitles (they grow while the job runs)"
FORMAT_LABELS = [
    ("SRT (most players)", "srt"),
    ("WebVTT (web video)", "vtt"),
    ("JSON (words and timings)", "json"),
    ("ASS (styled; review and burn in the Review tab)", "ass"),
]


def form_request(
    base: Settings,
    language: str | None,
    formats: list[str],
    batch_size: float,
    beam_size: float,
    vad: bool,
    width: float,
    lines: float,
    task: str | None = "transcribe",
    script: str | None = "simplified",
) -> dict[str, Any]:
    """The Start form's values as a job request, checked by the validators the CLI and the HTTP API share.

    Raises:
        UsageError: A value is out of range or unknown (the same words as the CLI's and the API's).
    """
    overrides = {
        "language": language or "auto",
        "formats": ",".join(formats),
        "batch_size": int(batch_size),
        "beam_size": int(beam_size),
        "vad": bool(vad),
        "max_line_width": int(width),
        "max_lines": int(lines),
        "task": task or "transcribe",
        "chinese": "auto" if script in (None, "", "simplified") else script,
    }
    settings_from_request(base, overrides, Path("."))
    return overrides


def job_card(status: dict[str, Any]) -> str:
    """One job's progress as HTML: name, stage, bar, segments, audio done, real-time factor, time left."""
    stage = str(status.get("stage") or status.get("state") or "")
    state = str(status.get("state") or "")
    progress = float(status.get("progress") or 0.0)
    done, total = int(status.get("segments_done") or 0), status.get("segments_total")
    duration = float(status.get("duration") or 0)
    audio_done = duration if state == JobState.DONE else min(float(status.get("audio_done") or 0), duration)
    rtf = float(status.get("rtf") or 0)
    label = STAGE_LABELS.get(stage, stage.replace("_", " ").capitalize())
    failed = state in (JobState.FAILED, JobState.CANCELLED) or stage == DELETED
    bar = "v2s-done" if state == JobState.DONE else "v2s-fail" if failed else ""
    facts = [f"Segments <b>{done} / {total if total is not None else '?'}</b>"]
    if duration:
        facts.append(f"Audio <b>{human_seconds(audio_done)} of {human_seconds(duration)}</b>")
    if rtf:
        facts.append(
            '<span title="seconds of work per second of audio: lower is faster">'
            f"Real-time factor <b>{rtf:.2f}</b></span>"
        )
    if state in (JobState.RUNNING, JobState.WAITING_FOR_MODEL, JobState.QUEUED) and stage not in FINAL_STAGES:
        left = (duration - audio_done) * rtf if rtf and duration > audio_done else None
        facts.append(f"Time left <b>{'about ' + human_seconds(left) if left is not None else 'estimating…'}</b>")
    elif state == JobState.DONE and status.get("created") and status.get("updated"):
        facts.append(f"Took <b>{human_seconds(float(status['updated']) - float(status['created']))}</b>")
    if status.get("language"):
        sure = status.get("language_probability")
        facts.append(
            f"Language <b>{esc(status['language'])}</b>" + (f" (p {float(sure):.2f})" if sure is not None else "")
        )
    if status.get("model"):
        facts.append(
            f'<span title="{esc(status.get("model_reason") or "")}">Model <b>{esc(status["model"])}</b></span>'
        )
    facts.append(f"Job <code>{esc(status.get('job_id'))}</code>")
    error = f'<div class="v2s-error">{esc(status["error"])}</div>' if status.get("error") else ""
    if status.get("language_warning"):
        error += f'<div class="v2s-note v2s-language-warning">{esc(status["language_warning"])}</div>'

    spans = "".join(f"<span>{fact}</span>" for fact in facts)
    return (
        f'<div class="v2s-job" data-stage="{esc(stage)}">'
        f'<div class="v2s-job-head"><span>{esc(status.get("input_name"))}</span>'
        f"<span>{esc(label)} · {progress * 100:.0f}%</span></div>"
        f'<div class="v2s-bar {bar}"><div style="width:{progress * 100:.1f}%"></div></div>'
        f'<div class="v2s-facts">{spans}</div>{error}</div>'
    )


def progress_html(statuses: list[dict[str, Any]], errors: list[str]) -> str:
    """Every job of this run, plus the files that could not be started."""
    refused = "".join(f'<div class="v2s-job"><div class="v2s-error">{esc(e)}</div></div>' for e in errors)
    return '<div id="v2s-progress">' + "".join(job_card(s) for s in statuses) + refused + "</div>"


IDLE_HTML = (
    '<div id="v2s-progress"><div class="v2s-empty">Progress appears here once you press '
    "<b>Start</b>: stage, segments, speed and time left for every file.</div></div>"
)


def _finished(status: dict[str, Any]) -> bool:
    if str(status.get("stage")) in FINAL_STAGES:
        return True
    return status.get("state") in FINAL_STAGES and not status.get("active")


def _results(bench: Workbench, jobs: list[tuple[str, str]], statuses: list[dict[str, Any]]) -> tuple[Any, Any, Any]:
    """The finished run's subtitles text, video preview and download files (Gradio updates)."""
    files: list[str] = []
    video: Any = gr.skip()
    shown: dict[str, Any] | None = None
    for (job_id, path), status in zip(jobs, statuses, strict=True):
        if status.get("state") != JobState.DONE:
            continue
        exported = bench.export(job_id)
        files += [str(p) for p in exported.values()]
        if shown is None and Path(path).suffix.lower().lstrip(".") in PREVIEW_EXTENSIONS:
            shown = status
            captions = exported.get("vtt") or exported.get("srt")
            video = gr.Video(
                value=path,
                subtitles=str(captions) if captions else None,
                visible=True,
                label=f"Preview of {status.get('input_name')} with its subtitles",
            )
    shown = shown or next((st for st in statuses if st.get("state") == JobState.DONE), None)
    if shown is not None:
        text = gr.Textbox(value=bench.srt_text(shown["job_id"]), label=f"Subtitles of {shown.get('input_name')}")
    else:  # nothing finished: what the last job got done before it stopped
        last = statuses[-1]
        text = gr.Textbox(
            value=bench.srt_text(last["job_id"]),
            label=f"Subtitles of {last.get('input_name')} (unfinished: resume the job in Jobs)",
        )
    return text, video, gr.File(value=files or None, visible=True if files else "hidden")


def build_transcribe_tab(bench: Workbench) -> None:
    """The Transcribe tab; its Start button is also the ``/transcribe`` endpoint of Gradio's client API."""
    manager = bench.manager
    from pipeline.resolve import resolve

    defaults = bench.hardware_report()["optimized"]
    s = bench.settings
    batch = RULES["transcribe.batch_size"]
    beam = RULES["transcribe.beam_size"]
    with gr.Tab("Transcribe", id="transcribe"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                files = gr.File(
                    label="1 · Video or audio files (one or many)",
                    file_count="multiple",
                    file_types=[f".{ext}" for ext in MEDIA_EXTENSIONS],
                    type="filepath",
                    height=170,
                    elem_id="v2s-files",
                )
                language = gr.Dropdown(
                    language_choices(),
                    value=s.transcribe.language or "auto",
                    label="2 · Spoken language",
                    info="Type a name in any language or in English. With the automatic model, English runs on "
                    "the fast tiny.en and other languages on a multilingual model (see Models).",
                    allow_custom_value=True,
                    filterable=True,
                )
                formats = gr.CheckboxGroup(FORMAT_LABELS, value=list(DEFAULT_FORMATS), label="3 · Subtitle formats")
                with gr.Row():
                    task = gr.Radio(
                        ["transcribe", "translate"],
                        value=s.transcribe.task,
                        label="Task",
                        info="translate: English subtitles from any language (multilingual model)",
                    )
                    script = gr.Radio(
                        ["simplified", "traditional", "keep"],
                        value="simplified" if s.subtitles.chinese == "auto" else s.subtitles.chinese,
                        label="Chinese script",
                        info="for Chinese speech only",
                    )
                with gr.Accordion("Advanced settings (tuned for this machine)", open=False):
                    gr.Markdown(
                        f"Defaults come from the optimizer: model **{esc(defaults['model'])}** on "
                        f"**{esc(defaults['device'])}** ({esc(defaults['compute_type'])}), see the Hardware tab "
                        "for the reasons.",
                        elem_classes="v2s-note",
                    )
                    # The same range as the CLI's and the API's (pipeline.core.validate.RULES).
                    batch_size = gr.Slider(
                        batch.low,
                        batch.high or batch.low,
                        value=resolve(s)[0].transcribe.batch_size,
                        step=1,
                        label="Batch size",
                        info="windows per model call; lower it if memory runs out",
                    )
                    beam_size = gr.Slider(
                        beam.low,
                        beam.high or beam.low,
                        value=s.transcribe.beam_size,
                        step=1,
                        label="Beam size",
                        info="higher is slightly more accurate and slower",
                    )
                    vad = gr.Checkbox(
                        value=s.vad.enabled,
                        label="Cut at pauses with voice activity detection",
                        info="off: fixed 60-second pieces",
                    )
                    with gr.Row():
                        width = gr.Slider(20, 80, value=s.subtitles.max_line_width, step=1, label="Characters per line")
                        lines = gr.Slider(1, 3, value=s.subtitles.max_lines, step=1, label="Lines per subtitle")
                with gr.Row():
                    start = gr.Button("Start", variant="primary", size="lg", scale=3, elem_id="v2s-start")
                    stop = gr.Button("Cancel", variant="stop", size="lg", scale=1, elem_id="v2s-cancel")
            with gr.Column(scale=3, min_width=360):
                progress = gr.HTML(IDLE_HTML, label="Progress", elem_id="v2s-progress-box")
                subtitles = gr.Textbox(
                    label=GROWING,
                    lines=12,
                    max_lines=12,
                    autoscroll=True,
                    interactive=False,
                    buttons=["copy"],
                    elem_id="v2s-subtitles",
                    placeholder="The first subtitles appear a few seconds after the start.",
                )
                # "hidden", not False: a component first rendered by an update can lose parts of it (the video its
                # subtitle track, the file list its links) in Gradio 6.17.
                preview = gr.Video(
                    label="Preview with subtitles", visible="hidden", interactive=False, elem_id="v2s-preview"
                )
                downloads = gr.File(
                    label="Download your subtitles",
                    file_count="multiple",
                    interactive=False,
                    visible="hidden",
                    elem_id="v2s-downloads",
                )
        jobs_state = gr.State([])

        def transcribe(
            files: list[str] | None,
            language: str,
            formats: list[str],
            batch_size: float,
            beam_size: float,
            vad: bool,
            width: float,
            lines: float,
            task: str = "transcribe",
            script: str = "simplified",
        ) -> Iterator[tuple[Any, ...]]:
            """Transcribe the uploaded files; yields progress while the jobs run, then the results."""
            if not files:
                raise gr.Error("Choose at least one video or audio file first (box 1).")
            if not formats:
                raise gr.Error("Tick at least one subtitle format (box 3).")
            try:
                overrides = form_request(s, language, formats, batch_size, beam_size, vad, width, lines, task, script)
            except UsageError as exc:
                raise gr.Error(one_line(str(exc))) from exc
            jobs: list[tuple[str, str]] = []  # (job id, the uploaded file's path here)
            errors: list[str] = []
            for path in files:
                try:
                    # Copied into the job's folder here, on a worker thread: never in the event loop.
                    with open(path, "rb") as stream:
                        jobs.append((manager.submit_upload(Path(path).name, stream, overrides), path))
                except (PipelineError, OSError) as exc:
                    errors.append(one_line(str(exc)))
            if not jobs:
                raise gr.Error(errors[0] if len(errors) == 1 else " · ".join(errors))
            ids = [job_id for job_id, _ in jobs]
            shown_srt: str | None = None
            while True:
                statuses = [bench.job_status(job_id) for job_id in ids]
                if all(_finished(st) for st in statuses):
                    break
                current = next(st for st in statuses if not _finished(st))
                text = bench.srt_text(current["job_id"])
                label = f"Subtitles of {current.get('input_name')} (they grow while the job runs)"
                srt_update = gr.skip() if text == shown_srt else gr.Textbox(value=text, label=label)
                shown_srt = text
                yield ids, progress_html(statuses, errors), srt_update, gr.skip(), gr.skip()
                time.sleep(POLL_S)
            yield ids, progress_html(statuses, errors), *_results(bench, jobs, statuses)

        def cancel(ids: list[str]) -> Any:  # noqa: ANN401
            if not ids:
                raise gr.Error("Nothing to cancel: start a job first.")
            for job_id in ids:
                try:
                    manager.cancel(job_id)
                except PipelineError:
                    continue  # already done or gone: nothing to stop
            gr.Info("Cancelling: the job stops at its next step.")
            return gr.skip()

        def reset() -> tuple[Any, ...]:
            starting = IDLE_HTML.replace("Progress appears here once you press <b>Start</b>", "Uploading and starting…")
            return (
                starting,
                gr.Textbox(value="", label=GROWING),
                gr.Video(value=None, visible="hidden"),
                gr.File(value=None, visible="hidden"),
            )

        start.click(
            reset,
            None,
            [progress, subtitles, preview, downloads],
            queue=False,
            show_progress="hidden",
            api_visibility="private",
        ).then(
            transcribe,
            [files, language, formats, batch_size, beam_size, vad, width, lines, task, script],
            [jobs_state, progress, subtitles, preview, downloads],
            api_name="transcribe",
            concurrency_id=GPU_QUEUE,
            concurrency_limit=GPU_QUEUE_LIMIT,
            show_progress="minimal",
        )
        stop.click(cancel, [jobs_state], [progress], queue=False, api_visibility="private")
