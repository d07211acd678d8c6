"""The video2srt workbench: one server with the Gradio UI at ``/`` and the HTTP API beside it.

:func:`build_server` makes the FastAPI app: the ``/api`` routers over one :class:`~workbench.service.JobManager`
(the UI submits to the same manager, so there is one queue and one job list), and the Gradio Blocks from
:func:`build_app` mounted at ``/``. :class:`Workbench` is the state behind the UI: the manager, the model
preload, the usage history for the charts, and result export for downloads.

Nothing heavy runs in the event loop: handlers are plain functions (Gradio and FastAPI run them on worker
threads), uploads are copied there, and transcription runs on the job manager's worker thread.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request

from pipeline.asr.manager import ModelBusyError
from pipeline.core.errors import PipelineError, UsageError
from pipeline.core.settings import AUTO_MODEL, FORMATS, Settings
from pipeline.system.report import hardware_report
from workbench.service import JobManager, JobNotFoundError, ResultNotFoundError
from workbench.ui.common import CSS, QUIET

log = logging.getLogger(__name__)

#: The queue that GPU-bound handlers share (``concurrency_id``): the Transcribe handler; any other handler that
#: waits on the model or the GPU joins it.
GPU_QUEUE = "gpu"
#: Sessions following their jobs at once; the jobs themselves run one at a time in the job manager.
GPU_QUEUE_LIMIT = 4
#: Where results are written for download (``<tmp>/video2srt-ui/<job id>/<input stem>.<fmt>``): Gradio
#: serves files from the temp folder, and the names are the user's file names.
EXPORT_ROOT = Path(tempfile.gettempdir()) / "video2srt-ui"


class Workbench:
    """The state behind the UI.

    Args:
        settings: The app's settings.
        manager: The job manager shared with the HTTP API.
        preload: Load the default model in the background at :meth:`start`.
    """

    def __init__(self, settings: Settings, manager: JobManager, *, preload: bool = True) -> None:
        from workbench.ui.hardware import UsageHistory

        self.settings = settings
        self.manager = manager
        self.preload_enabled = preload
        self.usage = UsageHistory(workers=self._workers)
        self._runner_ready = threading.Event()
        self._startup_error: str | None = None
        self._report: dict[str, Any] | None = None
        self._lock = threading.Lock()
        #: Model downloads started from the Models tab: name → {"state", "progress", "message"}.
        self._downloads: dict[str, dict[str, Any]] = {}

    # start-up -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Build the runner and preload the model in the background; start the usage sampler."""
        threading.Thread(target=self._start_backend, name="workbench-start", daemon=True).start()
        self.usage.start()

    def _start_backend(self) -> None:
        try:
            runner = self.manager.runner  # detects the hardware, applies CPU affinity
            if self.preload_enabled or runner.on_cluster:
                # In-process: marks the model loading before returning, so the status has no idle gap. On a
                # cluster: starts or reaches it; each worker's plugin preloads (or not: --no-preload).
                runner.start()
            self._runner_ready.set()
        except Exception as exc:  # noqa: BLE001 - shown as the model status; the app keeps serving
            log.warning("workbench: the transcription backend did not start: %s", exc)
            self._startup_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__

    def close(self) -> None:
        self.usage.stop()

    # status ---------------------------------------------------------------------------------------
    def model_name(self) -> str:
        """The model jobs use: ``--model``, or the optimizer's choice for ``auto``."""
        name = self.settings.model.name
        return self.hardware_report()["optimized"]["model"] if name == AUTO_MODEL else name

    def model_status(self) -> dict[str, Any]:
        """The app-level model status (``GET /api/models/status``): the model manager's, aggregated over workers."""
        if self._runner_ready.is_set():
            return self.manager.runner.model_status()
        base: dict[str, Any] = {
            "model": self.model_name(),
            "stage": None,
            "progress": 0.0,
            "error": None,
            "busy": False,
            "ready_workers": 0,
            "total_workers": 0,
            "workers": [],
        }
        if self._startup_error:
            return {**base, "state": "failed", "error": self._startup_error, "message": self._startup_error}
        if self.preload_enabled:
            return {**base, "state": "loading", "message": "starting the transcription backend"}
        return {**base, "state": "idle", "message": "not loaded yet: it loads with the first job"}

    def load_model(self, name: str | None) -> dict[str, Any]:
        """Start a model load (``None``: the selected model again, a retry); returns the model status.

        Raises:
            ModelBusyError: Another load runs, or the backend is still starting.
        """
        if not self._runner_ready.is_set():
            raise ModelBusyError(
                "the transcription backend is still starting; try again in a moment", self.model_status()
            )
        return self.manager.runner.load_model(name)

    def model_catalogue(self) -> list[dict[str, Any]]:
        """The models catalogue (``GET /api/models``): each model's languages, size, presence, expected speed on
        this machine, and its download's progress when one was started here."""
        from pipeline.asr.catalogue import catalogue

        optimized = self.hardware_report()["optimized"]
        rows = [m.as_dict() for m in catalogue(optimized["device"], optimized["cpu_threads"])]
        with self._lock:
            downloads = {name: dict(d) for name, d in self._downloads.items()}
        for row in rows:
            row["download"] = downloads.get(row["name"])
        return rows

    def download_model(self, name: str) -> dict[str, Any]:
        """Start downloading standard model ``name`` into the HF cache in the background; its progress is in
        :meth:`model_catalogue`. A download already running is joined, not started twice.

        Raises:
            UsageError: Not a standard model name.
        """
        from pipeline.asr.catalogue import download, standard_repos

        name = (name or "").strip()
        if name not in standard_repos():
            raise UsageError(f"unknown model {name!r}: downloadable names are {', '.join(sorted(standard_repos()))}")
        with self._lock:
            running = self._downloads.get(name)
            if running is not None and running["state"] == "downloading":
                return dict(running)
            entry = self._downloads[name] = {"state": "downloading", "progress": 0.0, "message": f"starting {name}"}

        def progress(fraction: float, message: str) -> None:
            with self._lock:
                entry.update(progress=round(fraction, 3), message=message)

        def run() -> None:
            try:
                download(name, progress)
            except PipelineError as exc:
                with self._lock:
                    entry.update(state="failed", message=str(exc))
                return
            with self._lock:
                entry.update(state="done", progress=1.0, message=f"{name} is in the Hugging Face cache")

        threading.Thread(target=run, name=f"download-{name}", daemon=True).start()
        return dict(entry)

    def cluster_status(self) -> dict[str, Any] | None:
        """The runner's cluster status, or None while the runner is still starting."""
        if not self._runner_ready.is_set():
            return None
        return self.manager.runner.cluster_status()

    def cluster_view(self) -> dict[str, Any] | None:
        """:meth:`cluster_status` for the Cluster tab: a worker inside this process that reports no load of
        its own shows this machine's latest sample (it is this machine)."""
        status = self.cluster_status()
        if status is None or status.get("mode") != "in-process":
            return status
        from workbench.ui.hardware import HOST

        samples = self.usage.snapshot().get(HOST)
        latest = samples[-1] if samples else None
        workers = [dict(w, usage=w.get("usage") or latest) for w in status.get("workers") or []]
        return {**status, "workers": workers}

    def _workers(self) -> list[dict[str, Any]]:
        # In-process, the one worker is this machine, already charted as the app host.
        status = self.cluster_status()
        return list(status.get("workers") or []) if status and status.get("mode") != "in-process" else []

    def hardware_report(self, refresh: bool = False) -> dict[str, Any]:
        """Detected hardware and the optimizer's settings for the app's model choices (cached)."""
        with self._lock:
            if self._report is None or refresh:
                s = self.settings
                self._report = hardware_report(
                    s.jobs.jobs_dir,
                    device=s.model.device,
                    compute_type=s.model.compute_type,
                    model=s.model.name,
                    cpu_affinity=s.cluster.cpu_affinity,
                    refresh=refresh,
                )
            return self._report

    # jobs -----------------------------------------------------------------------------------------
    def job_status(self, job_id: str) -> dict[str, Any]:
        """The manager's status, or a ``deleted`` placeholder once the job is gone."""
        try:
            return self.manager.status(job_id)
        except JobNotFoundError:
            return {
                "job_id": job_id,
                "input_name": "(deleted)",
                "state": "cancelled",
                "stage": "deleted",
                "active": False,
                "progress": 0.0,
            }

    def srt_text(self, job_id: str) -> str:
        """The job's SRT: final, or the partial one while it runs; empty before the first segment."""
        try:
            data, _ = self.manager.result(job_id, "srt")
        except (ResultNotFoundError, JobNotFoundError):
            return ""
        return data.decode("utf-8", errors="replace")

    def export(self, job_id: str, with_ass: bool = False) -> dict[str, Path]:
        """Write the job's finished results as ``<input stem>.<fmt>`` files for download.

        Args:
            job_id: The job.
            with_ass: Include the styled ASS even when the job did not ask for it (the Review tab).

        Raises:
            InvalidJobIdError, JobNotFoundError: From the manager, for a bad or unknown id.
        """
        status = self.manager.status(job_id)
        if status["state"] != "done":
            return {}
        stem = Path(str(status.get("input_name") or "subtitles")).stem or "subtitles"
        folder = EXPORT_ROOT / status["job_id"]
        out: dict[str, Path] = {}
        written = self.manager.store.open(status["job_id"]).result_formats()
        for fmt in FORMATS:
            if fmt not in written and not (fmt == "ass" and with_ass):
                continue
            try:
                data, partial = self.manager.result(job_id, fmt)
            except ResultNotFoundError:
                continue
            if partial:
                continue
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{stem}.{fmt}"
            path.write_bytes(data)
            out[fmt] = path
        return out

    def model_badge(self) -> str:
        """The header's model status pill."""
        from workbench.ui.models import status_badge

        return status_badge(self.model_status())


def build_app(bench: Workbench) -> Any:  # noqa: ANN401 - gradio.Blocks
    """Build the Gradio Blocks UI over ``bench``: a header with the model status, then the tabs."""
    import gradio as gr

    from workbench.ui.cluster import build_cluster_tab
    from workbench.ui.hardware import build_hardware_tab
    from workbench.ui.jobs import build_jobs_tab
    from workbench.ui.models import build_models_tab
    from workbench.ui.review import build_review_tab
    from workbench.ui.transcribe import build_transcribe_tab

    # delete_cache: Gradio's copies of uploads and downloads older than a day go, checked hourly.
    with gr.Blocks(
        title="video2srt — subtitles from video", analytics_enabled=False, delete_cache=(3600, 86400)
    ) as demo:
        with gr.Row(equal_height=True):
            with gr.Column(scale=4):
                gr.Markdown(
                    "# video2srt\nTurn video and audio into accurate, readable, well-timed subtitles with Whisper — "
                    "on this machine, nothing uploaded elsewhere. Choose files, press **Start**, download SRT, VTT, "
                    "JSON or ASS; check and correct them in **Review** and make a video to publish.",
                    elem_classes="v2s-header",
                )
            with gr.Column(scale=1, min_width=260, elem_classes="v2s-status-row"):
                status = gr.HTML(bench.model_badge(), elem_id="v2s-model-box")
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
        gr.Timer(1.0).tick(bench.model_badge, None, [status], **QUIET)
    return demo


# ----------------------------------------------------------------------------------------------------------------
# Authentication


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """``USER:PASS`` → ``(user, password)``; None stays None.

    Raises:
        UsageError: Not of the form USER:PASS with both parts non-empty.
    """
    if value is None:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise UsageError("bad --auth: use USER:PASS, e.g. --auth alice:s3cret (both parts non-empty)")
    return user, password


def _api_guard(auth: tuple[str, str], gradio_app: Callable[[], Any]) -> Any:  # noqa: ANN401
    """A FastAPI dependency: HTTP basic credentials, or the browser session of someone logged in to the UI.

    Args:
        auth: The expected ``(user, password)``.
        gradio_app: Returns the mounted Gradio app, whose login sessions count too.
    """
    user_ok, password_ok = auth[0].encode(), auth[1].encode()

    def guard(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() == "basic" and encoded:
            try:
                user, sep, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
            except (binascii.Error, ValueError):
                user, sep, password = b"", b"", b""
            # Both comparisons always run: the time taken says nothing about which part was wrong.
            if sep and secrets.compare_digest(user, user_ok) & secrets.compare_digest(password, password_ok):
                return
        ui = gradio_app()
        cookie_id = getattr(ui, "cookie_id", None)
        tokens = getattr(ui, "tokens", None) or {}
        for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
            token = request.cookies.get(name)
            if token and token in tokens:
                return
        raise HTTPException(
            401,
            "authentication required: send HTTP basic credentials (curl -u USER:PASS) or log in to the UI",
            headers={"WWW-Authenticate": 'Basic realm="video2srt"'},
        )

    return guard


class _ApiLoginFirst:
    """ASGI middleware: an ``/api`` request without valid credentials gets its 401 before its body is read.

    FastAPI reads (and spools to disk) a request body before a route's dependencies run, so without this an
    upload from someone not logged in would be stored in full before the route's own guard refused it.
    """

    def __init__(self, app: Any, check: Callable[[Request], None]) -> None:  # noqa: ANN401 - an ASGI app
        self.app, self.check = app, check

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:  # noqa: ANN401 - ASGI
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == "/api" or path.startswith("/api/"):
            try:
                self.check(Request(scope))
            except HTTPException as exc:
                from fastapi.responses import JSONResponse

                await JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)


# ----------------------------------------------------------------------------------------------------------------
# The server


def build_server(
    settings: Settings,
    resume_unfinished: bool = False,
    *,
    preload: bool = False,
    auth: tuple[str, str] | None = None,
    manager: JobManager | None = None,
) -> Any:  # noqa: ANN401 - fastapi.FastAPI
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
        ``app.state.ui`` the Gradio Blocks.
    """
    import contextlib

    import gradio as gr
    from fastapi import Depends, FastAPI

    from workbench.http.hardware import hardware_router
    from workbench.http.jobs import jobs_router
    from workbench.http.models import models_router
    from workbench.ui.common import theme

    # One job manager for the API and the UI: one runner (so one model cache), one queue, one job list.
    manager = manager if manager is not None else JobManager(settings)
    bench = Workbench(settings, manager, preload=preload)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:  # noqa: ANN401
        bench.start()
        try:
            yield
        finally:
            bench.close()

    app = FastAPI(title="video2srt", lifespan=lifespan)
    app.state.jobs = manager
    app.state.workbench = bench
    demo = app.state.ui = build_app(bench)
    routers = [
        hardware_router(settings.jobs.jobs_dir),
        jobs_router(manager),
        models_router(bench.model_status, bench.load_model, bench.model_catalogue, bench.download_model),
    ]
    # Routers first, so /api/... is never shadowed by the UI mounted at "/". Every /api router is in this
    # list, so that --auth protects it.
    guard = [Depends(_api_guard(auth, lambda: _mounted(app)))] if auth is not None else []
    for router in routers:
        app.include_router(router, dependencies=guard)
    if auth is not None:
        app.add_middleware(_ApiLoginFirst, check=_api_guard(auth, lambda: _mounted(app)))
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
        auth=[auth] if auth else None,
        auth_message="video2srt: log in with the user and password the server was started with (--auth).",
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
    from gradio import networking

    demo = app.state.ui
    url = networking.setup_tunnel(host, port, demo.share_token, None, None)
    demo.share_url = url if url.startswith("http") else f"https://{url}"
    return demo.share_url


def _mounted(app: Any) -> Any:  # noqa: ANN401
    """The Gradio app mounted at "/" (None before it is mounted)."""
    from starlette.routing import Mount

    return next((route.app for route in reversed(app.routes) if isinstance(route, Mount)), None)


__all__ = ["GPU_QUEUE", "GPU_QUEUE_LIMIT", "Workbench", "build_app", "build_server", "create_share_link", "parse_auth"]
