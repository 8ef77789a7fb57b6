"""The cancellation commands: ``cancel``, ``cancel-status`` and ``cancellations``.

Which combinations of jobs, identity, ``--all`` and ``--down`` make sense is
the service's rule (:mod:`oumi_jobs.cancel.request`), shared with the REST API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from oumi_jobs.cancel import request as cancel_request
from oumi_jobs.cancel import service
from oumi_jobs.cli import live, render_cancel, sweeps_cli
from oumi_jobs.cli.context import paths_of
from oumi_jobs.cli.options import (
    CloudTimeoutOpt,
    IdCloudOpt,
    IdClusterOpt,
    JobArg,
    JsonOpt,
    LauncherIdOpt,
    WatchOpt,
    count,
    job_ref,
    seconds,
)
from oumi_jobs.cli.output import Output
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.paths import Paths
from oumi_jobs.render.cancel import cancel_outcome, cancellation_document
from oumi_jobs.sweeps import service as sweeps


def cancel(
    ctx: typer.Context,
    jobs_: Annotated[
        Optional[list[str]],
        typer.Argument(metavar="JOB...", help="Jobs to cancel (ids or unique prefixes).", callback=job_ref),
    ] = None,
    cloud: IdCloudOpt = None,
    cluster: IdClusterOpt = None,
    launcher_id: LauncherIdOpt = None,
    all_jobs: Annotated[bool, typer.Option("--all", help="Cancel every job not done (see --state).")] = False,
    state: Annotated[list[str], typer.Option("--state", help="With --all: only jobs in this state.")] = [],  # noqa: B006
    force: Annotated[bool, typer.Option("--force", help="SIGKILL the whole process tree at once.")] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            help="Seconds to wait after the graceful signal before SIGKILL.",
            callback=seconds("--timeout"),
        ),
    ] = 30.0,
    signal_name: Annotated[
        str, typer.Option("--signal", help="Graceful signal: TERM (default), INT, USR1...")
    ] = "TERM",
    reason: Annotated[Optional[str], typer.Option("--reason", help="Why; recorded with the cancellation.")] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Return once signalled; a detached helper finishes the escalation.")
    ] = False,
    no_cascade: Annotated[
        bool, typer.Option("--no-cascade", help="Do not cancel the jobs waiting on this one (--after).")
    ] = False,
    metrics_file: Annotated[
        Optional[Path], typer.Option("--metrics-file", help="Also write Prometheus metrics to this file.")
    ] = None,
    down: Annotated[
        bool,
        typer.Option("--down", help="Then tear the job's cluster down, if no other job of ours runs there."),
    ] = False,
    cloud_timeout: CloudTimeoutOpt = DEFAULT_CLOUD_TIMEOUT_S,
    as_json: JsonOpt = False,
) -> None:
    """Cancel jobs: graceful signal to the whole process tree, then SIGKILL; verified before reported.

    A cloud job may be named by its identity (--cloud, --cluster, --launcher-id), one launched elsewhere too.
    """

    options = service.CancelOptions(
        force=force, timeout_s=timeout, signal=signal_name, reason=reason, wait=not no_wait,
        cascade=not no_cascade, metrics_file=metrics_file, cloud_timeout_s=cloud_timeout,
    )  # fmt: skip
    request = cancel_request.CancelRequest(
        jobs=tuple(jobs_ or ()), cloud=cloud, cluster=cluster, launcher_id=launcher_id, all_jobs=all_jobs,
        states=tuple(state), down=down, options=options,
    )  # fmt: skip
    refs, alone = request.jobs, not (cloud or cluster or launcher_id or all_jobs or state or down)
    if len(refs) == 1 and alone and sweeps.names_sweep(paths_of(ctx), refs[0]):  # every child of the sweep
        sweeps_cli.show_cancel(Output.from_flags(as_json=as_json), sweeps.cancel_sweep(paths_of(ctx), refs[0], options))
    _cancel(paths_of(ctx), request, Output.from_flags(as_json=as_json))


def _cancel(paths: Paths, request: cancel_request.CancelRequest, out: Output) -> None:
    target = cancel_request.check(request)
    if target.scope is cancel_request.Scope.ONE and target.job is not None:
        which = target.job  # one job: a person sees its steps as they happen
        result = live.run_with_progress(
            lambda: cancel_request.run(paths, request),
            lambda: service.cancellation_status(paths, which),
            live=out.live,
        )
    else:
        result = cancel_request.run(paths, request)
    raise typer.Exit(out.outcome(cancel_outcome(result), human=lambda: render_cancel.print_cancel_result(result)))


def cancel_status(
    ctx: typer.Context,
    job: JobArg,
    watch: WatchOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The latest cancellation of a job, step by step."""

    out = Output.from_flags(as_json=as_json)
    paths = paths_of(ctx)
    if watch:
        record = out.follow(service.follow_cancellation(paths, job), human=live.watch_cancellation)
        out.result(cancellation_document(record))  # a person saw it live
        return
    record = service.cancellation_status(paths, job)
    out.result(cancellation_document(record), human=lambda: render_cancel.print_cancellation(record))


def cancellations(
    ctx: typer.Context,
    limit: Annotated[
        int, typer.Option("--limit", help="At most this many, newest first.", callback=count("--limit"))
    ] = 20,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many first.", callback=count("--offset"))] = 0,
    job: Annotated[
        Optional[str], typer.Option("--job", help="Only cancellations of this job.", callback=job_ref)
    ] = None,
    status_: Annotated[Optional[str], typer.Option("--status", help="Only cancellations with this status.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """History of cancellations, newest first."""

    out = Output.from_flags(as_json=as_json)
    records = service.cancellation_history(paths_of(ctx), limit=limit, offset=offset, job=job, status=status_)
    out.result(
        lambda: [cancellation_document(r) for r in records], human=lambda: render_cancel.print_cancellations(records)
    )
