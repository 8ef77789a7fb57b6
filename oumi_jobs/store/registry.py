"""The identity registry: which job id maps to which cloud identity or process.

:class:`Registry` is the one object the rest of the package holds to read or
write the registry database; it has every store operation, each defined once
in the module named for what it works on:

* :mod:`oumi_jobs.store.db`: opening (WAL, the refusal of foreign files,
  migrations) and the database itself (``applied_migrations``, ``columns``,
  ``journal_mode``, ``integrity_check``);
* :mod:`oumi_jobs.store.jobs`: jobs, and the rules of a job's life
  (``record_exit``, ``end_before_start``, ``claim_start``, ``record_launch``:
  who writes ``end_time`` is answered there);
* :mod:`oumi_jobs.store.queues`: local clusters' queues;
* :mod:`oumi_jobs.store.listing`: the lean listing (finished local jobs as JSON, built by SQLite);
* :mod:`oumi_jobs.store.sweeps`: sweeps, their children registered at once and handed over one by one;
* :mod:`oumi_jobs.store.attempts`: a job's earlier attempts, and the step from one attempt to the next;
* :mod:`oumi_jobs.store.events`: a job's stored events (guards, retries), the part of its timeline kept nowhere else;
* :mod:`oumi_jobs.store.notifications`: notification records, each claimed by the one process that sends it;
* :mod:`oumi_jobs.store.cancellations`: cancellation records, through a
  ``CancellationTracker`` over an open registry.

No module outside ``oumi_jobs/store/`` contains SQL (tests/test_architecture.py).
"""

from __future__ import annotations

from oumi_jobs.store.attempts import AttemptStore
from oumi_jobs.store.events import EventStore
from oumi_jobs.store.jobs import JobStore
from oumi_jobs.store.listing import ListingStore
from oumi_jobs.store.migrations import MIGRATIONS
from oumi_jobs.store.notifications import NotificationStore
from oumi_jobs.store.queues import QueueStore
from oumi_jobs.store.records import JobRecord
from oumi_jobs.store.sweeps import SweepStore

__all__ = ["MIGRATIONS", "JobRecord", "Registry"]


class Registry(JobStore, QueueStore, ListingStore, SweepStore, EventStore, AttemptStore, NotificationStore):
    """An open registry.  Use :meth:`open` as a context manager: ``with Registry.open(paths) as registry:``."""
