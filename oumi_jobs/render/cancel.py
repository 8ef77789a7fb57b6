"""The documents of cancellation: one cancellation, one job of a cancel of several, ``cancel --down``."""

from __future__ import annotations

from typing import Any

from oumi_jobs.cancel.request import CancelResult
from oumi_jobs.cancel.service import BulkOutcome
from oumi_jobs.clusters import CancelThenDown
from oumi_jobs.render.base import SCHEMA_VERSION
from oumi_jobs.render.clusters import cluster_action_document
from oumi_jobs.render.outcome import Outcome
from oumi_jobs.store.cancellations import CancellationRecord, CancellationStatus


def cancellation_document(record: CancellationRecord) -> dict[str, Any]:
    """The cancellation object of the JSON contract."""
    return {
        "schema_version": SCHEMA_VERSION,
        "cancellation_id": record.cancellation_id,
        "job_id": record.job_id,
        "cloud": record.cloud,
        "status": record.status.value,
        "reason": record.reason,
        "force": record.force,
        "signal": record.signal,
        "timeout_s": record.timeout_s,
        "requested_at": record.requested_at,
        "finished_at": record.finished_at,
        "duration_s": record.duration_s,
        "final_state": record.final_state,
        "caused_by": record.caused_by,
        "survivors": list(record.survivors),
        "runners_signalled": record.runners_signalled,
        "detail": record.detail,
        "steps": [
            {
                "name": step.name,
                "status": step.status.value,
                "started_at": step.started_at,
                "ended_at": step.ended_at,
                "detail": step.detail,
            }
            for step in record.steps
        ],
    }


def bulk_document(outcome: BulkOutcome) -> dict[str, Any]:
    """One job of a cancel of several: its cancellation, or the error that kept it from one."""
    if outcome.record is not None:
        return cancellation_document(outcome.record)
    return {
        "schema_version": SCHEMA_VERSION,
        "job_id": outcome.job_ref,
        "status": "error",
        "error": str(outcome.error),
        "exit_code": outcome.error.exit_code if outcome.error else None,
    }


def cancel_down_document(outcome: CancelThenDown) -> dict[str, Any]:
    """``cancel --down``: the cancellation, plus the down of the cluster (null) or why it was left up (null)."""
    return cancellation_document(outcome.cancellation) | {
        "down": cluster_action_document(outcome.down) if outcome.down is not None else None,
        "left_up": outcome.left_up,
    }


def cancel_document(result: CancelResult) -> Any:
    """``cancel``'s document: a cancellation, a list of one per job (several), or the cancellation and the down."""
    if result.then_down is not None:
        return cancel_down_document(result.then_down)
    if result.outcomes is not None:
        return [bulk_document(o) for o in result.outcomes]
    return cancellation_document(result.records[0])


def cancel_outcome(result: CancelResult) -> Outcome:
    """A cancel's envelope: side outputs that failed are warnings; a job that had already ended is a conflict
    (exit 4) with its line, whatever the format."""
    records = result.records
    return Outcome(
        (lambda: cancel_document(result)) if result.outcomes is not None else cancel_document(result),
        warnings=tuple(w for record in records for w in record.warnings),
        errors=tuple(
            f"job {record.job_id} is already {record.final_state}; nothing to cancel"
            for record in records
            if record.status == CancellationStatus.NOT_NEEDED
        ),
        exit_code=result.exit_code,
    )
