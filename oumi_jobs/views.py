"""A job as seen right now: its identity plus its live state, read from its source.

Nothing here is stored.  A local job's state comes from its process and exit
record (:mod:`oumi_jobs.states`); a cloud job's from its cloud, through the
cloud seam, asked only by :func:`live_cloud_view` (``view_of`` is cheap and
never asks a cloud).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from oumi_jobs.cloud import adapter, facts
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.cloud.model import CloudJob
from oumi_jobs.costs import cost_so_far
from oumi_jobs.errors import CloudUnreachableError, ClusterNotFoundError, OumiJobsError
from oumi_jobs.failures import Failure, failure_on_read
from oumi_jobs.progress import Progress
from oumi_jobs.states import State, launch_state, recorded_state
from oumi_jobs.store.events import StoredEvent
from oumi_jobs.store.records import EXTERNAL
from oumi_jobs.store.registry import JobRecord
from oumi_jobs.timestamps import from_epoch, now_iso


@dataclass(frozen=True)
class JobView:
    """A job as seen right now: its identity plus its live state."""

    record: JobRecord
    state: State
    status: str | None
    detail: str | None
    as_of: str
    external: bool = False
    # The source answered and does not know the job (its cluster no longer lists it, or is gone): typed,
    # so no caller reads it from ``detail``'s words.
    missing: bool = False
    # How far along it is, read from its files or logs (oumi_jobs.progress); None: unknown or not read.
    progress: Progress | None = None
    # When the cloud says the job ended (a cloud job's end is not stored): what its cost is counted to.
    cloud_end: str | None = None
    # The guards that fired on it (its `guard` events), read by `status` for jobs with a policy only.
    fired_guards: tuple[StoredEvent, ...] = ()

    @property
    def job_id(self) -> str:
        return self.record.job_id

    @property
    def done(self) -> bool:
        return self.state.done

    @property
    def failure(self) -> Failure | None:
        """Why it failed or was lost (None for any other job): stored when it ended, or told by its source."""
        return failure_on_read(self.record, self.state, self.status, self.detail)

    def cost_so_far(self) -> float | None:
        """The job's estimated cost as seen now (see :mod:`oumi_jobs.costs`); None where it cannot be told.

        A job its cloud no longer reports has an end nobody knows: it is not counted up to now forever.
        """
        return cost_so_far(self.record, done=self.done or self.missing, as_of=self.as_of, cloud_end=self.cloud_end)


def view_of(record: JobRecord, as_of: str | None = None) -> JobView:
    """Read the live state of one registered job (``as_of``: when, if read as part of a batch)."""
    state, status, detail = recorded_state(record)
    return JobView(record, state, status, detail, as_of or now_iso(), record.source == EXTERNAL)


def live_cloud_view(
    record: JobRecord, *, timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S, external: bool = False
) -> JobView:
    """A cloud job's state, asked of its cloud, cluster and id only."""

    external = external or record.source == EXTERNAL  # adopted by `cancel` or `logs` by its cloud identity
    if not record.launcher_job_id:
        state, status, detail = launch_state(record)
        return JobView(record, state, status, detail, now_iso(), external)
    if not record.cluster:
        return JobView(record, State.UNKNOWN, None, "no cluster recorded", now_iso(), external)
    clouds = adapter.current()
    try:
        clouds.prepare()  # the launcher's import (10-15 s, once) is not the cloud's answer: outside the time limit
        job = clouds.get_job(record.cloud, record.cluster, record.launcher_job_id, timeout_s=timeout_s)
    except ClusterNotFoundError as exc:
        if not facts.missing_cluster_is_gone(record.cloud):
            return JobView(record, State.UNKNOWN, None, str(exc), now_iso(), external)
        # The cloud answered that the cluster is no more: the job ended with it, and nothing can tell how.
        detail = f"cluster {record.cluster} of {record.cloud} no longer exists; the job ended with it"
        return JobView(record, State.LOST, "cluster gone", detail, now_iso(), external, missing=True)
    except CloudUnreachableError as exc:
        return JobView(record, State.UNKNOWN, None, str(exc), now_iso(), external)
    if job is None:
        detail = f"cluster {record.cluster} no longer reports job {record.launcher_job_id}"
        return JobView(record, State.UNKNOWN, None, detail, now_iso(), external, missing=True)
    return JobView(record, cloud_state(record, job), job.status, None, now_iso(), external, cloud_end=_ended(job))


def cloud_state(record: JobRecord, job: CloudJob) -> State:
    """The state of a cloud job as its cloud reports it, except that one its guard stopped reads ``failed``
    (its cloud only knows it was cancelled; the guard's failure is kept on the job: ``keep_guard_failure``)."""
    if job.state is State.CANCELLED and record.failure and not record.is_local:
        return State.FAILED
    return job.state


def live_cloud_views(records: Sequence[JobRecord], *, timeout_s: float) -> dict[str, JobView]:
    """Each of ``records`` asked of its cloud alone (:func:`live_cloud_view`), all at once, all within
    ``timeout_s``: the views that came back in time, by job id (a cloud that raised leaves its job out)."""
    found: dict[str, JobView] = {}
    lock = threading.Lock()

    def ask(record: JobRecord) -> None:
        try:
            view = live_cloud_view(record, timeout_s=timeout_s)
        except OumiJobsError:
            return
        with lock:
            found[record.job_id] = view

    threads = [threading.Thread(target=ask, args=(r,), daemon=True, name="oumi-jobs ask alone") for r in records]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    with lock:
        return dict(found)


def _ended(job: CloudJob) -> str | None:
    return from_epoch(job.end_time) if job.end_time and job.done else None


def cloud_job_view(record: JobRecord, job: CloudJob | None, error: str | None, as_of: str) -> JobView:
    external = record.source == EXTERNAL
    if job is not None:
        return JobView(record, cloud_state(record, job), job.status, None, as_of, external, cloud_end=_ended(job))
    if error is not None:
        return JobView(record, State.UNKNOWN, None, error, as_of, external)
    if not record.launcher_job_id:
        state, status, detail = launch_state(record)
        return JobView(record, state, status, detail, as_of, external)
    detail = f"{record.cloud} no longer reports job {record.launcher_job_id}"
    return JobView(record, State.UNKNOWN, None, detail, as_of, external, missing=True)


def external_record(job: CloudJob, job_id: str = "") -> JobRecord:
    """The record of a job its cloud reports that oumi-jobs did not launch (``job_id`` once adopted)."""
    submitted = from_epoch(job.submit_time) if job.submit_time else None
    return JobRecord(
        job_id=job_id, cloud=job.cloud, submit_time=submitted or "", name=job.name, cluster=job.cluster,
        launcher_job_id=job.launcher_job_id, source=EXTERNAL,
        end_time=from_epoch(job.end_time) if job.end_time else None,
    )  # fmt: skip


def external_view(job: CloudJob, as_of: str) -> JobView:
    """A job its cloud reports that oumi-jobs did not launch."""
    record = external_record(job)
    detail = f"launched outside oumi-jobs as {job.name!r}" if job.name else "launched outside oumi-jobs"
    return JobView(record, job.state, job.status, detail, as_of, external=True)
