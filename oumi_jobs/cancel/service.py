"""The cancellation service: cancel one job or many, safely and auditably.

Live state is checked first (a finished job is reported as such, not
"cancelled").  A local job gets its graceful signal across its whole process
tree, a wait of up to ``timeout_s``, then SIGKILL for whatever is left; the
cancellation is reported ``completed`` only after a re-scan finds no process
of the job, and otherwise ends ``failed`` naming the survivors.  Every step is
written to the cancellation record as it happens and to the event log.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from oumi_jobs.cloud import adapter
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.errors import CloudUnreachableError, OumiJobsError, UsageError
from oumi_jobs.events import log_event
from oumi_jobs.jobs import list_jobs
from oumi_jobs.local import detach, terminator
from oumi_jobs.local.procs import is_alive
from oumi_jobs.metrics import write_metrics
from oumi_jobs.paths import Paths
from oumi_jobs.states import State, parse_states
from oumi_jobs.store.cancellations import CancellationRecord, CancellationStatus, CancellationTracker, StepStatus
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.timestamps import from_iso
from oumi_jobs.views import JobView, live_cloud_view, view_of

DEFAULT_TIMEOUT_S = 30.0
# After SIGKILL the kernel needs a moment to tear processes down.
KILL_GRACE_S = 5.0
# How long a not-yet-started job's supervisor gets to notice the cancel.
START_RACE_S = 10.0
POLL_S = 0.02
CLOUD_POLL_S = 1.0


@dataclass(frozen=True)
class CancelOptions:
    force: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    signal: str = "TERM"
    reason: str | None = None
    wait: bool = True
    cascade: bool = True
    metrics_file: Path | None = None
    cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S

    def checked(self) -> tuple[signal.Signals, float]:
        if self.timeout_s < 0:
            raise UsageError("--timeout must not be negative")
        return terminator.parse_signal(self.signal), float(self.timeout_s)


class _Run:
    """One owned cancellation of one job: runs its steps and writes them down."""

    def __init__(self, paths: Paths, registry: Registry, record: CancellationRecord) -> None:
        self.paths = paths
        self.registry = registry
        self.tracker = CancellationTracker(registry)
        self.record = record

    @contextmanager
    def step(self, name: str, detail: str | None = None) -> Iterator[dict[str, object]]:
        """A step: recorded as in progress, then completed (or failed) with its detail and duration."""
        seq = self.tracker.begin_step(self.record.cancellation_id, name, detail)
        outcome: dict[str, object] = {"status": StepStatus.COMPLETED, "detail": None}
        started = time.monotonic()
        try:
            yield outcome
        except BaseException as exc:
            outcome["status"], outcome["detail"] = StepStatus.FAILED, f"error: {exc}"
            raise
        finally:
            status = outcome["status"]
            assert isinstance(status, StepStatus)
            self.tracker.end_step(self.record.cancellation_id, seq, status, outcome["detail"])  # type: ignore[arg-type]
            log_event(
                self.paths, "cancel_step", job_id=self.record.job_id, cancellation_id=self.record.cancellation_id,
                step=name, outcome=status.value, detail=outcome["detail"],
                duration_s=round(time.monotonic() - started, 4),
            )  # fmt: skip

    def job(self) -> JobRecord:
        record = self.registry.get(self.record.job_id)
        if record is None:
            raise OumiJobsError(f"job {self.record.job_id} vanished from the registry during its cancellation")
        return record

    def finish(
        self,
        status: CancellationStatus,
        survivors: Sequence[int] = (),
        detail: str | None = None,
        final_state: str | None = None,
    ) -> CancellationRecord:
        final = final_state or view_of(self.job()).state.value
        self.record = self.tracker.finish(
            self.record.cancellation_id, status, final_state=final, survivors=survivors, detail=detail
        )
        log_event(
            self.paths, "cancel_finished", job_id=self.record.job_id, cancellation_id=self.record.cancellation_id,
            status=status.value, final_state=final, survivors=list(survivors), duration_s=self.record.duration_s,
        )  # fmt: skip
        return self.record

    # -- the cloud flow ----------------------------------------------------------------
    def cancel_on_cloud(self, job: JobRecord, view: JobView, *, wait: bool = True) -> CancellationRecord:
        """launcher.cancel, then poll the job's status until its cloud reports it ended (or the timeout)."""

        self.tracker.set_status(self.record.cancellation_id, CancellationStatus.IN_PROGRESS)
        with self.step("check_state") as out:
            out["detail"] = f"{job.cloud} reports {view.status or view.state.value} (job {job.launcher_job_id})"
        if not job.launcher_job_id:
            with self.step("request") as out:
                out["detail"] = "launcher.up is still running; the launching process cancels the job when it returns"
            if not wait:
                return self.tracker.get(self.record.cancellation_id) or self.record
            outcome = self._wait_for_launch()
            if isinstance(outcome, CancellationRecord):
                return outcome
            job = outcome
        assert job.cluster and job.launcher_job_id
        try:
            with self.step("launcher_cancel") as out:
                limit = self.record.timeout_s or DEFAULT_CLOUD_TIMEOUT_S
                answer = adapter.current().cancel(job.cloud, job.cluster, job.launcher_job_id, timeout_s=limit)
                out["detail"] = f"the launcher answered {answer.status}"
        except CloudUnreachableError as exc:
            return self.finish(CancellationStatus.FAILED, detail=str(exc))
        self.tracker.add_signalled(self.record.cancellation_id, 1)
        if not wait:
            _spawn_finisher(self.paths, self.record.cancellation_id)
            return self.tracker.get(self.record.cancellation_id) or self.record
        return self.finish_cloud()

    def finish_cloud(self) -> CancellationRecord:
        """Poll the job's status until its cloud reports it ended: the part a ``--no-wait`` finisher runs."""
        job = self.job()
        with self.step("verify", f"up to {self.record.timeout_s:g} s for {job.cloud} to report it ended") as out:
            deadline = time.monotonic() + self.record.timeout_s
            while True:
                current = live_cloud_view(job, timeout_s=max(1.0, deadline - time.monotonic()))
                if current.done or time.monotonic() > deadline:
                    break
                time.sleep(CLOUD_POLL_S)
            out["detail"] = f"{job.cloud} reports {current.status or current.state.value}"
            if not current.done:
                out["status"] = StepStatus.FAILED
        if not current.done:
            return self.finish(
                CancellationStatus.FAILED, detail=f"{job.cloud} still reports {current.status or current.state.value}",
                final_state=current.state.value,
            )  # fmt: skip
        return self.finish(CancellationStatus.COMPLETED, final_state=current.state.value)

    def _wait_for_launch(self) -> CancellationRecord | JobRecord:
        """Until the launching process finishes our record, or ends leaving the job to us."""
        while True:
            record = self.tracker.get(self.record.cancellation_id)
            if record is not None and record.status.finished:
                return record
            job = self.job()
            if not is_alive(job.supervisor_pid, job.supervisor_start_time, job.boot_id):
                if job.launcher_job_id:
                    return job  # it launched, then ended before seeing the flag: cancel it here
                return self.finish(CancellationStatus.COMPLETED, detail="the job was never launched")
            time.sleep(POLL_S * 10)

    # -- the local flow ----------------------------------------------------------------
    def start_local(self, sig: signal.Signals, detached_finish: bool) -> CancellationRecord:
        self.tracker.set_status(self.record.cancellation_id, CancellationStatus.IN_PROGRESS)
        job = self.job()
        if job.pid is None:
            with self.step("prevent_start") as out:
                job = self._wait_for_start_or_end()
                out["detail"] = (
                    "the job had not started; its supervisor will not start it"
                    if job.pid is None
                    else (f"the job started meanwhile (pid {job.pid})")
                )
            if job.pid is None:
                return self.cleanup_and_finish()
        procs = terminator.find_job_processes(job, self.registry.recorded_processes(job.job_id))
        first = signal.SIGKILL if self.record.force else sig
        self.send(first, procs)
        if detached_finish:
            _spawn_finisher(self.paths, self.record.cancellation_id)
            return self.tracker.get(self.record.cancellation_id) or self.record
        return self.finish_local()

    def _wait_for_start_or_end(self) -> JobRecord:
        deadline = time.monotonic() + START_RACE_S
        while True:
            job = self.job()
            if job.pid is not None or job.has_exit_record or time.monotonic() > deadline:
                return job
            if view_of(job).state is State.LOST:
                return job
            time.sleep(POLL_S)

    def send(self, sig: signal.Signals, procs: list[terminator.Proc]) -> terminator.SignalReport:
        name = "signal_kill" if sig == signal.SIGKILL else f"signal_{sig.name.removeprefix('SIG').lower()}"
        with self.step(name) as out:
            report = terminator.signal_processes(procs, sig)
            self.tracker.add_signalled(self.record.cancellation_id, len(report.signalled))
            parts = [f"{sig.name} to {len(report.signalled)} process(es): {list(report.signalled)}"]
            if report.failed:
                parts.append("could not signal " + ", ".join(f"{pid} ({why})" for pid, why in report.failed))
                out["status"] = StepStatus.FAILED
            out["detail"] = "; ".join(parts)
        return report

    def finish_local(self) -> CancellationRecord:
        """Wait, escalate, verify, clean up: the part a ``--no-wait`` finisher runs detached."""
        job = self.job()
        recorded = self.registry.recorded_processes(job.job_id)
        seen: set[int] = set()

        def scan() -> list[terminator.Proc]:
            found = terminator.find_job_processes(job, recorded)
            seen.update(p.pid for p in found)
            return found

        if not self.record.force:
            signalled_at = self._signal_time()
            deadline = signalled_at + self.record.timeout_s
            with self.step("wait", f"up to {self.record.timeout_s:g} s for the job to exit") as out:
                remaining = scan()
                while remaining and time.time() < deadline:
                    time.sleep(POLL_S)
                    remaining = terminator.still_running(remaining) or scan()
                out["detail"] = (
                    f"{len(remaining)} process(es) still running after {self.record.timeout_s:g} s"
                    if remaining
                    else f"exited after {time.time() - signalled_at:.2f} s"
                )
            if remaining:
                self.send(signal.SIGKILL, scan())
        survivors = self._verify(scan, seen)
        if survivors:
            return self.cleanup_and_finish(survivors)
        return self.cleanup_and_finish()

    def _signal_time(self) -> float:
        record = self.tracker.get(self.record.cancellation_id) or self.record
        for step in record.steps:
            if step.name.startswith("signal_") and step.ended_at:
                return from_iso(step.ended_at).timestamp()
        return time.time()

    def _verify(self, scan, seen: set[int]) -> list[int]:
        with self.step("verify") as out:
            deadline = time.monotonic() + KILL_GRACE_S
            remaining = scan()
            while remaining and time.monotonic() < deadline:
                time.sleep(POLL_S)
                remaining = terminator.still_running(remaining) or scan()
            survivors = {p.pid for p in remaining} | (terminator.gpu_pids() & seen)
            if survivors:
                out["status"] = StepStatus.FAILED
                out["detail"] = f"processes still alive: {sorted(survivors)}"
            else:
                out["detail"] = "no process of the job is left"
        return sorted(survivors)

    def cleanup_and_finish(self, survivors: Sequence[int] = ()) -> CancellationRecord:
        with self.step("cleanup") as out:
            # The supervisor writes the exit record once it has reaped the job.
            deadline = time.monotonic() + KILL_GRACE_S
            while not survivors and not self.job().has_exit_record and time.monotonic() < deadline:
                if view_of(self.job()).state is State.LOST:
                    break
                time.sleep(POLL_S)
            out["detail"] = "logs and output dir kept"
        if survivors:
            return self.finish(CancellationStatus.FAILED, survivors, f"{len(survivors)} process(es) survived")
        return self.finish(CancellationStatus.COMPLETED)


def _spawn_finisher(paths: Paths, cancellation_id: str) -> None:
    """Detach a process that finishes the cancellation (``--no-wait``), and make it the record's owner."""
    pid = detach.spawn_detached(paths, detach.CANCEL_FINISHER, cancellation_id)
    with Registry.open(paths) as registry:
        CancellationTracker(registry).hand_over(cancellation_id, pid)


def _not_needed(tracker: CancellationTracker, job: JobRecord, state: State, options: CancelOptions, sig: str):
    """Record a cancel of a finished job: nothing to do, the job's real final state kept."""
    claim = tracker.claim(
        job.job_id, cloud=job.cloud, reason=options.reason, force=options.force, timeout_s=options.timeout_s,
        signal_name=sig, set_flag=False,
    )  # fmt: skip
    cid = claim.record.cancellation_id
    seq = tracker.begin_step(cid, "check_state")
    tracker.end_step(cid, seq, StepStatus.COMPLETED, f"the job is already {state.value}")
    return tracker.finish(
        cid, CancellationStatus.NOT_NEEDED, final_state=state.value, detail=f"the job is already {state.value}"
    )


def cancel_job(
    paths: Paths, ref: str, options: CancelOptions = CancelOptions(), *, caused_by: str | None = None
) -> CancellationRecord:
    """Cancel one job (a full id or unique prefix); returns its cancellation record."""
    sig, _ = options.checked()
    with Registry.open(paths) as registry:
        job = registry.resolve(ref)
        tracker = CancellationTracker(registry)
        view = view_of(job) if job.is_local else live_cloud_view(job, timeout_s=options.cloud_timeout_s)
        if view.state is State.UNKNOWN and not job.is_local:
            raise CloudUnreachableError(f"cannot cancel {job.job_id}: {view.detail}")
        if view.done and not tracker.active_for_job(job.job_id):
            record = _not_needed(tracker, job, view.state, options, sig.name)
            log_event(paths, "cancel_finished", job_id=job.job_id, cancellation_id=record.cancellation_id,
                      status=record.status.value, final_state=record.final_state)  # fmt: skip
            write_metrics(paths, registry, options.metrics_file)
            return record
        if options.cascade:
            # Dependants first: once flagged they can never start, whatever happens to this job.
            _cascade(paths, registry, job.job_id, options)
        claim = tracker.claim(
            job.job_id, cloud=job.cloud, reason=options.reason, force=options.force, timeout_s=options.timeout_s,
            signal_name=sig.name, caused_by=caused_by,
        )  # fmt: skip
        if not claim.owner:
            record = _join(tracker, claim.record.cancellation_id)
        else:
            run = _Run(paths, registry, claim.record)
            if not job.is_local:
                record = run.cancel_on_cloud(run.job(), view, wait=options.wait)
            elif claim.record.steps:  # taken over from an owner that died: carry on where it stopped
                record = run.finish_local()
            else:
                log_event(paths, "cancel_requested", job_id=job.job_id, cancellation_id=claim.record.cancellation_id,
                          reason=options.reason, force=options.force, timeout_s=options.timeout_s,
                          signal=sig.name, caused_by=caused_by)  # fmt: skip
                with run.step("check_state") as out:
                    out["detail"] = f"the job is {view.state.value}" + (f" (pid {job.pid})" if job.pid else "")
                record = run.start_local(sig, detached_finish=not options.wait)
        write_metrics(paths, registry, options.metrics_file)
        return record


def _cascade(paths: Paths, registry: Registry, job_id: str, options: CancelOptions) -> list[CancellationRecord]:
    """Cancel every job waiting on ``job_id``, directly or transitively, each caused by the job it waits on."""
    order: list[tuple[str, str]] = []  # (dependant, caused_by), breadth first
    frontier, seen = [job_id], {job_id}
    while frontier:
        parent = frontier.pop(0)
        for dependant in registry.dependants_of(parent):
            if dependant not in seen:
                seen.add(dependant)
                order.append((dependant, parent))
                frontier.append(dependant)
    quiet = dataclasses.replace(options, cascade=False, metrics_file=None)
    records = []
    # Deepest first: a job whose own dependency were cancelled first could end
    # by itself ("dependency cancelled") before its cascade record was made.
    for dependant, parent in reversed(order):
        record = registry.get(dependant)
        if record is None or view_of(record).done:
            continue
        records.append(cancel_job(paths, dependant, quiet, caused_by=parent))
    return records


def _join(tracker: CancellationTracker, cancellation_id: str) -> CancellationRecord:
    """Wait for the cancellation another process runs, and report the same record."""
    while True:
        record = tracker.get(cancellation_id)
        assert record is not None
        if record.status.finished:
            return record
        time.sleep(POLL_S * 5)


@dataclass(frozen=True)
class BulkOutcome:
    job_ref: str
    record: CancellationRecord | None
    error: OumiJobsError | None


def cancel_jobs(
    paths: Paths,
    refs: Sequence[str],
    options: CancelOptions = CancelOptions(),
    *,
    all_jobs: bool = False,
    states: Sequence[str] = (),
) -> list[BulkOutcome]:
    """Cancel several jobs in parallel; every job is reported, failures included."""
    options.checked()
    if all_jobs:

        wanted = parse_states(list(states)) or [State.PENDING, State.RUNNING, State.CANCELLING]
        refs = [view.job_id for view in list_jobs(paths, states=wanted)]
    elif states:
        raise UsageError("--state goes with --all")
    if not refs:
        return []
    with Registry.open(paths) as registry:
        job_ids = list(dict.fromkeys(registry.resolve(ref).job_id for ref in refs))  # all resolve, or none is touched

    def one(job_id: str) -> BulkOutcome:
        try:
            return BulkOutcome(job_id, cancel_job(paths, job_id, options), None)
        except OumiJobsError as exc:
            return BulkOutcome(job_id, None, exc)

    with ThreadPoolExecutor(max_workers=min(16, len(job_ids))) as pool:
        return list(pool.map(one, job_ids))


def cancellation_status(paths: Paths, ref: str) -> CancellationRecord:
    with Registry.open(paths) as registry:
        try:
            job_id = registry.resolve(ref).job_id
        except OumiJobsError:
            job_id = ref  # a pruned job keeps its cancellation history
        return CancellationTracker(registry).latest_for_job(job_id)


def follow_cancellation(paths: Paths, ref: str, *, interval: float = 0.25) -> Iterator[CancellationRecord]:
    while True:
        record = cancellation_status(paths, ref)
        yield record
        if record.status.finished:
            return
        time.sleep(interval)


def cancellation_history(
    paths: Paths, *, limit: int = 20, offset: int = 0, job: str | None = None, status: str | None = None
) -> list[CancellationRecord]:
    with Registry.open(paths) as registry:
        job_id = None
        if job is not None:
            try:
                job_id = registry.resolve(job).job_id
            except OumiJobsError:
                job_id = job
        return CancellationTracker(registry).history(limit=limit, offset=offset, job_id=job_id, status=status)
