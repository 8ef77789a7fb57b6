"""The ``oumi-jobs`` command line: parse, make one call into the core, render.

No SQL, processes or signals here.  Every error the core raises is turned
into one line on stderr and its exit code in :class:`_Group.invoke`.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any, Optional

import click
import typer
from typer.core import TyperGroup

from oumi_jobs import __version__, jobs
from oumi_jobs.cancel import service
from oumi_jobs.cli import live, output
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.errors import ExitCode, OumiJobsError
from oumi_jobs.errors import UsageError as OumiJobsUsage
from oumi_jobs.legacy import import_registry as import_legacy
from oumi_jobs.logs import log_path, read_log
from oumi_jobs.paths import Paths
from oumi_jobs.prune import prune as prune_jobs
from oumi_jobs.states import State, parse_states

DEBUG_ENV = "OUMI_JOBS_DEBUG"


class _Group(TyperGroup):
    """Maps core errors to one line and an exit code, in one place."""

    def invoke(self, ctx: click.Context) -> Any:

        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except OumiJobsError as exc:
            if os.environ.get(DEBUG_ENV) == "1":
                traceback.print_exc()
            output.error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # The reader (e.g. `| head`) went away: stop quietly, as Unix tools
            # do.  stdout now points at /dev/null so the final flush cannot fail.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(ExitCode.FAILURE) from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV) == "1":
                raise
            output.error(f"internal error: {exc!r} (set {DEBUG_ENV}=1 for a traceback)")
            raise typer.Exit(ExitCode.FAILURE) from None


app = typer.Typer(
    cls=_Group,
    name="oumi-jobs",
    help="Submit, watch and cancel Oumi jobs on this machine or on any cloud oumi.launcher reaches.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# -- option types, declared once ---------------------------------------------
JobArg = Annotated[str, typer.Argument(metavar="JOB", help="Job id, or a unique prefix of one.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
WatchOpt = Annotated[bool, typer.Option("--watch", "-w", help="Refresh in place until it is done.")]
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet", help="Print only the essential value.")]
CloudOpt = Annotated[
    Optional[str], typer.Option("--cloud", help="Cloud to run on (default: the config's, else local).")
]
CloudTimeoutOpt = Annotated[float, typer.Option("--cloud-timeout", help="Seconds each cloud gets to answer.", min=0.1)]
ClusterOpt = Annotated[Optional[str], typer.Option("--cluster", help="Cluster to run on.")]


def _paths(ctx: click.Context) -> Paths:
    root = ctx.find_root()
    if root.obj is None:
        root.obj = Paths.from_env()
    return root.obj


def _version(value: bool) -> None:
    if value:
        typer.echo(f"oumi-jobs {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Submit, watch and cancel Oumi jobs on this machine or on any cloud oumi.launcher reaches.

    Exit codes: 0 success, 1 failure, 2 usage error, 3 job not found or ambiguous,
    4 conflict, 5 cloud unreachable, 6 cancelled but processes survived.
    """


@app.command()
def submit(
    ctx: typer.Context,
    config: Annotated[Path, typer.Argument(help="An Oumi job config (run:/resources:) or task config (train, ...).")],
    cloud: CloudOpt = None,
    cluster: ClusterOpt = None,
    name: Annotated[Optional[str], typer.Option("--name", help="A name that becomes the job id.")] = None,
    command: Annotated[
        Optional[str], typer.Option("--command", help="oumi command for a task config (default: inferred).")
    ] = None,
    env: Annotated[list[str], typer.Option("--env", help="Environment variable K=V (repeatable).")] = [],  # noqa: B006
    workdir: Annotated[
        Optional[str], typer.Option("--workdir", help="Working directory (relative to the current one).")
    ] = None,
    after: Annotated[
        list[str], typer.Option("--after", help="Start only when this job has succeeded (repeatable).")
    ] = [],  # noqa: B006
    parallel: Annotated[
        Optional[int], typer.Option("--parallel", help="Let N jobs of this local cluster run at once (kept).", min=1)
    ] = None,
    gpus: Annotated[
        Optional[str], typer.Option("--gpus", help="Accelerators per node of a cloud job, TYPE[:COUNT] (e.g. A100:8).")
    ] = None,
    nodes: Annotated[Optional[int], typer.Option("--nodes", help="Nodes of a cloud job.", min=1)] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job to its end; exit with its outcome.")] = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Start a job.  Prints its id."""

    paths = _paths(ctx)
    request = jobs.SubmitRequest(
        config=str(config), cloud=cloud, cluster=cluster, name=name, command=command,
        env=tuple(env), workdir=workdir, after=tuple(after), parallel=parallel, gpus=gpus, nodes=nodes,
    )  # fmt: skip
    submitted = jobs.submit(paths, request)
    view = submitted.view
    for warning in submitted.warnings:
        output.warn(warning)
    if quiet:
        output.print_line(view.job_id)
    elif not as_json:
        output.print_line(view.job_id)
        output.hint(f"submitted {view.job_id} ({view.record.cloud}); follow it with: oumi-jobs logs -f {view.job_id}")
    if wait:
        follow = jobs.follow_until_done(paths, view.job_id)
        if quiet or as_json:
            *_, view = follow
        else:
            view = live.watch(follow)
    if as_json:
        output.print_json(output.job_document(view) | {"warnings": list(submitted.warnings)})
    if wait:
        raise typer.Exit(_outcome_exit_code(view))


def _outcome_exit_code(view: Any) -> int:

    if view.state is State.SUCCEEDED:
        return ExitCode.OK
    if view.state is State.CANCELLED:
        return ExitCode.CONFLICT
    return ExitCode.FAILURE


@app.command()
def status(
    ctx: typer.Context,
    job: Annotated[Optional[str], typer.Argument(metavar="[JOB]", help="Job id, or a unique prefix of one.")] = None,
    cloud: Annotated[
        Optional[str], typer.Option("--cloud", help="With --cluster and --launcher-id: a job by its cloud identity.")
    ] = None,
    cluster: Annotated[Optional[str], typer.Option("--cluster", help="The job's cluster (with --cloud).")] = None,
    launcher_id: Annotated[
        Optional[str], typer.Option("--launcher-id", help="The launcher's job id (with --cloud).")
    ] = None,
    cloud_timeout: CloudTimeoutOpt = DEFAULT_CLOUD_TIMEOUT_S,
    watch: WatchOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Live state of one job, by id or by its cloud identity (jobs launched elsewhere too)."""

    paths = _paths(ctx)
    by_identity = (cloud, cluster, launcher_id)
    if any(by_identity):
        if job is not None or not all(by_identity):
            raise OumiJobsUsage("name a JOB, or give all of --cloud, --cluster and --launcher-id")
        view = jobs.status_by_identity(paths, cloud, cluster, launcher_id, cloud_timeout_s=cloud_timeout)  # type: ignore[arg-type]
        job = view.job_id or None
        if job is None or not watch:
            _print_view(view, as_json)
            return
    if job is None:
        raise OumiJobsUsage("name a JOB, or give all of --cloud, --cluster and --launcher-id")
    if watch:
        follow = jobs.follow_until_done(paths, job)
        if as_json:
            *_, view = follow
        else:
            live.watch(follow)
            return
    else:
        view = jobs.get_status(paths, job, cloud_timeout_s=cloud_timeout)
    _print_view(view, as_json)


def _print_view(view: Any, as_json: bool) -> None:

    if as_json:
        output.print_json(output.job_document(view))
    else:
        output.print_job(view)


@app.command("list")
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
    limit: Annotated[Optional[int], typer.Option("--limit", help="At most this many jobs.", min=0)] = None,
    local_only: Annotated[bool, typer.Option("--local-only", help="Query no cloud.")] = False,
    all_clouds: Annotated[
        bool, typer.Option("--all-clouds", help="Ask every enabled cloud, to find jobs launched elsewhere too.")
    ] = False,
    cloud_timeout: CloudTimeoutOpt = DEFAULT_CLOUD_TIMEOUT_S,
    as_json: JsonOpt = False,
) -> None:
    """All registered jobs, newest first, with their live states; clouds are asked in parallel."""

    report = live.with_cloud_progress(
        lambda watcher: jobs.list_jobs_report(
            _paths(ctx),
            cloud=cloud,
            cluster=cluster,
            states=parse_states(state),
            since=since,
            limit=limit,
            local_only=local_only,
            all_clouds=all_clouds,
            cloud_timeout_s=cloud_timeout,
            watcher=watcher,
        ),  # fmt: skip
        live=not as_json,
    )
    if as_json:
        output.print_json([output.job_document(v) for v in report.views])
    else:
        output.print_jobs(report.views)
        if all_clouds:
            output.print_clouds(report.clouds)  # the reasons are in its rows
    if as_json or not all_clouds:
        for name, reason in sorted(report.unreachable.items()):
            output.hint(f"{name}: {reason}")
    if cloud is not None and cloud in report.unreachable:
        raise typer.Exit(ExitCode.CLOUD_UNREACHABLE)


@app.command()
def logs(
    ctx: typer.Context,
    job: JobArg,
    stderr: Annotated[bool, typer.Option("--stderr", help="Print stderr instead of stdout.")] = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job is done.")] = False,
    tail: Annotated[Optional[int], typer.Option("--tail", "-n", help="Only the last N lines.", min=0)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a job's output."""

    paths = _paths(ctx)
    chunks = read_log(paths, job, stderr=stderr, tail=tail, follow=follow)
    if as_json:

        text = "".join(chunks)
        job_id, path = log_path(paths, job, stderr=stderr)
        output.print_json(output.log_document(job_id, "stderr" if stderr else "stdout", path, text))
        return
    for chunk in chunks:
        sys.stdout.write(chunk)
        sys.stdout.flush()


@app.command()
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
        _paths(ctx), older_than=older_than, dry_run=dry_run, logs=remove_logs, cloud_timeout_s=cloud_timeout
    )
    if as_json:
        output.print_json(output.prune_document(result))
    else:
        output.print_prune(result)


@app.command("import-registry")
def import_registry(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The Oumi job server's JSON registry.")],
    as_json: JsonOpt = False,
) -> None:
    """Import the JSON registry of the Oumi job server (its `status` keys are dropped)."""

    result = import_legacy(_paths(ctx), file)
    if as_json:
        output.print_json(output.import_document(result))
    else:
        output.print_import(result)


@app.command()
def cancel(
    ctx: typer.Context,
    jobs_: Annotated[
        Optional[list[str]], typer.Argument(metavar="JOB...", help="Jobs to cancel (ids or unique prefixes).")
    ] = None,
    all_jobs: Annotated[bool, typer.Option("--all", help="Cancel every job not done (see --state).")] = False,
    state: Annotated[list[str], typer.Option("--state", help="With --all: only jobs in this state.")] = [],  # noqa: B006
    force: Annotated[bool, typer.Option("--force", help="SIGKILL the whole process tree at once.")] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait after the graceful signal before SIGKILL.", min=0)
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
    cloud_timeout: CloudTimeoutOpt = DEFAULT_CLOUD_TIMEOUT_S,
    as_json: JsonOpt = False,
) -> None:
    """Cancel jobs: graceful signal to the whole process tree, then SIGKILL; verified before reported."""

    paths = _paths(ctx)
    refs = list(jobs_ or [])
    if not refs and not all_jobs:
        raise OumiJobsUsage("name the jobs to cancel, or use --all")
    if refs and all_jobs:
        raise OumiJobsUsage("name jobs or use --all, not both")
    options = service.CancelOptions(
        force=force, timeout_s=timeout, signal=signal_name, reason=reason, wait=not no_wait,
        cascade=not no_cascade, metrics_file=metrics_file, cloud_timeout_s=cloud_timeout,
    )  # fmt: skip
    if len(refs) == 1:
        record = live.run_with_progress(
            lambda: service.cancel_job(paths, refs[0], options),
            lambda: service.cancellation_status(paths, refs[0]),
            live=not as_json,
        )
        if as_json:
            output.print_json(output.cancellation_document(record))
        else:
            output.print_cancellation(record)
        raise typer.Exit(_cancellation_exit_code([record]))
    outcomes = service.cancel_jobs(paths, refs, options, all_jobs=all_jobs, states=tuple(state))
    if as_json:
        output.print_json([output.bulk_document(o) for o in outcomes])
    else:
        output.print_bulk(outcomes)
    codes = [o.error.exit_code if o.error else _cancellation_exit_code([o.record]) for o in outcomes]  # type: ignore[list-item]
    raise typer.Exit(_worst(codes))


def _cancellation_exit_code(records: list[Any]) -> int:
    record = records[0]
    status = record.status.value
    if status == "not_needed":

        output.error(f"job {record.job_id} is already {record.final_state}; nothing to cancel")
        return ExitCode.CONFLICT
    if status == "failed":
        return ExitCode.SURVIVORS if record.survivors else ExitCode.FAILURE
    return ExitCode.OK


def _worst(codes: list[int]) -> int:
    """Several cancels: the most serious outcome decides the exit code."""
    for code in (
        ExitCode.SURVIVORS, ExitCode.FAILURE, ExitCode.CLOUD_UNREACHABLE, ExitCode.NOT_FOUND, ExitCode.CONFLICT
    ):  # fmt: skip
        if code in codes:
            return code
    return ExitCode.OK


@app.command("cancel-status")
def cancel_status(
    ctx: typer.Context,
    job: JobArg,
    watch: WatchOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The latest cancellation of a job, step by step."""

    paths = _paths(ctx)
    if watch and not as_json:
        live.watch_cancellation(service.follow_cancellation(paths, job))
        return
    if watch:
        *_, record = service.follow_cancellation(paths, job)
    else:
        record = service.cancellation_status(paths, job)
    if as_json:
        output.print_json(output.cancellation_document(record))
    else:
        output.print_cancellation(record)


@app.command()
def cancellations(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.", min=0)] = 20,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many first.", min=0)] = 0,
    job: Annotated[Optional[str], typer.Option("--job", help="Only cancellations of this job.")] = None,
    status_: Annotated[Optional[str], typer.Option("--status", help="Only cancellations with this status.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """History of cancellations, newest first."""

    records = service.cancellation_history(_paths(ctx), limit=limit, offset=offset, job=job, status=status_)
    if as_json:
        output.print_json([output.cancellation_document(r) for r in records])
    else:
        output.print_cancellations(records)


def main() -> None:
    app(prog_name="oumi-jobs")
