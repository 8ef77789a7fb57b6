"""What a cloud job costs: the launcher's price of its cluster times the time it ran, an estimate.

The price is the one ``launcher.up`` gave when the job was launched (USD per
hour of the whole cluster, every node); the time is from the launch being
recorded to the job's end as its cloud reports it (or now, for a job not
done).  Provisioning before the job, idle time after it and a cluster shared
by several jobs are not counted apart, so ``cost_so_far`` is an estimate; it
is None where the launcher gave no price or the end is unknown.

The lean listing (``store/listing.py``) computes the same for finished local
jobs in SQL, rounded the same way (tests/test_listing.py compares them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oumi_jobs.timestamps import from_iso

if TYPE_CHECKING:  # annotations only: the store imports this module for the rule it shares
    from oumi_jobs.store.records import JobRecord

# Whole cents are what a person reads; hundredths of a cent keep sums of many short jobs honest.
COST_DECIMALS = 4


def cost_between(cost_per_hour: float | None, start: str | None, end: str | None) -> float | None:
    """``cost_per_hour`` times the hours from ``start`` to ``end`` (ISO times), rounded; None if any is unknown."""
    if cost_per_hour is None or start is None or end is None:
        return None
    seconds = round((from_iso(end) - from_iso(start)).total_seconds(), 3)  # as SQLite's julianday sees them
    return round(cost_per_hour * max(seconds, 0.0) / 3600.0, COST_DECIMALS)


def cost_so_far(record: JobRecord, *, done: bool, as_of: str, cloud_end: str | None = None) -> float | None:
    """The estimated cost of a job seen at ``as_of``: until its end when done (None if its end is unknown)."""
    end = record.end_time or cloud_end
    if end is None and not done:
        end = as_of
    return cost_between(record.cost_per_hour, record.started_at, end)
