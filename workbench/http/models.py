"""HTTP routes for the models: the catalogue (``GET /api/models``, ``POST /api/models/download``) and the model
manager (``GET /api/models/status`` and ``POST /api/models/load``).

The routes only read the app-level status (:func:`pipeline.asr.manager.aggregate_status` over the workers)
and ask for loads; loading itself runs on the workers' inference threads, never in a request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from pipeline.asr.manager import ModelBusyError
from pipeline.core.errors import PipelineError
from workbench.http.errors import http_status

StatusFn = Callable[[], dict[str, Any]]
LoadFn = Callable[[str | None], dict[str, Any]]
CatalogueFn = Callable[[], list[dict[str, Any]]]
DownloadFn = Callable[[str], dict[str, Any]]


class LoadRequest(BaseModel):
    """``{"model": NAME_OR_PATH}``; a missing or blank model loads the selected one again (a retry)."""

    model: str | None = None


def models_router(
    status: StatusFn, load: LoadFn, catalogue: CatalogueFn | None = None, download: DownloadFn | None = None
) -> APIRouter:
    """Build the ``/api/models`` routes.

    Args:
        status: The app-level model status (``Runner.model_status``).
        load: Starts a load round and returns the status (``Runner.load_model``); raises
            :class:`~pipeline.asr.manager.ModelBusyError` while another load runs.
        catalogue: The models catalogue rows (``GET /api/models``: name, languages, size_mb, present, source,
            rtf: a rough real-time factor on this machine, download progress).
        download: Starts downloading a standard model into the HF cache (``POST /api/models/download``, 202;
            its progress is in the catalogue); raises UsageError (400) for an unknown name.

    Returns:
        A router with ``GET /api/models/status`` (``state`` idle|loading|ready|failed, ``model``, ``progress``
        0–1, ``message``, ``error``, per-worker ``workers``) and ``POST /api/models/load`` (202 with the status
        when a load starts; 409 with the status and a ``detail`` line while another load runs).
    """
    router = APIRouter(prefix="/api/models", tags=["models"])

    if catalogue is not None:

        @router.get("")
        def list_models() -> list[dict[str, Any]]:
            return catalogue()

    if download is not None:

        @router.post("/download", status_code=202)
        def download_model(request: LoadRequest | None = Body(default=None)) -> JSONResponse:  # noqa: B008
            name = ((request.model if request is not None else None) or "").strip()
            try:
                answer = download(name)
            except PipelineError as exc:
                return JSONResponse({"detail": str(exc)}, status_code=http_status(exc))
            return JSONResponse({**answer, "model": name}, status_code=202)

    # Plain ``def`` routes: FastAPI runs them in its thread pool; neither waits for a load.
    @router.get("/status")
    def model_status() -> dict[str, Any]:
        return status()

    @router.post("/load", status_code=202)
    def load_model(request: LoadRequest | None = Body(default=None)) -> JSONResponse:  # noqa: B008
        name = (request.model if request is not None else None) or None
        try:
            answer = load(name.strip() if name else None)
        except ModelBusyError as exc:
            # With the whole state, so a client sees what is loading and how far it is.
            return JSONResponse({**status(), "detail": str(exc)}, status_code=http_status(exc))
        except PipelineError as exc:  # a bad name; or the manager is closed (the app is shutting down)
            extra = {} if http_status(exc) < 500 else status()
            return JSONResponse({**extra, "detail": str(exc)}, status_code=http_status(exc))
        return JSONResponse(
            {**answer, "detail": f"loading {answer.get('model') or name or 'the model'}"}, status_code=202
        )

    return router


__all__ = ["LoadRequest", "models_router"]
