"""A job's timeline (``events JOB``): everything that happened to it, in order.

Most of it is already in the registry and is read from there, never stored
twice: when it was submitted, when it started and ended (its exit record),
its cancellations.  What exists nowhere else (a guard that fired, a retry
scheduled, a resume that did not resume) is stored as an event with
:func:`record`, by whoever saw it happen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from oumi_jobs.notify import emission
from oumi_jobs.paths import Paths
from oumi_jobs.store.cancellations import CancellationTracker
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.timestamps import now_iso

# Keys every event document has: an event's own detail may not take them.
BASE_KEYS = frozenset({"schema_version", "event_id", "job_id", "attempt", "at", "kind"})
# The most cancellations one timeline shows (a job is cancelled once; joins and retries of it are few).
MAX_CANCELLATIONS = 100
# The most notifications one timeline shows (a few URLs times a few events per attempt).
MAX_NOTIFICATIONS = 500
# Stored events that are also notified (to the job's --notify URLs and config.toml's).
NOTIFIED_KINDS = frozenset({"retrying", "guard"})


@dataclass(frozen=True)
class Event:
    at: str
    kind: str
    attempt: int = 1
    detail: dict[str, Any] = field(default_factory=dict)
    event_id: int | None = None  # stored events only: the rest is read from the job's records


@dataclass(frozen=True)
class Timeline:
    job_id: str
    events: list[Event]


def record(registry: Registry, job_id: str, kind: str, *, attempt: int = 1, **detail: Any) -> int | None:
    """Store an event of a job (its id; None when the job is gone from the registry); a retry or a guard is
    notified too, without waiting for the delivery."""
    clashing = BASE_KEYS & detail.keys()
    if clashing:
        raise ValueError(f"an event's detail cannot name {sorted(clashing)}")
    event_id = registry.add_event(job_id, attempt, now_iso(), kind, detail)
    if event_id is not None and kind in NOTIFIED_KINDS and registry.paths is not None:
        emission.emit(registry.paths, job_id, kind, attempt=attempt, detail=detail, registry=registry)
    return event_id


def timeline(paths: Paths, ref: str) -> Timeline:
    """The timeline of the job named by ``ref`` (an id or unique prefix), oldest first."""
    with Registry.open(paths) as registry:
        job = registry.resolve(ref)
        events = [*_from_record(job), *_cancellations(registry, job.job_id), *_notifications(registry, job.job_id)]
        events += [
            Event(at=e.at, kind=e.kind, attempt=e.attempt, detail=e.detail, event_id=e.event_id)
            for e in registry.events_of(job.job_id)
        ]
    # Stable: events at the same instant keep the order they were gathered in (a start before its end).
    return Timeline(job.job_id, sorted(events, key=lambda event: event.at))


def _from_record(job: JobRecord) -> list[Event]:
    events = [Event(at=job.submit_time, kind="submitted", detail={"cloud": job.cloud, "sweep_id": job.sweep_id})]
    for kept in job.earlier_attempts:
        if kept.start_time is not None:
            events.append(Event(at=kept.start_time, kind="started", attempt=kept.attempt, detail={"pid": None}))
        if kept.end_time is not None:
            failure = json.loads(kept.failure) if kept.failure else None
            events.append(_ended(kept.end_time, kept.attempt, kept.exit_code, kept.exit_signal, failure,
                                 kept.end_detail))  # fmt: skip
    if job.started_at is not None:
        events.append(Event(at=job.started_at, kind="started", attempt=job.attempt, detail={"pid": job.pid}))
    if job.end_time is not None:
        failure = json.loads(job.failure) if job.failure else None
        events.append(_ended(job.end_time, job.attempt, job.exit_code, job.exit_signal, failure, job.end_detail))
    return events


def _ended(at: str, attempt: int, code: int | None, signum: int | None, failure: object, detail: str | None) -> Event:
    return Event(
        at=at, kind="ended", attempt=attempt,
        detail={"exit_code": code, "exit_signal": signum, "failure": failure, "detail": detail},
    )  # fmt: skip


def _cancellations(registry: Registry, job_id: str) -> list[Event]:
    return [
        Event(
            at=cancel.requested_at,
            kind="cancel",
            detail={
                "cancellation_id": cancel.cancellation_id,
                "status": cancel.status.value,
                "reason": cancel.reason,
                "caused_by": cancel.caused_by,
                "finished_at": cancel.finished_at,
                "final_state": cancel.final_state,
            },
        )
        for cancel in CancellationTracker(registry).history(job_id=job_id, limit=MAX_CANCELLATIONS)
    ]


def _notifications(registry: Registry, job_id: str) -> list[Event]:
    """Notifications sent or failed (pending ones are not yet an event), at their last try."""
    return [
        Event(
            at=note.sent_at or note.next_try_at,
            kind="notification",
            attempt=note.attempt,
            detail={
                "event": note.event,
                "url": note.shown_url,
                "status": note.status,
                "attempts": note.attempts,
                "last_error": note.last_error,
            },  # fmt: skip
        )
        for note in registry.notifications(job_id=job_id, limit=MAX_NOTIFICATIONS)
        if note.status != "pending"
    ]
