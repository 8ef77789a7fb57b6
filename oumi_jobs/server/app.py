"""The server's ASGI application: the cloud adapter's calls, the REST API, and the server's own endpoints.

One FastAPI app.  In front of it, one small ASGI guard (:class:`Guard`)
counts requests for the idle exit, bounds request bodies, and on TCP checks
the bearer token (constant-time), or else a dashboard session with its Host
and CSRF rules (:mod:`oumi_jobs.dashboard.access`); on the unix socket the
peer's uid was checked when it connected (:mod:`oumi_jobs.server.runner`).  Errors become
HTTP answers in :mod:`oumi_jobs.server.http_errors` only.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from oumi_jobs.cloud import adapter
from oumi_jobs.dashboard import pages
from oumi_jobs.dashboard.access import browser_refusal, refusal_page
from oumi_jobs.dashboard.sessions import Sessions
from oumi_jobs.errors import OumiJobsError
from oumi_jobs.paths import Paths
from oumi_jobs.render.server import health_document, status_document, stopping_document
from oumi_jobs.server import rest, rest_sweeps, rpc
from oumi_jobs.server.activity import Activity, ServerSettings
from oumi_jobs.server.http_errors import allowed_methods, error_body, http_status, internal_body, usage_body

log = logging.getLogger("oumi_jobs.server")

# No request to this API needs more: a submit names its config by path, a cancel carries a reason.
MAX_BODY_BYTES = 1 << 20
# A body of at most MAX_BODY_BYTES sent by a live client arrives in well under this.
BODY_TIMEOUT_S = 10.0
UNAUTHORIZED = {"www-authenticate": 'Bearer realm="oumi-jobs"'}
WS_POLICY_VIOLATION = 1008
SESSION_STATE = pages.SESSION_STATE

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Guard:
    """The one door to the app, for every kind of connection: HTTP and WebSocket pass the same token check
    (on TCP; the unix socket's peer uid was checked when it connected), anything else is refused.  It bounds
    each request body by the bytes actually read and the time it takes, and counts each request while it
    runs (streams included) for the idle exit."""

    def __init__(
        self, app: ASGIApp, settings: ServerSettings, activity: Activity, sessions: Sessions | None = None
    ) -> None:
        self.app, self.settings, self.activity = app, settings, activity
        self.sessions = sessions if sessions is not None else Sessions()
        self._token: tuple[tuple[int, ...], bytes] | None = None  # (the file's identity, its token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            self.activity.rejected(f"a {kind!r} connection")
            return
        tcp = scope.get("server") is not None  # uvicorn: None on a unix socket
        if tcp and not self._token_ok(scope) and not await self._browser_let_in(scope, receive, send):
            return
        if kind == "websocket":  # no route takes one: the app's own answer (a close) once it is let in
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            self.activity.rejected("a body over the limit")
            await _refuse(scope, receive, send, 413, f"request body over {MAX_BODY_BYTES} bytes")
            return
        # The body is read here, whatever its framing says, before the request counts as under way: one that
        # stalls or overflows is refused without holding the server awake.
        try:
            body = await asyncio.wait_for(_whole_body(receive), BODY_TIMEOUT_S)
        except asyncio.TimeoutError:
            self.activity.rejected("a body that stalled")
            await _refuse(scope, receive, send, 408, f"request body not sent within {BODY_TIMEOUT_S:g} s")
            return
        if body is None:
            self.activity.rejected("a body over the limit")
            await _refuse(scope, receive, send, 413, f"request body over {MAX_BODY_BYTES} bytes")
            return
        self.activity.begin()
        try:
            await self.app(scope, _replaying(body, receive), send)
        finally:
            self.activity.end()

    async def _browser_let_in(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Whether a TCP request without the bearer token may go on: a dashboard session's (see
        :mod:`oumi_jobs.dashboard.access`); else it is answered here, refused.  One that sent a wrong token is
        an API client's: it is told so, whatever else it carries."""
        if scope["type"] != "http" or b"authorization" in dict(scope.get("headers") or []):
            self.activity.rejected("a missing or wrong bearer token")
            await _refuse(scope, receive, send, 401, "missing or wrong bearer token", UNAUTHORIZED)
            return False
        session, refusal = browser_refusal(scope, self.sessions)
        if refusal is None:
            scope.setdefault("state", {})[SESSION_STATE] = session
            return True
        self.activity.rejected(refusal.reason)
        headers = {"connection": "close", **(UNAUTHORIZED if refusal.status == 401 else {})}
        if refusal.page:
            await HTMLResponse(refusal_page(refusal), refusal.status, headers)(scope, receive, send)
        else:
            await _refuse(scope, receive, send, refusal.status, refusal.message, headers)
        return False

    def _token_ok(self, scope: Scope) -> bool:
        expected = self._expected_token()
        if not expected:
            return False  # a TCP listener always has a token; without one, nobody gets in
        sent = dict(scope.get("headers") or []).get(b"authorization", b"")
        return hmac.compare_digest(sent, b"Bearer " + expected)

    def _expected_token(self) -> bytes | None:
        """The token file's content, read again whenever the file changed (`server token --rotate`).

        Changed means any of device, inode, size, mtime or ctime: a rotation within one timestamp tick
        still replaces the file (a new inode) and changes its ctime.
        """
        if self.settings.token_file is None:
            return None
        try:
            info = os.stat(self.settings.token_file)
            identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
            if self._token is None or self._token[0] != identity:
                with open(self.settings.token_file, "rb") as handle:
                    self._token = (identity, handle.read().strip())
        except OSError:
            return None  # no token file: nobody gets in over TCP until one is made
        return self._token[1]


async def _whole_body(receive: Receive) -> bytes | None:
    """The request's body, or None once the bytes read pass the bound (FastAPI would turn an error raised
    while it reads the body into a 400, so a body too large is refused before the app sees it)."""
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return body  # the client went away: the app sees that on its own receive
        chunk: bytes = message.get("body", b"")
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return None
        if not message.get("more_body", False):
            return body


def _replaying(body: bytes, receive: Receive) -> Receive:
    """``receive`` that gives the body already read, then what the connection says next (a disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str,
                  headers: Mapping[str, str] | None = None) -> None:  # fmt: skip
    """A refusal, and the connection closed after it: a client refused once gets no second try on it."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION, "reason": message[:120]})
        return
    headers = {"connection": "close", **(headers or {})}
    await JSONResponse(usage_body(message), status_code=status, headers=headers)(scope, receive, send)


def create_app(
    paths: Paths,
    settings: ServerSettings,
    activity: Activity,
    *,
    warm: threading.Event,
    shutdown: Callable[[bool], None],
) -> ASGIApp:
    """The app a server runs; ``warm`` is set once the launcher is imported, ``shutdown(drain)`` stops the
    server (``drain``: once no request is under way)."""
    app = FastAPI(
        title="oumi-jobs",
        version=settings.version,
        summary="Submit, watch and cancel Oumi jobs; the same documents as `oumi-jobs --json`.",
        docs_url=None,  # the dashboard serves /docs with Swagger UI's assets from the package: it works offline
        redoc_url=None,
    )
    _install_error_handlers(app)
    app.include_router(rpc.router(activity, warm))
    app.include_router(rest.router(paths))
    app.include_router(rest_sweeps.router(paths))
    sessions = Sessions()
    pages.install(app, paths, sessions)

    @app.get("/healthz", tags=["server"])
    def healthz() -> dict[str, Any]:
        return health_document(settings, warm.is_set())

    @app.get("/server", tags=["server"])
    def server_status() -> dict[str, Any]:
        return status_document(settings, activity, warm.is_set())

    @app.post("/server/stop", tags=["server"], status_code=202)
    def stop(drain: bool = False) -> dict[str, Any]:
        shutdown(drain)
        return stopping_document(drain)

    return Guard(app, settings, activity, sessions)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def routing(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # An unknown path or a wrong method: the same error body as every other error.
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(app.router.routes, request.scope)
        return JSONResponse(usage_body(str(exc.detail)), status_code=exc.status_code, headers=headers)

    @app.exception_handler(OumiJobsError)
    async def known(request: Request, exc: OumiJobsError) -> JSONResponse:
        return JSONResponse(error_body(exc), status_code=http_status(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(part) for part in error['loc'] if part != 'body')}: {error['msg']}"
            for error in exc.errors()
        ]
        return JSONResponse(usage_body("; ".join(problems), detail=problems), status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse(internal_body(exc), status_code=500)


def warm_up(warm: threading.Event) -> threading.Thread:
    """Import the launcher in the background: the server answers at once, and is warm ~12 s later."""

    def run() -> None:
        try:
            adapter.current().prepare()
        except Exception:
            log.exception("importing the launcher failed; each cloud call will report why")
        finally:
            warm.set()

    thread = threading.Thread(target=run, name="oumi-jobs warm-up", daemon=True)
    thread.start()
    return thread
