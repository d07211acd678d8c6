"""Errors to the UI's messages, in one place: the error's kind gives the message box its title.

Every tab raises ``ui_error(exc)`` for a :class:`~pipeline.core.errors.PipelineError`; no handler looks at an
error's message.
"""

from __future__ import annotations

import gradio as gr

from pipeline.core.errors import ErrorKind, PipelineError
from workbench.errors import one_line

#: The message box's title for each kind of error: what went wrong, in the words of someone using the page.
TITLE_BY_KIND: dict[ErrorKind, str] = {
    ErrorKind.USAGE: "Not possible",
    ErrorKind.INPUT: "This file cannot be used",
    ErrorKind.MODEL: "Model problem",
    ErrorKind.TRANSCRIPTION: "Transcription failed",
    ErrorKind.TRANSIENT: "Try again in a moment",
    ErrorKind.STORAGE: "Job folder problem",
    ErrorKind.CLUSTER: "Cluster problem",
    ErrorKind.CANCELLED: "Cancelled",
    ErrorKind.EXPORT: "Export failed",
}


def ui_error(exc: PipelineError, prefix: str = "") -> gr.Error:
    """``exc`` as the ``gr.Error`` a handler raises: its message on one line (after ``prefix``), titled by kind."""
    return gr.Error(prefix + one_line(str(exc)), title=TITLE_BY_KIND.get(exc.kind, "Error"))
