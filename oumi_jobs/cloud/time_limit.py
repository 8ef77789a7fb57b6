"""Every call into a cloud under a time limit: a daemon thread, abandoned when the cloud hangs.

A cloud that hangs makes its jobs ``unknown`` with the reason, never the
command hang (the thread is abandoned; being a daemon it never delays the exit).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from oumi_jobs.errors import CloudCallError, CloudTimeoutError, CloudUnreachableError

T = TypeVar("T")


def with_time_limit(call: Callable[[], T], timeout_s: float, what: str) -> T:
    """Run ``call`` in a daemon thread; CloudUnreachableError if it outlasts ``timeout_s``, CloudCallError if it
    raises (with the error's type name and message)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # reported to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"oumi-jobs {what}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise CloudTimeoutError(f"{what} did not answer within {timeout_s:g} s")
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, CloudUnreachableError):
            raise error
        raise CloudCallError(
            f"{what} failed: {type(error).__name__}: {error}", error_type=type(error).__name__, error_message=str(error)
        ) from error
    value: T = outcome["value"]
    return value
