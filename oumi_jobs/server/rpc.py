"""The cloud adapter, served: ``POST /adapter/{method}`` runs that method of the server's own adapter.

This is what makes cloud commands warm: the server keeps ``oumi.launcher``
imported, and a command's forwarding adapter
(:class:`oumi_jobs.server.forwarding.ForwardingAdapter`) sends each call
here.  Any public method of :class:`~oumi_jobs.cloud.adapter.CloudAdapter` is
served, its arguments and result carried by :mod:`oumi_jobs.cloud.wire`
and checked against the Protocol's annotations; ``log_stream`` answers with
the log's lines as they come.  Internal: the REST API is the public one.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Iterator
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import StreamingResponse

from oumi_jobs.cloud import adapter, wire
from oumi_jobs.cloud.adapter import CloudAdapter
from oumi_jobs.cloud.model import LogLines
from oumi_jobs.errors import UsageError
from oumi_jobs.server.activity import Activity

STREAMED = "log_stream"


@cache
def served_methods() -> frozenset[str]:
    """The adapter's methods this endpoint runs: every public one the Protocol declares."""
    return frozenset(
        name for name, member in vars(CloudAdapter).items() if not name.startswith("_") and inspect.isfunction(member)
    )


def call(method: str, kwargs: dict[str, Any]) -> Any:
    """Run ``method`` of this process's adapter with ``kwargs`` decoded to its declared types."""
    if method not in served_methods():
        raise UsageError(f"the cloud adapter has no method {method!r}")
    declared = getattr(CloudAdapter, method)
    hints = typing.get_type_hints(declared)
    try:
        inspect.signature(declared).bind(None, **kwargs)
    except TypeError as exc:
        raise UsageError(f"{method}: {exc}") from None
    arguments = {name: wire.decode(hints.get(name, Any), value) for name, value in kwargs.items()}
    return getattr(adapter.current(), method)(**arguments)


def router(activity: Activity) -> APIRouter:
    routes = APIRouter(prefix="/adapter", tags=["internal: cloud adapter"], include_in_schema=False)

    @routes.post("/{method}")
    def run(method: str, kwargs: Annotated[dict[str, Any] | None, Body(embed=True)] = None) -> Any:
        kwargs = kwargs or {}
        if isinstance(kwargs.get("cloud"), str):
            activity.asked(kwargs["cloud"])
        if method == STREAMED:
            lines: LogLines = call(method, kwargs)  # opened (or refused) before the answer starts
            return StreamingResponse(_lines(lines), media_type="text/plain; charset=utf-8")
        return {"result": wire.encode(call(method, kwargs))}

    return routes


def _lines(lines: LogLines) -> Iterator[bytes]:
    with lines:
        for line in lines:
            yield line.encode()
