"""``oumi-jobs ui``: a server that listens on loopback TCP, and a one-time login link to its dashboard.

A browser reaches the server only over TCP.  If the running server has no TCP
listener (a cloud command started it, unix socket only) or listens on another
port than the one asked, it is stopped as ``server stop`` does (requests under
way get 10 s) and started again with one on 127.0.0.1: a user who asked for the
dashboard wants it, and the next cloud command uses the new server as it did
the old.  The login code is made by the server itself (over the unix socket,
which only this user can open) and kept in its memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from oumi_jobs.client import Client
from oumi_jobs.errors import ConflictError
from oumi_jobs.paths import Paths
from oumi_jobs.server import lifecycle
from oumi_jobs.server.activity import ServeOptions
from oumi_jobs.server.lifecycle import ServerRecord
from oumi_jobs.server.location import ServerFiles

UI_HOST = "127.0.0.1"
# Addresses a server may listen on that a browser on this machine reaches as 127.0.0.1 or [::1].
_REACHABLE = {"127.0.0.1": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::1": "[::1]", "::": "[::1]"}
STARTING = "starting the oumi-jobs server with a loopback TCP port for the dashboard"
RESTARTING = "restarting the oumi-jobs server with a loopback TCP port for the dashboard"


@dataclass(frozen=True)
class LoginLink:
    """Where to log in (``url`` works once, until ``expires_at``), and the server that answers it."""

    url: str
    expires_at: str
    expires_in_s: float
    address: str
    pid: int
    restarted: bool  # a running server without the TCP port asked was restarted with it


def login_link(paths: Paths, *, port: int | None = None, on_start: Callable[[str], None] | None = None) -> LoginLink:
    """A login link to this environment's dashboard, the server started (or restarted) with TCP first."""
    record, restarted = _tcp_server(paths, port, on_start)
    with Client.unix(record.socket) as client:
        document = client.post("/api/ui/login-codes", timeout_s=lifecycle.PROBE_TIMEOUT_S)
    url = f"{_browser_base(record.address)}/login?code={quote(str(document['code']))}"
    return LoginLink(url, document["expires_at"], document["expires_in_s"], record.address, record.pid, restarted)


def _tcp_server(paths: Paths, port: int | None, on_start: Callable[[str], None] | None) -> tuple[ServerRecord, bool]:
    files = ServerFiles.for_env(paths)
    restarted = False
    if lifecycle.status(paths) is not None:
        record = ServerRecord.read(files)
        if record is not None and _serves(record, port):
            return record, False
        if on_start is not None:
            on_start(RESTARTING)
        lifecycle.stop(paths)
        restarted = True
    elif on_start is not None:
        on_start(STARTING)
    try:
        return lifecycle.start(paths, ServeOptions(host=UI_HOST, port=port)), restarted
    except ConflictError:
        record = ServerRecord.read(files)  # another command started one meanwhile: it may serve TCP already
        if record is not None and _serves(record, port):
            return record, restarted
        raise ConflictError(
            "another command started the oumi-jobs server without a TCP port meanwhile: run `oumi-jobs ui` again"
        ) from None


def _serves(record: ServerRecord, port: int | None) -> bool:
    """Whether a browser here reaches this server over TCP (on ``port``, when one is asked)."""
    if record.transport != "tcp":
        return False
    where = urlsplit(record.address)
    return (where.hostname or "") in _REACHABLE and (port is None or where.port == port)


def _browser_base(address: str) -> str:
    where = urlsplit(address)
    return f"{where.scheme}://{_REACHABLE[where.hostname or '']}:{where.port}"
