"""``retry JOB``: the next attempt of an ended job, started by hand (``POST /api/jobs/{job}/retry`` too)."""

from __future__ import annotations

import os

from oumi_jobs.errors import ConflictError
from oumi_jobs.local.procs import identify
from oumi_jobs.paths import Paths
from oumi_jobs.retrying import ended_attempt, schedule, start_next
from oumi_jobs.status import get_status
from oumi_jobs.store.registry import Registry
from oumi_jobs.views import JobView


def retry(paths: Paths, ref: str) -> JobView:
    """``retry JOB``: start the next attempt of an ended job now (any ended state: a succeeded job may be run
    again too); a job not done is a ConflictError (exit 4)."""
    view = get_status(paths, ref, with_progress=False)
    record = view.record
    if not view.done:
        raise ConflictError(f"job {record.job_id} is {view.state.value}: only an ended job can be retried")
    me = identify(os.getpid())
    claimed = (os.getpid(), me.start_time if me else None)
    with Registry.open(paths) as registry:
        ended = ended_attempt(record, view.state, view.failure)
        if not schedule(registry, record, ended, view.failure, delay_s=0.0, by_hand=True, claimed_by=claimed):
            raise ConflictError(f"job {record.job_id} changed meanwhile: read it again and retry")
        start_next(paths, registry, record.job_id)
    return get_status(paths, record.job_id, with_progress=False)
