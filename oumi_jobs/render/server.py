"""The documents of the warm server: its health, its status, a stop, and what ``oumi-jobs server`` prints."""

from __future__ import annotations

import os
import time
from typing import Any

from oumi_jobs.dashboard.launch import LoginLink
from oumi_jobs.dashboard.sessions import LoginCode
from oumi_jobs.render.base import SCHEMA_VERSION
from oumi_jobs.server.activity import Activity, ServerSettings
from oumi_jobs.server.lifecycle import ServerRecord, StopResult
from oumi_jobs.timestamps import from_epoch


def health_document(settings: ServerSettings, warm: bool) -> dict[str, Any]:
    """``GET /healthz``: the server answers, its version, and whether oumi.launcher is imported yet."""
    return {"schema_version": SCHEMA_VERSION, "ok": True, "version": settings.version, "warm": warm}


def status_document(settings: ServerSettings, activity: Activity, warm: bool) -> dict[str, Any]:
    """``GET /server``, asked of the server itself: this process's figures."""
    return {
        "schema_version": SCHEMA_VERSION,
        "pid": os.getpid(),
        "version": settings.version,
        "address": settings.address,
        "transport": settings.transport,
        "started_at": settings.started_at,
        "uptime_s": round(time.time() - settings.started_at, 3),
        "idle_timeout_s": settings.idle_timeout_s,
        "idle_s": round(activity.idle_for(), 3),
        "warm": warm,
        "clouds_loaded": sorted(activity.clouds),
        "requests_served": activity.served,
        "requests_rejected": activity.rejections,
        "requests_in_flight": activity.in_flight - 1,  # not counting the one asking
        "memory_rss_bytes": _rss_bytes(),
    }


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def stopping_document(drain: bool) -> dict[str, Any]:
    """``POST /server/stop``: the server is on its way out (``drain``: once no request is under way)."""
    return {"schema_version": SCHEMA_VERSION, "stopping": True, "drain": drain, "pid": os.getpid()}


def started_document(record: ServerRecord) -> dict[str, Any]:
    """``server start``: the server that now runs, and where."""
    return {
        "schema_version": SCHEMA_VERSION, "running": True, "pid": record.pid, "version": record.version,
        "address": record.address, "socket": record.socket, "transport": record.transport,
        "idle_timeout_s": record.idle_timeout_s, "log": record.log,
    }  # fmt: skip


def stopped_document(result: StopResult) -> dict[str, Any]:
    """``server stop``: the pid stopped (null: none ran) and how it went."""
    return {"schema_version": SCHEMA_VERSION, "pid": result.pid, "outcome": result.how}


def running_document(status: dict[str, Any] | None) -> dict[str, Any]:
    """``server status``: the server's own status document with ``running``, or ``running`` false alone."""
    if status is None:
        return {"schema_version": SCHEMA_VERSION, "running": False}
    return {**status, "running": True}


def login_code_document(code: LoginCode) -> dict[str, Any]:
    """``POST /api/ui/login-codes``: a one-time dashboard login code and when it stops working."""
    return {
        "schema_version": SCHEMA_VERSION, "code": code.code, "expires_at": from_epoch(code.expires_at),
        "expires_in_s": round(code.expires_at - time.time(), 3),
    }  # fmt: skip


def ui_document(link: LoginLink, opened: bool) -> dict[str, Any]:
    """``ui``: the one-time login link, until when it works, the server behind it, and whether a browser was
    opened on it."""
    return {
        "schema_version": SCHEMA_VERSION, "url": link.url, "expires_at": link.expires_at,
        "expires_in_s": link.expires_in_s, "address": link.address, "pid": link.pid, "restarted": link.restarted,
        "opened": opened,
    }  # fmt: skip
