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

import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from oumi_jobs.cloud import wire
from oumi_jobs.errors import CloudTimeoutError, CloudUnreachableError, OumiJobsError

if TYPE_CHECKING:
    import httpx

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


class Client:
    """One connection pool to one server: over its unix socket, or over TCP with a bearer token."""

    def __init__(self, http: httpx.Client, address: str) -> None:
        self._http = http
        self.address = address

    @classmethod
    def unix(cls, socket_path: str) -> Client:
        import httpx

        transport = httpx.HTTPTransport(uds=socket_path)
        return cls(httpx.Client(transport=transport, base_url="http://oumi-jobs", timeout=DEFAULT_TIMEOUT_S),
                   socket_path)  # fmt: skip

    @classmethod
    def tcp(cls, base_url: str, token: str) -> Client:
        import httpx

        headers = {"Authorization": f"Bearer {token}"}
        return cls(httpx.Client(base_url=base_url, headers=headers, timeout=DEFAULT_TIMEOUT_S), base_url)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- requests ------------------------------------------------------------------
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
        import httpx

        # httpx reads timeout=None as "no limit": unset means the client's default limit.
        limit = DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
        try:
            response = self._http.request(method, path, json=json, params=_params(params), timeout=limit)
        except httpx.TimeoutException:
            raise CloudTimeoutError(f"the oumi-jobs server at {self.address} did not answer within {limit} s") from None
        except httpx.TransportError as exc:
            raise _unavailable(self.address, exc) from None
        return _document(response)

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
        import httpx

        timeout = httpx.Timeout(open_timeout_s or DEFAULT_TIMEOUT_S, read=None)
        request = self._http.build_request(method, path, json=json, params=_params(params), timeout=timeout)
        try:
            response = self._http.send(request, stream=True)
        except httpx.TimeoutException:
            raise CloudTimeoutError(
                f"the oumi-jobs server at {self.address} did not answer within {open_timeout_s} s"
            ) from None
        except httpx.TransportError as exc:
            raise _unavailable(self.address, exc) from None
        if response.is_error:
            response.read()
            response.close()
            _document(response)
        return _lines(response, self.address), response.close

    def adapter_call(self, method: str, kwargs: Mapping[str, Any], timeout_s: float | None) -> Any:
        """One cloud adapter call run by the server: its result as JSON (see :mod:`oumi_jobs.cloud.wire`)."""
        limit = None if timeout_s is None else timeout_s + CALL_SLACK_S
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


def _document(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success:
        return body
    if isinstance(body, dict) and "error" in body:
        raise wire.decode_error({"type": body.get("type"), "message": body["error"], "fields": body.get("fields")})
    raise OumiJobsError(f"the oumi-jobs server answered {response.status_code}: {response.text[:200]}")


def _lines(response: httpx.Response, address: str) -> Iterator[str]:
    import httpx

    try:
        for line in response.iter_lines():
            yield line + "\n"
    except httpx.TransportError as exc:
        raise _unavailable(address, exc) from None
    finally:
        response.close()


def _unavailable(address: str, exc: Exception) -> ServerUnavailableError:
    import httpx

    if isinstance(exc, httpx.ConnectError):
        return ServerUnavailableError(f"cannot reach the oumi-jobs server at {address}: {exc}", before_request=True)
    return ServerUnavailableError(
        f"the oumi-jobs server at {address} dropped the request before answering ({type(exc).__name__}); "
        "it may have been stopped or killed: run the command again"
    )
