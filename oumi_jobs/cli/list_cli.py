"""``list``: the registered jobs with their live states, as a table or, lean, as JSON.

Its own module, apart from the other job commands (:mod:`oumi_jobs.cli.jobs_cli`), so that
``list --json`` imports only what it uses: over 10,000 jobs, importing the rest of the command line
would cost more than the query (bench/bench_local.py).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from oumi_jobs import listing
from oumi_jobs.cli.cloud_progress import with_cloud_progress
from oumi_jobs.cli.context import paths_of
from oumi_jobs.cli.options import CloudTimeoutOpt, JsonOpt, count
from oumi_jobs.cli.output import Mode, Output
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.render.listing import lean_texts
from oumi_jobs.render.outcome import Encoded, Outcome, asked_cloud_exit
from oumi_jobs.states import parse_states

if TYPE_CHECKING:
    from oumi_jobs.cloud.survey import CloudAnswer
    from oumi_jobs.views import JobView


def list_(
    ctx: typer.Context,
    cloud: Annotated[Optional[str], typer.Option("--cloud", help="Only jobs of this cloud.")] = None,
    cluster: Annotated[
        Optional[str], typer.Option("--cluster", help="Only this cluster's jobs, in queue order.")
    ] = None,
    state: Annotated[list[str], typer.Option("--state", help="Only jobs in this state (repeatable).")] = [],  # noqa: B006
    since: Annotated[
        Optional[str], typer.Option("--since", help="Only jobs submitted since an age (2h, 7d) or a date.")
    ] = None,
    limit: Annotated[
        Optional[int], typer.Option("--limit", help="At most this many jobs.", callback=count("--limit"))
    ] = None,
    local_only: Annotated[bool, typer.Option("--local-only", help="Query no cloud.")] = False,
    all_clouds: Annotated[
        bool, typer.Option("--all-clouds", help="Ask every enabled cloud, to find jobs launched elsewhere too.")
    ] = False,
    sweep: Annotated[
        Optional[str], typer.Option("--sweep", help="Only this sweep's children (id or prefix), in order.")
    ] = None,
    cloud_timeout: CloudTimeoutOpt = DEFAULT_CLOUD_TIMEOUT_S,
    as_json: JsonOpt = False,
) -> None:
    """All registered jobs, newest first, with their live states; clouds are asked in parallel."""

    out = Output.from_flags(as_json=as_json)
    filters = dict(
        cloud=cloud, cluster=cluster, states=parse_states(state), since=since, limit=limit,
        local_only=local_only, all_clouds=all_clouds, cloud_timeout_s=cloud_timeout, sweep=sweep,
    )  # fmt: skip
    # --json needs only the documents, so it reads them the lean way: finished
    # local jobs come out of SQLite as JSON (bench/bench_local.py times it).
    report: listing.JobList | listing.JobDocuments
    human: Callable[[], object] | None = None
    if out.mode is Mode.JSON:
        report = with_cloud_progress(
            lambda watcher: listing.list_job_documents(paths_of(ctx), watcher=watcher, **filters), live=False
        )
        document: Encoded | None = Encoded(lean_texts(report))
    else:
        report = with_cloud_progress(
            lambda watcher: listing.list_jobs_report(paths_of(ctx), watcher=watcher, **filters), live=out.live
        )
        document, human = None, partial(_print_jobs, report.views)
    outcome = Outcome(document, unreachable=report.unreachable, exit_code=asked_cloud_exit(report.unreachable, cloud))
    # With --all-clouds a person gets every cloud's answer as a table, the reasons in its rows.
    human_notes = partial(_print_clouds, report.clouds) if all_clouds else None
    raise typer.Exit(out.outcome(outcome, human=human, human_notes=human_notes))


def _print_jobs(views: list[JobView]) -> None:
    # lazy import: the table's rendering (rich, and the renderings of every job command) only for a person
    from oumi_jobs.cli import render

    render.print_jobs(views)


def _print_clouds(clouds: dict[str, CloudAnswer]) -> None:
    # lazy import: as _print_jobs
    from oumi_jobs.cli import render

    render.print_clouds(clouds)
