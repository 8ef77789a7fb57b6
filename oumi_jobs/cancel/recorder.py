"""The step recorder of one owned cancellation: every step and the outcome, written as they happen.

Each step goes to the cancellation record (``cancel-status`` shows a step
while it is still under way) and, when it ends, to the event log; so does the
outcome.  The local and cloud flows, and the launching process of a cloud job
that a cancel reached during ``launcher.up``, all record through this.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.errors import OumiJobsError
from oumi_jobs.events import log_event
from oumi_jobs.local import detach
from oumi_jobs.paths import Paths
from oumi_jobs.store.cancellations import CancellationRecord, CancellationStatus, CancellationTracker, StepStatus
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.views import view_of

# How the cancelling command tells its detached finisher `--cloud-timeout` (its argv names only the record).
FINISHER_CLOUD_TIMEOUT_ENV = "OUMI_JOBS_FINISHER_CLOUD_TIMEOUT_S"


@dataclass
class Step:
    """A step under way: its body says what happened in ``detail`` and, where the step did not work, sets
    ``status`` (or calls :meth:`fail`).  An exception out of the body ends it failed, with the error."""

    name: str
    status: StepStatus = StepStatus.COMPLETED
    detail: str | None = None  # None: the detail given when the step began stays

    def fail(self, detail: str) -> None:
        self.status, self.detail = StepStatus.FAILED, detail


class Recorder:
    """Writes the steps and the outcome of one cancellation this process owns."""

    def __init__(
        self,
        paths: Paths,
        registry: Registry,
        record: CancellationRecord,
        *,
        cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S,
    ) -> None:
        self.paths = paths
        self.registry = registry
        self.tracker = CancellationTracker(registry)
        self.record = record
        # Each call to a cloud gets this long (`cancel --cloud-timeout`); a finisher is told it at its start.
        self.cloud_timeout_s = cloud_timeout_s
        # The pid this process gave the record to (a finisher, the launching process): it is no longer ours.
        self.handed_to: int | None = None

    @classmethod
    def for_active_cancellation(cls, paths: Paths, registry: Registry, job_id: str) -> Recorder | None:
        """A recorder for the job's unfinished cancellation, or None where it has none."""
        tracker = CancellationTracker(registry)
        if not tracker.active_for_job(job_id):
            return None
        return cls(paths, registry, tracker.latest_for_job(job_id))

    @property
    def cancellation_id(self) -> str:
        return self.record.cancellation_id

    def job(self) -> JobRecord:
        """The cancelled job as the registry has it now."""
        record = self.registry.get(self.record.job_id)
        if record is None:
            raise OumiJobsError(f"job {self.record.job_id} vanished from the registry during its cancellation")
        return record

    def latest(self) -> CancellationRecord:
        """The record as it stands now (another process may have written to it)."""
        return self.tracker.get(self.cancellation_id) or self.record

    def under_way(self) -> None:
        self.tracker.set_status(self.cancellation_id, CancellationStatus.IN_PROGRESS)

    def add_signalled(self, count: int) -> None:
        self.tracker.add_signalled(self.cancellation_id, count)

    @contextmanager
    def step(self, name: str, detail: str | None = None) -> Iterator[Step]:
        """A step: recorded as in progress (with ``detail``: what it is about to do), then completed or failed
        with the detail its body gives and its duration."""
        seq = self.tracker.begin_step(self.cancellation_id, name, detail)
        step = Step(name)
        started = time.monotonic()
        try:
            yield step
        except KeyboardInterrupt:
            step.fail("interrupted (Ctrl-C)")
            raise
        except BaseException as exc:
            step.fail(f"error: {exc}")
            raise
        finally:
            self.tracker.end_step(self.cancellation_id, seq, step.status, step.detail)
            log_event(
                self.paths, "cancel_step", job_id=self.record.job_id, cancellation_id=self.cancellation_id,
                step=name, outcome=step.status.value, detail=step.detail,
                duration_s=round(time.monotonic() - started, 4),
            )  # fmt: skip

    def note(self, name: str, detail: str) -> None:
        """A step with nothing to run: what was found or done, recorded as a completed step."""
        with self.step(name) as step:
            step.detail = detail

    def finish(
        self,
        status: CancellationStatus,
        survivors: Sequence[int] = (),
        detail: str | None = None,
        final_state: str | None = None,
    ) -> CancellationRecord:
        """End the cancellation; ``final_state`` defaults to the job's recorded state now."""
        final = final_state or view_of(self.job()).state.value
        self.record = self.tracker.finish(
            self.cancellation_id, status, final_state=final, survivors=survivors, detail=detail
        )
        log_event(
            self.paths, "cancel_finished", job_id=self.record.job_id, cancellation_id=self.cancellation_id,
            status=status.value, final_state=final, survivors=list(survivors), duration_s=self.record.duration_s,
        )  # fmt: skip
        return self.record

    def hand_over_to_finisher(self) -> CancellationRecord:
        """``--no-wait``: a detached process finishes the cancellation and becomes the record's owner.

        Returns the record as it stands, for the command to report now.
        """
        self.start_finisher()
        return self.latest()

    def start_finisher(self) -> int:
        """Start a detached finisher and make it the record's owner; its pid.  OSError where it cannot start."""
        env = os.environ | {FINISHER_CLOUD_TIMEOUT_ENV: repr(self.cloud_timeout_s)}
        pid = detach.spawn_detached(self.paths, detach.CANCEL_FINISHER, self.cancellation_id, env=env)
        self.hand_over(pid)
        return pid

    def hand_over(self, pid: int) -> None:
        """Make the live process ``pid`` the record's owner: only it may end the record from now on, and the
        record is orphaned (for ``status`` to adopt) only when that process dies."""
        self.tracker.hand_over(self.cancellation_id, pid)
        self.handed_to = pid if pid != os.getpid() else None
