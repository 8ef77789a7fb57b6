"""One-time login codes and the browser sessions they open, kept in the server process's memory only.

A code is made for ``oumi-jobs ui`` (over the unix socket, or with the bearer token), works once, for
CODE_TTL_S; redeemed, it opens a session: a random id the browser keeps in an HttpOnly, SameSite=Strict
cookie, and a CSRF token the page sends back with every POST.  Nothing is written to disk: a server that
exits takes its sessions with it, and the next ``oumi-jobs ui`` makes a new code.  Codes and sessions are
looked up by their SHA-256, so a lookup's time says nothing of a stored secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

CODE_TTL_S = 5 * 60.0
SESSION_TTL_S = 12 * 3600.0
# Bounds on what a caller can make the server keep: the oldest goes first.
MAX_CODES = 64
MAX_SESSIONS = 256
COOKIE = "oumi_jobs_session"
CSRF_HEADER = "x-csrf-token"


def cookie_name(port: int) -> str:
    """The session cookie of the server on ``port``: a browser sends a cookie of 127.0.0.1 to every port of it,
    so two servers (two environments) each need their own name, or logging in to one logs out of the other."""
    return f"{COOKIE}_{port}"


@dataclass(frozen=True)
class LoginCode:
    code: str
    expires_at: float


@dataclass(frozen=True)
class Session:
    session_id: str
    csrf_token: str
    expires_at: float

    def csrf_ok(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf_token.encode())


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Sessions:
    """The login codes not yet used and the sessions open, thread-safe (pages run in a thread pool)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._codes: OrderedDict[str, float] = OrderedDict()  # digest -> expiry
        self._sessions: OrderedDict[str, Session] = OrderedDict()  # digest of the id -> session

    def new_code(self) -> LoginCode:
        code = LoginCode(secrets.token_urlsafe(24), self._clock() + CODE_TTL_S)
        with self._lock:
            self._codes[_digest(code.code)] = code.expires_at
            while len(self._codes) > MAX_CODES:
                self._codes.popitem(last=False)
        return code

    def redeem(self, code: str) -> Session | None:
        """A new session for a code made here, not used yet and not expired (it is used now); else None."""
        with self._lock:
            expires_at = self._codes.pop(_digest(code), None)
            if expires_at is None or expires_at < self._clock():
                return None
            session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), self._clock() + SESSION_TTL_S)
            self._sessions[_digest(session.session_id)] = session
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return session

    def find(self, session_id: str | None) -> Session | None:
        """The open session of this cookie value, or None (none, unknown or expired)."""
        if not session_id:
            return None
        with self._lock:
            key = _digest(session_id)
            session = self._sessions.get(key)
            if session is not None and session.expires_at < self._clock():
                del self._sessions[key]
                return None
        return session
