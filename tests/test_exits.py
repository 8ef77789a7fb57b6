"""The exit-code policy (README "Exit codes"), as pure functions: no job, no process, no output."""

from __future__ import annotations

import pytest

from oumi_jobs.cancel.service import BulkOutcome
from oumi_jobs.errors import ExitCode, JobNotFoundError
from oumi_jobs.exits import (
    bulk_cancel_exit_code,
    cancellation_exit_code,
    job_exit_code,
    sweep_cancel_exit_code,
    worst_exit_code,
)
from oumi_jobs.states import State
from oumi_jobs.store.cancellations import CancellationRecord, CancellationStatus

from .helpers import make_cancellation


def cancellation(status: CancellationStatus, survivors: tuple[int, ...] = ()) -> CancellationRecord:
    return make_cancellation(status=status, survivors=survivors)


@pytest.mark.parametrize(
    ("state", "code"),
    [(State.SUCCEEDED, 0), (State.CANCELLED, 4), (State.FAILED, 1), (State.LOST, 1), (State.UNKNOWN, 1)],
)
def test_a_followed_job_exits_with_its_outcome(state: State, code: int) -> None:
    assert job_exit_code(state) == code


@pytest.mark.parametrize(
    ("record", "code"),
    [
        (cancellation(CancellationStatus.COMPLETED), ExitCode.OK),
        (cancellation(CancellationStatus.IN_PROGRESS), ExitCode.OK),  # --no-wait: signalled, still going
        (cancellation(CancellationStatus.NOT_NEEDED), ExitCode.CONFLICT),
        (cancellation(CancellationStatus.FAILED), ExitCode.FAILURE),
        (cancellation(CancellationStatus.FAILED, survivors=(123,)), ExitCode.SURVIVORS),
    ],
)
def test_a_cancellation_exits_with_its_outcome(record: CancellationRecord, code: int) -> None:
    assert cancellation_exit_code(record) == code


def test_the_most_serious_outcome_decides() -> None:
    assert worst_exit_code([]) == ExitCode.OK
    assert worst_exit_code([0, 4, 3]) == ExitCode.NOT_FOUND
    assert worst_exit_code([4, 5, 1]) == ExitCode.FAILURE
    assert worst_exit_code([1, 6, 0]) == ExitCode.SURVIVORS


def test_a_cancel_of_several_takes_errors_and_cancellations_together() -> None:
    done = BulkOutcome("job-1", cancellation(CancellationStatus.COMPLETED), None)
    ended = BulkOutcome("job-2", cancellation(CancellationStatus.NOT_NEEDED), None)
    missing = BulkOutcome("job-3", None, JobNotFoundError("no job job-3"))
    assert bulk_cancel_exit_code([]) == ExitCode.OK
    assert bulk_cancel_exit_code([done]) == ExitCode.OK
    assert bulk_cancel_exit_code([done, ended]) == ExitCode.CONFLICT
    assert bulk_cancel_exit_code([ended, missing, done]) == ExitCode.NOT_FOUND
    # A sweep is cancelled as a whole: a child that had already ended is no conflict there.
    assert sweep_cancel_exit_code([done, ended]) == ExitCode.OK
    assert sweep_cancel_exit_code([ended, missing]) == ExitCode.NOT_FOUND
    survived = BulkOutcome("job-4", cancellation(CancellationStatus.COMPLETED, survivors=(7,)), None)
    assert sweep_cancel_exit_code([ended, survived]) == cancellation_exit_code(survived.record)  # type: ignore[arg-type]
