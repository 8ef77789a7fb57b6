"""The cancellation service: cancel one job or many, safely and auditably.

Live state is checked first (a finished job is reported as such, not
"cancelled").  Then one process owns the cancellation (a second ``cancel``
joins it) and runs the job's flow: :mod:`~oumi_jobs.cancel.local_flow` (the
graceful signal, a wait of up to ``timeout_s``, SIGKILL, a re-scan that must
find nothing) or :mod:`~oumi_jobs.cancel.cloud_flow` (the launcher's cancel,
then the job's status until its cloud reports it ended).  Every step is
written to the cancellation record as it happens and to the event log, by
:mod:`~oumi_jobs.cancel.recorder`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from signal import Signals

from oumi_jobs.cancel import takeover
from oumi_jobs.cancel.cloud_flow import CloudFlow
from oumi_jobs.cancel.local_flow import LocalFlow
from oumi_jobs.cancel.recorder import Recorder
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.errors import (
    CancelInterrupted,
    CloudUnreachableError,
    JobNotFoundError,
    OumiJobsError,
    SideOutputError,
    UsageError,
)
from oumi_jobs.events import log_event
from oumi_jobs.external import CloudIdentity, adopt_by_identity, registered
from oumi_jobs.listing import list_jobs
from oumi_jobs.local import terminator
from oumi_jobs.metrics import write_metrics
from oumi_jobs.paths import Paths
from oumi_jobs.polling import poll_until
from oumi_jobs.states import State, parse_states
from oumi_jobs.store.cancellations import (
    CancellationRecord,
    CancellationStatus,
    CancellationTracker,
    Claim,
    StepStatus,
)
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.views import JobView, live_cloud_view, view_of

DEFAULT_TIMEOUT_S = 30.0
# A cancel that joins another process's cancellation reads its record this often.
JOIN_POLL_S = 0.1


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

    def checked(self) -> tuple[Signals, float]:
        if self.timeout_s < 0:
            raise UsageError("--timeout must not be negative")
        return terminator.parse_signal(self.signal), float(self.timeout_s)


def _not_needed(
    tracker: CancellationTracker, job: JobRecord, state: State, options: CancelOptions, sig: str
) -> CancellationRecord:
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
    paths: Paths, ref: str | CloudIdentity, options: CancelOptions = CancelOptions(), *, caused_by: str | None = None
) -> CancellationRecord:
    """Cancel one job (a full id or unique prefix, or a cloud job's identity); returns its cancellation record.

    A job named by its identity that the registry does not know (launched
    elsewhere) is registered first, as an external job (see
    :mod:`oumi_jobs.external`); one its cloud does not know raises
    :class:`JobNotFoundError`.  Ctrl-C while this process runs the
    cancellation hands the rest to a detached finisher and raises
    :class:`CancelInterrupted` saying so.
    """
    if isinstance(ref, CloudIdentity):
        options.checked()  # a bad option is refused before any cloud is asked or anything registered
        ref = adopt_by_identity(paths, ref, cloud_timeout_s=options.cloud_timeout_s).job_id
    record = _cancel_one(paths, ref, options, caused_by)
    return _with_warnings(record, _write_metrics(paths, options.metrics_file))


def _write_metrics(paths: Paths, extra_file: Path | None) -> tuple[str, ...]:
    """Once per command, after all its cancellations: the metrics are derived from every record and job.

    A file that cannot be written is a warning that goes with the result, not its outcome: the warnings.
    """
    try:
        with Registry.open(paths) as registry:
            write_metrics(paths, registry, extra_file)
    except SideOutputError as exc:
        return (str(exc),)
    return ()


def _with_warnings(record: CancellationRecord, warnings: tuple[str, ...]) -> CancellationRecord:
    return dataclasses.replace(record, warnings=(*record.warnings, *warnings)) if warnings else record


def _cancel_one(paths: Paths, ref: str, options: CancelOptions, caused_by: str | None) -> CancellationRecord:
    """One job's cancellation (and its cascade), without writing the metrics."""
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
            return record
        if options.cascade:
            # Dependants first: once flagged they can never start, whatever happens to this job.
            _cascade(paths, registry, job.job_id, options)
        claim = tracker.claim(
            job.job_id, cloud=job.cloud, reason=options.reason, force=options.force, timeout_s=options.timeout_s,
            signal_name=sig.name, caused_by=caused_by,
        )  # fmt: skip
        if not claim.owner:
            # A job still being launched: its owner (the launching process, a finisher) may wait on launcher.up
            # for hours, so a second cancel waits no longer than its own timeout, as the first did.
            launching = not job.is_local and not job.launcher_job_id
            return _join(tracker, claim.record.cancellation_id, options.timeout_s if launching else None)
        recorder = Recorder(paths, registry, claim.record, cloud_timeout_s=options.cloud_timeout_s)
        try:
            return _run(paths, recorder, claim, view, sig, options, caused_by)
        except KeyboardInterrupt:
            raise _interrupted(recorder) from None


def _interrupted(recorder: Recorder) -> CancelInterrupted:
    """Ctrl-C: the rest goes to a detached finisher (or, where none starts, the record ends failed)."""
    if recorder.handed_to is not None:  # already another process's (the launching process's) to finish
        return CancelInterrupted(
            f"interrupted: process {recorder.handed_to} finishes the cancellation of {recorder.record.job_id}; "
            f"follow it with `oumi-jobs cancel-status {recorder.record.job_id} --watch`"
        )
    record = takeover.hand_on(recorder, "interrupted (Ctrl-C)")
    job_id = record.job_id
    if record.status.finished:
        return CancelInterrupted(f"interrupted: cancellation {record.cancellation_id} of {job_id} "
                                 f"ended {record.status.value}: {record.detail}")  # fmt: skip
    return CancelInterrupted(
        f"interrupted: the cancellation of {job_id} goes on in a detached process; "
        f"follow it with `oumi-jobs cancel-status {job_id} --watch`"
    )


def _run(
    paths: Paths,
    recorder: Recorder,
    claim: Claim,
    view: JobView,
    sig: Signals,
    options: CancelOptions,
    caused_by: str | None,
) -> CancellationRecord:
    """Carry out the cancellation this process owns: the job's cloud flow or its local flow."""
    job = recorder.job()
    if claim.dead_owner is not None:  # taken over from an owner that died: carry on where it stopped
        how = "; --force: SIGKILL now" if options.force and job.is_local else ""
        recorder.note("take_over", f"its owner (pid {claim.dead_owner}) died before it ended; this cancel "
                                   f"carries it on{how}")  # fmt: skip
        return takeover.resume(recorder)
    if not job.is_local:
        return CloudFlow(recorder).start(job, view, wait=options.wait)
    log_event(paths, "cancel_requested", job_id=job.job_id, cancellation_id=claim.record.cancellation_id,
              reason=options.reason, force=options.force, timeout_s=options.timeout_s,
              signal=sig.name, caused_by=caused_by)  # fmt: skip
    recorder.note("check_state", f"the job is {view.state.value}" + (f" (pid {job.pid})" if job.pid else ""))
    return LocalFlow(recorder).start(sig, detached_finish=not options.wait)


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
        records.append(_cancel_one(paths, dependant, quiet, parent))
    return records


def _join(tracker: CancellationTracker, cancellation_id: str, limit_s: float | None) -> CancellationRecord:
    """Wait for the cancellation another process runs (at most ``limit_s``), and report the same record."""

    def read() -> CancellationRecord:
        record = tracker.get(cancellation_id)
        assert record is not None
        return record

    return poll_until(limit_s, read, JOIN_POLL_S, until=lambda record: record.status.finished)


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
        refs = [view.job_id for view in list_jobs(paths, states=wanted, with_progress=False)]
    elif states:
        raise UsageError("--state goes with --all")
    if not refs:
        return []
    with Registry.open(paths) as registry:
        job_ids = list(dict.fromkeys(registry.resolve(ref).job_id for ref in refs))  # all resolve, or none is touched

    def one(job_id: str) -> BulkOutcome:
        try:
            return BulkOutcome(job_id, _cancel_one(paths, job_id, options, None), None)
        except OumiJobsError as exc:
            return BulkOutcome(job_id, None, exc)

    with ThreadPoolExecutor(max_workers=min(16, len(job_ids))) as pool:
        outcomes = list(pool.map(one, job_ids))
    warnings = _write_metrics(paths, options.metrics_file)  # once for the lot, not once per job
    return [dataclasses.replace(o, record=_with_warnings(o.record, warnings)) if o.record else o for o in outcomes]


def cancellation_status(paths: Paths, ref: str | CloudIdentity) -> CancellationRecord:
    """The job's latest cancellation; one whose owner died is first handed to a detached finisher.

    A cloud identity names the registered job with that identity (no cloud is asked).
    """
    if isinstance(ref, CloudIdentity):
        job = registered(paths, ref)
        if job is None:
            raise JobNotFoundError(f"no job {ref.launcher_job_id} of {ref.cluster} ({ref.cloud}) in the registry")
        ref = job.job_id
    with Registry.open(paths) as registry:
        try:
            job_id = registry.resolve(ref).job_id
        except JobNotFoundError:
            job_id = ref  # a pruned job keeps its cancellation history (an ambiguous prefix is still an error)
        else:
            takeover.adopt_orphan(paths, registry, job_id)
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
            except JobNotFoundError:
                job_id = job  # a pruned job keeps its history; an ambiguous prefix is still an error
        return CancellationTracker(registry).history(limit=limit, offset=offset, job_id=job_id, status=status)
