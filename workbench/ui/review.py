"""The Review tab: a finished job's video (or audio) with its subtitles, the cue list to correct (text, start, end;
split, merge, delete), flagged cues (low-confidence words, broken readability rules), Save and Restore, and the
downloads: SRT, VTT, ASS, the video with a subtitle track (embed) and with burned-in subtitles (burn).

Every edit goes through :meth:`workbench.review.ReviewManager.save_cues`, the same check as ``PUT
/api/jobs/{id}/cues``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import gradio as gr

from pipeline.core.errors import CueEditError, PipelineError
from pipeline.core.states import JobState
from pipeline.text.cue_edit import merge_rows, split_row
from workbench.bench import EXPORT_ROOT, Workbench
from workbench.review import ExportState
from workbench.ui.common import QUIET, esc
from workbench.ui.errors import ui_error

COLUMNS = ["#", "Start (s)", "End (s)", "Text", "Check"]
#: How often a running export's progress is refreshed.
EXPORT_POLL_S = 1.0
FLAG_LABELS = {
    "low_confidence": "unsure words",
    "line_too_long": "line too long",
    "too_many_lines": "too many lines",
    "too_fast": "reads too fast",
    "too_short": "too short",
    "too_long": "on screen too long",
}
#: Export states as people read them (the others read as they are).
EXPORT_LABELS = {
    ExportState.IDLE.value: "not made yet",
    ExportState.QUEUED.value: "waiting",
    ExportState.RUNNING.value: "working",
}
VIDEO_EXTENSIONS = (".mp4", ".webm", ".m4v", ".mov", ".mkv")
EMPTY = '<div class="v2s-empty">Choose a finished job above and press <b>Open</b>.</div>'


def cue_rows(cues: list[dict[str, Any]]) -> list[list[Any]]:
    """Table rows from ``ReviewManager.cues()["cues"]``: number, start, end, text (lines joined by " / "), check."""
    rows = []
    for cue in cues:
        unsure = [w["word"].strip() for w in cue["words"] if w["probability"] < 0.5]
        notes = [
            FLAG_LABELS.get(f, f) + (f": {', '.join(unsure)}" if f == "low_confidence" else "") for f in cue["flags"]
        ]
        rows.append(
            [cue["index"], cue["start"], cue["end"], " / ".join(cue["lines"]), "⚠ " + "; ".join(notes) if notes else ""]
        )
    return rows


def table_cues(table: Any) -> list[dict[str, Any]]:  # noqa: ANN401 - a pandas DataFrame or rows
    """``{start, end, text}`` items from the table (" / " back to line breaks)."""
    rows = table.values.tolist() if hasattr(table, "values") else list(table or [])
    out = []
    for row in rows:
        if row is None or len(row) < 4 or all(str(v).strip() in ("", "nan", "None") for v in row[1:4]):
            continue
        text = "\n".join(part.strip() for part in str(row[3]).split(" / "))
        out.append({"start": _seconds(row[1]), "end": _seconds(row[2]), "text": text})
    return out


def _seconds(value: Any) -> Any:  # noqa: ANN401 - what the table holds; validation says what is wrong
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _rows_from_items(items: list[dict[str, Any]]) -> list[list[Any]]:
    return [[i + 1, item["start"], item["end"], item["text"].replace("\n", " / "), ""] for i, item in enumerate(items)]


def export_html(statuses: list[dict[str, Any]]) -> str:
    """The exports' states as progress bars."""
    parts = []
    for st in statuses:
        name = {"embed": "Video with subtitle track", "burn": "Video with burned-in subtitles"}[st["kind"]]
        state = st["state"]
        failed = state in (ExportState.FAILED, ExportState.CANCELLED)
        bar = "v2s-done" if state == ExportState.DONE else "v2s-fail" if failed else ""
        label = EXPORT_LABELS.get(state, state)
        note = f'<div class="v2s-note">{esc(st["note"])}</div>' if st.get("note") else ""
        error = f'<div class="v2s-error">{esc(st["error"])}</div>' if st.get("error") else ""
        parts.append(
            f'<div class="v2s-job" data-kind="{st["kind"]}" data-state="{state}"><div class="v2s-job-head">'
            f"<span>{name}</span><span>{esc(label)} · {100 * st['progress']:.0f}%</span></div>"
            f'<div class="v2s-bar {bar}"><div style="width:{100 * st["progress"]:.1f}%"></div></div>{note}{error}</div>'
        )
    return '<div id="v2s-review-exports">' + "".join(parts) + "</div>"


def build_review_tab(demo: Any, bench: Workbench) -> None:  # noqa: ANN401
    """The Review tab over the app's job manager."""
    manager = bench.manager
    review = manager.review

    def choices() -> list[tuple[str, str]]:
        return [
            (f"{j.get('input_name') or '?'} · {j['job_id']}", j["job_id"])
            for j in manager.list()
            if j["state"] == JobState.DONE and not j["active"]
        ]

    def files_of(job_id: str) -> list[str]:
        status = manager.status(job_id)
        stem = Path(str(status.get("input_name") or "subtitles")).stem or "subtitles"
        files = [str(p) for fmt, p in bench.export(job_id, with_ass=True).items() if fmt in ("srt", "vtt", "ass")]
        folder = EXPORT_ROOT / job_id
        for kind in ("embed", "burn"):
            st = review.export_status(job_id, kind)
            if st["state"] != ExportState.DONE or not st["file"]:
                continue
            source = review.export_file(job_id, st["file"])
            target = folder / f"{stem}.{st['file'].removeprefix('result.')}"
            target.unlink(missing_ok=True)
            try:
                os.link(source, target)  # a video can be gigabytes: a second name, not a copy
            except OSError:
                shutil.copyfile(source, target)
            files.append(str(target))
        return files

    def player(job_id: str, edition: int) -> tuple[Any, Any]:
        source = review.input_path(job_id)
        if source is None:
            return gr.Video(value=None, visible="hidden"), gr.Audio(value=None, visible="hidden")
        data, _ = manager.result(job_id, "vtt")
        name = str(manager.status(job_id).get("input_name") or source.name)
        folder = EXPORT_ROOT / job_id
        folder.mkdir(parents=True, exist_ok=True)
        # A new name for every saved edit: the browser and Gradio's cache would keep showing an old track.
        captions = folder / f"review-{edition}.vtt"
        captions.write_bytes(data)
        if source.suffix.lower() in VIDEO_EXTENSIONS:
            return (
                gr.Video(value=str(source), subtitles=str(captions), visible=True, label=f"{name} with its subtitles"),
                gr.Audio(value=None, visible="hidden"),
            )
        return gr.Video(value=None, visible="hidden"), gr.Audio(value=str(source), visible=True, label=name)

    def summary(data: dict[str, Any]) -> str:
        flagged = [c for c in data["cues"] if c["flags"]]
        unsure = sum(1 for c in data["cues"] if "low_confidence" in c["flags"])
        edited = " · <b>edited</b> (Restore brings the original back)" if data["edited"] else ""
        lim = data["limits"]
        return (
            f'<div id="v2s-review-summary" data-edited="{int(data["edited"])}"><b>{len(data["cues"])}</b> cues · '
            f"<b>{len(flagged)}</b> to check (⚠), {unsure} with unsure words{edited}<br>"
            f'<span class="v2s-note">Limits: {lim["max_line_width"]} characters per line '
            f"({lim['cjk_line_width']} for Chinese, Japanese, Korean), {lim['max_lines']} lines; write line breaks as "
            '" / ". A long line is wrapped for you.</span></div>'
        )

    def load(job_id: str, edition: int) -> tuple[Any, ...]:
        job_id = (job_id or "").strip()
        if not job_id:
            raise gr.Error("Choose a finished job first.")
        try:
            data = review.cues(job_id)
            video, audio = player(job_id, edition + 1)
            files = files_of(job_id)
            exports = export_html([review.export_status(job_id, k) for k in ("embed", "burn")])
        except PipelineError as exc:
            raise ui_error(exc) from exc
        return (
            job_id,
            edition + 1,
            cue_rows(data["cues"]),
            summary(data),
            video,
            audio,
            gr.File(value=files or None, visible=True),
            exports,
        )

    def pick(evt: gr.SelectData, table: Any) -> tuple[Any, ...]:  # noqa: ANN401
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        rows = table.values.tolist() if hasattr(table, "values") else table
        try:
            number, start, end, text = rows[row][:4]
        except (IndexError, TypeError, ValueError):
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return int(row) + 1, float(start), float(end), str(text)

    def row_index(table: Any, number: Any) -> tuple[list[dict[str, Any]], int]:  # noqa: ANN401
        items = table_cues(table)
        try:
            index = int(number) - 1
        except (TypeError, ValueError):
            index = -1
        if not 0 <= index < len(items):
            raise gr.Error("Choose a cue first: click its row in the table.")
        return items, index

    def apply(table: Any, number: Any, start: Any, end: Any, text: str) -> Any:  # noqa: ANN401
        items, index = row_index(table, number)
        items[index] = {
            "start": _seconds(start),
            "end": _seconds(end),
            "text": "\n".join(p.strip() for p in str(text).split(" / ")),
        }
        return _rows_from_items(items)

    def edit(action: str, table: Any, number: Any) -> Any:  # noqa: ANN401
        items, index = row_index(table, number)
        try:
            if action == "split":
                items = split_row(items, index)
            elif action == "merge":
                items = merge_rows(items, index)
            else:
                del items[index]
        except PipelineError as exc:
            raise ui_error(exc) from exc
        return _rows_from_items(items)

    def save(job_id: str, table: Any, edition: int) -> tuple[Any, ...]:  # noqa: ANN401
        if not job_id:
            raise gr.Error("Open a job first.")
        try:
            review.save_cues(job_id, table_cues(table))
        except CueEditError as exc:
            raise ui_error(exc, "Not saved: ") from exc
        except PipelineError as exc:
            raise ui_error(exc) from exc
        gr.Info("Saved: SRT, VTT, JSON and ASS now hold your corrections.")
        return load(job_id, edition)

    def restore(job_id: str, edition: int) -> tuple[Any, ...]:
        if not job_id:
            raise gr.Error("Open a job first.")
        try:
            review.restore(job_id)
        except PipelineError as exc:
            raise ui_error(exc) from exc
        gr.Info("The original subtitles are back.")
        return load(job_id, edition)

    def start_export(kind: str, job_id: str) -> str:
        if not job_id:
            raise gr.Error("Open a job first.")
        try:
            review.start_export(job_id, kind)
        except PipelineError as exc:
            raise ui_error(exc) from exc
        return export_html([review.export_status(job_id, k) for k in ("embed", "burn")])

    def cancel_exports(job_id: str) -> str:
        if not job_id:
            raise gr.Error("Open a job first.")
        for kind in ("embed", "burn"):
            try:
                review.cancel_export(job_id, kind)
            except PipelineError:
                continue
        return export_html([review.export_status(job_id, k) for k in ("embed", "burn")])

    def poll(job_id: str, seen: str) -> tuple[Any, Any, str]:
        if not job_id:
            return gr.skip(), gr.skip(), seen
        try:
            statuses = [review.export_status(job_id, k) for k in ("embed", "burn")]
        except PipelineError:
            return gr.skip(), gr.skip(), seen
        states = ",".join(f"{s['kind']}:{s['state']}:{s['file']}" for s in statuses)
        files: Any = gr.skip()
        if states != seen:  # an export finished (or failed): its file joins the downloads
            files = gr.File(value=files_of(job_id) or None, visible=True)
        return export_html(statuses), files, states

    with gr.Tab("Review", id="review") as tab:
        gr.Markdown(
            "Check a finished job's subtitles on its video, correct the few wrong words, then download them or a "
            "video to publish. Cues marked ⚠ hold words the model was unsure of or break a readability rule."
        )
        job_state = gr.State("")
        edition = gr.State(0)
        seen = gr.State("")
        with gr.Row(equal_height=True):
            job = gr.Dropdown(
                choices=[], label="Finished job", scale=4, allow_custom_value=True, elem_id="v2s-review-job"
            )
            open_button = gr.Button("Open", variant="primary", scale=1, elem_id="v2s-review-open")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=360):
                video = gr.Video(label="Video", visible="hidden", interactive=False, elem_id="v2s-review-video")
                audio = gr.Audio(label="Audio", visible="hidden", interactive=False, elem_id="v2s-review-audio")
                info = gr.HTML(EMPTY, elem_id="v2s-review-info")
            with gr.Column(scale=2, min_width=320):
                gr.Markdown("**Selected cue** — click a row, change it, then *Apply*.")
                with gr.Row():
                    number = gr.Number(label="Cue", precision=0, minimum=1, scale=1, elem_id="v2s-review-index")
                    start = gr.Number(label="Start (s)", scale=2, elem_id="v2s-review-start")
                    end = gr.Number(label="End (s)", scale=2, elem_id="v2s-review-end")
                text = gr.Textbox(label="Text (line breaks as ' / ')", lines=2, elem_id="v2s-review-text")
                with gr.Row():
                    apply_button = gr.Button("Apply", size="sm", elem_id="v2s-review-apply")
                    split_button = gr.Button("Split", size="sm", elem_id="v2s-review-split")
                    merge_button = gr.Button("Merge with next", size="sm", elem_id="v2s-review-merge")
                    delete_button = gr.Button("Delete", size="sm", variant="stop", elem_id="v2s-review-delete")
                with gr.Row():
                    save_button = gr.Button("Save", variant="primary", elem_id="v2s-review-save")
                    restore_button = gr.Button("Restore original", elem_id="v2s-review-restore")
        cues = gr.Dataframe(
            headers=COLUMNS,
            datatype=["number", "number", "number", "str", "str"],
            interactive=True,
            wrap=True,
            max_height=480,
            static_columns=[0, 4],
            column_widths=["5%", "10%", "10%", "50%", "25%"],
            elem_id="v2s-review-cues",
        )
        with gr.Row(equal_height=True):
            embed_button = gr.Button("Make video with subtitle track", elem_id="v2s-review-embed")
            burn_button = gr.Button("Make video with burned-in subtitles", elem_id="v2s-review-burn")
            cancel_button = gr.Button("Cancel export", variant="stop", elem_id="v2s-review-cancel")
        exports = gr.HTML(export_html([]), elem_id="v2s-review-export-box")
        files = gr.File(
            label="Downloads", file_count="multiple", interactive=False, visible="hidden", elem_id="v2s-review-files"
        )

        outputs = [job_state, edition, cues, info, video, audio, files, exports]
        open_button.click(load, [job, edition], outputs, api_visibility="private")
        cues.select(pick, [cues], [number, start, end, text], queue=False, api_visibility="private")
        apply_button.click(apply, [cues, number, start, end, text], [cues], **QUIET)
        split_button.click(lambda t, n: edit("split", t, n), [cues, number], [cues], **QUIET)
        merge_button.click(lambda t, n: edit("merge", t, n), [cues, number], [cues], **QUIET)
        delete_button.click(lambda t, n: edit("delete", t, n), [cues, number], [cues], **QUIET)
        save_button.click(save, [job_state, cues, edition], outputs, api_visibility="private")
        restore_button.click(restore, [job_state, edition], outputs, api_visibility="private")
        embed_button.click(lambda j: start_export("embed", j), [job_state], [exports], **QUIET)
        burn_button.click(lambda j: start_export("burn", j), [job_state], [exports], **QUIET)
        cancel_button.click(cancel_exports, [job_state], [exports], **QUIET)
        gr.Timer(EXPORT_POLL_S).tick(poll, [job_state, seen], [exports, files, seen], **QUIET)

        def refresh_choices() -> Any:  # noqa: ANN401
            return gr.Dropdown(choices=choices())

        tab.select(refresh_choices, None, [job], **QUIET)
        demo.load(refresh_choices, None, [job], **QUIET)
