"""The client of the oumi-jobs server, for Python users and for the command line alike.

    from oumi_jobs import api
    from oumi_jobs.client import Client

    with api.connect_server(api.Paths.from_env()) as client:   # starts the server if none runs
        print(client.get("/api/jobs", params={"state": "running"}))

    remote = Client.tcp("http://127.0.0.1:8765", token=open(token_file).read().strip())

Answers are the documents ``--json`` prints.  An error answer is raised as
the exception an in-process call raises (``JobNotFoundError``,
``AmbiguousJobError`` with its candidates, ``CloudUnreachableError``...), so a
caller handles both the same way; a server that cannot be reached, or that
drops a request half way, raises :class:`ServerUnavailableError` (exit 5)
with one line saying what happened, never a hang: every request has a time
limit.
"""

from __future__ import annotations

import http.client
import json as jsonlib
import os
import socket
import struct
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from oumi_jobs.cloud import wire
from oumi_jobs.errors import CloudTimeoutError, CloudUnreachableError, OumiJobsError

if TYPE_CHECKING:
    import ssl

# Requests that ask no cloud answer in milliseconds; a server that takes this long is stuck.
DEFAULT_TIMEOUT_S = 60.0
# Added to a cloud call's own limit: the server enforces the limit and answers 504 first.
CALL_SLACK_S = 15.0


class ServerUnavailableError(CloudUnreachableError):
    """The server could not be reached, or it dropped a request (killed, restarted) before answering.

    ``before_request``: nothing reached the server (no connection), so the request is safe to send again.
    """

    def __init__(self, message: str, *, before_request: bool = False) -> None:
        super().__init__(message)
        self.before_request = before_request


class ServerPeerError(CloudUnreachableError):
    """The process behind the server's unix socket runs as another user: nothing was sent to it (exit 5, as
    for a server that cannot be reached: the real one cannot be, through this socket)."""


def check_peer(sock: socket.socket, address: str) -> None:
    """ServerPeerError unless the process at the other end of ``sock`` runs as this user (``SO_PEERCRED``)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _ = struct.unpack("3i", creds)
    if uid != os.getuid():
        raise ServerPeerError(
            f"refusing to talk to {address}: the process answering there (pid {pid}) runs as uid {uid}, "
            f"not as you (uid {os.getuid()}); nothing was sent"
        )


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a unix socket whose peer is checked before a byte is sent."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("oumi-jobs", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.path)
            check_peer(sock, self.path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class Client:
    """A client of one server: over its unix socket, or over TCP (TLS where the address is https) with a
    bearer token.  Each request has a connection of its own (a unix socket connects in microseconds), so
    one client may be used from several threads; the standard library's http.client keeps a command's
    imports small."""

    def __init__(self, address: str, *, socket_path: str | None = None, token: str | None = None,
                 tls: ssl.SSLContext | None = None) -> None:  # fmt: skip
        self.address = address
        self._socket_path = socket_path
        self._headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        self._tls = tls

    @classmethod
    def unix(cls, socket_path: str) -> Client:
        return cls(socket_path, socket_path=socket_path)

    @classmethod
    def tcp(cls, base_url: str, token: str, *, ca_file: str | None = None) -> Client:
        """A client of ``http://host:port`` or ``https://host:port``; ``ca_file``: the certificate(s) to
        trust for https (default: the system's)."""
        tls = None
        if urlsplit(base_url).scheme == "https":
            import ssl

            tls = ssl.create_default_context(cafile=ca_file)
        return cls(base_url.rstrip("/"), token=token, tls=tls)

    def close(self) -> None:
        """Nothing is held between requests; kept so that ``with Client...`` reads as before."""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- requests ------------------------------------------------------------------
    def _connection(self, timeout_s: float) -> http.client.HTTPConnection:
        if self._socket_path is not None:
            return _UnixConnection(self._socket_path, timeout_s)
        parts = urlsplit(self.address)
        if self._tls is not None:
            return http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout_s, context=self._tls)
        return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout_s)

    def _send(self, method: str, path: str, json: Any, params: Mapping[str, Any] | None,
              timeout_s: float) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:  # fmt: skip
        """The answer's head (its body still to read) on a connection of its own; errors as ours."""
        connection = self._connection(timeout_s)
        try:
            connection.connect()
        except ServerPeerError:
            raise
        except OSError as exc:
            connection.close()
            raise ServerUnavailableError(f"cannot reach the oumi-jobs server at {self.address}: {exc}",
                                         before_request=True) from None  # fmt: skip
        query = _params(params)
        target = f"{path}?{urlencode(query, doseq=True)}" if query else path
        headers = dict(self._headers)
        body = None
        if json is not None:
            body, headers["Content-Type"] = jsonlib.dumps(json).encode(), "application/json"
        try:
            connection.request(method, target, body=body, headers=headers)
            return connection, connection.getresponse()
        except TimeoutError:
            connection.close()
            raise CloudTimeoutError(
                f"the oumi-jobs server at {self.address} did not answer within {timeout_s} s"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise _dropped(self.address, exc) from None

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """The answer's JSON document; an error answer raised as its exception."""
        limit = DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
        connection, response = self._send(method, path, json, params, limit)
        try:
            body = response.read()
        except TimeoutError:
            raise CloudTimeoutError(f"the oumi-jobs server at {self.address} did not answer within {limit} s") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _dropped(self.address, exc) from None
        finally:
            connection.close()
        return _document(response.status, body)

    def get(self, path: str, *, params: Mapping[str, Any] | None = None, timeout_s: float | None = None) -> Any:
        return self.request("GET", path, params=params, timeout_s=timeout_s)

    def post(self, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
             timeout_s: float | None = None) -> Any:  # fmt: skip
        return self.request("POST", path, json=json, params=params, timeout_s=timeout_s)

    def stream_lines(
        self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
        open_timeout_s: float | None = None,
    ) -> tuple[Iterator[str], Any]:  # fmt: skip
        """Lines of a streamed answer as they come (each with its newline), and a function that stops it.

        ``open_timeout_s`` bounds the answer's start; the lines then come as slowly as the source writes them.
        """
        connection, response = self._send(method, path, json, params, open_timeout_s or DEFAULT_TIMEOUT_S)
        if response.status >= 400:
            try:
                body = response.read()
            finally:
                connection.close()
            _document(response.status, body)
        if connection.sock is not None:
            connection.sock.settimeout(None)
        stream = _Stream(response, connection, self.address)
        return stream.lines(), stream.stop

    def adapter_call(self, method: str, kwargs: Mapping[str, Any], timeout_s: float | None,
                     *, extra_s: float = 0.0) -> Any:  # fmt: skip
        """One cloud adapter call run by the server: its result as JSON (see :mod:`oumi_jobs.cloud.wire`);
        ``extra_s`` more to wait where the server may first have to finish its warm-up."""
        limit = None if timeout_s is None else timeout_s + CALL_SLACK_S + extra_s
        answer = self.post(f"/adapter/{method}", json={"kwargs": wire.encode(dict(kwargs))}, timeout_s=limit)
        return answer["result"]

    # -- the REST API: each returns the document ``--json`` prints -----------------
    def jobs(self, *, timeout_s: float | None = None, **filters: Any) -> list[dict[str, Any]]:
        """``list``: filters ``cloud``, ``cluster``, ``state`` (a list), ``since``, ``limit``, ``local_only``,
        ``all_clouds``, ``cloud_timeout_s``."""
        if timeout_s is None and filters.get("cloud_timeout_s") is not None:
            timeout_s = float(filters["cloud_timeout_s"]) + CALL_SLACK_S  # the server answers within that limit
        result: list[dict[str, Any]] = self.get("/api/jobs", params=filters, timeout_s=timeout_s)
        return result

    def job(self, ref: str, *, cloud: str | None = None, cluster: str | None = None,
            cloud_timeout_s: float | None = None) -> dict[str, Any]:  # fmt: skip
        """``status``: by id or unique prefix, or (with ``cloud`` and ``cluster``) by the launcher's job id."""
        params = {"cloud": cloud, "cluster": cluster, "cloud_timeout_s": cloud_timeout_s}
        limit = None if cloud_timeout_s is None else cloud_timeout_s + CALL_SLACK_S
        result: dict[str, Any] = self.get(f"/api/jobs/{_segment(ref)}", params=params, timeout_s=limit)
        return result

    def submit(self, config: str, *, cwd: str | None = None, **options: Any) -> dict[str, Any]:
        """``submit``: a relative ``config`` is resolved against ``cwd`` (default: this process's directory)."""
        if cwd is None and not os.path.isabs(config):
            cwd = os.getcwd()
        result: dict[str, Any] = self.post("/api/jobs", json={"config": config, "cwd": cwd, **options})
        return result

    def cancel(self, ref: str, **options: Any) -> dict[str, Any]:
        """``cancel`` of one job: ``reason``, ``force``, ``signal``, ``timeout_s``, ``cascade``, ``wait``."""
        limit = float(options.get("timeout_s", 30.0)) + DEFAULT_TIMEOUT_S  # the server waits that long first
        result: dict[str, Any] = self.post(f"/api/jobs/{_segment(ref)}/cancel", json=options, timeout_s=limit)
        return result

    def cancellation_status(self, ref: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/api/jobs/{_segment(ref)}/cancellation-status")
        return result

    def cancellations(self, *, limit: int | None = None, offset: int | None = None, job_id: str | None = None,
                      status: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
        params = {"limit": limit, "offset": offset, "job_id": job_id, "status": status}
        result: list[dict[str, Any]] = self.get("/api/cancellations", params=params)
        return result

    def notifications(self, *, limit: int | None = None, offset: int | None = None, job_id: str | None = None,
                      status: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
        """``notifications --json``: delivery records, newest first, URLs redacted."""
        params = {"limit": limit, "offset": offset, "job_id": job_id, "status": status}
        result: list[dict[str, Any]] = self.get("/api/notifications", params=params)
        return result

    def logs(self, ref: str, *, stderr: bool = False, tail: int | None = None, follow: bool = False) -> Iterator[str]:
        """``logs``: the log's lines as they come (with ``follow``, until the job is done)."""
        params = {"stream": "stderr" if stderr else "stdout", "tail": tail, "follow": follow}
        lines, _ = self.stream_lines("GET", f"/api/jobs/{_segment(ref)}/logs", params=params)
        return lines


def _segment(ref: str) -> str:
    """A job reference as one path segment (a ``/`` or ``?`` in it must not change the route)."""
    from urllib.parse import quote

    return quote(ref, safe="")


def _params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Query parameters without the unset ones (None), booleans as the server reads them."""
    if params is None:
        return None
    return {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items() if v is not None}


def _document(status: int, body: bytes) -> Any:
    try:
        document = jsonlib.loads(body)
    except ValueError:
        document = None
    if 200 <= status < 300:
        return document
    if isinstance(document, dict) and "error" in document:
        raise wire.decode_error(
            {"type": document.get("type"), "message": document["error"], "fields": document.get("fields")}
        )
    text = body[:200].decode(errors="replace")
    raise OumiJobsError(f"the oumi-jobs server answered {status}: {text}")


class _Stream:
    """A streamed answer's lines, and how to stop it from another thread (the reader then just ends)."""

    def __init__(self, response: http.client.HTTPResponse, connection: http.client.HTTPConnection,
                 address: str) -> None:  # fmt: skip
        self.response, self.connection, self.address = response, connection, address
        self.stopped = False

    def lines(self) -> Iterator[str]:
        try:
            while line := self.response.readline():
                yield line.decode(errors="replace").rstrip("\r\n") + "\n"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if not self.stopped:
                raise _dropped(self.address, exc) from None
        finally:
            _hang_up(self.connection)

    def stop(self) -> None:
        """Wake a reader blocked in another thread, and tell the server: closing a file descriptor does
        neither, shutting the socket down does both.  The reader closes the connection as it ends: closing
        it here, under the reader, would pull its buffer away mid-read."""
        self.stopped = True
        _shut_down(self.connection)


def _shut_down(connection: http.client.HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by the server


def _hang_up(connection: http.client.HTTPConnection) -> None:
    _shut_down(connection)
    connection.close()


def _dropped(address: str, exc: BaseException) -> ServerUnavailableError:
    return ServerUnavailableError(
        f"the oumi-jobs server at {address} dropped the request before answering ({type(exc).__name__}); "
        "it may have been stopped or killed: run the command again"
    )
