"""Starting a sweep's children as slots free, so a sweep of thousands never has thousands of processes.

``sweep`` starts the detached processes of its first ``--parallel`` children
only; each of them, when its own child is over (a supervisor once the job
ended, a cloud launching process once ``launcher.up`` returned), starts the
process of the next child that has none.  A local child's queue still decides
when it runs (its cluster's ``--parallel`` slots); a cloud sweep so keeps at
most ``--parallel`` launches in flight.

Imported by the supervisor and the launching process: nothing heavy here.
"""

from __future__ import annotations

import os
import sys

from oumi_jobs.errors import OumiJobsError
from oumi_jobs.local import containment, detach
from oumi_jobs.local.procs import boot_id, identify
from oumi_jobs.paths import Paths
from oumi_jobs.store.registry import Registry

# The exit code of a child whose process could not be started (as a job whose command cannot start).
EXIT_CANNOT_START = 127
# Children tried in turn when one cannot be started (each is ended with the reason).
START_TRIES = 3


def start_next(paths: Paths, sweep_id: str) -> str | None:
    """Start the detached process of the sweep's next child that has none; its job id, or None if none is left.

    The child is claimed in one transaction first, so two children that end
    together never start the same next one.
    """
    me = identify(os.getpid())
    with Registry.open(paths) as registry:
        job_id = registry.claim_unstarted(sweep_id, os.getpid(), me.start_time if me else None, boot_id())
        if job_id is None:
            return None
        record = registry.get(job_id)
        assert record is not None
        module = detach.SUPERVISOR if record.is_local else detach.CLOUD_LAUNCHER
        # A supervisor is the subreaper of its job's orphans: the next child's daemon must not be adopted
        # as one of them (waited for, and cancelled with this job).  Its job is over by now.
        containment.become_subreaper(False)
        try:
            # The caller's own environment, as the sweep's: a child's own variables are in its record.
            pid = detach.spawn_daemon(paths, module, job_id, dict(os.environ))
        except (OSError, RuntimeError, ValueError) as exc:
            registry.record_exit(job_id, exit_code=EXIT_CANNOT_START, detail=f"cannot start: {exc}")
            raise OumiJobsError(f"cannot start job {job_id} of sweep {sweep_id}: {exc}") from exc
        identity = identify(pid)
        registry.update(job_id, supervisor_pid=pid, supervisor_start_time=identity.start_time if identity else None)
    return job_id


def hand_over(paths: Paths, job_id: str, sweep_id: str | None) -> None:
    """The process of ``job_id`` is done with it: if it is a sweep's child, start the next child of its sweep.

    A job of no sweep opens nothing: every job's supervisor calls this as it
    ends, and a registry opened then could still be writing (a WAL checkpoint)
    after the job reads as over.  A child that cannot be started is ended with
    the reason, and the next one is tried, so one bad start never stalls the
    rest of the sweep.
    """
    if sweep_id is None:
        return
    try:
        for _ in range(START_TRIES):
            try:
                start_next(paths, sweep_id)
                return
            except OumiJobsError as exc:
                print(f"oumi-jobs: {exc}", file=sys.stderr)
    except (OumiJobsError, OSError) as exc:  # the log is the only place left to tell
        print(f"oumi-jobs: could not start the next child of the sweep after {job_id}: {exc}", file=sys.stderr)


def sweep_of(paths: Paths, job_id: str) -> str | None:
    """The sweep ``job_id`` belongs to (None: none, or the registry cannot say)."""
    try:
        with Registry.open(paths) as registry:
            record = registry.get(job_id)
    except (OumiJobsError, OSError):
        return None
    return record.sweep_id if record is not None else None
