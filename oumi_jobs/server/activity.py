"""What the server is doing: requests under way and served, and how long it has been idle.

The idle exit reads it: a server with a launch, a cancel or a followed log
stream under way is never idle, however long that request takes.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass

from oumi_jobs.errors import UsageError

DEFAULT_IDLE_TIMEOUT_S = 15 * 60.0


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

    def checked(self) -> ServeOptions:
        """These options, or UsageError: a non-loopback --host needs --allow-remote; a port needs a host."""
        if self.port is not None and not self.host:
            raise UsageError("--port needs --host (the server's own socket is a unix socket)")
        if self.host and not self.allow_remote and not is_loopback(self.host):
            raise UsageError(f"{self.host} is not a loopback address: pass --allow-remote to serve it")
        return self

    def as_args(self) -> list[str]:
        args = ["--idle-timeout", repr(self.idle_timeout_s)]
        if self.host:
            args += ["--host", self.host, "--port", str(self.port or 0)]
        if self.allow_remote:
            args.append("--allow-remote")
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

    def idle_for(self) -> float:
        """Seconds since the last request ended; 0 while one is under way."""
        with self._lock:
            return 0.0 if self._in_flight else time.monotonic() - self._last
