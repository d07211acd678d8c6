"""HTTP routes for jobs: upload, list, status, results, resume, cancel, delete; review (cues, edits) and
video exports (embed, burn).

The workbench mounts the router that :func:`jobs_router` builds over one shared
:class:`~workbench.service.JobManager`. Every route that names a job validates its id first (400 when
malformed, 404 when unknown); no route opens a path taken from the request. Errors are JSON
``{"detail": "one line"}``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Body, File, Form, HTTPException, Request, Response, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from starlette.types import Message

from pipeline.core.errors import CueEditError, PipelineError
from pipeline.core.states import JobState
from workbench.errors import one_line
from workbench.http.errors import http_error
from workbench.service import JobManager
from workbench.uploads import human_bytes

_MEDIA_TYPES = {
    "srt": "text/plain; charset=utf-8",
    "vtt": "text/plain; charset=utf-8",
    "json": "application/json; charset=utf-8",
    "ass": "text/plain; charset=utf-8",
}
_EXPORT_TYPES = {".mkv": "video/x-matroska", ".mp4": "video/mp4", ".mka": "audio/x-matroska"}
#: Room for the multipart framing and the form fields beside the file itself.
FORM_OVERHEAD_BYTES = 1 << 20


def _body_limited(limit: Callable[[], int]) -> type[APIRoute]:
    """A route class that refuses a request body over ``limit()`` bytes (413) while it is being received.

    FastAPI reads a multipart body, spooling the file to a temp file, before the handler (and before the
    route's dependencies, such as the login check) runs, so the size check in the handler alone would let
    any client fill the server's disk first. A declared ``Content-Length`` over the limit is refused before
    a byte is read; a chunked body as soon as it passes the limit.
    """

    def too_large(most: int) -> HTTPException:
        return HTTPException(
            413,
            f"the upload is larger than the limit of {human_bytes(most - FORM_OVERHEAD_BYTES)}; "
            "send a smaller file or cut it into parts",
        )

    class BodyLimitedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def limited(request: Request) -> Response:
                most = limit() + FORM_OVERHEAD_BYTES
                declared = request.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > most:
                    raise too_large(most)
                receive, seen = request.receive, 0

                async def counted() -> Message:
                    nonlocal seen
                    message = await receive()
                    seen += len(message.get("body", b""))
                    if seen > most:
                        raise too_large(most)  # FastAPI passes an HTTPException from body parsing on as it is
                    return message

                return await handler(Request(request.scope, counted))

            return limited

    return BodyLimitedRoute


def jobs_router(manager: JobManager) -> APIRouter:
    """Build the ``/api/jobs`` routes over ``manager``.

    Args:
        manager: The job manager the routes submit to and read from (shared with the UI).

    Returns:
        A router with ``POST /api/jobs`` (202), ``GET /api/jobs``, ``GET /api/jobs/{id}``,
        ``GET /api/jobs/{id}/result.{srt,vtt,json,ass}``, ``GET|PUT /api/jobs/{id}/cues`` (422 for a bad edit),
        ``POST /api/jobs/{id}/cues/restore``, ``POST /api/jobs/{id}/export`` (202), ``GET
        /api/jobs/{id}/export/{kind}``, ``POST /api/jobs/{id}/export/{kind}/cancel``,
        ``GET /api/jobs/{id}/result.{subtitled.mkv,subtitled.mp4,subtitled.mka,burned.mp4}``,
        ``POST /api/jobs/{id}/resume`` (202),
        ``POST /api/jobs/{id}/cancel`` (202) and ``DELETE /api/jobs/{id}`` (204).
    """
    router = APIRouter(prefix="/api/jobs", tags=["jobs"])
    upload_route = _body_limited(lambda: manager.max_upload_bytes)

    # Plain ``def`` routes: FastAPI runs them in its thread pool, so copying an upload or reading a job folder
    # never blocks the event loop. Transcription itself runs on the manager's worker thread.
    def create_job(
        file: Annotated[UploadFile | None, File(description="the video or audio file")] = None,
        formats: Annotated[str | None, Form(description="comma-separated: srt,vtt,json,ass (default: srt)")] = None,
        language: Annotated[str | None, Form(description="language code such as en; blank or auto: detect")] = None,
        max_line_width: Annotated[str | None, Form(description="characters per subtitle line (default 42)")] = None,
        max_lines: Annotated[str | None, Form(description="lines per subtitle, 1-10 (default 2)")] = None,
        batch_size: Annotated[
            str | None, Form(description="windows per Whisper call, 1-256 (default: the optimizer's choice)")
        ] = None,
        beam_size: Annotated[str | None, Form(description="beam search width, 1-20 (default 5)")] = None,
        vad: Annotated[str | None, Form(description="cut at pauses: on (default) or off")] = None,
        task: Annotated[
            str | None, Form(description="transcribe (default) or translate (English text; multilingual model)")
        ] = None,
        chinese: Annotated[
            str | None, Form(description="script of Chinese subtitles: simplified (default), traditional or keep")
        ] = None,
    ) -> JSONResponse:
        # Optional in the signature so that a missing file is a one-line 400, not a validation error list.
        if file is None:
            raise HTTPException(400, "no file: send the video or audio as the multipart field 'file'")
        # Every value is checked by the validators the CLI and the UI share (pipeline.parse.settings_from_request).
        overrides = {
            "formats": formats,
            "language": language,
            "max_line_width": max_line_width,
            "max_lines": max_lines,
            "batch_size": batch_size,
            "beam_size": beam_size,
            "vad": vad,
            "task": task,
            "chinese": chinese,
        }
        try:
            job_id = manager.submit_upload(file.filename, file.file, overrides)
        except PipelineError as exc:
            raise http_error(exc) from exc
        finally:
            file.file.close()
        return JSONResponse({"job_id": job_id}, status_code=202, headers={"Location": f"/api/jobs/{job_id}"})

    router.add_api_route("", create_job, methods=["POST"], status_code=202, route_class_override=upload_route)

    @router.get("")
    def list_jobs() -> list[dict[str, Any]]:
        return manager.list()

    @router.get("/{job_id}")
    def job_status(job_id: str) -> dict[str, Any]:
        try:
            return manager.status(job_id)
        except PipelineError as exc:
            raise http_error(exc) from exc

    @router.get("/{job_id}/result.{fmt}")
    def job_result(job_id: str, fmt: str) -> Response:
        if "." in fmt:  # result.subtitled.mkv, result.burned.mp4: a video export
            try:
                path = manager.review.export_file(job_id, f"result.{fmt}")
            except PipelineError as exc:
                raise http_error(exc) from exc
            return FileResponse(path, media_type=_EXPORT_TYPES.get(path.suffix, "application/octet-stream"))
        try:
            data, partial = manager.result(job_id, fmt)
        except PipelineError as exc:
            raise http_error(exc) from exc
        headers = {"X-Partial": "1" if partial else "0", "Content-Disposition": f'inline; filename="result.{fmt}"'}
        if partial:
            headers["Cache-Control"] = "no-store"
        return Response(data, media_type=_MEDIA_TYPES[fmt], headers=headers)

    @router.get("/{job_id}/cues")
    def job_cues(job_id: str) -> dict[str, Any]:
        try:
            return manager.review.cues(job_id)
        except PipelineError as exc:
            raise http_error(exc) from exc

    @router.put("/{job_id}/cues")
    def edit_cues(job_id: str, body: Annotated[Any, Body()] = None) -> Any:  # noqa: ANN401 - JSON
        items = body.get("cues") if isinstance(body, dict) else body
        if not isinstance(items, list):
            detail = 'send the cues as a JSON list of {"start", "end", "text"} (or {"cues": [...]})'
            return JSONResponse({"detail": detail, "cue": None, "reason": "not a list"}, status_code=422)
        try:
            return manager.review.save_cues(job_id, items)
        except CueEditError as exc:
            return JSONResponse({"detail": one_line(str(exc)), "cue": exc.index, "reason": exc.reason}, status_code=422)
        except PipelineError as exc:
            error = http_error(exc, usage=422)
            if error.status_code != 422:
                raise error from exc
            return JSONResponse({"detail": error.detail, "cue": None, "reason": error.detail}, 422)

    @router.post("/{job_id}/cues/restore")
    def restore_cues(job_id: str) -> dict[str, Any]:
        try:
            return manager.review.restore(job_id)
        except PipelineError as exc:
            raise http_error(exc) from exc

    @router.post("/{job_id}/export", status_code=202)
    def start_export(job_id: str, body: Annotated[Any, Body()] = None) -> JSONResponse:  # noqa: ANN401 - JSON
        kind = body.get("kind") if isinstance(body, dict) else None
        if not isinstance(kind, str):
            raise HTTPException(400, 'send {"kind": "embed"} or {"kind": "burn"}')
        try:
            status = manager.review.start_export(job_id, kind)
        except PipelineError as exc:
            raise http_error(exc) from exc
        return JSONResponse(status, 202, headers={"Location": f"/api/jobs/{job_id}/export/{kind}"})

    @router.get("/{job_id}/export/{kind}")
    def export_status(job_id: str, kind: str) -> dict[str, Any]:
        try:
            return manager.review.export_status(job_id, kind)
        except PipelineError as exc:
            raise http_error(exc) from exc

    @router.post("/{job_id}/export/{kind}/cancel", status_code=202)
    def cancel_export(job_id: str, kind: str) -> dict[str, Any]:
        try:
            return manager.review.cancel_export(job_id, kind)
        except PipelineError as exc:
            raise http_error(exc) from exc

    @router.post("/{job_id}/resume", status_code=202)
    def resume_job(job_id: str) -> dict[str, Any]:
        try:
            manager.resume(job_id)
        except PipelineError as exc:
            raise http_error(exc) from exc
        return {"job_id": job_id, "state": JobState.QUEUED.value}

    @router.post("/{job_id}/cancel", status_code=202)
    def cancel_job(job_id: str) -> dict[str, Any]:
        try:
            state = manager.cancel(job_id)
        except PipelineError as exc:
            raise http_error(exc) from exc
        return {"job_id": job_id, "state": state.value}

    @router.delete("/{job_id}", status_code=204)
    def delete_job(job_id: str) -> Response:
        try:
            manager.delete(job_id)
        except PipelineError as exc:
            raise http_error(exc) from exc
        return Response(status_code=204)

    # Last: anything else under /api/jobs, such as a decoded "../../etc/passwd" spanning several path
    # segments, gets a JSON answer here instead of falling through to the UI mounted at "/".
    @router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def no_such_route(rest: str) -> None:
        if rest:
            try:
                manager.status(rest.split("/", 1)[0])  # 400 for a malformed id (also ""), 404 for an unknown one
            except PipelineError as exc:
                raise http_error(exc) from exc
        raise HTTPException(404, "no such job route: see GET /api/jobs and the README's HTTP API section")

    return router
