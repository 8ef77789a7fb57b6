"""What every JSON document shares: the schema version, the compact encoding, and the job object.

The job object is carried by ``status``, ``submit``, ``wait`` and ``list``
alike, and the lean ``list --json`` (finished jobs read as SQLite-built JSON)
must build it too, so it lives here with only views and progress beneath it.
Every object carries ``schema_version`` (README "JSON");
tests/test_json_contract.py pins the keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from oumi_jobs.contract import SCHEMA_VERSION
from oumi_jobs.failures import Failure
from oumi_jobs.policy import JobPolicy
from oumi_jobs.progress import Progress
from oumi_jobs.views import JobView

__all__ = [
    "SCHEMA_VERSION",
    "attempts_document",
    "encode_json",
    "failure_document",
    "job_document",
    "json_array",
    "progress_document",
]


def encode_json(document: Any) -> str:
    """One document as compact JSON text, UTF-8 characters kept (as SQLite's ``json_object`` writes them)."""
    try:
        import orjson  # light, and 4-5x faster than the standard library on thousands of documents
    except ImportError:
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return orjson.dumps(document).decode()


def json_array(texts: Iterable[str]) -> str:
    """Documents already encoded (the lean listing's, say) as one JSON array, without decoding them again."""
    return "[" + ",".join(texts) + "]"


def job_document(view: JobView) -> dict[str, Any]:
    """The job object of the JSON contract (SPEC "JSON contract")."""
    record = view.record
    return {
        "schema_version": SCHEMA_VERSION,
        "job_id": record.job_id or None,  # an external job has no oumi-jobs id
        "name": record.name,
        "state": view.state.value,
        "status": view.status,
        "done": view.done,
        "cloud": record.cloud,
        "cluster": record.cluster,
        "launcher_job_id": record.launcher_job_id,
        "command": record.command,
        "config_path": record.config_path,
        "model_name": record.model_name,
        "output_dir": record.output_dir,
        "submit_time": record.submit_time,
        "start_time": record.started_at,
        "end_time": record.end_time,
        "exit_code": record.exit_code,
        "exit_signal": record.exit_signal,
        "pid": record.pid,
        "containment": record.containment,
        "external": view.external,
        "cancel_requested": record.cancel_requested,
        "depends_on": list(record.depends_on),
        "detail": view.detail,
        "stdout_path": record.stdout_path,
        "stderr_path": record.stderr_path,
        "cost_per_hour": record.cost_per_hour,
        "cost_so_far": view.cost_so_far(),
        "sweep_id": record.sweep_id,
        "overrides": json.loads(record.overrides) if record.overrides else None,
        "as_of": view.as_of,
        "attempt": record.attempt,
        "max_attempts": max(JobPolicy.decode(record.policy).max_attempts, record.attempt),
        "attempts": attempts_document(view),
        "failure": failure_document(view.failure),
        # Last, so that the lean listing can append it to a document SQLite built (store/listing.py).
        "progress": progress_document(view.progress),
    }


# The resume check's keys in an attempt's entry (SPEC "Failures and retries"), in order.
RESUME_KEYS = ("resumed_from_step", "first_step", "redone_steps")


def attempts_document(view: JobView) -> list[dict[str, Any]]:
    """One entry per attempt, oldest first: those that ended and were retried as kept, then the current one
    as the job reads now (store/listing.py builds the same list)."""
    record = view.record
    entries = [
        _attempt_entry(a.attempt, a.state, a.start_time, a.end_time, a.exit_code, a.exit_signal,
                       json.loads(a.failure) if a.failure else None, a.resume)
        for a in record.earlier_attempts
    ]  # fmt: skip
    current = failure_document(view.failure)
    entries.append(
        _attempt_entry(record.attempt, view.state.value, record.started_at, record.end_time, record.exit_code,
                       record.exit_signal, current, record.resume)
    )  # fmt: skip
    return entries


def _attempt_entry(
    attempt: int, state: str, start: str | None, end: str | None, code: int | None, signum: int | None,
    failure: dict[str, Any] | None, resume: str | None,
) -> dict[str, Any]:  # fmt: skip
    checked: dict[str, Any] = json.loads(resume) if resume else {}
    return {
        "attempt": attempt, "state": state, "start_time": start, "end_time": end, "exit_code": code,
        "exit_signal": signum, "failure": failure, **{key: checked.get(key) for key in RESUME_KEYS},
    }  # fmt: skip


def failure_document(failure: Failure | None) -> dict[str, Any] | None:
    """The ``failure`` object of a job document: ``class``, ``cause``, ``hint``, ``evidence`` (SPEC "Failures
    and retries"); the registry stores this very object, which the lean listing projects as it is."""
    return None if failure is None else failure.as_dict()


def progress_document(progress: Progress | None) -> dict[str, Any] | None:
    """The ``progress`` object of a job document: its keys are :class:`~oumi_jobs.progress.Progress`'s fields
    (the registry keeps the same dictionary of a finished local job, which the lean listing projects as it
    is); None when unknown."""
    return None if progress is None else asdict(progress)
