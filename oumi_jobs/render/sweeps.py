"""The sweep documents of the JSON contract: a sweep, the ``sweeps`` listing and ``cancel SWEEP``.

Built from the core's results alone, as :mod:`oumi_jobs.render.base` builds a
job's; tests/test_json_contract.py pins the keys.
"""

from __future__ import annotations

from typing import Any

from oumi_jobs.render.base import SCHEMA_VERSION, encode_json, job_document, json_array
from oumi_jobs.render.cancel import bulk_document
from oumi_jobs.render.jobs import checked_outcome, checks_document, what_runs
from oumi_jobs.render.outcome import Outcome
from oumi_jobs.store.sweeps import SweepRecord
from oumi_jobs.sweeps.compare import CompareRow
from oumi_jobs.sweeps.plan import ChildPlan
from oumi_jobs.sweeps.service import SweepCancel, SweepDocuments, SweepDryRun, SweepStatus, SweepSummary
from oumi_jobs.views import JobView


def _head(sweep: SweepRecord) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "sweep_id": sweep.sweep_id,
        "name": sweep.name,
        "config_path": sweep.config_path,
        "cloud": sweep.cloud,
        "cluster": sweep.cluster,
        "size": sweep.size,
        "parallel": sweep.parallel,
        "submit_time": sweep.submit_time,
    }


def sweep_document(status: SweepStatus) -> dict[str, Any]:
    """A sweep: its counts by state, whether every child is done, and each child's job document, in order."""
    return _head(status.sweep) | {
        "counts": status.counts,
        "done": status.done,
        "children": [job_document(view) for view in status.children],
    }


def sweep_document_text(documents: SweepDocuments) -> str:
    """:func:`sweep_document` as JSON text, from the children read the lean way: the finished local children's
    documents as the store built them, joined as texts, never decoded (tests/test_listing.py checks both
    ways agree)."""
    head = _head(documents.sweep) | {"counts": documents.counts, "done": documents.done}
    children = [encode_json(job_document(c)) if isinstance(c, JobView) else c.text for c in documents.children]
    return encode_json(head)[:-1] + ',"children":' + json_array(children) + "}"


def sweep_dry_run_document(dry: SweepDryRun) -> dict[str, Any]:
    """``sweep --dry-run``: the sweep as it would be registered, what each child would run, and what the
    checks of the first child found (``problems``: exit 2), as ``submit --dry-run`` shows one job."""
    base = dry.base
    return {
        "schema_version": SCHEMA_VERSION,
        "dry_run": True,
        "sweep_id": dry.sweep_id,
        "name": dry.name,
        "config_path": str(base.config_path),
        "cloud": base.cloud,
        "cluster": dry.cluster,
        "kind": base.kind,
        "command": base.command,
        "size": len(dry.children),
        "parallel": dry.parallel,
        **checks_document(dry.checked, dry.problems, dry.warnings),
        "children": [_child_dry_run(child) for child in dry.children],
    }


def _child_dry_run(child: ChildPlan) -> dict[str, Any]:
    staged = {"path": str(child.staged[0]), "settings": dict(child.staged[1])} if child.staged else None
    return {
        "job_id": child.record.job_id,
        "overrides": dict(child.overrides),
        **what_runs(child.plan, child.job_config, staged),
        "after": list(child.record.depends_on),
    }


def sweep_dry_run_outcome(dry: SweepDryRun) -> Outcome:
    """``sweep --dry-run``: its document, its warnings, a line per problem, and exit 2 when there are any."""
    return checked_outcome(sweep_dry_run_document(dry), dry.warnings, dry.problems)


def sweep_summary_document(summary: SweepSummary) -> dict[str, Any]:
    """A sweep in the ``sweeps`` listing: the sweep document without its children."""
    return _head(summary.sweep) | {"counts": summary.counts, "done": summary.done}


def sweep_cancel_document(result: SweepCancel) -> dict[str, Any]:
    """``cancel SWEEP``: the children ended before they started, and the cancellation of each of the others."""
    return {
        "schema_version": SCHEMA_VERSION,
        "sweep_id": result.sweep_id,
        "cancelled_before_start": result.cancelled_before_start,
        "cancellations": [bulk_document(outcome) for outcome in result.outcomes],
    }


def compare_document(row: CompareRow) -> dict[str, Any]:
    """A row of ``compare SWEEP``: one child's overrides, state, and the last and best value of the metric."""
    return {
        "schema_version": SCHEMA_VERSION,
        "job_id": row.view.job_id,
        "overrides": row.overrides,
        "state": row.view.state.value,
        "metric": row.metric,
        "last": row.last,
        "best": row.best,
        "step": row.step,
    }
