"""The documents of the job commands besides the job object: ``check``, ``submit --dry-run``, ``logs``, ``plot``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from oumi_jobs.configs import LaunchPlan
from oumi_jobs.exits import problems_exit_code
from oumi_jobs.plots import Plot
from oumi_jobs.preflight import ConfigCheck, PreflightProblem
from oumi_jobs.render.base import SCHEMA_VERSION
from oumi_jobs.render.outcome import Outcome
from oumi_jobs.submitting import DryRun


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
    return {
        "schema_version": SCHEMA_VERSION,
        "dry_run": True,
        "job_id": dry.job_id,
        "name": dry.request.name,
        "cloud": plan.cloud,
        "cluster": plan.cluster,
        "kind": plan.kind,
        "command": plan.command,
        **what_runs(plan, dry.job_config, dry.staged_config),
        "after": list(dry.request.after),
        **checks_document(dry.checked, dry.problems, dry.warnings),
    }


def what_runs(
    plan: LaunchPlan, job_config: dict[str, Any] | None, staged_config: dict[str, Any] | None
) -> dict[str, Any]:
    """What a dry run shows would run: a local job's command line, directory and added environment; a cloud
    job's job config, and the copy of its config staged beside it (``{path, settings}``), if any."""
    local = job_config is None
    return {
        "config_path": str(plan.config_path),
        "workdir": str(plan.workdir) if local else None,
        "argv": list(plan.argv) if local else None,
        "env": dict(plan.env_overrides) if local else None,
        "job_config": job_config,
        "staged_config": staged_config,
    }


def checks_document(checked: bool, problems: Sequence[PreflightProblem], warnings: Sequence[str]) -> dict[str, Any]:
    """What a dry run's checks found: whether the pre-flight ran, ``ok``, each problem (exit 2) and warning."""
    return {
        "preflight": checked,
        "ok": not problems,
        "problems": [{"check": p.check, "path": p.path, "problem": p.problem} for p in problems],
        "warnings": list(warnings),
    }


def log_document(job_id: str | None, stream: str, path: Path | None, text: str) -> dict[str, Any]:
    """A job's log as one document (``path`` is None for a cloud job, whose log is a stream; ``job_id`` None
    for a job launched elsewhere that is not registered)."""
    return {"schema_version": SCHEMA_VERSION, "job_id": job_id, "stream": stream,
            "path": str(path) if path else None, "text": text}  # fmt: skip


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


def check_outcome(check: ConfigCheck) -> Outcome:
    """``check``: its document; exit 2 when it found problems (the human rendering lists them)."""
    return Outcome(check_document(check), exit_code=problems_exit_code(check.problems))


def dry_run_outcome(dry: DryRun) -> Outcome:
    """``submit --dry-run``: its document, its warnings, a line per problem, and exit 2 when there are any."""
    return checked_outcome(dry_run_document(dry), dry.warnings, dry.problems)


def checked_outcome(document: dict[str, Any], warnings: Sequence[str], problems: Sequence[PreflightProblem]) -> Outcome:
    """A dry run's outcome (``submit`` or ``sweep``): the document, the warnings, a line per problem the checks
    found, and exit 2 when there are any."""
    return Outcome(
        document,
        warnings=tuple(warnings),
        errors=tuple(f"{problem.check}: {problem.line()}" for problem in problems),
        exit_code=problems_exit_code(problems),
    )
