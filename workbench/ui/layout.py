"""The workbench's Gradio Blocks: a header with the model status, then one tab per module of :mod:`workbench.ui`."""

from __future__ import annotations

from typing import Any

import gradio as gr

from workbench.bench import Workbench
from workbench.ui.cluster import build_cluster_tab
from workbench.ui.common import QUIET
from workbench.ui.hardware import build_hardware_tab
from workbench.ui.jobs import build_jobs_tab
from workbench.ui.models import build_models_tab, status_badge
from workbench.ui.review import build_review_tab
from workbench.ui.transcribe import build_transcribe_tab

HEADER = (
    "# video2srt\nTurn video and audio into accurate, readable, well-timed subtitles with Whisper — "
    "on this machine, nothing uploaded elsewhere. Choose files, press **Start**, download SRT, VTT, "
    "JSON or ASS; check and correct them in **Review** and make a video to publish."
)


def build_app(bench: Workbench) -> Any:  # noqa: ANN401 - gradio.Blocks
    """Build the Gradio Blocks UI over ``bench``: a header with the model status, then the tabs."""

    def model_badge() -> str:
        return status_badge(bench.model_status())

    # delete_cache: Gradio's copies of uploads and downloads older than a day go, checked hourly.
    with gr.Blocks(
        title="video2srt — subtitles from video", analytics_enabled=False, delete_cache=(3600, 86400)
    ) as demo:
        with gr.Row(equal_height=True):
            with gr.Column(scale=4):
                gr.Markdown(HEADER, elem_classes="v2s-header")
            with gr.Column(scale=1, min_width=260, elem_classes="v2s-status-row"):
                status = gr.HTML(model_badge(), elem_id="v2s-model-box")
        with gr.Tabs():
            build_transcribe_tab(bench)
            build_jobs_tab(demo, bench)
            build_review_tab(demo, bench)
            build_models_tab(
                demo,
                bench.model_status,
                bench.load_model,
                catalogue=bench.model_catalogue,
                download=bench.download_model,
            )
            build_hardware_tab(demo, bench.hardware_report, bench.usage)
            build_cluster_tab(demo, bench.cluster_view)
        gr.Timer(1.0).tick(model_badge, None, [status], **QUIET)
    return demo
