"""The registry's upkeep: ``prune``, ``import-registry``, and ``registry check`` and ``recover``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from oumi_jobs.cli import render_registry
from oumi_jobs.cli.context import paths_of
from oumi_jobs.cli.options import CloudTimeoutOpt, JsonOpt
from oumi_jobs.cli.output import Output
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.errors import ExitCode
from oumi_jobs.legacy import import_registry as import_legacy
from oumi_jobs.prune import prune as prune_jobs
from oumi_jobs.registry_repair import check_registry, recover_registry
from oumi_jobs.render.outcome import Outcome
from oumi_jobs.render.registry import (
    import_document,
    prune_document,
    recovery_document,
    registry_check_document,
)


def prune(
    ctx: typer.Context,
    older_than: Annotated[
        str, typer.Option("--older-than", help="Age of entries to remove: 90s, 30m, 12h, 7d, 2w.")
    ] = "7d",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be removed.")] = False,
    remove_logs: Annotated[bool, typer.Option("--logs", help="Remove the jobs' log files too.")] = False,
    cloud_timeout: CloudTimeoutOpt = DEFAULT_CLOUD_TIMEOUT_S,
    as_json: JsonOpt = False,
) -> None:
    """Remove old registry entries of finished jobs (safe from cron)."""

    result = prune_jobs(
        paths_of(ctx), older_than=older_than, dry_run=dry_run, logs=remove_logs, cloud_timeout_s=cloud_timeout
    )
    Output.from_flags(as_json=as_json).result(prune_document(result), human=lambda: render_registry.print_prune(result))


def import_registry(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The Oumi job server's JSON registry.")],
    as_json: JsonOpt = False,
) -> None:
    """Import the JSON registry of the Oumi job server (its `status` keys are dropped)."""

    result = import_legacy(paths_of(ctx), file)
    Output.from_flags(as_json=as_json).result(
        import_document(result), human=lambda: render_registry.print_import(result)
    )


registry_app = typer.Typer(
    cls=TyperGroup,
    help="Check the registry; recover a damaged one (never done automatically).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@registry_app.command("check")
def registry_check(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Check the registry's integrity and schema; exit 1 listing what is wrong.  Writes nothing."""

    check = check_registry(paths_of(ctx))
    outcome = Outcome(
        registry_check_document(check),
        errors=()
        if check.ok
        else (f"the registry {check.path} failed its check; `oumi-jobs registry recover` salvages what can be read",),
        exit_code=ExitCode.OK if check.ok else ExitCode.FAILURE,
    )
    out = Output.from_flags(as_json=as_json)
    raise typer.Exit(out.outcome(outcome, human=lambda: render_registry.print_registry_check(check)))


@registry_app.command("recover")
def registry_recover(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Move a damaged registry aside (kept, with a timestamp) and salvage every readable row into a new one.

    Run it while no other oumi-jobs command runs.  It refuses a registry that passes its check.
    """

    recovery = recover_registry(paths_of(ctx))
    Output.from_flags(as_json=as_json).result(
        recovery_document(recovery), human=lambda: render_registry.print_recovery(recovery)
    )
