"""``oumi-jobs cost``: what the cloud jobs launched here cost, summed by cloud, cluster or day.

Each job's cost is :func:`oumi_jobs.costs.cost_so_far` (the launcher's price
of its cluster times the time it ran: an estimate), read with the jobs' live
states (the clouds are asked, as ``list`` asks them: a running job counts up
to now, a finished one up to the end its cloud reports).  A job whose
launcher gave no price, or whose end is unknown, is counted in
``unpriced_jobs`` and left out of the sums; a group with no priced job sums
to None, never to a made-up 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from oumi_jobs import listing
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.cloud.survey import CloudWatcher
from oumi_jobs.costs import COST_DECIMALS
from oumi_jobs.errors import UsageError
from oumi_jobs.paths import Paths
from oumi_jobs.timestamps import now_iso
from oumi_jobs.views import JobView

GROUPINGS: dict[str, Callable[[JobView], str]] = {
    "cloud": lambda view: view.record.cloud,
    "cluster": lambda view: f"{view.record.cloud}:{view.record.cluster}",
    # The UTC day the job was launched on (a job over midnight counts to the day it started).
    "day": lambda view: (view.record.started_at or view.record.submit_time)[:10],
}


@dataclass(frozen=True)
class CostGroup:
    group: str
    jobs: int
    priced_jobs: int
    cost_so_far: float | None  # the sum over priced_jobs; None where none was priced


@dataclass(frozen=True)
class CostReport:
    since: str | None  # the ISO lower bound of submit times
    by: str
    groups: list[CostGroup]
    jobs: int
    unpriced_jobs: int
    total_cost_so_far: float | None
    unreachable: dict[str, str]  # survey.CloudAnswers.unreachable: their running jobs are not counted up to now
    as_of: str


def _summed(costs: list[float | None]) -> float | None:
    known = [c for c in costs if c is not None]
    return round(sum(known), COST_DECIMALS) if known else None


def cost_report(
    paths: Paths,
    *,
    since: str | None = "30d",
    by: str = "cloud",
    cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S,
    watcher: CloudWatcher | None = None,
) -> CostReport:
    """The estimated cost of the cloud jobs launched here since ``since`` (an age or a date), grouped ``by``."""
    if by not in GROUPINGS:
        raise UsageError(f"invalid --by {by!r}: use one of {', '.join(GROUPINGS)}")
    report = listing.list_jobs_report(
        paths, since=since, local_only=False, cloud_timeout_s=cloud_timeout_s, watcher=watcher
    )
    launched = [v for v in report.views if not v.external and not v.record.is_local and v.record.launcher_job_id]
    by_group: dict[str, list[float | None]] = {}
    for view in launched:
        by_group.setdefault(GROUPINGS[by](view), []).append(view.cost_so_far())
    groups = [
        CostGroup(key, len(costs), sum(c is not None for c in costs), _summed(costs))
        for key, costs in sorted(by_group.items())
    ]
    every = [c for costs in by_group.values() for c in costs]
    lower = listing.parse_since(since) if since else None
    return CostReport(
        lower, by, groups, len(every), sum(c is None for c in every), _summed(every), report.unreachable, now_iso()
    )
