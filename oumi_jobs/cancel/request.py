"""One cancel, as every front end asks for it: :class:`CancelRequest`, checked and run by :func:`run`.

The command line's ``cancel`` and the REST API's cancel endpoint both build a
request and hand it here, so which combinations of jobs, identity, ``--all``
and ``--down`` make sense is decided once.  It sits above the service and
``clusters`` because a cancel with ``--down`` goes on to tear the cluster down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from oumi_jobs.cancel import service
from oumi_jobs.cancel.service import BulkOutcome, CancelOptions
from oumi_jobs.clusters import CancelThenDown, cancel_then_down
from oumi_jobs.errors import UsageError
from oumi_jobs.exits import bulk_cancel_exit_code, cancellation_exit_code
from oumi_jobs.external import CloudIdentity
from oumi_jobs.paths import Paths
from oumi_jobs.store.cancellations import CancellationRecord


@dataclass(frozen=True)
class CancelRequest:
    """Which jobs to cancel (ids or prefixes, one cloud identity, or ``--all`` with states) and how."""

    jobs: tuple[str, ...] = ()
    cloud: str | None = None  # with cluster and launcher_id: a job by its cloud identity
    cluster: str | None = None
    launcher_id: str | None = None
    all_jobs: bool = False
    states: tuple[str, ...] = ()  # with all_jobs only
    down: bool = False  # then tear the one job's cluster down
    options: CancelOptions = field(default_factory=CancelOptions)


class Scope(str, Enum):
    ONE = "one"
    SEVERAL = "several"
    THEN_DOWN = "then_down"


@dataclass(frozen=True)
class CancelTarget:
    """A checked request: what it cancels (``job``: the one job, by reference or identity)."""

    scope: Scope
    job: str | CloudIdentity | None = None


def check(request: CancelRequest) -> CancelTarget:
    """The request's target, or a :class:`UsageError` (exit 2) naming the combination that makes no sense."""
    refs = list(request.jobs)
    identity = CloudIdentity.from_options(refs, request.cloud, request.cluster, request.launcher_id)
    if identity is not None and request.all_jobs:
        raise UsageError("name a job by its identity or use --all, not both")
    if not refs and not request.all_jobs and identity is None:
        raise UsageError("name the jobs to cancel, or use --all")
    if refs and request.all_jobs:
        raise UsageError("name jobs or use --all, not both")
    if request.down:
        if len(refs) != 1 or identity is not None:
            raise UsageError("cancel --down takes one job, by its id")
        return CancelTarget(Scope.THEN_DOWN, refs[0])
    if identity is not None or len(refs) == 1:
        return CancelTarget(Scope.ONE, identity if identity is not None else refs[0])
    return CancelTarget(Scope.SEVERAL)


@dataclass(frozen=True)
class CancelResult:
    """What a cancel did: exactly one of ``record`` (one job), ``outcomes`` (several) or ``then_down``."""

    record: CancellationRecord | None = None
    outcomes: tuple[BulkOutcome, ...] | None = None
    then_down: CancelThenDown | None = None

    @property
    def records(self) -> list[CancellationRecord]:
        """Every cancellation it recorded (not the jobs that could not be cancelled)."""
        if self.then_down is not None:
            return [self.then_down.cancellation]
        if self.outcomes is not None:
            return [o.record for o in self.outcomes if o.record is not None]
        return [self.record] if self.record is not None else []

    @property
    def exit_code(self) -> int:
        """README "Exit codes": 4 nothing to cancel, 6 survivors, 1 failed; the worst of several."""
        if self.outcomes is not None:
            return bulk_cancel_exit_code(self.outcomes)
        return cancellation_exit_code(self.records[0])


def run(paths: Paths, request: CancelRequest) -> CancelResult:
    """Check ``request`` (see :func:`check`) and run it: one job, several in parallel, or one then its cluster."""
    target = check(request)
    if target.scope is Scope.THEN_DOWN:
        assert isinstance(target.job, str)
        return CancelResult(then_down=cancel_then_down(paths, target.job, request.options))
    if target.scope is Scope.ONE:
        assert target.job is not None
        return CancelResult(record=service.cancel_job(paths, target.job, request.options))
    outcomes = service.cancel_jobs(
        paths, list(request.jobs), request.options, all_jobs=request.all_jobs, states=request.states
    )
    return CancelResult(outcomes=tuple(outcomes))
