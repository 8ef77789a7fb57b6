"""Cancelling a job on a cloud: the launcher's cancel, then the job's status polled until its cloud
reports it ended (or the cancellation's timeout passes: failed).

A job still being launched has no launcher id to cancel: the request is
persisted and recorded, and its launching process cancels the job the moment
``launcher.up`` returns (see :mod:`oumi_jobs.local.launching`).  This flow
waits for that only within the cancellation's own timeout: provisioning takes
minutes, and an unreachable cloud can hold ``up`` for hours.  The launching
process finishes the record; ``cancel-status --watch`` follows it.
"""

from __future__ import annotations

from oumi_jobs.cancel.recorder import Recorder
from oumi_jobs.cloud import adapter
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.errors import CloudUnreachableError
from oumi_jobs.local.procs import is_alive
from oumi_jobs.polling import Deadline, poll_until
from oumi_jobs.store.cancellations import CancellationRecord, CancellationStatus, StepStatus
from oumi_jobs.store.registry import JobRecord
from oumi_jobs.views import JobView, live_cloud_view

# Each poll is a round trip to the cloud (SSH, an API server): once a second.
CLOUD_POLL_S = 1.0
# Waiting on the launching process reads the registry only.
LAUNCH_POLL_S = 0.2


class CloudFlow:
    """The steps of one cloud job's cancellation, recorded through ``recorder``."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def start(self, job: JobRecord, view: JobView, *, wait: bool = True) -> CancellationRecord:
        """Ask the cloud to cancel the job, then verify here or in a detached finisher (``wait`` False)."""
        rec = self.recorder
        rec.under_way()
        which = f"job {job.launcher_job_id}" if job.launcher_job_id else "no launcher job id yet"
        rec.note("check_state", f"{job.cloud} reports {view.status or view.state.value} ({which})")
        if not job.launcher_job_id:
            outcome = self._during_launch(job, wait)
            if isinstance(outcome, CancellationRecord):
                return outcome
            job = outcome
        try:
            self._request(
                job, rec.cloud_timeout_s
            )  # `cancel --cloud-timeout`, as every other cloud call of the command
        except CloudUnreachableError as exc:
            return rec.finish(CancellationStatus.FAILED, detail=str(exc))
        rec.add_signalled(1)
        if not wait:
            return rec.hand_over_to_finisher()
        return self.finish()

    def finish(self, timeout_s: float | None = None) -> CancellationRecord:
        """Poll the job's status until its cloud reports it ended (within ``timeout_s``, by default the
        cancellation's timeout): the part a ``--no-wait`` finisher runs."""
        rec = self.recorder
        job = rec.job()
        adapter.current().prepare()  # a finisher's first question must not spend the wait importing the launcher
        timeout = rec.record.timeout_s if timeout_s is None else timeout_s
        deadline = Deadline.after(timeout)

        def ask() -> JobView:
            # Each question gets what is left of the wait (at least a second), at most `--cloud-timeout`.
            return live_cloud_view(job, timeout_s=min(rec.cloud_timeout_s, max(1.0, deadline.remaining())))

        with rec.step("verify", f"up to {timeout:g} s for {job.cloud} to report it ended") as step:
            current = poll_until(deadline, ask, CLOUD_POLL_S, until=lambda view: view.done)
            step.detail = f"{job.cloud} reports {current.status or current.state.value}"
            if not current.done:
                step.status = StepStatus.FAILED
        if not current.done:
            return rec.finish(
                CancellationStatus.FAILED, detail=f"{job.cloud} still reports {current.status or current.state.value}",
                final_state=current.state.value,
            )  # fmt: skip
        return rec.finish(CancellationStatus.COMPLETED, final_state=current.state.value)

    def resume(self) -> CancellationRecord:
        """Carry on a cancellation whose owner is gone: verify if the launcher's cancel was answered, else
        ask it (again: cancelling a job twice is harmless)."""
        rec = self.recorder
        if any(s.name == "launcher_cancel" and s.status is StepStatus.COMPLETED for s in rec.latest().steps):
            rec.under_way()
            return self.finish()
        job = rec.job()
        return self.start(job, live_cloud_view(job, timeout_s=rec.cloud_timeout_s))

    def cancel_launched(self) -> CancellationRecord:
        """The launching process's part: ``up`` returned after the cancel was requested.

        Cancel the new job now and verify that it ended; a launcher that fails
        or does not answer ends the cancellation failed, saying the job may
        still run (a new ``cancel`` then calls the launcher itself).
        """
        rec = self.recorder
        job = rec.job()
        # Nobody waits on this process: the launcher gets at least the usual cloud limit to answer and to end
        # the job, whatever the cancel's own (perhaps short) timeout.
        limit = max(rec.record.timeout_s, DEFAULT_CLOUD_TIMEOUT_S)
        try:
            self._request(job, limit, when="the moment launcher.up returned")
        except CloudUnreachableError as exc:
            detail = f"{exc}; job {job.launcher_job_id} on {job.cluster} may still run: cancel it again"
            return rec.finish(CancellationStatus.FAILED, detail=detail)
        rec.add_signalled(1)
        return self.finish(limit)

    def _request(self, job: JobRecord, limit: float, when: str | None = None) -> None:
        assert job.cluster and job.launcher_job_id
        with self.recorder.step("launcher_cancel", f"job {job.launcher_job_id}, within {limit:g} s") as step:
            answer = adapter.current().cancel(job.cloud, job.cluster, job.launcher_job_id, timeout_s=limit)
            step.detail = f"the launcher answered {answer.status}" + (f" ({when})" if when else "")

    def _during_launch(self, job: JobRecord, wait: bool) -> CancellationRecord | JobRecord:
        """Record the request for the launching process; wait for its outcome within the cancellation's timeout.

        Returns the record (finished, or still in progress: the launching process finishes it) or, where the
        launching process ended leaving a launched job behind, that job, to cancel here.
        """
        rec = self.recorder
        if not any(step.name == "request" for step in rec.record.steps):  # not again when taken over
            rec.note(
                "request",
                f"launcher.up is still running (launching process {job.supervisor_pid}); "
                "it cancels the job the moment up returns",
            )
        if job.supervisor_pid and is_alive(job.supervisor_pid, job.supervisor_start_time, job.boot_id):
            # The launching process finishes the record: while it lives, no reader may adopt the record and run
            # a second cancel beside its own (the one waiting here ends at its timeout, and its owner with it).
            rec.hand_over(job.supervisor_pid)
        limit = rec.record.timeout_s if wait else 0.0
        outcome = poll_until(limit, self._launch_outcome, LAUNCH_POLL_S, until=lambda found: found is not None)
        return rec.latest() if outcome is None else outcome

    def _launch_outcome(self) -> CancellationRecord | JobRecord | None:
        """The finished record, the launched job to cancel here, or None while the launching process runs."""
        rec = self.recorder
        record = rec.latest()
        if record.status.finished:
            return record
        job = rec.job()
        if is_alive(job.supervisor_pid, job.supervisor_start_time, job.boot_id):
            return None
        if job.launcher_job_id:
            return job  # it launched, then ended before seeing the flag: cancel it here
        if job.retry_at is not None:  # between two attempts: the next one never starts
            rec.registry.end_before_start(job.job_id, f"cancelled before attempt {job.attempt} started")
            return rec.finish(CancellationStatus.COMPLETED, detail=f"attempt {job.attempt} will not be launched")
        return rec.finish(CancellationStatus.COMPLETED, detail="the launching process ended without launching the job")
