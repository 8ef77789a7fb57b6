"""Who may use the server over TCP without the bearer token: a browser holding a dashboard session.

The server's guard asks :func:`browser_refusal` about every TCP request that
did not bring the bearer token.  Such a request must name this server by a
loopback Host (so a page of another site, whose name was made to resolve to
127.0.0.1, is refused: DNS rebinding); then only the login and the static
assets are open without a session; and a request that changes something
(any method but GET, HEAD or OPTIONS) must carry the session's CSRF token.
A bearer-token request is let in as before, whatever its Host: a page of
another site cannot know the token.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any

from oumi_jobs.dashboard.sessions import CSRF_HEADER, Session, Sessions, cookie_name

OPEN_PATHS = frozenset({"/login", "/favicon.ico"})
OPEN_PREFIX = "/static/"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
HOW_TO_LOG_IN = "run `oumi-jobs ui` on this machine for a login link"


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused, its HTTP status, and whether a browser page should say so (else JSON)."""

    status: int
    message: str
    page: bool
    reason: str  # counted and logged by the server's activity


def host_allowed(headers: Mapping[bytes, bytes], port: int) -> bool:
    host = headers.get(b"host", b"").decode("latin-1").strip().lower()
    return host in {f"{name}:{port}" for name in LOOPBACK_NAMES}


def session_of(headers: Mapping[bytes, bytes], port: int, sessions: Sessions) -> Session | None:
    raw = headers.get(b"cookie")
    if not raw:
        return None
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(raw.decode("latin-1"))
    except CookieError:
        return None
    morsel = cookie.get(cookie_name(port))
    return sessions.find(morsel.value) if morsel is not None else None


def browser_refusal(scope: Mapping[str, Any], sessions: Sessions) -> tuple[Session | None, Refusal | None]:
    """The session of a TCP request without the bearer token, or why it is refused."""
    headers = dict(scope.get("headers") or [])
    wants_page = b"text/html" in headers.get(b"accept", b"")
    port = scope["server"][1]
    if not host_allowed(headers, port):
        host = headers.get(b"host", b"").decode("latin-1")
        why = f"refused: Host {host!r} is not this server's loopback address (127.0.0.1:{port} or localhost:{port})"
        return None, Refusal(403, why, wants_page, "a foreign Host")
    path: str = scope.get("path", "")
    if path in OPEN_PATHS or path.startswith(OPEN_PREFIX):
        return None, None
    session = session_of(headers, port, sessions)
    if session is None:
        if wants_page:
            return None, Refusal(401, f"You are not logged in: {HOW_TO_LOG_IN}.", True, "no session")
        return None, Refusal(401, "missing or wrong bearer token", False, "a missing or wrong bearer token")
    if scope.get("method", "GET") not in SAFE_METHODS:
        sent = headers.get(CSRF_HEADER.encode())
        if not session.csrf_ok(sent.decode("latin-1") if sent is not None else None):
            return session, Refusal(
                403, "missing or wrong CSRF token (the page's own, or the bearer token)", False, "no CSRF token"
            )
    return session, None


def refusal_page(refusal: Refusal) -> str:
    """The whole page of a refusal: what happened and how to log in, nothing else (no job data)."""
    title = "Log in to the oumi-jobs dashboard" if refusal.status == 401 else "Refused"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><link rel=stylesheet href=/static/app.css></head>"
        f"<body><main class=narrow><h1>{title}</h1><p>{html.escape(refusal.message)}</p>"
        "<pre>oumi-jobs ui</pre><p>It prints (or opens) a link that works once, for 5 minutes.</p>"
        "</main></body></html>"
    )
