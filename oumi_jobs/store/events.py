"""A job's stored events: what happened to it that is recorded nowhere else.

A guard that fired, a retry scheduled, a resume that did not resume.  The rest
of a job's timeline (submitted, started, ended, cancellations) is already in
the registry and is read from there (:mod:`oumi_jobs.timeline`), never stored
twice.  Events go with their job when it is pruned (ON DELETE CASCADE).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from oumi_jobs.store.db import Database


@dataclass(frozen=True)
class StoredEvent:
    event_id: int
    job_id: str
    attempt: int
    at: str
    kind: str
    detail: dict[str, Any]


class EventStore(Database):
    """Operations on job events; :class:`oumi_jobs.store.registry.Registry` has them all."""

    def add_event(self, job_id: str, attempt: int, at: str, kind: str, detail: dict[str, Any]) -> int | None:
        """Append an event; its id, or None when the job is no longer in the registry (pruned meanwhile)."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO job_events (job_id, attempt, at, kind, detail) "
                "SELECT job_id, ?, ?, ?, ? FROM jobs WHERE job_id = ?",
                (attempt, at, kind, json.dumps(detail, separators=(",", ":"), default=str), job_id),
            )
            return cursor.lastrowid if cursor.rowcount else None

    def events_of(self, job_id: str, kind: str | None = None) -> list[StoredEvent]:
        """A job's stored events in the order they were recorded (of one kind, if given)."""
        rows = self._execute(
            "SELECT event_id, job_id, attempt, at, kind, detail FROM job_events "
            "WHERE job_id = ? AND (? IS NULL OR kind = ?) ORDER BY event_id",
            (job_id, kind, kind),
        )
        return [StoredEvent(row[0], row[1], row[2], row[3], row[4], json.loads(row[5])) for row in rows]
