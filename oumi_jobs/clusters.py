"""Clusters: which ones the clouds have, with our jobs on them; stopping and tearing one down.

``clusters`` asks the clouds at once (as ``list`` does, :mod:`oumi_jobs.cloud.survey`)
for their clusters and jobs, and tells per cluster which of our jobs run or
wait there.  ``stop`` and ``down`` act through the launcher (``launcher.stop``,
``launcher.down``), and only on a confirmed request: the command line asks
for the cluster's name to be typed back, a script passes ``--yes``.  They
refuse while our jobs run there, unless told to cancel them first (through
the cancellation service, with its records).  A cloud that does nothing for
the action (oumi's Slurm clusters) is reported as such, never as done.
"""

from __future__ import annotations

from dataclasses import dataclass

from oumi_jobs import bounds
from oumi_jobs.cancel import service
from oumi_jobs.cloud import adapter, facts, survey
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.cloud.model import CloudJob, ClusterInfo
from oumi_jobs.cloud.survey import CloudAnswers, CloudWatcher
from oumi_jobs.errors import ClusterNotFoundError, ConflictError, JobNotFoundError, OumiJobsError, UsageError
from oumi_jobs.events import log_event
from oumi_jobs.paths import Paths
from oumi_jobs.states import State, launch_state
from oumi_jobs.store.cancellations import CancellationRecord, CancellationStatus
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.timestamps import now_iso

# Tearing a SkyPilot cluster down takes minutes; a launcher silent for this long is taken for hung.
CLUSTER_ACTION_TIMEOUT_S = 900.0
ACTIONS = ("stop", "down")


@dataclass(frozen=True)
class ClusterRow:
    """One cluster as its cloud reports it now, with our jobs there."""

    cloud: str
    cluster: str
    state: str | None  # the cloud's word, where it tells
    cost_per_hour: float | None  # USD for the whole cluster, where the cloud tells
    autostop_minutes: int | None
    autodown: bool | None
    running: tuple[str, ...]  # our job ids running there
    queued: tuple[str, ...]  # ours launching or pending there
    as_of: str


@dataclass(frozen=True)
class ClusterList(CloudAnswers):
    rows: list[ClusterRow]


@dataclass(frozen=True)
class ClusterAction:
    """What ``stop`` or ``down`` did: ``acted`` False where the cloud does nothing for it."""

    cloud: str
    cluster: str
    action: str
    acted: bool
    detail: str
    cancelled_jobs: tuple[str, ...]  # ours, cancelled first (--cancel-jobs)
    as_of: str


@dataclass(frozen=True)
class CancelThenDown:
    """``cancel --down``: the job's cancellation, and the down of its cluster or why it was left up."""

    cancellation: CancellationRecord
    down: ClusterAction | None
    left_up: str | None  # why the cluster was not torn down, or None


def list_clusters(
    paths: Paths,
    *,
    cloud: str | None = None,
    all_clouds: bool = False,
    cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S,
    watcher: CloudWatcher | None = None,
) -> ClusterList:
    """The clusters of every cloud with jobs here (or ``cloud``; every enabled cloud with ``all_clouds``)."""
    cloud_timeout_s = bounds.check_cloud_timeout(cloud_timeout_s)
    if all_clouds and cloud is not None:
        raise UsageError("--all-clouds asks every cloud: it does not go with --cloud")
    if cloud == facts.LOCAL_CLOUD:
        raise UsageError("local jobs run in oumi-jobs' own queues, not on a cloud's clusters: see `list`")
    with Registry.open(paths) as registry:
        records = [r for r in registry.jobs(cloud=cloud, with_argv=False) if not r.is_local]
    names = {r.cloud for r in records}
    if cloud is not None or all_clouds:
        known = survey.registered_clouds(timeout_s=cloud_timeout_s)
        if cloud is not None:
            survey.check_known(cloud, known)
        names |= {cloud} if cloud is not None else set(facts.listable(known))
    answers = survey.list_clouds(sorted(names), timeout_s=cloud_timeout_s, watcher=watcher, with_clusters=True)
    as_of = now_iso()
    rows = [
        _row(info, answer.jobs, records, as_of)
        for answer in answers.values()
        for info in sorted(answer.clusters, key=lambda c: c.name)
    ]
    return ClusterList(clouds=answers, rows=sorted(rows, key=lambda r: (r.cloud, r.cluster)))


def _row(info: ClusterInfo, jobs: list[CloudJob], records: list[JobRecord], as_of: str) -> ClusterRow:
    there = [j for j in jobs if j.cluster == info.name]
    live = {j.launcher_job_id: j for j in there}
    running, queued = [], []
    for record in records:
        if record.cloud != info.cloud or record.cluster != info.name or record.has_exit_record:
            continue
        state = _live_state(record, live)
        if state is State.RUNNING or state is State.CANCELLING:
            running.append(record.job_id)
        elif state in (State.PENDING, State.LAUNCHING):
            queued.append(record.job_id)
    # oumi's JobStatus carries the price of the whole cluster: any of its jobs tells it where the cluster does not.
    price = info.cost_per_hour
    if price is None:
        price = next((j.cost_per_hour for j in there if j.cost_per_hour is not None), None)
    return ClusterRow(
        info.cloud, info.name, info.state, price, info.autostop_minutes, info.autodown,
        tuple(running), tuple(queued), as_of,
    )  # fmt: skip


def _live_state(record: JobRecord, live: dict[str, CloudJob]) -> State | None:
    """Our job's state from its cloud's answer (None: the cloud did not report it)."""
    if not record.launcher_job_id:
        return launch_state(record)[0]
    job = live.get(record.launcher_job_id)
    return job.state if job is not None else None


def jobs_running_on(
    paths: Paths, cloud: str, cluster: str, *, cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S
) -> list[str]:
    """Our jobs not done on ``cluster``, as its cloud reports them now (launching ones too).

    A cloud that cannot be read raises CloudUnreachableError: nothing is acted on unverified.
    """
    with Registry.open(paths) as registry:
        records = [r for r in registry.jobs(cloud=cloud, cluster=cluster, with_argv=False) if not r.has_exit_record]
    if not records:
        return []
    clouds = adapter.current()
    clouds.prepare()
    live = {j.launcher_job_id: j for j in clouds.list_jobs(cloud, timeout_s=cloud_timeout_s) if j.cluster == cluster}
    busy = []
    for record in records:
        state = _live_state(record, live)
        if state is None and record.launcher_job_id:
            # Not listed (Slurm's accounting lists a new job seconds late): asked for by its id, so that a job
            # just launched is never taken for gone before its cluster is stopped.
            try:
                job = clouds.get_job(cloud, cluster, record.launcher_job_id, timeout_s=cloud_timeout_s)
            except ClusterNotFoundError:  # no cluster: nothing of ours runs on it
                job = None
            state = job.state if job is not None else None
        if state is not None and not state.done:
            busy.append(record.job_id)
    return busy


def act_on_cluster(
    paths: Paths,
    action: str,
    cloud: str,
    cluster: str,
    *,
    confirmed: bool,
    cancel_jobs: bool = False,
    cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S,
    ignoring: tuple[str, ...] = (),
) -> ClusterAction:
    """``stop`` or ``down`` a cluster: confirmed, and only with none of our jobs left running there.

    Unconfirmed: UsageError (the command line asks first, or is given ``--yes``).
    Our jobs running there: ConflictError naming them, unless ``cancel_jobs``,
    which cancels them first (a cancellation that does not complete leaves the
    cluster as it was).  A cloud that does nothing for the action says so in
    ``acted`` and ``detail``.
    """
    if action not in ACTIONS:
        raise UsageError(f"unknown cluster action {action!r}")
    cloud_timeout_s = bounds.check_cloud_timeout(cloud_timeout_s)
    if cloud == facts.LOCAL_CLOUD:
        raise UsageError("local clusters are oumi-jobs' own queues: there is nothing to stop or tear down")
    if not cluster.strip():
        raise UsageError("an empty cluster name names no cluster")
    if not confirmed:
        raise UsageError(f"{action} of cluster {cluster} must be confirmed: pass --yes")
    busy = [j for j in jobs_running_on(paths, cloud, cluster, cloud_timeout_s=cloud_timeout_s) if j not in ignoring]
    cancelled: tuple[str, ...] = ()
    if busy and not cancel_jobs:
        raise ConflictError(
            f"oumi-jobs jobs still run on {cluster}: {', '.join(busy)}; cancel them first, or pass --cancel-jobs"
        )
    if busy:
        cancelled = _cancel_first(paths, action, cluster, busy, cloud_timeout_s)
    try:
        outcome = getattr(adapter.current(), action)(cloud, cluster, timeout_s=CLUSTER_ACTION_TIMEOUT_S)
    except ClusterNotFoundError:
        raise JobNotFoundError(f"{cloud} has no cluster {cluster!r}") from None
    result = ClusterAction(cloud, cluster, action, outcome.acted, outcome.detail, cancelled, now_iso())
    log_event(paths, f"cluster_{action}", cloud=cloud, cluster=cluster, acted=outcome.acted,
              detail=outcome.detail, cancelled_jobs=list(cancelled))  # fmt: skip
    return result


def _cancel_first(paths: Paths, action: str, cluster: str, job_ids: list[str], timeout_s: float) -> tuple[str, ...]:
    options = service.CancelOptions(reason=f"{action} of cluster {cluster}", cloud_timeout_s=timeout_s)
    outcomes = service.cancel_jobs(paths, job_ids, options)
    ended = (CancellationStatus.COMPLETED, CancellationStatus.NOT_NEEDED)
    failed = [o.job_ref for o in outcomes if o.record is None or o.record.status not in ended]
    if failed:
        raise OumiJobsError(
            f"could not cancel {', '.join(failed)} (see `oumi-jobs cancel-status`); {cluster} was left as it was"
        )
    return tuple(o.job_ref for o in outcomes)


def cancel_then_down(paths: Paths, ref: str, options: service.CancelOptions | None = None) -> CancelThenDown:
    """Cancel one cloud job, then tear its cluster down if no other job of ours runs there."""
    with Registry.open(paths) as registry:
        record = registry.resolve(ref)
    if record.is_local or not record.cluster:
        where = "a local job" if record.is_local else "a job with no cluster yet"
        raise UsageError(f"cancel --down tears down a cloud job's cluster; {record.job_id} is {where}")
    options = options or service.CancelOptions()
    cancellation = service.cancel_job(paths, ref, options)
    if cancellation.status not in (CancellationStatus.COMPLETED, CancellationStatus.NOT_NEEDED):
        return CancelThenDown(cancellation, None, f"the cancellation is {cancellation.status.value}: left up")
    others = [
        j
        for j in jobs_running_on(paths, record.cloud, record.cluster, cloud_timeout_s=options.cloud_timeout_s)
        if j != record.job_id
    ]
    if others:
        return CancelThenDown(cancellation, None, f"other oumi-jobs jobs run there: {', '.join(others)}")
    down = act_on_cluster(
        paths, "down", record.cloud, record.cluster, confirmed=True, cloud_timeout_s=options.cloud_timeout_s,
        ignoring=(record.job_id,),
    )  # fmt: skip
    return CancelThenDown(cancellation, down, None)
