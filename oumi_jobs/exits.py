"""The exit-code policy: which :class:`~oumi_jobs.errors.ExitCode` an outcome means.

README "Exit codes" in code.  Errors carry their own code
(:attr:`OumiJobsError.exit_code`); these are the outcomes that are not errors
but still mean something to a script: how a followed job ended, how a
cancellation went, and which of several outcomes decides.  Pure functions:
nothing here prints, so the CLI and any other front end (a REST server) give
the same answer.  It lives beside errors.py rather than in it because it reads
states and cancellation records, whose modules import errors.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from oumi_jobs.errors import ExitCode
from oumi_jobs.states import State
from oumi_jobs.store.cancellations import CancellationRecord, CancellationStatus

if TYPE_CHECKING:  # annotations only: the service imports far more than this policy needs
    from oumi_jobs.cancel.service import BulkOutcome
    from oumi_jobs.waiting import WaitResult

# Most serious first: several cancels exit with the first of these any of them had.
SEVERITY = (ExitCode.SURVIVORS, ExitCode.FAILURE, ExitCode.CLOUD_UNREACHABLE, ExitCode.NOT_FOUND, ExitCode.CONFLICT)

# `wait`: a job that ended badly, then one that was cancelled, then a wait that ran out.
WAIT_SEVERITY = (ExitCode.FAILURE, ExitCode.CONFLICT, ExitCode.TIMEOUT)


def job_exit_code(state: State) -> int:
    """How a job that was followed to its end ended (``submit --wait``): 0 succeeded, 4 cancelled, else 1."""
    if state is State.SUCCEEDED:
        return ExitCode.OK
    if state is State.CANCELLED:
        return ExitCode.CONFLICT
    return ExitCode.FAILURE


def wait_exit_code(result: WaitResult) -> int:
    """``wait JOB...``: 1 if any job failed or was lost, else 4 if any was cancelled, else 7 if the wait timed
    out with jobs not done, else 0 (every job succeeded).

    An outcome that is known wins over one that is not: a job that failed decides whatever the others would
    still do, so 7 means that none of the jobs has ended badly yet.
    """
    codes = [job_exit_code(view.state) for view in result.views if view.done]
    if result.timed_out and result.pending:
        codes.append(ExitCode.TIMEOUT)
    return next((code for code in WAIT_SEVERITY if code in codes), ExitCode.OK)


def cancellation_exit_code(record: CancellationRecord) -> int:
    """4 when there was nothing to cancel, 6 when processes survived it, 1 when it failed otherwise, else 0."""
    if record.status == CancellationStatus.NOT_NEEDED:
        return ExitCode.CONFLICT
    if record.status == CancellationStatus.FAILED:
        return ExitCode.SURVIVORS if record.survivors else ExitCode.FAILURE
    return ExitCode.OK


def worst_exit_code(codes: Iterable[int]) -> int:
    """Several outcomes: the most serious decides (0 when none is in :data:`SEVERITY`)."""
    present = set(codes)
    return next((code for code in SEVERITY if code in present), ExitCode.OK)


def bulk_cancel_exit_code(outcomes: Sequence[BulkOutcome]) -> int:
    """A cancel of several jobs: the worst of each job's error or cancellation."""
    return worst_exit_code(
        outcome.error.exit_code if outcome.error is not None else cancellation_exit_code(outcome.record)  # type: ignore[arg-type]
        for outcome in outcomes
    )


def sweep_cancel_exit_code(outcomes: Sequence[BulkOutcome]) -> int:
    """``cancel SWEEP``: the worst of its children's cancels; a child that had already ended is no conflict
    there (a sweep is cancelled as a whole, whatever part of it is over)."""
    return worst_exit_code(
        [
            outcome.error.exit_code if outcome.error is not None else cancellation_exit_code(outcome.record)  # type: ignore[arg-type]
            for outcome in outcomes
            if outcome.record is None or outcome.record.status is not CancellationStatus.NOT_NEEDED
        ]
    )


def problems_exit_code(problems: Sequence[object]) -> int:
    """``check`` and ``submit --dry-run``: 2 (a usage error: the config or the launch is wrong) when they
    found problems, else 0."""
    return ExitCode.USAGE if problems else ExitCode.OK
