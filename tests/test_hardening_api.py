"""Hardening, API safety on the real server (uvicorn, Gradio mounted, the bundled model):
path traversal in job ids, no route reading a server path, upload limits, auth on every route, no secrets
in logs, and a bounded schemathesis fuzz of the OpenAPI schema (no 500s).

A canary sits beside the jobs folder: a secret file, and a complete job folder holding a result. Any route
that let a request name a path would hand one of them out; none may.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from app_server import serve
from starlette.routing import Mount

from pipeline.asr.models import ModelCache
from pipeline.core.settings import JobSettings, ModelSettings, OutputSettings, Settings, TranscribeSettings
from pipeline.jobs.engine import Runner
from workbench.service import JobManager

# Minutes of real servers and real jobs: deselect with -m "not heavy" for a fast loop.
pytestmark = pytest.mark.heavy

#: The upload limit of the servers here: small, so that going over it costs nothing.
LIMIT = 200_000
#: A job id that exists only outside the jobs folder (in the canary).
OUTSIDE_ID = "20260101-000000-deadbeef"
USER, PASSWORD = "alice", "pw-" + secrets.token_hex(12)
#: Gradio's routes that hold the line open (event streams): swept with the others only in the auth test.
STREAMING = {"/gradio_api/heartbeat/{session_hash}", "/gradio_api/dev/reload"}
#: Cases per operation in the fuzz run: enough to reach every route's odd corners, few enough for every CI run.
FUZZ_EXAMPLES = 30


def routes(app: Any) -> list[tuple[str, list[str]]]:  # noqa: ANN401 - a FastAPI app
    """Every route of ``app`` as (path template, methods), the mounted Gradio app's included."""

    def walk(items: list[Any], prefix: str) -> Iterator[tuple[str, list[str]]]:
        for route in items:
            if isinstance(route, Mount):
                yield from walk(route.routes, prefix + route.path)
            elif hasattr(route, "original_router"):  # FastAPI's included routers
                yield from walk(route.original_router.routes, prefix)
            else:
                yield prefix + route.path, sorted(set(getattr(route, "methods", None) or ["GET"]) - {"HEAD"})

    return list(walk(app.routes, ""))


def raw(
    url: str,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 30.0,
) -> tuple[int, str]:
    """Send ``path`` exactly as written (no client-side normalising of ``..`` or re-encoding)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        try:
            data = response.read()
        except http.client.IncompleteRead as exc:
            data = exc.partial  # a route that failed after it started answering: what it did send counts
        return response.status, data.decode("utf-8", errors="replace")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("safety")


@pytest.fixture(scope="module")
def canary(root: Path) -> dict[str, Any]:
    """A secret file and a complete job folder outside the jobs folder, each holding the canary string."""
    word = "canary-" + secrets.token_hex(8)
    outside = root / "outside"
    job = outside / OUTSIDE_ID
    (job / "output").mkdir(parents=True)
    (job / "job.json").write_text(
        json.dumps(
            {
                "format_version": 1,
                "job_id": OUTSIDE_ID,
                "input_name": word,
                "input_path": str(outside / "secret.txt"),
                "created": 1.0,
            }
        )
    )
    (job / "checkpoint.json").write_text(json.dumps({"state": "done", "segments_done": 1, "segments_total": 1}))
    for fmt in ("srt", "vtt", "json"):
        (job / "output" / f"result.{fmt}").write_text(word)
    (outside / "secret.txt").write_text(word)
    return {"word": word, "dir": outside, "files": sorted(p for p in outside.rglob("*") if p.is_file())}


def _settings(root: Path, name: str) -> Settings:
    return Settings(
        model=ModelSettings(name="tiny.en", device="cpu", compute_type="int8"),
        transcribe=TranscribeSettings(batch_size=8),
        output=OutputSettings(output_dir=root / name / "out"),
        jobs=JobSettings(jobs_dir=root / name / "jobs"),
    )


@pytest.fixture(scope="module")
def open_server(root: Path, canary: dict[str, Any], model_cache: ModelCache) -> Iterator[tuple[str, Any]]:
    """The workbench without --auth, its jobs folder beside the canary."""
    from workbench.server import build_server

    settings = _settings(root, "open")
    app = build_server(settings, manager=JobManager(settings, Runner(settings, model_cache), max_upload_bytes=LIMIT))
    with serve(app) as url:
        yield url, app


def _payloads(root: Path, target: str) -> list[str]:
    """``target`` (a path relative to the jobs folder's parent) as a job id in every form a client might try."""
    rel = f"../{target}"
    absolute = str(root / target)
    return [
        rel,
        quote(rel, safe=""),
        quote(quote(rel, safe=""), safe=""),
        rel.replace("/", "\\"),
        quote(rel.replace("/", "\\"), safe=""),
        absolute,
        quote(absolute, safe=""),
        "/" + absolute,
        rel.replace("/", "%c0%af").replace("..", "%c0%ae%c0%ae"),
        rel.replace("../", "..%252f"),
        f"{OUTSIDE_ID}%00",
        f"{OUTSIDE_ID}/../../{target}",
        quote("．．／" + target),
        "..",
        ".",
        "%2e%2e",
        "~",
    ]


def test_traversal_in_job_ids_is_refused_on_every_route(
    open_server: tuple[str, Any], canary: dict[str, Any], root: Path
) -> None:
    url, _ = open_server
    tried = 0
    for job_id in _payloads(root / "open", f"../outside/{OUTSIDE_ID}") + _payloads(root / "open", "outside/secret.txt"):
        for method, suffix in (
            ("GET", ""),
            ("GET", "/result.srt"),
            ("GET", "/result.json"),
            ("POST", "/resume"),
            ("POST", "/cancel"),
            ("DELETE", ""),
        ):
            code, body = raw(url, method, f"/api/jobs/{job_id}{suffix}")
            tried += 1
            assert code in (400, 404, 405), (method, job_id, suffix, code, body)
            assert canary["word"] not in body and "root:" not in body
            assert isinstance(json.loads(body)["detail"], str), body
    # Nothing outside the jobs folder was touched (a DELETE above aimed at it) and nothing there was resumed.
    assert sorted(p for p in canary["dir"].rglob("*") if p.is_file()) == canary["files"]
    assert json.loads((canary["dir"] / OUTSIDE_ID / "checkpoint.json").read_text())["state"] == "done"
    assert tried >= 200
    print(f"\ntraversal: {tried} requests with job ids aimed outside the jobs folder, all 400/404/405")


def test_no_route_reads_a_path_the_request_names(
    open_server: tuple[str, Any], canary: dict[str, Any], root: Path
) -> None:
    """Every route of the server, the Gradio app's included: each path parameter filled with the canary's
    paths (absolute, relative, encoded), each ``file=`` route aimed at them; the canary never comes back."""
    url, app = open_server
    secret = canary["dir"] / "secret.txt"
    deep = "../../../../../../" + str(secret).lstrip("/")
    targets = [str(secret), quote(str(secret), safe=""), deep, quote(deep, safe="")]
    targets += _payloads(root / "open", "outside/secret.txt")
    seen = 0
    for template, methods in routes(app):
        if "{" not in template or template in STREAMING:
            continue
        for target in targets:
            path = template
            while "{" in path:
                start, end = path.index("{"), path.index("}")
                path = path[:start] + target + path[end + 1 :]
            for method in methods:
                try:
                    code, body = raw(url, method, path, timeout=5)
                except TimeoutError:
                    continue  # a streaming route (heartbeat) that waits for its session: it sent nothing
                seen += 1
                assert canary["word"] not in body, (method, path, code)
    # Gradio's own file routes, the old and the new form.
    for prefix in ("/gradio_api/file=", "/file=", "/gradio_api/file/"):
        for target in targets:
            code, body = raw(url, "GET", prefix + target, timeout=5)
            assert code in (400, 403, 404, 405, 422) and canary["word"] not in body, (prefix, target, code)
    # A model is the one thing a request may name by path (a CTranslate2 folder): loading one reads
    # no file of a folder that is not a model, and the answer carries none of its content.
    r = httpx.post(f"{url}/api/models/load", json={"model": str(canary["dir"])}, timeout=30)
    assert r.status_code in (202, 409) and canary["word"] not in r.text
    assert seen > 100
    print(f"\npaths: {seen} requests over every route with a path parameter, none gave out the canary")


def _send_headers_then_wait(url: str, headers: str, body: bytes) -> tuple[bytes, int]:
    """Send a request's headers and ``body`` on a raw socket; return the status line and how much was sent
    before the server answered or stopped reading."""
    host, port = url.removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(headers.encode())
        try:
            for start in range(0, len(body), 1 << 16):
                sock.sendall(body[start : start + (1 << 16)])
                sent += min(1 << 16, len(body) - start)
        except OSError:
            pass  # the server answered and closed the connection: it stopped reading, as it should
        return sock.recv(200).split(b"\r\n")[0], sent


def test_upload_limits_hold_before_the_body_is_stored(open_server: tuple[str, Any], data_dir: Path) -> None:
    url, app = open_server
    manager: JobManager = app.state.jobs
    boundary = "hardening" + secrets.token_hex(4)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    # A declared size over the limit: refused from the headers alone, without waiting for the body.
    status, _ = _send_headers_then_wait(
        url,
        f"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {64 << 20}\r\n\r\n",
        head,
    )
    assert status.startswith(b"HTTP/1.1 413"), status
    # A chunked body with no declared size: refused once it passes the limit; the rest is never read.
    chunks = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in [head] + [b"\0" * (1 << 16)] * 64)
    status, _ = _send_headers_then_wait(
        url,
        f"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n",
        chunks,
    )
    assert status.startswith(b"HTTP/1.1 413"), status
    # Just over the limit, declared honestly: the handler's own check answers, with the limit in the message.
    with open(data_dir / "jfk" / "jfk.wav", "rb") as fh:  # 352 kB
        r = httpx.post(f"{url}/api/jobs", files={"file": ("jfk.wav", fh)}, timeout=60)
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    # The UI's upload route has the same limit.
    with open(data_dir / "jfk" / "jfk.wav", "rb") as fh:
        r = httpx.post(f"{url}/gradio_api/upload", files={"files": ("jfk.wav", fh)}, timeout=60)
    assert r.status_code == 413, (r.status_code, r.text[:200])
    assert not manager.uploads_root.exists() or not any(manager.uploads_root.iterdir())
    assert httpx.get(f"{url}/api/jobs", timeout=30).status_code == 200  # still serving


@pytest.fixture(scope="module")
def locked_server(root: Path, model_cache: ModelCache, data_dir: Path) -> Iterator[tuple[str, Any, str]]:
    """The workbench with --auth, holding one finished job whose input name is a canary."""
    from workbench.server import build_server

    settings = _settings(root, "locked")
    manager = JobManager(settings, Runner(settings, model_cache), max_upload_bytes=LIMIT)
    app = build_server(settings, auth=(USER, PASSWORD), manager=manager)
    clip = root / f"locked-{secrets.token_hex(6)}.wav"
    shutil.copy(data_dir / "ljspeech" / "LJ001-0002.wav", clip)
    with serve(app) as url, open(clip, "rb") as fh:
        r = httpx.post(f"{url}/api/jobs", files={"file": (clip.name, fh)}, auth=(USER, PASSWORD), timeout=60)
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        deadline = time.monotonic() + 300
        while httpx.get(f"{url}/api/jobs/{job_id}", auth=(USER, PASSWORD), timeout=30).json()["state"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        yield url, app, job_id


def test_auth_is_enforced_on_every_route(locked_server: tuple[str, Any, str], caplog: pytest.LogCaptureFixture) -> None:
    """Without the login (none, a wrong password, a wrong user), every /api route answers 401 and no route
    of the UI or the API gives out a job, a result or the app's layout; with it, everything works."""
    caplog.set_level(logging.DEBUG)
    url, app, job_id = locked_server
    name = httpx.get(f"{url}/api/jobs/{job_id}", auth=(USER, PASSWORD), timeout=30).json()["input_name"]
    result = httpx.get(f"{url}/api/jobs/{job_id}/result.srt", auth=(USER, PASSWORD), timeout=30).text
    assert "modern" in result.lower()  # the job's subtitles (LJ001-0002: "in being comparatively modern")
    values = {"job_id": job_id, "fmt": "srt", "rest": f"{job_id}/result.srt", "api_name": "transcribe"}
    strangers: list[Any] = [None, (USER, "wrong"), ("mallory", PASSWORD), (USER, PASSWORD + "x")]
    checked = 0
    client = httpx.Client(follow_redirects=False)
    for template, methods in routes(app):
        if template in STREAMING:
            strangers_here = strangers[:1]  # each one holds the line until the timeout: once is enough
        else:
            strangers_here = strangers
        path = template
        while "{" in path:
            start, end = path.index("{"), path.index("}")
            key = path[start + 1 : end].split(":")[0]
            path = path[:start] + values.get(key, "x") + path[end + 1 :]
        for method in methods:
            for stranger in strangers_here:
                try:
                    r = client.request(method, url + path, auth=stranger, timeout=2 if template in STREAMING else 10)
                except httpx.TransportError:
                    # A streaming route holding the line, or one of Gradio's failing mid-answer: nothing given out.
                    assert not path.startswith("/api/"), (method, path)
                    continue
                checked += 1
                if path.startswith("/api/"):
                    assert r.status_code == 401, (method, path, stranger, r.status_code)
                    assert r.headers.get("www-authenticate", "").startswith("Basic")
                assert job_id not in r.text and name not in r.text, (method, path, r.status_code)
                assert "Turn video and audio into" not in r.text, (method, path)  # the UI's layout
    client.close()
    assert checked > 100
    print(f"\nauth: {checked} requests without a valid login over every route, none gave out a job or the UI")
    # The page itself is the login form, not the workbench; the UI's config needs the login too.
    page = httpx.get(url, timeout=30)
    assert "Turn video and audio into" not in page.text
    assert httpx.get(f"{url}/config", timeout=30).status_code == 401
    # An upload from a stranger is refused from its headers, before its body is read (and spooled to disk).
    status, _ = _send_headers_then_wait(
        url,
        "POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {LIMIT // 2}\r\n\r\n",
        b"--b\r\n",
    )
    assert status.startswith(b"HTTP/1.1 401"), status
    # With the login, the API and the UI's config answer.
    assert httpx.get(f"{url}/api/jobs", auth=(USER, PASSWORD), timeout=30).status_code == 200
    login = httpx.post(f"{url}/login", data={"username": USER, "password": PASSWORD}, timeout=30)
    assert login.status_code == 200 and login.cookies
    assert httpx.get(f"{url}/api/jobs", cookies=login.cookies, timeout=30).status_code == 200
    assert httpx.post(f"{url}/login", data={"username": USER, "password": "nope"}, timeout=30).status_code == 400
    # Nothing logged these requests' secret, nor is it in any file of the jobs folder.
    assert PASSWORD not in caplog.text
    jobs_dir = app.state.jobs.settings.jobs.jobs_dir
    assert not [p for p in jobs_dir.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()]


def test_fuzzing_the_openapi_schema_finds_no_server_error(open_server: tuple[str, Any], tmp_path: Path) -> None:
    """schemathesis (its CLI, every phase: coverage, fuzzing, stateful) against the running server's OpenAPI
    schema, bounded to FUZZ_EXAMPLES cases per operation with a fixed seed; no answer may be a 5xx."""
    url, _ = open_server
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            str(FUZZ_EXAMPLES),
            "--seed",
            "10",
            "--request-timeout",
            "30",
            "--no-color",
            "--suppress-health-check",
            "all",
            "--warnings",
            "off",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # its example database goes there
    )
    assert proc.returncode == 0 and "No issues found" in proc.stdout, proc.stdout[-4000:] + proc.stderr[-2000:]
    generated = int(re.search(r"(\d+) generated", proc.stdout).group(1))  # type: ignore[union-attr]
    assert generated >= 11 * FUZZ_EXAMPLES // 2, proc.stdout[-2000:]
    print(f"\nfuzz: schemathesis sent {generated} requests over the 11 operations, no 5xx")
    assert httpx.get(f"{url}/api/jobs", timeout=30).status_code == 200
