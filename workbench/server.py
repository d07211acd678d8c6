"""The video2srt workbench: one server with the Gradio UI at ``/`` and the HTTP API beside it.

:func:`build_server` makes the FastAPI app: the ``/api`` routers over one :class:`~workbench.service.JobManager`
(the UI submits to the same manager, so there is one queue and one job list), and the Gradio Blocks from
:func:`~workbench.ui.layout.build_app` mounted at ``/``, over a :class:`~workbench.bench.Workbench`. With a
login (:mod:`workbench.auth`), both are behind it.

Nothing heavy runs in the event loop: handlers are plain functions (Gradio and FastAPI run them on worker
threads), uploads are copied there, and transcription runs on the job manager's worker threads.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr
from fastapi import Depends, FastAPI
from gradio import networking

from pipeline.core.errors import PipelineError
from pipeline.core.settings import Settings
from workbench.auth import LOGIN_MESSAGE, Login, LoginFirst
from workbench.bench import Workbench
from workbench.http.hardware import hardware_router
from workbench.http.jobs import jobs_router
from workbench.http.models import models_router
from workbench.service import JobManager
from workbench.ui.common import CSS, theme
from workbench.ui.layout import build_app

log = logging.getLogger(__name__)


def build_server(
    settings: Settings,
    resume_unfinished: bool = False,
    *,
    preload: bool = False,
    auth: tuple[str, str] | None = None,
    manager: JobManager | None = None,
) -> FastAPI:
    """The FastAPI app: the HTTP API beside the Gradio UI mounted at ``/``.

    Args:
        settings: The app's settings.
        resume_unfinished: Queue every job a crash or restart left unfinished, at start.
        preload: Load the default model in the background as soon as the server starts.
        auth: ``(user, password)`` protecting the UI (a login page) and every ``/api`` route (HTTP basic
            credentials, or the UI's login session).
        manager: Use this job manager (tests share a loaded model through it) instead of a new one.

    Returns:
        The app; ``app.state.jobs`` is the job manager, ``app.state.workbench`` the :class:`Workbench` and
        ``app.state.ui`` the Gradio Blocks. While it runs, the job manager cleans up expired jobs on its schedule.
    """
    # One job manager for the API and the UI: one runner (so one model cache), one queue, one job list.
    manager = manager if manager is not None else JobManager(settings)
    bench = Workbench(settings, manager, preload=preload)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        manager.start()
        bench.start()
        try:
            yield
        finally:
            bench.close()
            manager.stop()

    app = FastAPI(title="video2srt", lifespan=lifespan)
    app.state.jobs = manager
    app.state.workbench = bench
    demo = app.state.ui = build_app(bench)
    login = Login(auth) if auth is not None else None
    routers = [
        hardware_router(settings.jobs.jobs_dir),
        jobs_router(manager),
        models_router(bench.model_status, bench.load_model, bench.model_catalogue, bench.download_model),
    ]
    # Routers first, so /api/... is never shadowed by the UI mounted at "/". Every /api router is in this
    # list, so that --auth protects it.
    guard = [Depends(login.require)] if login is not None else []
    for router in routers:
        app.include_router(router, dependencies=guard)
    if login is not None:
        app.include_router(login.router())
        app.add_middleware(LoginFirst, login=login)
    if resume_unfinished:
        for job in manager.store.unfinished():
            try:
                manager.resume(job.id)
            except PipelineError as exc:
                log.warning("job %s cannot be resumed: %s", job.id, exc)
    gr.mount_gradio_app(
        app,
        demo,
        path="/",
        auth_dependency=login.user if login is not None else None,
        auth_message=LOGIN_MESSAGE,
        max_file_size=manager.max_upload_bytes,
        # The Review tab plays a job's own input (kept in the jobs folder) instead of copying gigabytes.
        allowed_paths=[str(settings.jobs.jobs_dir)],
        theme=theme(),
        css=CSS,
        footer_links=["api", "settings"],
    )
    return app


def create_share_link(app: Any, host: str, port: int) -> str:  # noqa: ANN401
    """Open a Gradio share tunnel to the running server ``app`` at ``host:port``; return the public URL.

    Raises:
        Exception: Whatever Gradio's tunnel raises when it cannot connect (no internet, blocked binary).
    """
    demo = app.state.ui
    url = networking.setup_tunnel(host, port, demo.share_token, None, None)
    demo.share_url = url if url.startswith("http") else f"https://{url}"
    return demo.share_url


__all__ = ["build_server", "create_share_link"]
