"""The job commands: ``submit``, ``check``, ``status``, ``wait``, ``logs`` and ``plot`` (``list`` is in
:mod:`oumi_jobs.cli.list_cli`).

Each parses its options, makes one call into the core and renders what it
returns through one :class:`~oumi_jobs.cli.output.Output` made from its flags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from oumi_jobs import plots, preflight, submitting, waiting
from oumi_jobs.cli import live, render, sweeps_cli
from oumi_jobs.cli.context import paths_of
from oumi_jobs.cli.options import (
    CloudOpt,
    CloudTimeoutOpt,
    ClusterOpt,
    IdCloudOpt,
    IdClusterOpt,
    JsonOpt,
    LauncherIdOpt,
    OptionalJobArg,
    QuietOpt,
    WatchOpt,
    count,
    job_ref,
)
from oumi_jobs.cli.output import Mode, Output
from oumi_jobs.cli.submit_options import (
    AutostopOpt,
    DownOpt,
    DryRunOpt,
    GpusOpt,
    NodesOpt,
    NoPreflightOpt,
    with_policy,
)
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.errors import UsageError
from oumi_jobs.exits import job_exit_code, wait_exit_code
from oumi_jobs.external import CloudIdentity, job_or_identity
from oumi_jobs.logs import log_path, read_log
from oumi_jobs.policy import MAX_RETRIES, JobPolicy
from oumi_jobs.render.base import job_document
from oumi_jobs.render.jobs import check_outcome, dry_run_outcome, log_document, plot_document
from oumi_jobs.render.outcome import Outcome
from oumi_jobs.status import get_status, status_by_identity
from oumi_jobs.store.queues import MAX_PARALLEL
from oumi_jobs.sweeps import service as sweeps


@with_policy
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
        typer.Option("--after", help="Start only when this job has succeeded (repeatable).", callback=job_ref),
    ] = [],  # noqa: B006
    parallel: Annotated[
        Optional[int],
        typer.Option(
            "--parallel",
            help="Let N jobs of this local cluster run at once (kept).",
            callback=count("--parallel", 1, MAX_PARALLEL),
        ),
    ] = None,
    gpus: GpusOpt = None,
    nodes: NodesOpt = None,
    autostop: AutostopOpt = None,
    down: DownOpt = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job to its end; exit with its outcome.")] = False,
    dry_run: DryRunOpt = False,
    no_preflight: NoPreflightOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
    policy: JobPolicy | None = None,
) -> None:
    """Start a job.  Prints its id."""
    request = submitting.SubmitRequest(
        config=str(config), cloud=cloud, cluster=cluster, name=name, command=command, env=tuple(env),
        workdir=workdir, after=tuple(after), parallel=parallel, gpus=gpus, nodes=nodes, autostop=autostop, down=down,
        preflight=not no_preflight, policy=policy or JobPolicy(),
    )  # fmt: skip
    (_dry_run if dry_run else _submit)(ctx, Output.from_flags(as_json=as_json, quiet=quiet), request, wait)


def _dry_run(ctx: typer.Context, out: Output, request: submitting.SubmitRequest, wait: bool) -> None:
    if wait:
        raise UsageError("--dry-run starts nothing to wait for; drop --wait")
    dry = submitting.dry_run(paths_of(ctx), request)
    raise typer.Exit(out.outcome(dry_run_outcome(dry), human=lambda: render.print_dry_run(dry)))


def _submit(ctx: typer.Context, out: Output, request: submitting.SubmitRequest, wait: bool) -> None:
    paths = paths_of(ctx)
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

    checked = preflight.check_config(config, cwd=Path.cwd(), command=command, cloud=cloud)
    out = Output.from_flags(as_json=as_json)
    raise typer.Exit(out.outcome(check_outcome(checked), human=lambda: render.print_check(checked)))


def status(
    ctx: typer.Context,
    job: OptionalJobArg = None,
    cloud: IdCloudOpt = None,
    cluster: IdClusterOpt = None,
    launcher_id: LauncherIdOpt = None,
    cloud_timeout: CloudTimeoutOpt = DEFAULT_CLOUD_TIMEOUT_S,
    watch: WatchOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Live state of one job, by id or by its cloud identity (jobs launched elsewhere too)."""

    out = Output.from_flags(as_json=as_json)
    paths = paths_of(ctx)
    which = job_or_identity(job, cloud, cluster, launcher_id)
    if isinstance(which, CloudIdentity):
        view = status_by_identity(
            paths, which.cloud, which.cluster, which.launcher_job_id, cloud_timeout_s=cloud_timeout
        )
        if not view.job_id or not watch:
            out.result(job_document(view), human=lambda: render.print_job(view))
            return
        which = view.job_id  # registered: watched as any job
    if sweeps.names_sweep(paths, which):
        if watch:
            raise UsageError("status --watch follows one job; `wait SWEEP` follows a sweep to its end")
        if out.mode is Mode.JSON:  # thousands of children: their documents built by SQLite
            sweeps_cli.show_documents(out, sweeps.sweep_documents(paths, which, cloud_timeout_s=cloud_timeout))
        else:
            sweeps_cli.show_status(out, sweeps.sweep_status(paths, which, cloud_timeout_s=cloud_timeout))
        return
    if watch:
        view = out.follow(waiting.follow_until_done(paths, which), human=live.watch)
        out.result(job_document(view))  # a person saw it live
        return
    view = get_status(paths, which, cloud_timeout_s=cloud_timeout)
    out.result(job_document(view), human=lambda: render.print_job(view))


def wait(
    ctx: typer.Context,
    jobs_: Annotated[
        list[str],
        typer.Argument(metavar="JOB...", help="Jobs to wait for (ids or unique prefixes).", callback=job_ref),
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
    jobs_ = sweeps.child_ids(paths_of(ctx), jobs_)  # a sweep stands for its children
    results = waiting.follow_jobs(paths_of(ctx), jobs_, timeout_s=timeout_s, cloud_timeout_s=cloud_timeout)
    result = out.follow(results, human=live.watch_jobs)
    timed_out = result.timed_out and result.pending
    outcome = Outcome(
        [job_document(view) for view in result.views],  # a person saw them live
        errors=(f"timed out after {timeout}; not done: {', '.join(v.job_id for v in result.pending)}",)
        if timed_out
        else (),
        exit_code=wait_exit_code(result),
    )
    raise typer.Exit(out.outcome(outcome))


def logs(
    ctx: typer.Context,
    job: OptionalJobArg = None,
    cloud: IdCloudOpt = None,
    cluster: IdClusterOpt = None,
    launcher_id: LauncherIdOpt = None,
    stderr: Annotated[bool, typer.Option("--stderr", help="Print stderr instead of stdout.")] = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job is done.")] = False,
    tail: Annotated[
        Optional[int], typer.Option("--tail", "-n", help="Only the last N lines.", callback=count("--tail"))
    ] = None,
    cloud_timeout: CloudTimeoutOpt = DEFAULT_CLOUD_TIMEOUT_S,
    attempt: Annotated[
        Optional[int],
        typer.Option("--attempt", min=1, max=MAX_RETRIES + 1, help="The output of attempt N (default: the latest)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a job's output (by id, or by its cloud identity: jobs launched elsewhere too)."""

    out = Output.from_flags(as_json=as_json)
    paths = paths_of(ctx)
    which = job_or_identity(job, cloud, cluster, launcher_id)
    chunks = read_log(
        paths, which, stderr=stderr, tail=tail, follow=follow, cloud_timeout_s=cloud_timeout, attempt=attempt
    )

    def document() -> dict[str, Any]:
        text = "".join(chunks)  # the whole log first: reading it may fail before the path is asked for
        job_id, path = log_path(paths, which, stderr=stderr, attempt=attempt)
        return log_document(job_id or None, "stderr" if stderr else "stdout", path, text)

    out.result(document, human=lambda: render.print_log(chunks))


def plot(
    ctx: typer.Context,
    jobs_: Annotated[
        list[str], typer.Argument(metavar="JOB...", help="Jobs to plot; several are overlaid.", callback=job_ref)
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
    paths = paths_of(ctx)
    if png is not None and svg is not None:
        raise UsageError("--png and --svg: choose one image")
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
