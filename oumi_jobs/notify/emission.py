"""Emitting a notification: record it once, and start its delivery without waiting for it.

:func:`emit` may be called by any process that sees an event (the supervisor
of a local job, a ``status`` that first finds a cloud job ended or a local job
lost, the server's watch): it inserts one row per URL, and a second caller
for the same (job, attempt, event) inserts nothing.  Delivery runs in a
detached sender process (:mod:`oumi_jobs.notify.sender`), started only while
a row of the job has no live sender, so the caller never waits on a receiver
and a receiver that is down never fails the job.

It is cheap where nothing is to be sent: no URL in the job's policy nor in
``config.toml`` (or the event filtered out) means no write, no process and no
Apprise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from oumi_jobs.errors import OumiJobsError
from oumi_jobs.local import detach
from oumi_jobs.notify.config import EVENTS, load_config
from oumi_jobs.notify.redact import shown
from oumi_jobs.paths import Paths
from oumi_jobs.policy import JobPolicy
from oumi_jobs.store.notifications import NewNotification
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.timestamps import now_iso

log = logging.getLogger(__name__)

# The senders this process started: a supervisor leaves them out of its job's descendants.
SPAWNED: set[int] = set()


@dataclass(frozen=True)
class Seen:
    """How the emitter saw the job (its live state), for the job document the sender posts."""

    state: str
    status: str | None = None
    detail: str | None = None
    as_of: str | None = None
    external: bool = False


def emit(
    paths: Paths,
    job_id: str,
    event: str,
    *,
    attempt: int = 1,
    detail: Mapping[str, Any] | None = None,
    seen: Seen | None = None,
    registry: Registry | None = None,
    record: JobRecord | None = None,
) -> int:
    """Notify ``event`` of ``job_id`` to its URLs, once; how many notifications were new (0: none to send).

    Never raises: a notification that cannot be recorded is logged, and the job goes on.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event!r}")
    try:
        if registry is not None:
            return _emit(paths, registry, job_id, event, attempt, detail, seen, record)
        with Registry.open(paths) as opened:
            return _emit(paths, opened, job_id, event, attempt, detail, seen, record)
    except (OumiJobsError, OSError, RuntimeError, ValueError) as exc:
        log.warning("oumi-jobs: cannot notify %s of job %s: %s", event, job_id, exc)
        return 0


def _emit(
    paths: Paths,
    registry: Registry,
    job_id: str,
    event: str,
    attempt: int,
    detail: Mapping[str, Any] | None,
    seen: Seen | None,
    record: JobRecord | None,
) -> int:
    record = record if record is not None else registry.get(job_id)
    if record is None and event != "sweep_done":
        return 0  # pruned meanwhile
    urls = urls_for(paths, record, event)
    if not urls:
        return 0
    at = now_iso()
    document = {"at": at, "detail": dict(detail or {}), "seen": None if seen is None else asdict(seen)}
    new = registry.add_notifications(
        job_id, attempt, event, [NewNotification(url, shown(url)) for url in urls], at, document
    )
    if registry.has_unclaimed_notifications(job_id):
        start_sender(paths, job_id)
    return new


def urls_for(paths: Paths, record: JobRecord | None, event: str) -> tuple[str, ...]:
    """The job's own ``--notify`` URLs and config.toml's, when config.toml's events include ``event``."""
    config = load_config(paths)
    if event not in config.events:
        return ()
    own = JobPolicy.decode(record.policy).notify if record is not None else ()
    return tuple(dict.fromkeys((*own, *config.urls)))


def start_sender(paths: Paths, job_id: str) -> None:
    """A detached sender for the job's pending notifications, in a session of its own (this process's environment)."""
    SPAWNED.add(detach.spawn_detached(paths, detach.NOTIFIER, job_id, dict(os.environ)))
