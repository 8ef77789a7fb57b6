"""The ``oumi-jobs`` command line: parse, make one call into the core, render.

No SQL, processes or signals here, and no branching on the output format:
each command hands what it has to say to one :class:`~oumi_jobs.cli.output.Output`
made from its flags.  Every error the core raises is turned into one line on
stderr and its exit code in :class:`_Group.invoke`; the exit codes of outcomes
come from :mod:`oumi_jobs.exits`.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import click
import typer
from typer.core import TyperGroup

from oumi_jobs import __version__, bounds, clusters, listing, plots, preflight, submitting, waiting
from oumi_jobs.cancel import service
from oumi_jobs.cli import live, output, render, sweeps_cli
from oumi_jobs.cli.context import paths_of as _paths
from oumi_jobs.cli.output import Mode, Output
from oumi_jobs.cli.server_cli import server_app
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.cost_report import cost_report
from oumi_jobs.documents import (
    bulk_document,
    cancel_down_document,
    cancellation_document,
    check_document,
    cluster_action_document,
    cluster_document,
    cost_document,
    dry_run_document,
    import_document,
    job_document,
    log_document,
    plot_document,
    prune_document,
    recovery_document,
    registry_check_document,
)
from oumi_jobs.errors import ExitCode, OumiJobsError
from oumi_jobs.errors import UsageError as OumiJobsUsage
from oumi_jobs.exits import (
    bulk_cancel_exit_code,
    cancellation_exit_code,
    job_exit_code,
    problems_exit_code,
    wait_exit_code,
)
from oumi_jobs.external import CloudIdentity, job_or_identity
from oumi_jobs.legacy import import_registry as import_legacy
from oumi_jobs.logs import log_path, read_log
from oumi_jobs.prune import prune as prune_jobs
from oumi_jobs.registry_repair import check_registry, recover_registry
from oumi_jobs.server import forwarding
from oumi_jobs.states import parse_states
from oumi_jobs.status import get_status, status_by_identity
from oumi_jobs.store.cancellations import CancellationRecord, CancellationStatus
from oumi_jobs.store.queues import MAX_PARALLEL
from oumi_jobs.sweeps import service as sweeps

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
            for detail in getattr(exc, "details", ()):  # each problem a pre-flight found, a line each
                output.error(detail)
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


# -- option checks: every bad value is one line and exit 2 (through _Group.invoke) --
def _job_ref(value: Any) -> Any:
    """A job id or prefix (or a list of them) must not be blank: ``""`` would be a prefix of every id."""
    for ref in value if isinstance(value, (list, tuple)) else [value]:
        if ref is not None and not ref.strip():
            raise OumiJobsUsage("an empty job id names no job")
    return value


def _count(option: str, low: int = 0, high: int = bounds.MAX_COUNT) -> Callable[[Optional[int]], Optional[int]]:
    def check(value: Optional[int]) -> Optional[int]:
        return value if value is None else bounds.check_count(option, value, low=low, high=high)

    return check


def _seconds(option: str, low: float = 0.0) -> Callable[[float], float]:
    def check(value: float) -> float:
        return bounds.check_seconds(option, value, low=low)  # nan and inf too, which click's ranges let through

    return check


# -- option types, declared once ---------------------------------------------
JobArg = Annotated[str, typer.Argument(metavar="JOB", help="Job id, or a unique prefix of one.", callback=_job_ref)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
WatchOpt = Annotated[bool, typer.Option("--watch", "-w", help="Refresh in place until it is done.")]
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet", help="Print only the essential value.")]
CloudOpt = Annotated[
    Optional[str], typer.Option("--cloud", help="Cloud to run on (default: the config's, else local).")
]
CloudTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--cloud-timeout",
        help=f"Seconds each cloud gets to answer (at least {bounds.MIN_CLOUD_TIMEOUT_S:g}).",
        callback=_seconds("--cloud-timeout", bounds.MIN_CLOUD_TIMEOUT_S),
    ),
]
ClusterOpt = Annotated[Optional[str], typer.Option("--cluster", help="Cluster to run on.")]
# A job by its cloud identity (instead of JOB): jobs launched elsewhere too.
IdCloudOpt = Annotated[
    Optional[str], typer.Option("--cloud", help="With --cluster and --launcher-id: a job by its cloud identity.")
]
IdClusterOpt = Annotated[Optional[str], typer.Option("--cluster", help="The job's cluster (with --cloud).")]
LauncherIdOpt = Annotated[Optional[str], typer.Option("--launcher-id", help="The launcher's job id (with --cloud).")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"oumi-jobs {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Submit, watch and cancel Oumi jobs on this machine or on any cloud oumi.launcher reaches.

    Exit codes: 0 success, 1 failure, 2 usage error, 3 job not found or ambiguous,
    4 conflict, 5 cloud unreachable, 6 cancelled but processes survived, 7 `wait` timed out.
    """
    if ctx.invoked_subcommand != "server":
        # Cloud calls go to the warm server (started on the first one); local commands never make any.
        forwarding.install(_paths(ctx), on_start=output.hint)


app.add_typer(server_app, name="server")
sweeps_cli.register(app)


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
        list[str],
        typer.Option("--after", help="Start only when this job has succeeded (repeatable).", callback=_job_ref),
    ] = [],  # noqa: B006
    parallel: Annotated[
        Optional[int],
        typer.Option(
            "--parallel",
            help="Let N jobs of this local cluster run at once (kept).",
            callback=_count("--parallel", 1, MAX_PARALLEL),
        ),
    ] = None,
    gpus: Annotated[
        Optional[str], typer.Option("--gpus", help="Accelerators per node of a cloud job, TYPE[:COUNT] (e.g. A100:8).")
    ] = None,
    nodes: Annotated[
        Optional[int],
        typer.Option("--nodes", help="Nodes of a cloud job.", callback=_count("--nodes", 1, bounds.MAX_NODES)),
    ] = None,
    autostop: Annotated[
        Optional[str],
        typer.Option("--autostop", help="Stop the cluster after it has been idle this long, e.g. 30m (SkyPilot)."),
    ] = None,
    down: Annotated[
        bool, typer.Option("--down", help="Tear the cluster down when it goes idle after the job (SkyPilot).")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job to its end; exit with its outcome.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would run and run the checks; register and start nothing.")
    ] = False,
    no_preflight: Annotated[
        bool, typer.Option("--no-preflight", help="Launch a cloud job without the blocking pre-flight checks.")
    ] = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Start a job.  Prints its id."""

    out = Output.from_flags(as_json=as_json, quiet=quiet)
    paths = _paths(ctx)
    request = submitting.SubmitRequest(
        config=str(config), cloud=cloud, cluster=cluster, name=name, command=command, env=tuple(env),
        workdir=workdir, after=tuple(after), parallel=parallel, gpus=gpus, nodes=nodes, autostop=autostop, down=down,
        preflight=not no_preflight,
    )  # fmt: skip
    if dry_run:
        if wait:
            raise OumiJobsUsage("--dry-run starts nothing to wait for; drop --wait")
        dry = submitting.dry_run(paths, request)
        for warning in dry.warnings:
            out.warn(warning)
        for problem in dry.problems:
            out.error(f"{problem.check}: {problem.line()}")
        out.result(dry_run_document(dry), human=lambda: render.print_dry_run(dry))
        raise typer.Exit(problems_exit_code(dry.problems))
    submitted = submitting.submit(paths, request)
    view = submitted.view
    for warning in submitted.warnings:
        out.warn(warning)
    out.value(view.job_id)
    out.hint(f"submitted {view.job_id} ({view.record.cloud}); follow it with: oumi-jobs logs -f {view.job_id}")
    if wait:
        view = out.follow(waiting.follow_until_done(paths, view.job_id), human=live.watch)
    # The id was the result for a person and for -q; --json prints it all once the job is (or was) followed.
    out.result(job_document(view) | {"warnings": list(submitted.warnings)})
    if wait:
        raise typer.Exit(job_exit_code(view.state))


@app.command()
def check(
    config: Annotated[Path, typer.Argument(help="An Oumi job config or task config (train, evaluate, ...).")],
    command: Annotated[
        Optional[str], typer.Option("--command", help="oumi command of a task config (default: inferred).")
    ] = None,
    cloud: Annotated[
        Optional[str], typer.Option("--cloud", help="Cloud a job config would run on (default: its resources.cloud).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a config with oumi's own config classes: exit 0 when clean, 2 with a line per problem."""

    out = Output.from_flags(as_json=as_json)
    checked = preflight.check_config(config, cwd=Path.cwd(), command=command, cloud=cloud)
    out.result(check_document(checked), human=lambda: render.print_check(checked))
    raise typer.Exit(problems_exit_code(checked.problems))


@app.command()
def status(
    ctx: typer.Context,
    job: Annotated[
        Optional[str], typer.Argument(metavar="[JOB]", help="Job id, or a unique prefix of one.", callback=_job_ref)
    ] = None,
    cloud: IdCloudOpt = None,
    cluster: IdClusterOpt = None,
    launcher_id: LauncherIdOpt = None,
    cloud_timeout: CloudTimeoutOpt = DEFAULT_CLOUD_TIMEOUT_S,
    watch: WatchOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Live state of one job, by id or by its cloud identity (jobs launched elsewhere too)."""

    out = Output.from_flags(as_json=as_json)
    paths = _paths(ctx)
    which = job_or_identity(job, cloud, cluster, launcher_id)
    if isinstance(which, CloudIdentity):
        view = status_by_identity(
            paths, which.cloud, which.cluster, which.launcher_job_id, cloud_timeout_s=cloud_timeout
        )
        if not view.job_id or not watch:
            out.result(job_document(view), human=lambda: render.print_job(view))
            return
        which = view.job_id  # registered: watched as any job
    job = which
    if sweeps.names_sweep(paths, job):
        if watch:
            raise OumiJobsUsage("status --watch follows one job; `wait SWEEP` follows a sweep to its end")
        sweeps_cli.show_status(out, sweeps.sweep_status(paths, job, cloud_timeout_s=cloud_timeout))
        return
    if watch:
        view = out.follow(waiting.follow_until_done(paths, job), human=live.watch)
        out.result(job_document(view))  # a person saw it live
        return
    view = get_status(paths, job, cloud_timeout_s=cloud_timeout)
    out.result(job_document(view), human=lambda: render.print_job(view))


@app.command()
def wait(
    ctx: typer.Context,
    jobs_: Annotated[
        list[str],
        typer.Argument(metavar="JOB...", help="Jobs to wait for (ids or unique prefixes).", callback=_job_ref),
    ],
    timeout: Annotated[
        Optional[str],
        typer.Option("--timeout", help="Give up after this long: seconds, or 90s, 30m, 2h, 1d (exit 7)."),
    ] = None,
    cloud_timeout: CloudTimeoutOpt = DEFAULT_CLOUD_TIMEOUT_S,
    as_json: JsonOpt = False,
) -> None:
    """Wait until every job is done.  Exit 0 if all succeeded, 1 if any failed or was lost, else 4 if any
    was cancelled, else 7 if --timeout passed first."""

    out = Output.from_flags(as_json=as_json)
    timeout_s = waiting.parse_timeout(timeout) if timeout is not None else None
    jobs_ = sweeps.child_ids(_paths(ctx), jobs_)  # a sweep stands for its children
    results = waiting.follow_jobs(_paths(ctx), jobs_, timeout_s=timeout_s, cloud_timeout_s=cloud_timeout)
    result = out.follow(results, human=live.watch_jobs)
    out.result([job_document(view) for view in result.views])  # a person saw them live
    if result.timed_out and result.pending:
        out.error(f"timed out after {timeout}; not done: {', '.join(v.job_id for v in result.pending)}")
    raise typer.Exit(wait_exit_code(result))


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
    limit: Annotated[
        Optional[int], typer.Option("--limit", help="At most this many jobs.", callback=_count("--limit"))
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
    if out.mode is Mode.JSON:
        report = live.with_cloud_progress(
            lambda watcher: listing.list_job_documents(_paths(ctx), watcher=watcher, **filters), live=False
        )
        out.encoded_results(report.documents)
    else:
        report = live.with_cloud_progress(
            lambda watcher: listing.list_jobs_report(_paths(ctx), watcher=watcher, **filters), live=out.live
        )
        out.result(None, human=lambda: render.print_jobs(report.views))
    out.notes(
        [f"{name}: {reason}" for name, reason in sorted(report.unreachable.items())],
        # With --all-clouds a person gets every cloud's answer as a table, the reasons in its rows.
        human=(lambda: render.print_clouds(report.clouds)) if all_clouds else None,
    )
    if cloud is not None and cloud in report.unreachable:
        raise typer.Exit(ExitCode.CLOUD_UNREACHABLE)


@app.command()
def logs(
    ctx: typer.Context,
    job: Annotated[
        Optional[str], typer.Argument(metavar="[JOB]", help="Job id, or a unique prefix of one.", callback=_job_ref)
    ] = None,
    cloud: IdCloudOpt = None,
    cluster: IdClusterOpt = None,
    launcher_id: LauncherIdOpt = None,
    stderr: Annotated[bool, typer.Option("--stderr", help="Print stderr instead of stdout.")] = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job is done.")] = False,
    tail: Annotated[
        Optional[int], typer.Option("--tail", "-n", help="Only the last N lines.", callback=_count("--tail"))
    ] = None,
    cloud_timeout: CloudTimeoutOpt = DEFAULT_CLOUD_TIMEOUT_S,
    as_json: JsonOpt = False,
) -> None:
    """Print a job's output (by id, or by its cloud identity: jobs launched elsewhere too)."""

    out = Output.from_flags(as_json=as_json)
    paths = _paths(ctx)
    which = job_or_identity(job, cloud, cluster, launcher_id)
    chunks = read_log(paths, which, stderr=stderr, tail=tail, follow=follow, cloud_timeout_s=cloud_timeout)

    def document() -> dict[str, Any]:
        text = "".join(chunks)  # the whole log first: reading it may fail before the path is asked for
        job_id, path = log_path(paths, which, stderr=stderr)
        return log_document(job_id or None, "stderr" if stderr else "stdout", path, text)

    out.result(document, human=lambda: render.print_log(chunks))


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
    Output.from_flags(as_json=as_json).result(prune_document(result), human=lambda: render.print_prune(result))


@app.command("import-registry")
def import_registry(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The Oumi job server's JSON registry.")],
    as_json: JsonOpt = False,
) -> None:
    """Import the JSON registry of the Oumi job server (its `status` keys are dropped)."""

    result = import_legacy(_paths(ctx), file)
    Output.from_flags(as_json=as_json).result(import_document(result), human=lambda: render.print_import(result))


registry_app = typer.Typer(
    cls=TyperGroup,
    help="Check the registry; recover a damaged one (never done automatically).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(registry_app, name="registry")


@registry_app.command("check")
def registry_check(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Check the registry's integrity and schema; exit 1 listing what is wrong.  Writes nothing."""

    out = Output.from_flags(as_json=as_json)
    check = check_registry(_paths(ctx))
    out.result(registry_check_document(check), human=lambda: render.print_registry_check(check))
    if not check.ok:
        out.error(f"the registry {check.path} failed its check; `oumi-jobs registry recover` salvages what can be read")
        raise typer.Exit(ExitCode.FAILURE)


@registry_app.command("recover")
def registry_recover(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Move a damaged registry aside (kept, with a timestamp) and salvage every readable row into a new one.

    Run it while no other oumi-jobs command runs.  It refuses a registry that passes its check.
    """

    recovery = recover_registry(_paths(ctx))
    Output.from_flags(as_json=as_json).result(
        recovery_document(recovery), human=lambda: render.print_recovery(recovery)
    )


@app.command()
def cancel(
    ctx: typer.Context,
    jobs_: Annotated[
        Optional[list[str]],
        typer.Argument(metavar="JOB...", help="Jobs to cancel (ids or unique prefixes).", callback=_job_ref),
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
            callback=_seconds("--timeout"),
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

    out = Output.from_flags(as_json=as_json)
    paths = _paths(ctx)
    refs = list(jobs_ or [])
    identity = CloudIdentity.from_options(refs, cloud, cluster, launcher_id)
    if identity is not None and all_jobs:
        raise OumiJobsUsage("name a job by its identity or use --all, not both")
    if not refs and not all_jobs and identity is None:
        raise OumiJobsUsage("name the jobs to cancel, or use --all")
    if refs and all_jobs:
        raise OumiJobsUsage("name jobs or use --all, not both")
    options = service.CancelOptions(
        force=force, timeout_s=timeout, signal=signal_name, reason=reason, wait=not no_wait,
        cascade=not no_cascade, metrics_file=metrics_file, cloud_timeout_s=cloud_timeout,
    )  # fmt: skip
    if len(refs) == 1 and identity is None and not down and sweeps.names_sweep(paths, refs[0]):
        sweeps_cli.show_cancel(out, sweeps.cancel_sweep(paths, refs[0], options))
    if down:
        if len(refs) != 1 or identity is not None:
            raise OumiJobsUsage("cancel --down takes one job, by its id")
        outcome = clusters.cancel_then_down(paths, refs[0], options)
        out.result(cancel_down_document(outcome), human=lambda: render.print_cancel_down(outcome))
        _say_nothing_to_cancel(out, [outcome.cancellation])
        raise typer.Exit(cancellation_exit_code(outcome.cancellation))
    if identity is not None or len(refs) == 1:
        which = identity if identity is not None else refs[0]
        record = live.run_with_progress(
            lambda: service.cancel_job(paths, which, options),
            lambda: service.cancellation_status(paths, which),
            live=out.live,
        )
        out.result(cancellation_document(record), human=lambda: render.print_cancellation(record))
        _say_nothing_to_cancel(out, [record])
        raise typer.Exit(cancellation_exit_code(record))
    outcomes = service.cancel_jobs(paths, refs, options, all_jobs=all_jobs, states=tuple(state))
    out.result(lambda: [bulk_document(o) for o in outcomes], human=lambda: render.print_bulk(outcomes))
    _say_nothing_to_cancel(out, [o.record for o in outcomes if o.record is not None])
    raise typer.Exit(bulk_cancel_exit_code(outcomes))


def _say_nothing_to_cancel(out: Output, records: list[CancellationRecord]) -> None:
    """Side outputs that failed are warnings; jobs that had already ended are a conflict (exit 4): each gets
    its line on stderr, whatever the format."""
    for warning in dict.fromkeys(w for record in records for w in record.warnings):
        out.warn(warning)
    for record in records:
        if record.status == CancellationStatus.NOT_NEEDED:
            out.error(f"job {record.job_id} is already {record.final_state}; nothing to cancel")


@app.command("cancel-status")
def cancel_status(
    ctx: typer.Context,
    job: JobArg,
    watch: WatchOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The latest cancellation of a job, step by step."""

    out = Output.from_flags(as_json=as_json)
    paths = _paths(ctx)
    if watch:
        record = out.follow(service.follow_cancellation(paths, job), human=live.watch_cancellation)
        out.result(cancellation_document(record))  # a person saw it live
        return
    record = service.cancellation_status(paths, job)
    out.result(cancellation_document(record), human=lambda: render.print_cancellation(record))


@app.command()
def cancellations(
    ctx: typer.Context,
    limit: Annotated[
        int, typer.Option("--limit", help="At most this many, newest first.", callback=_count("--limit"))
    ] = 20,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many first.", callback=_count("--offset"))] = 0,
    job: Annotated[
        Optional[str], typer.Option("--job", help="Only cancellations of this job.", callback=_job_ref)
    ] = None,
    status_: Annotated[Optional[str], typer.Option("--status", help="Only cancellations with this status.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """History of cancellations, newest first."""

    out = Output.from_flags(as_json=as_json)
    records = service.cancellation_history(_paths(ctx), limit=limit, offset=offset, job=job, status=status_)
    out.result(lambda: [cancellation_document(r) for r in records], human=lambda: render.print_cancellations(records))


# -- plot: a job's metrics over its steps (issue 13, training progress) ------------------------------
@app.command()
def plot(
    ctx: typer.Context,
    jobs_: Annotated[
        list[str], typer.Argument(metavar="JOB...", help="Jobs to plot; several are overlaid.", callback=_job_ref)
    ],
    metric: Annotated[
        list[str], typer.Option("--metric", "-m", help="Metric to plot (repeatable; default: loss).")
    ] = [],  # noqa: B006
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Redraw as the jobs log, until they end.")] = False,
    png: Annotated[Optional[Path], typer.Option("--png", metavar="FILE", help="Write a PNG image instead.")] = None,
    svg: Annotated[Optional[Path], typer.Option("--svg", metavar="FILE", help="Write an SVG image instead.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Plot jobs' metrics (loss, learning_rate, ...) over their steps, in the terminal or as an image."""

    out = Output.from_flags(as_json=as_json)
    paths = _paths(ctx)
    if png is not None and svg is not None:
        raise OumiJobsUsage("--png and --svg: choose one image")
    image, image_format = (png, "png") if png is not None else (svg, "svg") if svg is not None else (None, None)
    jobs_ = sweeps.child_ids(paths, jobs_)  # a sweep: its children's curves overlaid
    if watch:
        drawn = out.follow(plots.follow_plot(paths, jobs_, metric), human=live.watch_plot)
    else:
        drawn = plots.read_plot(paths, jobs_, metric)
    if image is not None and image_format is not None:
        plots.write_image(drawn, image, image_format)
        out.hint(f"wrote {image}")
        out.result(plot_document(drawn, image))
        return
    out.result(plot_document(drawn), human=None if watch else lambda: render.print_plot(drawn))


# -- end of plot -------------------------------------------------------------------------------------


@app.command("clusters")
def clusters_(
    ctx: typer.Context,
    cloud: Annotated[Optional[str], typer.Option("--cloud", help="Only this cloud's clusters.")] = None,
    all_clouds: Annotated[
        bool, typer.Option("--all-clouds", help="Ask every enabled cloud, not only those with jobs here.")
    ] = False,
    cloud_timeout: CloudTimeoutOpt = DEFAULT_CLOUD_TIMEOUT_S,
    as_json: JsonOpt = False,
) -> None:
    """The clusters of the clouds with jobs here: state, our jobs there, price, autostop."""

    out = Output.from_flags(as_json=as_json)
    found = live.with_cloud_progress(
        lambda watcher: clusters.list_clusters(
            _paths(ctx), cloud=cloud, all_clouds=all_clouds, cloud_timeout_s=cloud_timeout, watcher=watcher
        ),
        live=out.live,
    )
    out.result(lambda: [cluster_document(row) for row in found.rows], human=lambda: render.print_clusters(found.rows))
    out.notes([f"{name}: {reason}" for name, reason in sorted(found.unreachable.items())])
    if cloud is not None and cloud in found.unreachable:
        raise typer.Exit(ExitCode.CLOUD_UNREACHABLE)


ClusterArg = Annotated[str, typer.Argument(metavar="CLUSTER", help="The cluster's name, as `clusters` shows it.")]
ClusterCloudOpt = Annotated[str, typer.Option("--cloud", help="The cluster's cloud.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask to type the cluster's name back (scripts).")]
CancelJobsOpt = Annotated[
    bool, typer.Option("--cancel-jobs", help="Cancel our jobs running there first (recorded cancellations).")
]


def _cluster_action(
    ctx: typer.Context,
    action: str,
    cluster: str,
    cloud: str,
    yes: bool,
    cancel_jobs: bool,
    timeout: float,
    as_json: bool,
) -> None:
    out = Output.from_flags(as_json=as_json)
    confirmed = yes
    if not yes:
        typed = output.typed_back(cluster, f"{action} cluster {cluster} of {cloud}?")
        if typed is False:
            out.error(f"the name typed was not {cluster!r}; nothing was done")
            raise typer.Exit(ExitCode.FAILURE)
        confirmed = bool(typed)  # None: nobody to ask, so the core says to pass --yes
    result = clusters.act_on_cluster(
        _paths(ctx), action, cloud, cluster, confirmed=confirmed, cancel_jobs=cancel_jobs, cloud_timeout_s=timeout
    )
    out.result(cluster_action_document(result), human=lambda: render.print_cluster_action(result))


@app.command()
def stop(
    ctx: typer.Context,
    cluster: ClusterArg,
    cloud: ClusterCloudOpt,
    yes: YesOpt = False,
    cancel_jobs: CancelJobsOpt = False,
    cloud_timeout: CloudTimeoutOpt = DEFAULT_CLOUD_TIMEOUT_S,
    as_json: JsonOpt = False,
) -> None:
    """Stop a cluster (launcher.stop): refused while our jobs run there, unless --cancel-jobs."""
    _cluster_action(ctx, "stop", cluster, cloud, yes, cancel_jobs, cloud_timeout, as_json)


@app.command()
def down(
    ctx: typer.Context,
    cluster: ClusterArg,
    cloud: ClusterCloudOpt,
    yes: YesOpt = False,
    cancel_jobs: CancelJobsOpt = False,
    cloud_timeout: CloudTimeoutOpt = DEFAULT_CLOUD_TIMEOUT_S,
    as_json: JsonOpt = False,
) -> None:
    """Tear a cluster down (launcher.down): refused while our jobs run there, unless --cancel-jobs."""
    _cluster_action(ctx, "down", cluster, cloud, yes, cancel_jobs, cloud_timeout, as_json)


@app.command()
def cost(
    ctx: typer.Context,
    since: Annotated[str, typer.Option("--since", help="Jobs submitted since an age (30d) or a date.")] = "30d",
    by: Annotated[str, typer.Option("--by", help="Sum by cloud, cluster or day.")] = "cloud",
    cloud_timeout: CloudTimeoutOpt = DEFAULT_CLOUD_TIMEOUT_S,
    as_json: JsonOpt = False,
) -> None:
    """Estimated cost of the cloud jobs launched here: each cluster's price times the time its job ran."""

    out = Output.from_flags(as_json=as_json)
    report = live.with_cloud_progress(
        lambda watcher: cost_report(_paths(ctx), since=since, by=by, cloud_timeout_s=cloud_timeout, watcher=watcher),
        live=out.live,
    )
    out.result(cost_document(report), human=lambda: render.print_cost(report))
    out.notes([f"{name}: {reason}" for name, reason in sorted(report.unreachable.items())])


def main() -> None:
    app(prog_name="oumi-jobs")
