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
from oumi_jobs.progress import Progress
from oumi_jobs.views import JobView

__all__ = ["SCHEMA_VERSION", "encode_json", "failure_document", "job_document", "json_array", "progress_document"]


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
        "failure": failure_document(view.failure),
        # Last, so that the lean listing can append it to a document SQLite built (store/listing.py).
        "progress": progress_document(view.progress),
    }


def failure_document(failure: Failure | None) -> dict[str, Any] | None:
    """The ``failure`` object of a job document: ``class``, ``cause``, ``hint``, ``evidence`` (SPEC "Failures
    and retries"); the registry stores this very object, which the lean listing projects as it is."""
    return None if failure is None else failure.as_dict()


def progress_document(progress: Progress | None) -> dict[str, Any] | None:
    """The ``progress`` object of a job document: its keys are :class:`~oumi_jobs.progress.Progress`'s fields
    (the registry keeps the same dictionary of a finished local job, which the lean listing projects as it
    is); None when unknown."""
    return None if progress is None else asdict(progress)
