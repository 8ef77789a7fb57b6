"""What a job's view gains beyond its state: its progress, and where a pending local job waits.

Shared by ``status`` (one job) and ``list`` (many): apart from :mod:`oumi_jobs.status`, whose reading of
one job hands on an orphaned cancellation first, which a listing never does.
"""

from __future__ import annotations

import dataclasses

from oumi_jobs.cloud import adapter
from oumi_jobs.errors import OumiJobsError
from oumi_jobs.local import queues
from oumi_jobs.paths import Paths
from oumi_jobs.progress import reading
from oumi_jobs.states import State
from oumi_jobs.store.registry import Registry
from oumi_jobs.views import JobView


def add_progress(paths: Paths, view: JobView, *, cloud_logs_s: float | None = None) -> JobView:
    """``view`` with its progress: a local job's read from its files, a cloud job's from its log stream when
    ``cloud_logs_s`` allows, else as read last."""
    record = view.record
    if record.is_local:
        found = reading.local_progress(paths, record, done=view.done)
    elif not record.job_id:
        return view  # an external job: nothing of ours to keep a cache under
    else:
        lines = None
        if cloud_logs_s and record.cluster and record.launcher_job_id and view.state is not State.UNKNOWN:
            try:
                lines = adapter.current().log_stream(
                    record.cloud, record.cluster, record.launcher_job_id, timeout_s=min(cloud_logs_s * 3, 10.0)
                )
            except OumiJobsError:
                lines = None  # no stream (a cloud without one, or slow): what was read before
        try:
            found = reading.cloud_progress(paths, record, lines, done=view.done, budget_s=cloud_logs_s or 0)
        finally:
            if lines is not None:
                lines.close()
    return dataclasses.replace(view, progress=found) if found is not None else view


def add_queue_detail(registry: Registry, view: JobView) -> JobView:
    """A pending local job says what it waits for: a dependency or its place in the queue."""
    record = view.record
    if view.state is not State.PENDING or not record.is_local or record.supervisor_pid is None or record.retry_at:
        return view  # a job waiting to retry says so itself
    detail = queues.queue_detail(registry, view.record)
    return dataclasses.replace(view, detail=detail) if detail else view
