"""Importing ``oumi.launcher`` once, lazily, with oumi's and SkyPilot's logs kept off stdout.

``import oumi.launcher`` costs 10-15 s (it pulls in torch and transformers),
so it happens lazily, once per process, and only in commands that touch a
cloud.  Telemetry of Oumi and SkyPilot is off unless the user turned it on.

stdout belongs to oumi-jobs (``id=$(oumi-jobs submit -q ...)``, ``--json``),
but oumi's and SkyPilot's loggers write to stdout, and with a custom cloud
loaded through ``OUMI_EXTRA_DEPS_FILE`` oumi logs at INFO.  Their handlers are
pointed at stderr: those the import of ``oumi.launcher`` made (other
libraries' too), and any that oumi or SkyPilot makes later, before it writes
its first line (see :func:`_route_library_logs`).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterable
from typing import Any

_load_lock = threading.Lock()


_module: Any = None


# The top-level logger names whose handlers must never write to stdout: oumi's, SkyPilot's, and those of
# the libraries that the import of oumi.launcher set up.  Only these: a program using oumi_jobs as a
# library keeps its own loggers as it made them.
_routed: set[str] = {"oumi", "sky"}


_routing_lock = threading.Lock()


_routing_on = False


def before_oumi() -> None:
    """What every import of oumi is preceded by."""
    # Telemetry off unless the user said otherwise: with no internet it only costs time.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("SKYPILOT_DISABLE_USAGE_COLLECTION", "1")
    _route_library_logs()


def load() -> Any:
    """``oumi.launcher``, imported once."""
    global _module
    with _load_lock:
        if _module is None:
            before_oumi()
            known = set(logging.Logger.manager.loggerDict)
            import oumi.launcher

            made = {name.split(".", 1)[0] for name in logging.Logger.manager.loggerDict} - known
            _route_library_logs(made)
            _module = oumi.launcher
    return _module


def _route_library_logs(namespaces: Iterable[str] = ()) -> None:
    """Point the stdout handlers of the ``_routed`` loggers (plus ``namespaces``) at stderr, now and from now on.

    Now: every such logger's handlers.  From now on: a log record factory that,
    before a record of those loggers reaches a handler, re-points the handlers
    on its way (SkyPilot makes some as its modules are imported, inside a
    cloud call, and logs through them at once).
    """
    global _routing_on
    with _routing_lock:
        _routed.update(namespaces)
        for name, logger in list(logging.Logger.manager.loggerDict.items()):
            if isinstance(logger, logging.Logger) and name.split(".", 1)[0] in _routed:
                _to_stderr(logger)
        if _routing_on:
            return
        _routing_on = True
        previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if record.name.split(".", 1)[0] in _routed:
            logger: logging.Logger | None = logging.getLogger(record.name)
            while logger is not None:  # the handlers this record will reach
                _to_stderr(logger)
                logger = logger.parent if logger.propagate else None
        return record

    logging.setLogRecordFactory(factory)


def _to_stderr(logger: logging.Logger) -> None:
    stderr = sys.__stderr__ or sys.stderr
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and _is_stdout(handler.stream):
            handler.setStream(stderr)
        console = getattr(handler, "console", None)  # rich's RichHandler (oumi's on a terminal)
        if console is not None and _is_stdout(getattr(console, "file", None)):
            console.file = stderr


def _is_stdout(stream: Any) -> bool:
    if stream is None:
        return False
    if stream is sys.stdout or stream is sys.__stdout__:
        return True
    try:
        return bool(stream.fileno() == 1)
    except (AttributeError, OSError, ValueError):  # not a file (a test's capture), or closed
        return False
