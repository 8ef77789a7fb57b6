"""The documents of notifications: a delivery record (``notifications --json``, ``GET /api/notifications``) and
the event a webhook receives (the body of the signed POST)."""

from __future__ import annotations

from typing import Any

from oumi_jobs.render.base import SCHEMA_VERSION, job_document
from oumi_jobs.store.notifications import NotificationRecord
from oumi_jobs.views import JobView


def notification_document(record: NotificationRecord) -> dict[str, Any]:
    """A delivery record: its ``url`` with credentials redacted (the URL as given is never shown)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "notification_id": record.notification_id,
        "job_id": record.job_id,
        "attempt": record.attempt,
        "event": record.event,
        "url": record.shown_url,
        "status": record.status,
        "attempts": record.attempts,
        "last_error": record.last_error,
        "sent_at": record.sent_at,
        "created_at": record.created_at,
    }


def event_document(
    event: str, at: str, view: JobView | None, detail: dict[str, Any], attempt: int = 1
) -> dict[str, Any]:
    """What a plain http(s) receiver gets: ``schema_version``, ``event``, ``at``, ``attempt``, ``job`` (the job
    document, null for a sweep's or a test's event) and ``detail`` (the event's own facts)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "event": event,
        "at": at,
        "attempt": attempt,
        "job": None if view is None else job_document(view),
        "detail": detail,
    }


def test_document(shown_url: str) -> dict[str, Any]:
    """``notify test --json``: where the test event was delivered (the URL redacted)."""
    return {"schema_version": SCHEMA_VERSION, "url": shown_url, "status": "sent"}
