"""The versioned JSON documents of oumi-jobs: the contract scripts rely on.

``--json`` prints them, and anything else that serves jobs (a REST server)
must serve the very same objects, so they are built here, apart from the
command line and from any rendering.  Every object carries ``schema_version``
(README "JSON"); tests/test_json_contract.py pins the keys.

Plain dictionaries of plain values; :func:`encode_json` is their compact encoding.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: building a document needs none of these modules
    from oumi_jobs.cancel.service import BulkOutcome
    from oumi_jobs.clusters import CancelThenDown, ClusterAction, ClusterRow
    from oumi_jobs.cost_report import CostReport
    from oumi_jobs.legacy import ImportResult
    from oumi_jobs.plots import Plot
    from oumi_jobs.preflight import ConfigCheck
    from oumi_jobs.progress import Progress
    from oumi_jobs.prune import PruneResult
    from oumi_jobs.registry_repair import Recovery, RegistryCheck
    from oumi_jobs.store.cancellations import CancellationRecord
    from oumi_jobs.submitting import DryRun
    from oumi_jobs.views import JobView

SCHEMA_VERSION = 1


def encode_json(document: Any) -> str:
    """One document as compact JSON text, UTF-8 characters kept (as SQLite's ``json_object`` writes them)."""
    try:
        import orjson  # light, and 4-5x faster than the standard library on thousands of documents
    except ImportError:
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return orjson.dumps(document).decode()


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
        # Last, so that the lean listing can append it to a document SQLite built (store/listing.py).
        "progress": progress_document(view.progress),
    }


def progress_document(progress: Progress | None) -> dict[str, Any] | None:
    """The ``progress`` object of a job document: its keys are :class:`~oumi_jobs.progress.Progress`'s fields
    (the progress cache keeps the same dictionary, which the lean listing appends as it is); None when unknown."""
    return None if progress is None else asdict(progress)


def plot_document(plot: Plot, image: Path | None = None) -> dict[str, Any]:
    """``plot``: each series (one per job and metric) with its points, and the image written (null: none)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "metrics": list(plot.metrics),
        "done": plot.done,
        "image": str(image) if image is not None else None,
        "series": [
            {
                "job_id": s.job_id,
                "metric": s.metric,
                "source": s.source,
                "steps": list(s.steps),
                "values": list(s.values),
                "metrics": list(s.metrics),
            }
            for s in plot.series
        ],  # fmt: skip
    }


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


def prune_document(result: PruneResult) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "removed": result.removed,
        "kept_running": result.kept_running,
        "dry_run": result.dry_run,
        "older_than_s": result.older_than_s,
        "logs_removed": result.logs_removed,
    }


def import_document(result: ImportResult) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "imported": result.imported,
        "already_present": result.already_present,
        "skipped": [{"index": s.index, "job_id": s.job_id, "reason": s.reason} for s in result.skipped],
    }


def registry_check_document(check: RegistryCheck) -> dict[str, Any]:
    """``registry check``: ``ok`` false with ``problems`` when the registry is damaged (exit 1)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "path": str(check.path),
        "exists": check.exists,
        "ok": check.ok,
        "problems": list(check.problems),
        "migrations_applied": list(check.migrations_applied),
        "migrations_pending": list(check.migrations_pending),
        "jobs": check.jobs,
        "cancellations": check.cancellations,
    }


def recovery_document(recovery: Recovery) -> dict[str, Any]:
    """``registry recover``: where the damaged file went, and per table what was saved and lost (null: unknown)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "path": str(recovery.path),
        "moved_to": [str(p) for p in recovery.moved_to],
        "problems": list(recovery.problems),
        "saved_jobs": recovery.saved_jobs,
        "lost_rows": recovery.lost_rows,
        "tables": [
            {
                "table": t.table,
                "saved": t.saved,
                "lost": t.lost,
                "errors": list(t.errors),
                "lost_keys": list(t.lost_keys),
            }
            for t in recovery.tables
        ],
    }


def log_document(job_id: str | None, stream: str, path: Path | None, text: str) -> dict[str, Any]:
    """A job's log as one document (``path`` is None for a cloud job, whose log is a stream; ``job_id`` None
    for a job launched elsewhere that is not registered)."""
    return {"schema_version": SCHEMA_VERSION, "job_id": job_id, "stream": stream,
            "path": str(path) if path else None, "text": text}  # fmt: skip


def cluster_document(row: ClusterRow) -> dict[str, Any]:
    """One cluster of ``clusters``: what its cloud says (null where it does not) and our jobs there."""
    return {
        "schema_version": SCHEMA_VERSION,
        "cloud": row.cloud,
        "cluster": row.cluster,
        "state": row.state,
        "cost_per_hour": row.cost_per_hour,
        "autostop_minutes": row.autostop_minutes,
        "autodown": row.autodown,
        "running_jobs": list(row.running),
        "queued_jobs": list(row.queued),
        "as_of": row.as_of,
    }


def cluster_action_document(action: ClusterAction) -> dict[str, Any]:
    """``stop``/``down``: ``acted`` false where the cloud does nothing for it (``detail`` says so)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "cloud": action.cloud,
        "cluster": action.cluster,
        "action": action.action,
        "acted": action.acted,
        "detail": action.detail,
        "cancelled_jobs": list(action.cancelled_jobs),
        "as_of": action.as_of,
    }


def cancel_down_document(outcome: CancelThenDown) -> dict[str, Any]:
    """``cancel --down``: the cancellation, plus the down of the cluster (null) or why it was left up (null)."""
    return cancellation_document(outcome.cancellation) | {
        "down": cluster_action_document(outcome.down) if outcome.down is not None else None,
        "left_up": outcome.left_up,
    }


def cost_document(report: CostReport) -> dict[str, Any]:
    """``cost``: estimated sums (``estimate`` is always true), null where no job of a group was priced."""
    return {
        "schema_version": SCHEMA_VERSION,
        "estimate": True,
        "since": report.since,
        "by": report.by,
        "groups": [
            {"group": g.group, "jobs": g.jobs, "priced_jobs": g.priced_jobs, "cost_so_far": g.cost_so_far}
            for g in report.groups
        ],
        "jobs": report.jobs,
        "unpriced_jobs": report.unpriced_jobs,
        "total_cost_so_far": report.total_cost_so_far,
        "unreachable": dict(report.unreachable),
        "as_of": report.as_of,
    }


def check_document(check: ConfigCheck) -> dict[str, Any]:
    """``check``: ``ok`` false with one ``{path, problem}`` per problem (exit 2); ``path`` "" for the whole config."""
    return {
        "schema_version": SCHEMA_VERSION,
        "config_path": check.config_path,
        "kind": check.kind,
        "command": check.command,
        "cloud": check.cloud,
        "ok": check.ok,
        "problems": [{"path": p.path, "problem": p.problem} for p in check.problems],
    }


def dry_run_document(dry: DryRun) -> dict[str, Any]:
    """``submit --dry-run``: what would run, where, and what the checks found (``problems``: exit 2)."""
    plan = dry.plan
    local = dry.job_config is None
    return {
        "schema_version": SCHEMA_VERSION,
        "dry_run": True,
        "job_id": dry.job_id,
        "name": dry.request.name,
        "cloud": plan.cloud,
        "cluster": plan.cluster,
        "kind": plan.kind,
        "command": plan.command,
        "config_path": str(plan.config_path),
        "workdir": str(plan.workdir) if local else None,
        "argv": list(plan.argv) if local else None,
        "env": dict(plan.env_overrides) if local else None,
        "job_config": dry.job_config,
        "staged_config": dry.staged_config,
        "after": list(dry.request.after),
        "preflight": dry.checked,
        "ok": not dry.problems,
        "problems": [{"check": p.check, "path": p.path, "problem": p.problem} for p in dry.problems],
        "warnings": list(dry.warnings),
    }
