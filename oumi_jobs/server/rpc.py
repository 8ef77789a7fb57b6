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

import asyncio
import inspect
import threading
import typing
from collections.abc import AsyncIterator
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from oumi_jobs import bounds
from oumi_jobs.cloud import adapter, wire
from oumi_jobs.cloud.adapter import CloudAdapter
from oumi_jobs.cloud.model import LogLines
from oumi_jobs.errors import UsageError
from oumi_jobs.server.activity import Activity
from oumi_jobs.server.http_errors import usage_body

STREAMED = "log_stream"
# The launcher's import takes ~12 s; a call that came before it ends waits at most this long for it.
WARM_UP_WAIT_S = 300.0


@cache
def served_methods() -> frozenset[str]:
    """The adapter's methods this endpoint runs: every public one the Protocol declares."""
    return frozenset(
        name for name, member in vars(CloudAdapter).items() if not name.startswith("_") and inspect.isfunction(member)
    )


class ArgumentError(UsageError):
    """An argument the method does not take, or of a type it does not declare: the caller's mistake (422)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def arguments(method: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` decoded to the types ``method`` declares; ArgumentError naming the field that does not fit,
    and for a ``timeout_s`` out of bounds: a cloud call may not hold a worker thread for longer."""
    if method not in served_methods():
        raise UsageError(f"the cloud adapter has no method {method!r}")
    declared = getattr(CloudAdapter, method)
    hints = typing.get_type_hints(declared)
    try:
        inspect.signature(declared).bind(None, **kwargs)
    except TypeError as exc:
        raise ArgumentError(f"{method}: {exc}") from None
    decoded = {}
    for name, value in kwargs.items():
        try:
            decoded[name] = wire.decode(hints.get(name, Any), value)
        except (wire.WireError, TypeError) as exc:
            raise ArgumentError(f"{method}: {name}: {exc}", name) from None
    limit = decoded.get("timeout_s")
    if limit is not None and not 0 <= limit <= bounds.MAX_SECONDS:
        raise ArgumentError(f"{method}: timeout_s: must be between 0 and {bounds.MAX_SECONDS:g}", "timeout_s")
    return decoded


def call(method: str, kwargs: dict[str, Any]) -> Any:
    """Run ``method`` of this process's adapter with ``kwargs`` decoded to its declared types."""
    return getattr(adapter.current(), method)(**arguments(method, kwargs))


def router(activity: Activity, warm: threading.Event) -> APIRouter:
    routes = APIRouter(prefix="/adapter", tags=["internal: cloud adapter"], include_in_schema=False)

    @routes.post("/{method}")
    async def run(
        request: Request, method: str, kwargs: Annotated[dict[str, Any] | None, Body(embed=True)] = None
    ) -> Any:
        kwargs = kwargs or {}
        try:
            decoded = arguments(method, kwargs)
        except ArgumentError as exc:
            problem = f"{exc.field}: {exc}" if exc.field else str(exc)
            return JSONResponse(usage_body(str(exc), detail=[problem]), status_code=422)
        if isinstance(kwargs.get("cloud"), str):
            activity.asked(kwargs["cloud"])
        # A command sends its first call without waiting for the launcher's import (one round trip): the
        # call waits for it here, outside its own time limit, as `prepare` would have.
        await run_in_threadpool(warm.wait, WARM_UP_WAIT_S)
        # The adapter blocks (SSH, an API server): in the thread pool, as a plain `def` endpoint would run.
        answer = await run_in_threadpool(lambda: getattr(adapter.current(), method)(**decoded))
        if method == STREAMED:  # opened (or refused, as an error answer) before the answer starts
            return StreamingResponse(until_disconnected(request, answer), media_type="text/plain; charset=utf-8")
        return {"result": wire.encode(answer)}

    return routes


# A followed log may stay silent for hours: this often, a stream with nothing to send looks for its client.
DISCONNECT_POLL_S = 1.0


async def until_disconnected(request: Request, lines: LogLines) -> AsyncIterator[bytes]:
    """The log's lines as they come, until it ends or the client goes away; then the stream is closed.

    A thread reads the (blocking) stream; the answer itself never waits on it
    for longer than DISCONNECT_POLL_S, so a client that went away is noticed
    even while the job writes nothing (uvicorn tells a streamed answer of a
    disconnect only when it next sends), and the request, the thread and the
    cluster's stream end with it.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def drain() -> None:
        try:
            for line in lines:
                loop.call_soon_threadsafe(queue.put_nowait, line)
        except Exception:  # a stream that broke (or was closed under it) ends here
            pass
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=drain, name="oumi-jobs log stream", daemon=True).start()
    try:
        while True:
            try:
                line = await asyncio.wait_for(queue.get(), DISCONNECT_POLL_S)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    return
                continue
            if line is None:
                return
            yield line.encode()
    finally:
        lines.close()
