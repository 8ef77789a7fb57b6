"""The documents of clusters and their cost: ``clusters``, ``stop``/``down``, ``cost``."""

from __future__ import annotations

from typing import Any

from oumi_jobs.clusters import ClusterAction, ClusterRow
from oumi_jobs.cost_report import CostReport
from oumi_jobs.render.base import SCHEMA_VERSION


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
