"""Errors as HTTP answers, in one place: the exit-code table's meaning as a status, and one JSON body.

Every error the server returns is ``{"error": message, "exit_code": n}``,
the same message and exit code the command line gives for it, plus ``type``
and ``fields`` so that the library's client (and the forwarding cloud
adapter) raise the very exception an in-process call would.  An ambiguous id
prefix also carries its ``candidates``.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

from starlette.routing import BaseRoute, Match, Route

from oumi_jobs.cloud.wire import encode_error
from oumi_jobs.errors import (
    AmbiguousJobError,
    CloudTimeoutError,
    CloudUnreachableError,
    ClusterNotFoundError,
    ConflictError,
    ExitCode,
    JobNotFoundError,
    OumiJobsError,
    UsageError,
)

# The most specific class first: ambiguous and not found share exit 3, and HTTP tells them apart.
_STATUS: tuple[tuple[type[OumiJobsError], int], ...] = (
    (AmbiguousJobError, 409),
    (JobNotFoundError, 404),
    (ClusterNotFoundError, 404),
    (ConflictError, 409),
    (UsageError, 400),
    (CloudTimeoutError, 504),
    (CloudUnreachableError, 503),
)
# An error of no class above: by its exit code.
_BY_EXIT = {ExitCode.USAGE: 400, ExitCode.NOT_FOUND: 404, ExitCode.CONFLICT: 409, ExitCode.CLOUD_UNREACHABLE: 503}


def http_status(exc: OumiJobsError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return _BY_EXIT.get(exc.exit_code, 500)


def error_body(exc: OumiJobsError) -> dict[str, Any]:
    wire = encode_error(exc)
    body: dict[str, Any] = {
        "error": str(exc),
        "exit_code": exc.exit_code,
        "type": wire["type"],
        "fields": wire["fields"],
    }
    if isinstance(exc, AmbiguousJobError):
        body["candidates"] = exc.candidates
    return body


def usage_body(message: str, detail: Any = None) -> dict[str, Any]:
    """A request the server refused before any service saw it (a bad field, a body too large)."""
    body: dict[str, Any] = {"error": message, "exit_code": ExitCode.USAGE, "type": "UsageError", "fields": {}}
    if detail is not None:
        body["detail"] = detail
    return body


def internal_body(exc: BaseException) -> dict[str, Any]:
    return {"error": f"internal error: {type(exc).__name__}: {exc}", "exit_code": ExitCode.FAILURE,
            "type": "OumiJobsError", "fields": {}}  # fmt: skip


def allowed_methods(routes: Iterable[BaseRoute], scope: MutableMapping[str, Any]) -> str:
    """``Allow`` of a 405: the methods of every route on the path (Starlette names only the first route's,
    and FastAPI makes one route per method)."""
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, Route) and route.methods and route.matches(scope)[0] is not Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))
