"""Reading one job's state: its live view, its progress and its metric series; by id or by cloud identity."""

from __future__ import annotations

import dataclasses

from oumi_jobs import bounds, retrying
from oumi_jobs.cancel import takeover
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S  # light: oumi loads lazily
from oumi_jobs.errors import JobNotFoundError, UsageError
from oumi_jobs.notify import points
from oumi_jobs.paths import Paths
from oumi_jobs.progress import MetricSeries, Progress, cache
from oumi_jobs.progress.series import read_series, select_series
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.view_details import add_progress, add_queue_detail
from oumi_jobs.views import JobView, live_cloud_view, view_of


def get_status(
    paths: Paths,
    ref: str,
    *,
    cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S,
    with_progress: bool = True,
    live_progress: bool = False,
) -> JobView:
    """``status`` (and what follows a job: ``wait``, ``--watch``, ``logs -f``): three steps.  First the job's
    cancellation, if its owner died (kill -9, a reboot), is handed on, never left in progress (a write, named
    as one); then the job's state is read (:func:`read_status`), and an end only a read can see (a cloud
    job's, a local job lost) is notified."""
    bounds.check_cloud_timeout(cloud_timeout_s)
    takeover.adopt_orphans(paths, ref, cloud_timeout_s=cloud_timeout_s)
    retrying.take_over(paths, ref)  # a job whose supervisor died between two attempts: its next one starts
    view = read_status(
        paths, ref, cloud_timeout_s=cloud_timeout_s, with_progress=with_progress, live_progress=live_progress
    )
    points.seen_ended(paths, view)  # a cloud job's end, or a local job lost, is first known to a read
    return view


def read_status(
    paths: Paths,
    ref: str,
    *,
    cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S,
    with_progress: bool = True,
    live_progress: bool = False,
) -> JobView:
    """One job's live state, read and nothing written but what was read of its progress (its cache, and a
    finished job's progress kept in the registry once, for the lean listing); with its progress (a cloud
    job's from a short read of its log stream, made when what was read is over CLOUD_LOG_MAX_AGE_S old, or
    each time with ``live_progress``: ``--watch``)."""
    bounds.check_cloud_timeout(cloud_timeout_s)
    with Registry.open(paths) as registry:
        record = registry.resolve(ref)
        # Only a job with a policy can have had a guard fire: the rest cost no query.
        fired = tuple(registry.events_of(record.job_id, "guard")) if record.policy else ()
        if record.is_local:
            view = dataclasses.replace(add_queue_detail(registry, view_of(record)), fired_guards=fired)
            return add_progress(paths, view) if with_progress else view
    view = dataclasses.replace(live_cloud_view(record, timeout_s=cloud_timeout_s), fired_guards=fired)
    if not with_progress:
        return view
    age = cache.cloud_log_age(paths, record.job_id)
    fresh = not live_progress and age is not None and age < CLOUD_LOG_MAX_AGE_S
    return add_progress(paths, view, cloud_logs_s=None if fresh else CLOUD_LOG_BUDGET_S)


# A cloud job's progress comes from its log stream, which is read for this long at most (status, --watch;
# never by list, which shows what was read last).
CLOUD_LOG_BUDGET_S = 3.0
# Opening a cloud job's log stream costs a round trip to its cluster and a wait for its first lines (about
# a second): a plain `status` reads it again only when what was read is older than this, so asking again
# and again stays fast; `--watch`, `--wait` and `wait` read it at each refresh.
CLOUD_LOG_MAX_AGE_S = 30.0


def get_progress(
    paths: Paths, job: str | JobView, *, cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S
) -> Progress | None:
    """How far along a job is (None: nothing tells yet); ``job`` is a job id or prefix, or a view read before."""
    if isinstance(job, JobView):
        return (
            job.progress
            if job.progress is not None
            else add_progress(paths, job, cloud_logs_s=CLOUD_LOG_BUDGET_S).progress
        )
    return get_status(paths, job, cloud_timeout_s=cloud_timeout_s).progress


def metric_series(paths: Paths, job: str, metric: str) -> MetricSeries:
    """One metric a local job logged, over its steps; a metric it does not have is a usage error naming
    those it has (a cloud job's metrics live on its cluster)."""
    with Registry.open(paths) as registry:
        record = registry.resolve(job)
    if not record.is_local:
        raise UsageError(f"job {record.job_id} runs on {record.cloud}: its metrics files are on its cluster")
    series, source = read_series(record)
    return select_series(record.job_id, series, metric, source)


def status_by_identity(
    paths: Paths, cloud: str, cluster: str, launcher_job_id: str, *, cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S
) -> JobView:
    """A job named by its cloud identity; one launched outside oumi-jobs is marked external."""
    bounds.check_cloud_timeout(cloud_timeout_s)
    with Registry.open(paths) as registry:
        record = registry.find_by_launcher_identity(cloud, cluster, launcher_job_id)
    if record is not None:
        return live_cloud_view(record, timeout_s=cloud_timeout_s)
    external = JobRecord(
        job_id="", cloud=cloud, submit_time="", cluster=cluster, launcher_job_id=launcher_job_id, source="external"
    )
    view = live_cloud_view(external, timeout_s=cloud_timeout_s, external=True)
    if view.missing:
        raise JobNotFoundError(f"cluster {cluster} of {cloud} reports no job {launcher_job_id}")
    return view
