"""The guards of cloud jobs, held by the warm server's watch (``server/watcher.py``): a cloud job has no
supervisor of its own to watch it.

One :class:`~oumi_jobs.guards.AttemptGuards` per (job, attempt), fed one look
per watch round while its cloud reports the job running: the attempt's start
(when it was launched, so a restarted server counts from there), its price per
hour (as the launcher priced its cluster), and its progress:

* as last read (the cache ``status`` keeps) for ``--max-cost``'s forecast;
* read from its log stream, at most every :data:`LOG_LOOK_S` and for
  :data:`LOG_BUDGET_S`, when a stall or NaN guard needs it to be fresh.  A
  NaN is seen in the metric lines the trainer prints to that log
  (``'grad_norm': nan``): a cloud job's metrics files are on its cluster.

A guard that fires is a ``guard`` event, once per attempt.  ``stop`` keeps the
guard's failure on the job (so it reads ``failed`` with it once its cloud
reports it cancelled) and cancels it through the cancellation service, in a
thread (a cancel waits for the cloud to confirm); ``retry`` does the same, then
clears the cancel flag that cancel set, and the watch schedules the next attempt
as for any retried failure; ``alert`` only records.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from oumi_jobs import guards, timeline
from oumi_jobs.cancel.service import CancelOptions, cancel_job
from oumi_jobs.cloud import adapter
from oumi_jobs.errors import OumiJobsError
from oumi_jobs.failures import encode_failure
from oumi_jobs.paths import Paths
from oumi_jobs.policy import JobPolicy
from oumi_jobs.progress import Progress, reading
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.timestamps import from_iso

# A stall or NaN guard reads the job's log stream this often at most (a round trip to its cluster) ...
LOG_LOOK_S = 10.0
# ... for this long at most.
LOG_BUDGET_S = 2.0

log = logging.getLogger("oumi_jobs.server")


class CloudGuards:
    """What the watch holds for the cloud jobs it guards: their guards per attempt, and their stops under way."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, int], guards.AttemptGuards] = {}
        self._log_read_at: dict[tuple[str, int], float] = {}
        self._stopping: dict[str, threading.Thread] = {}

    def stopping(self, job_id: str) -> bool:
        """Whether a guard's cancel of the job is under way (the watch leaves the job alone until it ends)."""
        thread = self._stopping.get(job_id)
        if thread is not None and not thread.is_alive():
            del self._stopping[job_id]
            return False
        return thread is not None

    def forget(self, job_id: str) -> None:
        """The job's attempt ended: what was held for it goes."""
        for key in [key for key in self._held if key[0] == job_id]:
            self._held.pop(key, None)
            self._log_read_at.pop(key, None)

    def look(self, paths: Paths, record: JobRecord) -> guards.Firing | None:
        """One look at a cloud job its cloud reports running; the guard that fired, if one did (acted on)."""
        policy = JobPolicy.decode(record.policy)
        if not policy.guarded or record.cancel_requested or self.stopping(record.job_id):
            return None
        key = (record.job_id, record.attempt)
        held = self._held.get(key)
        if held is None:
            started = from_iso(record.started_at).timestamp() if record.started_at else time.time()
            held = self._held[key] = guards.AttemptGuards(policy, started, price_per_hour=record.cost_per_hour)
        progress, non_finite = self._progress(paths, record, policy, key)
        firing = held.look(time.time(), progress, non_finite=non_finite)
        if firing is not None:
            self._act(paths, record, policy, firing)
        return firing

    def _progress(
        self, paths: Paths, record: JobRecord, policy: JobPolicy, key: tuple[str, int]
    ) -> tuple[Progress | None, str | None]:
        """The job's progress, and a NaN or infinite loss or gradient norm its log shows (NaN guard only)."""
        fresh_needed = policy.stall_after_s is not None or policy.stall_auto or policy.nan_guard
        due = time.monotonic() - self._log_read_at.get(key, float("-inf")) >= LOG_LOOK_S
        if not (fresh_needed and due and record.cluster and record.launcher_job_id):
            return reading.cloud_progress(paths, record, None, done=False, budget_s=0), None
        self._log_read_at[key] = time.monotonic()
        read: list[str] = []
        try:
            lines = adapter.current().log_stream(
                record.cloud, record.cluster, record.launcher_job_id, timeout_s=LOG_BUDGET_S * 3
            )
        except OumiJobsError:  # no stream (a cloud without one, or slow): what was read before
            return reading.cloud_progress(paths, record, None, done=False, budget_s=0), None
        try:
            progress = reading.cloud_progress(paths, record, _kept(lines, read), done=False, budget_s=LOG_BUDGET_S)
        finally:
            lines.close()
        return progress, guards.non_finite_in_log("".join(read)) if policy.nan_guard else None

    def _act(self, paths: Paths, record: JobRecord, policy: JobPolicy, firing: guards.Firing) -> None:
        action = policy.guard_action
        detail = {"guard": firing.guard, "observed": firing.observed, "limit": firing.limit, "action": action}
        with Registry.open(paths) as registry:
            now_record = registry.get(record.job_id)
            if now_record is None or now_record.cancel_requested or now_record.attempt != record.attempt:
                return  # someone cancels it already: it ends as they asked, not by a guard
            timeline.record(registry, record.job_id, "guard", attempt=record.attempt, **detail)
            if action == "alert":
                return
            failure = encode_failure(firing.failure())
            assert failure is not None  # a failure always encodes
            if not registry.keep_guard_failure(record.job_id, record.attempt, failure):
                return
        log.info("job %s: the %s guard fired (%s): %s", record.job_id, firing.guard, action, firing.cause)
        thread = threading.Thread(
            target=_stop, args=(paths, record, firing, action == "retry"), name="oumi-jobs guard stop", daemon=True
        )
        self._stopping[record.job_id] = thread
        thread.start()


def _kept(lines: Iterator[str], read: list[str]) -> Iterator[str]:
    """``lines``, each also kept in ``read`` (the NaN guard looks at the same text the progress read)."""
    for line in lines:
        read.append(line)
        yield line


def _stop(paths: Paths, record: JobRecord, firing: guards.Firing, retry: bool) -> None:
    """Cancel the job as a person's ``cancel`` would, with the guard as its reason; its dependants see it failed."""
    try:
        cancel_job(paths, record.job_id, CancelOptions(reason=firing.reason, cascade=False))
    except OumiJobsError as exc:
        log.warning("job %s: the %s guard's cancel failed: %s", record.job_id, firing.guard, exc)
    if retry:
        try:
            with Registry.open(paths) as registry:
                registry.release_guard_cancel(record.job_id, record.attempt)
        except OumiJobsError as exc:
            log.warning("job %s: cannot clear the guard's cancel for its retry: %s", record.job_id, exc)
