"""What the server is doing: requests under way and served, and how long it has been idle.

The idle exit reads it: a server with a launch, a cancel or a followed log
stream under way is never idle, however long that request takes.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from dataclasses import dataclass

from oumi_jobs.errors import UsageError

DEFAULT_IDLE_TIMEOUT_S = 15 * 60.0
# Refused requests and connections are logged at most once per this many seconds, as a count: a flood of
# them must not fill the disk through server.log.
REJECTION_LOG_EVERY_S = 20.0

log = logging.getLogger("oumi_jobs.server")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@dataclass(frozen=True)
class ServeOptions:
    """How to run a server (``server run`` / ``server start`` options)."""

    host: str | None = None  # also listen on TCP, with the bearer token
    port: int | None = None
    allow_remote: bool = False
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S  # 0: never exit when idle
    tls_cert: str | None = None  # TLS on the TCP port (uvicorn's own), with this certificate and key
    tls_key: str | None = None
    allow_insecure_remote: bool = False  # a non-loopback host without TLS: the token would cross in clear

    def checked(self) -> ServeOptions:
        """These options, or UsageError: a non-loopback --host needs --allow-remote, and TLS unless
        --allow-insecure-remote; a port needs a host; TLS needs a host, a certificate and its key."""
        if self.port is not None and not self.host:
            raise UsageError("--port needs --host (the server's own socket is a unix socket)")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise UsageError("--tls-cert and --tls-key go together")
        if self.tls_cert is not None and not self.host:
            raise UsageError("--tls-cert needs --host (TLS is for the TCP port; the unix socket needs none)")
        if self.host and not is_loopback(self.host):
            if not (self.allow_remote or self.allow_insecure_remote):
                raise UsageError(f"{self.host} is not a loopback address: pass --allow-remote to serve it")
            if self.tls_cert is None and not self.allow_insecure_remote:
                raise UsageError(
                    f"{self.host} is not a loopback address: the bearer token would cross the network in clear; "
                    "pass --tls-cert and --tls-key, or --allow-insecure-remote"
                )
        return self

    def as_args(self) -> list[str]:
        args = ["--idle-timeout", repr(self.idle_timeout_s)]
        if self.host:
            args += ["--host", self.host, "--port", str(self.port or 0)]
        if self.allow_remote:
            args.append("--allow-remote")
        if self.allow_insecure_remote:
            args.append("--allow-insecure-remote")
        if self.tls_cert is not None and self.tls_key is not None:
            args += ["--tls-cert", os.path.abspath(self.tls_cert), "--tls-key", os.path.abspath(self.tls_key)]
        return args


@dataclass(frozen=True)
class ServerSettings:
    """What a running server was started with (and reports in ``server status``)."""

    version: str
    address: str  # the unix socket's path, or http://host:port
    transport: str  # "unix" or "tcp"
    idle_timeout_s: float  # 0: never exits when idle
    token_file: str | None  # the bearer token TCP clients must send (read anew when it changes: `--rotate`)
    started_at: float  # epoch seconds


class Activity:
    """Thread-safe counters of the requests a server has seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self._served = 0
        self._last = time.monotonic()
        self.clouds: set[str] = set()  # the clouds asked since start, for `server status`
        self.stop_event = threading.Event()
        self.drain_requested = False  # stop once no request is under way (a server being replaced)
        self._rejected = 0
        self._rejected_unlogged: dict[str, int] = {}
        self._rejections_logged_at = -REJECTION_LOG_EVERY_S
        self._watched = 0  # jobs the watcher (server/watcher.py) looks after: the server stays up for them

    def request_stop(self, drain: bool = False) -> None:
        self.drain_requested = drain
        self.stop_event.set()

    def begin(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._last = time.monotonic()

    def end(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._served += 1
            self._last = time.monotonic()

    def rejected(self, why: str) -> None:
        """Count a refused request or connection; log the counts since the last line, at most every
        REJECTION_LOG_EVERY_S."""
        with self._lock:
            self._rejected += 1
            self._rejected_unlogged[why] = self._rejected_unlogged.get(why, 0) + 1
            now = time.monotonic()
            if now - self._rejections_logged_at < REJECTION_LOG_EVERY_S:
                return
            counts, self._rejected_unlogged, self._rejections_logged_at = self._rejected_unlogged, {}, now
        summary = ", ".join(f"{n} for {reason}" for reason, n in sorted(counts.items()))
        log.warning("refused %d request(s) or connection(s) since the last such line: %s",
                    sum(counts.values()), summary)  # fmt: skip

    @property
    def rejections(self) -> int:
        with self._lock:
            return self._rejected

    def asked(self, cloud: str) -> None:
        with self._lock:
            self.clouds.add(cloud)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def served(self) -> int:
        with self._lock:
            return self._served

    def watching(self, count: int) -> None:
        """The watcher looks after ``count`` jobs now; when the last is done, the idle time starts from then."""
        with self._lock:
            if self._watched and not count:
                self._last = time.monotonic()
            self._watched = count

    @property
    def watched(self) -> int:
        with self._lock:
            return self._watched

    def idle_for(self) -> float:
        """Seconds since the last request ended, or the last watched job was done; 0 while a request is under
        way or a job is watched."""
        with self._lock:
            return 0.0 if self._in_flight or self._watched else time.monotonic() - self._last
