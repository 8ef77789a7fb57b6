"""The server's ASGI application: the cloud adapter's calls, the REST API, and the server's own endpoints.

One FastAPI app.  In front of it, one small ASGI guard (:class:`Guard`)
counts requests for the idle exit, bounds request bodies, and on TCP checks
the bearer token (constant-time); on the unix socket the peer's uid was
checked when it connected (:mod:`oumi_jobs.server.runner`).  Errors become
HTTP answers in :mod:`oumi_jobs.server.http_errors` only.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from oumi_jobs.cloud import adapter
from oumi_jobs.documents import SCHEMA_VERSION
from oumi_jobs.errors import OumiJobsError
from oumi_jobs.paths import Paths
from oumi_jobs.server import rest, rest_sweeps, rpc
from oumi_jobs.server.activity import Activity, ServerSettings
from oumi_jobs.server.http_errors import error_body, http_status, internal_body, usage_body

log = logging.getLogger("oumi_jobs.server")

# No request to this API needs more: a submit names its config by path, a cancel carries a reason.
MAX_BODY_BYTES = 1 << 20

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Guard:
    """Counts each request while it runs (streams included), bounds its body, and checks TCP clients' token."""

    def __init__(self, app: ASGIApp, settings: ServerSettings, activity: Activity) -> None:
        self.app, self.settings, self.activity = app, settings, activity
        self._token: tuple[int, bytes] | None = None  # (the file's mtime_ns, its token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("server") is not None and not self._token_ok(scope):  # TCP (uvicorn: None on a unix socket)
            await _answer(scope, receive, send, 401, usage_body("missing or wrong bearer token"))
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await _answer(scope, receive, send, 413, usage_body(f"request body over {MAX_BODY_BYTES} bytes"))
            return
        self.activity.begin()
        try:
            if length is None:  # a chunked body names no length: read it here, within the bound, first
                body = await _whole_body(receive)
                if body is None:
                    await _answer(scope, receive, send, 413, usage_body(f"request body over {MAX_BODY_BYTES} bytes"))
                    return
                receive = _replaying(body, receive)
            await self.app(scope, receive, send)
        finally:
            self.activity.end()

    def _token_ok(self, scope: Scope) -> bool:
        expected = self._expected_token()
        if not expected:
            return False  # a TCP listener always has a token; without one, nobody gets in
        sent = dict(scope.get("headers") or []).get(b"authorization", b"")
        return hmac.compare_digest(sent, b"Bearer " + expected)

    def _expected_token(self) -> bytes | None:
        """The token file's content, read again only when the file changed (`server token --rotate`)."""
        if self.settings.token_file is None:
            return None
        try:
            changed = os.stat(self.settings.token_file).st_mtime_ns
            if self._token is None or self._token[0] != changed:
                with open(self.settings.token_file, "rb") as handle:
                    self._token = (changed, handle.read().strip())
        except OSError:
            return None  # no token file: nobody gets in over TCP until one is made
        return self._token[1]


async def _whole_body(receive: Receive) -> bytes | None:
    """The request's body, or None once it passes the bound (FastAPI would turn an error raised while it
    reads the body into a 400, so a body too large is refused before the app sees it)."""
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


async def _answer(scope: Scope, receive: Receive, send: Send, status: int, body: dict[str, Any]) -> None:
    await JSONResponse(body, status_code=status)(scope, receive, send)


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
    )
    _install_error_handlers(app)
    app.include_router(rpc.router(activity))
    app.include_router(rest.router(paths))
    app.include_router(rest_sweeps.router(paths))

    @app.get("/healthz", tags=["server"])
    def healthz() -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "ok": True, "version": settings.version, "warm": warm.is_set()}

    @app.get("/server", tags=["server"])
    def server_status() -> dict[str, Any]:
        return status_document(settings, activity, warm.is_set())

    @app.post("/server/stop", tags=["server"], status_code=202)
    def stop(drain: bool = False) -> dict[str, Any]:
        shutdown(drain)
        return {"schema_version": SCHEMA_VERSION, "stopping": True, "drain": drain, "pid": os.getpid()}

    return Guard(app, settings, activity)


def status_document(settings: ServerSettings, activity: Activity, warm: bool) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "pid": os.getpid(),
        "version": settings.version,
        "address": settings.address,
        "transport": settings.transport,
        "started_at": settings.started_at,
        "uptime_s": round(time.time() - settings.started_at, 3),
        "idle_timeout_s": settings.idle_timeout_s,
        "idle_s": round(activity.idle_for(), 3),
        "warm": warm,
        "clouds_loaded": sorted(activity.clouds),
        "requests_served": activity.served,
        "requests_in_flight": activity.in_flight - 1,  # not counting the one asking
        "memory_rss_bytes": _rss_bytes(),
    }


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def routing(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # An unknown path or a wrong method: the same error body as every other error.
        return JSONResponse(usage_body(str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

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
