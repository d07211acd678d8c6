"""The Jobs tab: every job (from the UI, the HTTP API or the CLI's jobs folder) with its state; resume, cancel,
delete, download. Unfinished jobs come first: a crash or restart leaves them "interrupted", ready to resume.
"""

from __future__ import annotations

import time
from typing import Any

import gradio as gr

from pipeline.core.errors import PipelineError
from workbench.bench import Workbench
from workbench.ui.common import QUIET, STAGE_LABELS
from workbench.ui.errors import ui_error

#: How often the table refreshes itself.
REFRESH_S = 3.0
EMPTY_HTML = (
    '<div class="v2s-empty">No jobs yet. Start one in the <b>Transcribe</b> tab, or send a file to '
    "<code>POST /api/jobs</code>.</div>"
)
COLUMNS = ["Job id", "File", "State", "Progress", "Segments", "Started", "Problem"]


def job_rows(jobs: list[dict[str, Any]]) -> list[list[Any]]:
    """Table rows from ``JobManager.list()``."""
    rows = []
    for job in jobs:
        stage = str(job.get("stage") or job.get("state") or "")
        total = job.get("segments_total")
        created = float(job.get("created") or 0)
        rows.append(
            [
                job["job_id"],
                job.get("input_name") or "?",
                STAGE_LABELS.get(stage, stage.replace("_", " ").capitalize()),
                f"{100 * float(job.get('progress') or 0):.0f}%",
                f"{job.get('segments_done') or 0} / {total if total is not None else '?'}",
                time.strftime("%Y-%m-%d %H:%M", time.localtime(created)) if created else "",
                job.get("error") or "",
            ]
        )
    return rows


def build_jobs_tab(demo: Any, bench: Workbench) -> None:  # noqa: ANN401
    """The Jobs tab over the app's job manager (the same list as ``GET /api/jobs``)."""
    manager = bench.manager

    def table() -> list[list[Any]]:
        return job_rows(manager.list())

    with gr.Tab("Jobs", id="jobs") as tab:
        gr.Markdown(
            "Every job, from this page or the HTTP API. Unfinished ones come first; a job that a restart left "
            "**interrupted** continues from its last finished segment when you resume it. "
            "Click a row to choose a job, then act on it."
        )
        first = table()
        empty = gr.HTML(EMPTY_HTML, visible=not first, elem_id="v2s-jobs-empty")
        jobs = gr.Dataframe(
            value=first,
            headers=COLUMNS,
            interactive=False,
            wrap=True,
            max_height=420,
            elem_id="v2s-jobs",
            column_widths=["19%", "20%", "16%", "8%", "8%", "13%", "16%"],
        )
        with gr.Row(equal_height=True):
            job_id = gr.Textbox(
                show_label=False,
                container=False,
                scale=3,
                elem_id="v2s-job-id",
                placeholder="Chosen job: click a row above, or paste a job id",
            )
            resume = gr.Button("Resume", variant="primary", size="md", scale=1)
            cancel = gr.Button("Cancel", size="md", scale=1)
            delete = gr.Button("Delete", variant="stop", size="md", scale=1)
            download = gr.Button("Get files", size="md", scale=1)
        # "hidden", not False: a file list first rendered by an update can lose its links (Gradio 6.17).
        files = gr.File(
            label="Files of the chosen job",
            file_count="multiple",
            interactive=False,
            visible="hidden",
            elem_id="v2s-job-files",
        )

        def refresh() -> tuple[Any, Any]:
            rows = table()
            return rows, gr.HTML(visible=not rows)

        def chosen(evt: gr.SelectData, rows: Any) -> str:  # noqa: ANN401 - a pandas DataFrame
            row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
            try:
                return str(rows.iloc[row, 0])
            except (AttributeError, IndexError):
                return str(rows[row][0])

        def act(action: str, job: str) -> tuple[Any, Any]:
            job = (job or "").strip()
            if not job:
                raise gr.Error("Choose a job first: click its row in the table.")
            try:
                outcome = getattr(manager, action)(job)
            except PipelineError as exc:
                raise ui_error(exc) from exc
            done = {"resume": "queued again", "delete": "deleted"}.get(action) or f"now {outcome}"
            gr.Info(f"Job {job}: {done}.")
            return refresh()

        def get_files(job: str) -> Any:  # noqa: ANN401
            job = (job or "").strip()
            if not job:
                raise gr.Error("Choose a job first: click its row in the table.")
            try:
                exported = bench.export(job)
            except PipelineError as exc:
                raise ui_error(exc) from exc
            if not exported:
                raise gr.Error(f"Job {job} has no results yet: wait until it is done, or resume it.")
            return gr.File(value=[str(p) for p in exported.values()], visible=True)

        jobs.select(chosen, [jobs], [job_id], queue=False, api_visibility="private")
        for button, action in ((resume, "resume"), (cancel, "cancel"), (delete, "delete")):
            button.click(lambda j, a=action: act(a, j), [job_id], [jobs, empty], api_visibility="private")
        download.click(get_files, [job_id], [files], api_visibility="private")
        gr.Timer(REFRESH_S).tick(refresh, None, [jobs, empty], **QUIET)
        demo.load(refresh, None, [jobs, empty], **QUIET)
        # Timers only tick in the visible tab: refresh at once when it is opened.
        tab.select(refresh, None, [jobs, empty], **QUIET)
