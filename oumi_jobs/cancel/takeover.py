"""Cancellations whose owner is gone: carrying them on from where their record stands.

The process that runs a cancellation (its owner: pid, start time and boot id in
the record) can die: kill -9, a reboot, or Ctrl-C while a graceful cancel waits.
A record must never stay ``in_progress`` with nobody behind it, and the job must
never stay ``cancelling`` with nobody escalating.  So:

* the next ``cancel`` of the job takes the record over (see
  :meth:`CancellationTracker.claim`) and :func:`resume` s it here;
* ``status`` (and what follows a job) and ``cancel-status`` adopt it, as an
  explicit step before they read (:func:`adopt_orphans`, :func:`adopt_orphan`),
  and hand the rest to a detached finisher, since they should not block;
* Ctrl-C on an owned cancel hands the rest to a detached finisher too
  (:func:`hand_on`), or, where none can start, ends the record ``failed`` with
  the reason.

Every takeover and hand-over is a step of the record, naming the dead owner.
"""

from __future__ import annotations

from oumi_jobs.cancel.cloud_flow import CloudFlow
from oumi_jobs.cancel.local_flow import LocalFlow
from oumi_jobs.cancel.recorder import Recorder
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.paths import Paths
from oumi_jobs.store.cancellations import CancellationRecord, CancellationStatus, CancellationTracker
from oumi_jobs.store.registry import Registry


def resume(recorder: Recorder) -> CancellationRecord:
    """Carry the cancellation on from where its record stands, to its end, in this process."""
    if recorder.job().is_local:
        return LocalFlow(recorder).resume()
    return CloudFlow(recorder).resume()


def hand_on(recorder: Recorder, why: str) -> CancellationRecord:
    """Give the rest of the cancellation to a detached finisher; where none can start, end it failed with why.

    Returns the record as it stands: ``in_progress`` (the finisher's now) or ``failed``.
    """
    try:
        with recorder.step("hand_over", f"{why}; starting a detached finisher") as step:
            pid = recorder.start_finisher()
            step.detail = f"{why}; a detached finisher (pid {pid}) carries the cancellation on"
    except OSError as exc:
        return recorder.finish(CancellationStatus.FAILED, detail=f"{why}, and no finisher could be started: {exc}")
    return recorder.latest()


def adopt_orphan(
    paths: Paths, registry: Registry, job_id: str, *, cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S
) -> CancellationRecord | None:
    """If the job's unfinished cancellation has a dead owner, hand it to a detached finisher; else None.

    Cheap when there is nothing to adopt (one indexed read), so ``status`` may call it each time.
    """
    claim = CancellationTracker(registry).adopt_orphan(job_id)
    if claim is None:
        return None
    recorder = Recorder(paths, registry, claim.record, cloud_timeout_s=cloud_timeout_s)
    return hand_on(recorder, f"its owner (pid {claim.dead_owner}) died before it ended")


def adopt_orphans(
    paths: Paths, ref: str, *, cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S
) -> CancellationRecord | None:
    """The takeover step of ``status``: the job ``ref`` names (an id or a unique prefix) has its orphaned
    cancellation handed on (:func:`adopt_orphan`); None where it has none.  An unknown ref: JobNotFoundError."""
    with Registry.open(paths) as registry:
        record = registry.resolve(ref)
        if not record.cancel_requested:
            return None  # the common case: no cancellation at all, not even the indexed read
        return adopt_orphan(paths, registry, record.job_id, cloud_timeout_s=cloud_timeout_s)
