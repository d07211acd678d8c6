"""The Gradio workbench (first cut): upload media, get subtitles; hardware at a glance; HTTP API beside it.

UI values become :class:`~pipeline.settings.Settings` in one place and go to one pipeline call. Progress
arrives as :class:`~pipeline.runner.JobEvent` values and is turned into Gradio progress here, at the edge.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path
from typing import Any, Callable

from pipeline.errors import PipelineError
from pipeline.hardware import hardware_report
from pipeline.runner import JobEvent, Runner
from pipeline.settings import FORMATS, OutputSettings, Settings, parse_formats

log = logging.getLogger(__name__)


class Workbench:
    """The state behind the UI: one runner (so one model cache) for every job.

    Args:
        settings: The app's settings.
        runner: A provider of the shared runner (the HTTP API's job manager's), so the UI and the API
            hold one model cache; by default the workbench makes its own runner on first use.
    """

    def __init__(self, settings: Settings, runner: Callable[[], Runner] | None = None) -> None:
        self.settings = settings
        self._provide = runner
        self._runner: Runner | None = None
        self._lock = threading.Lock()

    @property
    def runner(self) -> Runner:
        if self._provide is not None:
            return self._provide()
        with self._lock:
            if self._runner is None:
                self._runner = Runner(self.settings)
            return self._runner

    def preload(self) -> None:
        """Start loading the default model in the background."""
        self.runner.preload()

    def job_settings(self, formats: list[str], language: str, max_line_width: int) -> Settings:
        """UI values → Settings for one job."""
        s = self.settings
        out_dir = s.jobs.jobs_dir / "_ui_outputs"
        return s.replace(
            output=OutputSettings(output_dir=out_dir, formats=parse_formats(formats or ["srt"])),
            transcribe=dataclasses.replace(s.transcribe, language=(language or "").strip().lower() or None),
            subtitles=dataclasses.replace(s.subtitles, max_line_width=int(max_line_width)),
        )

    def transcribe(self, files: list[str] | None, formats: list[str], language: str, max_line_width: int, progress: Any) -> tuple[str, str, list[str]]:
        """Run each uploaded file; return (status markdown, the first SRT, output files)."""
        import gradio as gr

        if not files:
            raise gr.Error("Upload at least one video or audio file first.")
        try:
            settings = self.job_settings(formats, language, max_line_width)
        except PipelineError as exc:
            raise gr.Error(str(exc)) from exc
        lines, outputs, first_srt = [], [], ""
        for path in files:
            name = Path(path).name

            def on_event(event: JobEvent) -> None:
                frac = event.audio_done / event.duration if event.duration else 0.0
                progress(min(frac, 1.0), desc=f"{name}: {event.stage} ({event.segments_done} segments)")

            try:
                result = self.runner.run(Path(path), settings, on_event)
            except PipelineError as exc:
                lines.append(f"- **{name}**: {exc}")
                continue
            t = result.transcript
            lines.append(
                f"- **{name}**: {len(t.cues)} cues, {t.duration:.0f} s of audio in {t.timings.get('total', 0):.1f} s "
                f"({t.language}, {t.model})"
            )
            outputs += [str(p) for p in result.outputs.values()]
            if not first_srt and "srt" in result.outputs:
                first_srt = result.outputs["srt"].read_text(encoding="utf-8")
        return "\n".join(lines), first_srt, outputs


JOB_COLUMNS = ["job_id", "input_name", "state", "stage", "segments_done", "segments_total", "progress", "error"]


def _jobs_tab(gr: Any, manager: Any) -> None:  # noqa: ANN401 - gradio module, JobManager
    """Every job with its state (unfinished ones first: a crash leaves them "interrupted"); resume, cancel, delete."""

    def table() -> list[list[Any]]:
        rows = []
        for job in manager.list():
            row = {**job, "progress": f"{100 * float(job.get('progress') or 0):.0f}%"}
            rows.append([row.get(c) if row.get(c) is not None else "" for c in JOB_COLUMNS])
        return rows

    def act(action: str, job_id: str) -> tuple[str, list[list[Any]]]:
        job_id = (job_id or "").strip()
        if not job_id:
            raise gr.Error("Type or paste a job id from the table first.")
        try:
            getattr(manager, action)(job_id)
        except Exception as exc:  # noqa: BLE001 - every manager error is one clear line for the user
            raise gr.Error(str(exc).splitlines()[0]) from exc
        return f"{action}: {job_id}", table()

    with gr.Tab("Jobs"):
        gr.Markdown("Jobs that a crash or a restart left unfinished show as **interrupted**: resume them here.")
        jobs = gr.Dataframe(headers=JOB_COLUMNS, value=table, interactive=False, wrap=True)
        with gr.Row():
            job_id = gr.Textbox(label="Job id", scale=3)
            resume = gr.Button("Resume", variant="primary")
            cancel = gr.Button("Cancel")
            delete = gr.Button("Delete", variant="stop")
        note = gr.Markdown()
        for button, action in ((resume, "resume"), (cancel, "cancel"), (delete, "delete")):
            button.click(lambda i, a=action: act(a, i), [job_id], [note, jobs])
        gr.Timer(3.0).tick(table, None, jobs)


def build_app(  # noqa: ANN201 - gradio.Blocks
    settings: Settings, runner: Callable[[], Runner] | None = None, manager: Any = None  # noqa: ANN401
):
    """Build the Gradio Blocks UI for ``settings``.

    Args:
        settings: The app's settings.
        runner: Provides a shared runner (see :class:`Workbench`).
        manager: The HTTP API's job manager; with it the UI gets the Jobs tab.
    """
    import gradio as gr

    bench = Workbench(settings, runner)
    with gr.Blocks(title="video2srt") as demo:
        gr.Markdown("# video2srt\nTurn video and audio into readable, well-timed subtitles — offline, with Whisper.")
        with gr.Tab("Transcribe"):
            with gr.Row():
                with gr.Column():
                    files = gr.File(label="Video or audio files", file_count="multiple", type="filepath")
                    formats = gr.CheckboxGroup(list(FORMATS), value=["srt", "vtt", "json"], label="Formats")
                    with gr.Accordion("Advanced", open=False):
                        language = gr.Textbox(label="Language (blank: detect)", value="")
                        width = gr.Slider(20, 80, value=settings.subtitles.max_line_width, step=1, label="Max line width")
                    start = gr.Button("Start", variant="primary")
                with gr.Column():
                    status = gr.Markdown()
                    srt_text = gr.Textbox(label="Subtitles (SRT)", lines=18)
                    downloads = gr.File(label="Downloads", file_count="multiple")

            def run(files, formats, language, width, progress=gr.Progress()):  # noqa: ANN001, ANN202, B008
                return bench.transcribe(files, formats, language, width, progress)

            start.click(run, [files, formats, language, width], [status, srt_text, downloads], concurrency_id="gpu", concurrency_limit=1)
        if manager is not None:
            _jobs_tab(gr, manager)
        with gr.Tab("Hardware"):
            report = hardware_report(settings.jobs.jobs_dir)
            gr.Markdown("**" + report["summary"].replace(" / ", "** · **") + "**")
            gr.JSON(report, label="Detected hardware and optimized settings")
        demo.load(bench.preload)
    return demo


def build_server(settings: Settings, resume_unfinished: bool = False):  # noqa: ANN201 - fastapi.FastAPI
    """The FastAPI app: the HTTP API (SPEC §2) beside the Gradio UI mounted at ``/``.

    Args:
        settings: The app's settings.
        resume_unfinished: Queue every job a crash or restart left unfinished, at start.
    """
    import gradio as gr
    from fastapi import FastAPI

    from workbench.api_hardware import hardware_router
    from workbench.api_jobs import jobs_router
    from workbench.jobs import JobManager

    app = FastAPI(title="video2srt")
    app.include_router(hardware_router(settings.jobs.jobs_dir))
    # One job manager for the API and the UI: one runner, so one model cache.
    manager = app.state.jobs = JobManager(settings)
    app.include_router(jobs_router(manager))
    if resume_unfinished:
        for job in manager.store.unfinished():
            manager.resume(job.id)
    return gr.mount_gradio_app(app, build_app(settings, lambda: manager.runner, manager), path="/")


__all__ = ["Workbench", "build_app", "build_server"]
