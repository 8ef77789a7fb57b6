"""The documents of the registry's upkeep: ``prune``, ``import-registry``, ``registry check`` and ``recover``."""

from __future__ import annotations

from typing import Any

from oumi_jobs.legacy import ImportResult
from oumi_jobs.prune import PruneResult
from oumi_jobs.registry_repair import Recovery, RegistryCheck
from oumi_jobs.render.base import SCHEMA_VERSION


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
