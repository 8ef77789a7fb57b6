"""The user's notification defaults: ``[notify]`` of ``config.toml`` in the user config folder.

::

    [notify]
    urls = ["https://example.org/hook", "ntfys://my-topic"]   # added to every job's --notify
    events = ["succeeded", "failed", "lost"]                   # default: every event but `started`
    secret = "..."                # signs plain http(s) POSTs; OUMI_JOBS_WEBHOOK_SECRET wins over it
    backoff = [1, 2, 4, 8, 16, 30]  # seconds between tries; OUMI_JOBS_NOTIFY_BACKOFF="0.1,0.1" wins over it

A file that is missing is no defaults; one that cannot be read or parsed is a
:class:`UsageError` naming it (the sender and the emitters report it and go on).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from oumi_jobs.errors import UsageError
from oumi_jobs.paths import Paths

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, before the standard library had it
    import tomli as tomllib

EVENTS = ("started", "succeeded", "failed", "cancelled", "lost", "retrying", "guard", "sweep_done")
DEFAULT_EVENTS = tuple(event for event in EVENTS if event != "started")
# About a minute of tries in all, each gap longer than the one before.
DEFAULT_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
SECRET_ENV = "OUMI_JOBS_WEBHOOK_SECRET"
BACKOFF_ENV = "OUMI_JOBS_NOTIFY_BACKOFF"


@dataclass(frozen=True)
class NotifyConfig:
    urls: tuple[str, ...] = ()
    events: tuple[str, ...] = DEFAULT_EVENTS
    secret: str | None = None
    backoff_s: tuple[float, ...] = DEFAULT_BACKOFF_S


def load_config(paths: Paths, environ: Mapping[str, str] | None = None) -> NotifyConfig:
    """The ``[notify]`` defaults of the user's config file, with the environment's overrides."""
    env = os.environ if environ is None else environ
    table = _notify_table(paths)
    secret = env.get(SECRET_ENV) or _text(table, "secret")
    backoff = _backoff(env[BACKOFF_ENV], BACKOFF_ENV) if env.get(BACKOFF_ENV) else None
    if backoff is None and "backoff" in table:
        backoff = _backoff(table["backoff"], "[notify] backoff")
    return NotifyConfig(
        urls=_texts(table, "urls"),
        events=_events(table) if "events" in table else DEFAULT_EVENTS,
        secret=secret or None,
        backoff_s=DEFAULT_BACKOFF_S if backoff is None else backoff,
    )


def _notify_table(paths: Paths) -> dict[str, Any]:
    file = paths.config_file
    if file is None:
        return {}
    try:
        with open(file, "rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {file}: {exc}") from None
    table = document.get("notify", {})
    if not isinstance(table, dict):
        raise UsageError(f"{file}: [notify] must be a table")
    return table


def _text(table: dict[str, Any], key: str) -> str | None:
    value = table.get(key)
    if value is not None and not isinstance(value, str):
        raise UsageError(f"config.toml: [notify] {key} must be a string")
    return value


def _texts(table: dict[str, Any], key: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise UsageError(f"config.toml: [notify] {key} must be a list of strings")
    return tuple(item.strip() for item in value if item.strip())


def _events(table: dict[str, Any]) -> tuple[str, ...]:
    events = _texts(table, "events")
    unknown = [event for event in events if event not in EVENTS]
    if unknown:
        raise UsageError(f"config.toml: [notify] events: unknown event {unknown[0]!r}; one of: {', '.join(EVENTS)}")
    return events


def _backoff(value: object, where: str) -> tuple[float, ...]:
    items = value.split(",") if isinstance(value, str) else value
    try:
        if not isinstance(items, list):
            raise TypeError(where)
        gaps = tuple(float(item) for item in items)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: a list of seconds, e.g. 1,2,4") from None
    if any(not gap >= 0 for gap in gaps):
        raise UsageError(f"{where}: seconds must not be negative")
    return gaps
