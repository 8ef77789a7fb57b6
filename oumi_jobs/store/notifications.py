"""Notification records: one per (job, attempt, event, URL), sent once and kept.

A row is inserted by whoever first sees the event (INSERT OR IGNORE: a
second process that sees the same event adds nothing) and is then *claimed*
by one sending process, as cancellations are claimed: the claim names the
owner by pid, start time and boot id, so a row whose sender died (killed, a
reboot) is taken over by the next one, and a row whose sender lives is never
sent twice.  ``job_id`` is a sweep's id for ``sweep_done``: no foreign key.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from oumi_jobs.errors import UsageError
from oumi_jobs.local.procs import is_alive
from oumi_jobs.store.db import Database

STATUSES = ("pending", "sent", "failed")
_COLUMNS = (
    "notification_id, job_id, attempt, event, url, shown_url, status, attempts, last_error, sent_at, created_at, "
    "next_try_at, document"
)


@dataclass(frozen=True)
class NotificationRecord:
    notification_id: int
    job_id: str
    attempt: int
    event: str
    url: str  # as given: only the sender reads it; everything shown uses shown_url
    shown_url: str  # the URL with its credentials redacted
    status: str
    attempts: int
    last_error: str | None
    sent_at: str | None
    created_at: str
    next_try_at: str
    document: dict[str, Any]  # what the sender needs to build the message: the event's time, detail, view


@dataclass(frozen=True)
class NewNotification:
    url: str
    shown_url: str


def _record(row: sqlite3.Row) -> NotificationRecord:
    return NotificationRecord(
        notification_id=row["notification_id"], job_id=row["job_id"], attempt=row["attempt"], event=row["event"],
        url=row["url"], shown_url=row["shown_url"], status=row["status"], attempts=row["attempts"],
        last_error=row["last_error"], sent_at=row["sent_at"], created_at=row["created_at"],
        next_try_at=row["next_try_at"], document=json.loads(row["document"]),
    )  # fmt: skip


class NotificationStore(Database):
    """Operations on notification records; :class:`oumi_jobs.store.registry.Registry` has them all."""

    def add_notifications(
        self, job_id: str, attempt: int, event: str, urls: Sequence[NewNotification], at: str, document: dict[str, Any]
    ) -> int:
        """Insert one pending row per URL not notified yet of this (job, attempt, event); how many were new."""
        text = json.dumps(document, separators=(",", ":"), default=str)
        with self._transaction() as db:
            cursor = db.executemany(
                "INSERT OR IGNORE INTO notifications (job_id, attempt, event, url, shown_url, created_at, "
                "next_try_at, document) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(job_id, attempt, event, new.url, new.shown_url, at, at, text) for new in urls],
            )
            return max(cursor.rowcount, 0)

    def has_unclaimed_notifications(self, job_id: str) -> bool:
        """Whether a pending row of the job has no live sender (never claimed, or its sender died)."""
        rows = self._execute(
            "SELECT owner_pid, owner_start_time, owner_boot_id FROM notifications "
            "WHERE job_id = ? AND status = 'pending'",
            (job_id,),
        ).fetchall()
        return any(not is_alive(row[0], row[1], row[2]) for row in rows)

    def claim_notifications(self, job_id: str, owner: tuple[int, float | None, str]) -> list[NotificationRecord]:
        """Make ``owner`` the sender of the job's pending rows that have no live sender; the rows it now owns."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT notification_id, owner_pid, owner_start_time, owner_boot_id FROM notifications "
                "WHERE job_id = ? AND status = 'pending'",
                (job_id,),
            ).fetchall()
            free = [row[0] for row in rows if tuple(row[1:]) == owner or not is_alive(row[1], row[2], row[3])]
            db.executemany(
                "UPDATE notifications SET owner_pid = ?, owner_start_time = ?, owner_boot_id = ? "
                "WHERE notification_id = ?",
                [(*owner, notification_id) for notification_id in free],
            )
            found = db.execute(
                f"SELECT {_COLUMNS} FROM notifications WHERE job_id = ? AND status = 'pending' "
                "AND owner_pid = ? AND owner_start_time IS ? AND owner_boot_id = ? ORDER BY notification_id",
                (job_id, *owner),
            ).fetchall()
        return [_record(row) for row in found]

    def record_try(
        self,
        notification_id: int,
        *,
        status: str,
        last_error: str | None,
        sent_at: str | None,
        next_try_at: str,
        shown_url: str | None = None,
    ) -> None:
        """One delivery tried: its outcome (``pending`` while tries are left), the error, when to try next."""
        self._execute(
            "UPDATE notifications SET status = ?, attempts = attempts + 1, last_error = ?, sent_at = ?, "
            "next_try_at = ?, shown_url = COALESCE(?, shown_url) WHERE notification_id = ?",
            (status, last_error, sent_at, next_try_at, shown_url, notification_id),
        )

    def notifications(
        self, *, job_id: str | None = None, status: str | None = None, limit: int = 20, offset: int = 0
    ) -> list[NotificationRecord]:
        """Records newest first, of one job or status if given."""
        if limit < 0 or offset < 0:
            raise UsageError("--limit and --offset must not be negative")
        if status is not None and status not in STATUSES:
            raise UsageError(f"unknown notification status {status!r}; statuses: {', '.join(STATUSES)}")
        rows = self._execute(
            f"SELECT {_COLUMNS} FROM notifications WHERE (? IS NULL OR job_id = ?) AND (? IS NULL OR status = ?) "
            "ORDER BY created_at DESC, notification_id DESC LIMIT ? OFFSET ?",
            (job_id, job_id, status, status, limit, offset),
        ).fetchall()
        return [_record(row) for row in rows]

    def sweep_ends(self, sweep_id: str) -> tuple[int, int, int]:
        """``(children, ended, succeeded)`` of a sweep: how many have an exit record, how many exited 0 uncancelled."""
        row = self._execute(
            "SELECT COUNT(*), COUNT(end_time), "
            "COALESCE(SUM(exit_code = 0 AND end_time IS NOT NULL AND cancel_requested = 0), 0) "
            "FROM jobs WHERE sweep_id = ?",
            (sweep_id,),
        ).fetchone()
        return int(row[0]), int(row[1]), int(row[2])
