"""Who may hold a connection to the server, and for how long.

uvicorn's h11 protocol, subclassed: a unix-socket peer of another uid is
answered 403 and dropped (``SO_PEERCRED``); a connection must send each
request head within HEAD_TIMEOUT_S; and at most MAX_WAITING_TCP TCP
connections may wait for theirs, since the bearer token comes only with a
whole head.  So neither another user nor a flood of idle or slow clients can
hold the server from its owner.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
from typing import Any

from oumi_jobs.server.activity import Activity
from oumi_jobs.server.http_errors import usage_body


def _peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


_FORBIDDEN = json.dumps(usage_body("this server answers only its own user")).encode()
_BUSY = json.dumps(usage_body("too many connections waiting: try again")).encode()
# A client sends a request head at once; one that has not within this long is closed.
HEAD_TIMEOUT_S = 5.0
# TCP connections that have not yet sent a whole request head (so no token yet), at most.
MAX_WAITING_TCP = 64


def peer_checked_h11(activity: Activity) -> type[asyncio.Protocol]:
    from uvicorn.protocols.http.h11_impl import H11Protocol

    waiting: set[asyncio.Protocol] = set()  # TCP connections that have not yet sent a whole request head

    class PeerCheckedH11(H11Protocol):
        """uvicorn's h11 protocol, made hard to hold: a unix-socket peer of another uid is answered 403 and
        dropped; a connection must send each request head within HEAD_TIMEOUT_S; and at most
        MAX_WAITING_TCP TCP connections may wait for theirs (the token comes only with a whole head), so a
        flood of idle connections never crowds out the owner."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._headed: object = None  # the request cycle whose head came last
            self._head_timer: asyncio.TimerHandle | None = None
            if not _admitted(transport, activity, len(waiting)):
                return
            if not _is_unix(transport):
                waiting.add(self)
            self._arm_head_timer()

        def _arm_head_timer(self) -> None:
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_timed_out)

        def _head_timed_out(self) -> None:
            waiting.discard(self)
            if self.cycle is self._headed and not self.transport.is_closing():
                activity.rejected("a request head not sent in time")
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is not self._headed:  # a whole request head came
                self._headed = self.cycle
                self._settle()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_head_timer()  # the next request's head, on a kept-alive connection

        def handle_websocket_upgrade(self, event: Any) -> None:
            self._settle()  # the connection is the WebSocket protocol's from here
            super().handle_websocket_upgrade(event)

        def _settle(self) -> None:
            waiting.discard(self)
            if self._head_timer is not None:
                self._head_timer.cancel()

        def send_400_response(self, msg: str) -> None:
            activity.rejected("a malformed request")
            super().send_400_response(msg)

        def connection_lost(self, exc: Exception | None) -> None:
            self._settle()
            super().connection_lost(exc)

    return PeerCheckedH11


def _is_unix(transport: asyncio.BaseTransport) -> bool:
    sock = transport.get_extra_info("socket")
    return sock is not None and sock.family == socket.AF_UNIX


def _admitted(transport: asyncio.Transport, activity: Activity, waiting: int) -> bool:
    """Whether a new connection may stay: not a unix-socket peer of another uid, nor a TCP connection past
    MAX_WAITING_TCP waiting for their request head (each refused is answered, closed and counted)."""
    unix = _is_unix(transport)
    if unix and _peer_uid(transport.get_extra_info("socket")) != os.getuid():
        activity.rejected("a peer of another uid")
        _refuse_raw(transport, b"403 Forbidden", _FORBIDDEN)
        return False
    if not unix and waiting >= MAX_WAITING_TCP:
        activity.rejected("too many TCP connections without a request")
        _refuse_raw(transport, b"503 Service Unavailable", _BUSY)
        return False
    return True


def _refuse_raw(transport: asyncio.Transport, status: bytes, body: bytes) -> None:
    transport.write(
        b"HTTP/1.1 "
        + status
        + b"\r\ncontent-type: application/json\r\nconnection: close\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    transport.close()
