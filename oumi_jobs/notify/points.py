"""Where events are first known, in one place: a local job's end (its supervisor), a job a read finds ended
(a cloud job, a local job lost), a sweep whose last child ended.

Each is :func:`~oumi_jobs.notify.emission.emit`, which is idempotent: several
processes may see the same end, one notification is sent.
"""

from __future__ import annotations

from typing import Any

from oumi_jobs.errors import OumiJobsError
from oumi_jobs.notify.emission import Seen, emit, log
from oumi_jobs.paths import Paths
from oumi_jobs.states import State
from oumi_jobs.store.registry import Registry
from oumi_jobs.views import JobView, view_of

END_EVENTS = {State.SUCCEEDED: "succeeded", State.FAILED: "failed", State.CANCELLED: "cancelled",
              State.LOST: "lost"}  # fmt: skip


def job_ended(paths: Paths, job_id: str, *, attempt: int = 1) -> None:
    """A local job's exit record was just written: notify its end, and its sweep's when it was the last child."""
    try:
        with Registry.open(paths) as registry:
            record = registry.get(job_id)
            if record is None:
                return
            view = view_of(record)
            if view.done:
                emit(paths, job_id, END_EVENTS[view.state], attempt=attempt, detail=_end_detail(view),
                     registry=registry, record=record)  # fmt: skip
            if record.sweep_id is not None:
                children, ended, succeeded = registry.sweep_ends(record.sweep_id)
                if children and ended == children:
                    detail = {"sweep_id": record.sweep_id, "children": children, "succeeded": succeeded,
                              "not_succeeded": children - succeeded}  # fmt: skip
                    emit(paths, record.sweep_id, "sweep_done", detail=detail, registry=registry, record=record)
    except (OumiJobsError, OSError) as exc:
        log.warning("oumi-jobs: cannot notify the end of job %s: %s", job_id, exc)


def seen_ended(paths: Paths, view: JobView, *, attempt: int = 1) -> None:
    """A read found the job ended: a cloud job (whose end only its cloud knows), or a local job lost.  A local
    job's other ends are its supervisor's to notify."""
    if not view.done or not view.job_id or view.external:
        return
    if view.record.is_local and view.state is not State.LOST:
        return
    seen = Seen(view.state.value, view.status, view.detail, view.as_of, view.external)
    emit(paths, view.job_id, END_EVENTS[view.state], attempt=attempt, detail=_end_detail(view), seen=seen,
         record=view.record)  # fmt: skip


def _end_detail(view: JobView) -> dict[str, Any]:
    failure = view.failure
    return {
        "exit_code": view.record.exit_code,
        "failure_class": failure.failure_class if failure is not None else None,
        "cause": failure.cause if failure is not None else None,
    }
