"""The workbench's login (``--auth USER:PASS``): one check for the UI and the HTTP API.

A request is logged in when it carries HTTP basic credentials for the user (``curl -u``), or the session cookie
that ``POST /login`` hands out (the login page, for browsers). The check reaches each part through a public
mechanism: Gradio's ``auth_dependency`` for the UI and its routes, a FastAPI dependency on every ``/api``
router, and an ASGI middleware that refuses an ``/api`` request from its headers, before its body is read.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from pipeline.core.errors import UsageError

#: The browser session's cookie.
SESSION_COOKIE = "video2srt-session"
#: How long a login lasts without a new one.
SESSION_TTL_S = 7 * 86400.0
#: Sessions kept at most; the oldest go first (each login makes one).
MAX_SESSIONS = 1000
REALM = 'Basic realm="video2srt"'
LOGIN_MESSAGE = "video2srt: log in with the user and password the server was started with (--auth)."
UNAUTHORIZED = "authentication required: send HTTP basic credentials (curl -u USER:PASS) or log in to the UI"


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


class Login:
    """The login of one server: its credentials and the browser sessions it handed out.

    Args:
        credentials: The expected ``(user, password)``.
    """

    def __init__(self, credentials: tuple[str, str]) -> None:
        self._user, self._password = credentials[0].encode(), credentials[1].encode()
        self._sessions: dict[str, tuple[str, float]] = {}  # token → (user, expiry)
        self._lock = threading.Lock()

    def check(self, user: str | bytes, password: str | bytes) -> bool:
        """Whether ``user`` and ``password`` are the server's."""
        user = user.encode() if isinstance(user, str) else user
        password = password.encode() if isinstance(password, str) else password
        # Both comparisons always run: the time taken says nothing about which part was wrong.
        return secrets.compare_digest(user, self._user) & secrets.compare_digest(password, self._password)

    def user(self, request: Request) -> str | None:
        """The logged-in user of ``request`` (basic credentials or a session cookie), or None.

        This is the ``auth_dependency`` Gradio calls for the UI and its routes.
        """
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() == "basic" and encoded:
            try:
                user, sep, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
            except (binascii.Error, ValueError):
                user, sep, password = b"", b"", b""
            if sep and self.check(user, password):
                return user.decode(errors="replace")
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            with self._lock:
                session = self._sessions.get(token)
                if session is not None and session[1] < time.time():
                    del self._sessions[token]
                    session = None
            if session is not None:
                return session[0]
        return None

    def require(self, request: Request) -> None:
        """A FastAPI dependency: 401 (with a basic-auth challenge) unless ``request`` is logged in."""
        if self.user(request) is None:
            raise HTTPException(401, UNAUTHORIZED, headers={"WWW-Authenticate": REALM})

    def open_session(self, user: str) -> str:
        """A new session token for ``user``."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            now = time.time()
            self._sessions = {t: s for t, s in self._sessions.items() if s[1] >= now}
            while len(self._sessions) >= MAX_SESSIONS:
                del self._sessions[next(iter(self._sessions))]
            self._sessions[token] = (user, now + SESSION_TTL_S)
        return token

    def close_session(self, token: str | None) -> None:
        """Forget a session (log out)."""
        with self._lock:
            self._sessions.pop(token or "", None)

    def router(self) -> APIRouter:
        """``GET /login`` (the login page), ``POST /login`` (form fields ``username`` and ``password``, as
        Gradio's own login takes them: 200 and the session cookie, or 400) and ``GET /logout``."""
        router = APIRouter(include_in_schema=False)

        @router.get("/login")
        def login_page() -> HTMLResponse:
            return HTMLResponse(LOGIN_PAGE)

        @router.post("/login")
        def login(
            request: Request, username: Annotated[str, Form()] = "", password: Annotated[str, Form()] = ""
        ) -> Response:
            user = username.strip()
            if not self.check(user, password):
                return JSONResponse({"detail": "Incorrect credentials."}, status_code=400)
            response = JSONResponse({"success": True})
            response.set_cookie(
                SESSION_COOKIE,
                self.open_session(user),
                max_age=int(SESSION_TTL_S),
                httponly=True,
                samesite="lax",
                secure=request.url.scheme == "https",
            )
            return response

        @router.get("/logout")
        def logout(request: Request) -> Response:
            self.close_session(request.cookies.get(SESSION_COOKIE))
            response = RedirectResponse("login", status_code=303)
            response.delete_cookie(SESSION_COOKIE)
            return response

        return router


class LoginFirst:
    """ASGI middleware: an ``/api`` request that is not logged in gets its 401 before its body is read, and a
    browser opening the UI without a login is sent to the login page.

    FastAPI reads (and spools to disk) a request body before a route's dependencies run, so without this an
    upload from someone not logged in would be stored in full before the route's own check refused it.
    """

    def __init__(self, app: Any, login: Login) -> None:  # noqa: ANN401 - an ASGI app
        self.app, self.login = app, login

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:  # noqa: ANN401 - ASGI
        if scope["type"] == "http":
            path = scope.get("path", "")
            answer: Callable[..., Any] | None = None
            if path == "/api" or path.startswith("/api/"):
                if self.login.user(Request(scope)) is None:
                    answer = JSONResponse({"detail": UNAUTHORIZED}, 401, headers={"WWW-Authenticate": REALM})
            elif path == "/" and scope.get("method") in ("GET", "HEAD"):
                if self.login.user(Request(scope)) is None:
                    answer = RedirectResponse("login", status_code=303)
            if answer is not None:
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>video2srt — log in</title>
<style>
body { font-family: system-ui, sans-serif; display: flex; justify-content: center; align-items: center;
  min-height: 90vh; margin: 0; background: #f5f5f7; color: #1f2937; }
form { background: #fff; padding: 2em 2.2em; border-radius: 0.8em; box-shadow: 0 2px 14px #0002; width: 20em; }
h1 { font-size: 1.4em; margin: 0 0 0.4em; } p { font-size: 0.92em; opacity: 0.8; }
label { display: block; margin-top: 0.9em; font-size: 0.9em; font-weight: 600; }
input { width: 100%; box-sizing: border-box; padding: 0.55em; margin-top: 0.3em; border: 1px solid #ccd;
  border-radius: 0.4em; font-size: 1em; }
button { margin-top: 1.3em; width: 100%; padding: 0.65em; border: 0; border-radius: 0.4em; background: #4f46e5;
  color: #fff; font-size: 1em; font-weight: 600; cursor: pointer; }
#error { color: #dc2626; min-height: 1.2em; font-size: 0.9em; margin-top: 0.8em; }
</style></head>
<body><form id="login" method="post" action="login">
<h1>video2srt</h1><p>Log in with the user and password this server was started with (<code>--auth</code>).</p>
<label>User <input type="text" name="username" autocomplete="username" autofocus required></label>
<label>Password <input type="password" name="password" autocomplete="current-password" required></label>
<button type="submit">Log in</button><div id="error" role="alert"></div>
</form>
<script>
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await fetch("login", { method: "POST", body: new URLSearchParams(new FormData(event.target)) });
  if (response.ok) { window.location.replace("./"); }
  else { document.getElementById("error").textContent = "Wrong user or password."; }
});
</script></body></html>
"""


__all__ = ["LOGIN_MESSAGE", "Login", "LoginFirst", "parse_auth"]
