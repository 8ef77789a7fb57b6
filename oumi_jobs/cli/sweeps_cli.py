"""The sweep commands of the command line: ``sweep CONFIG`` and ``sweeps``; and how the job commands
(``status``, ``cancel``, ``wait``) read a sweep id.  Parse, one call into :mod:`oumi_jobs.sweeps.service`,
render; registered on the root app by :func:`register`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from oumi_jobs.cli import output, render, render_cancel
from oumi_jobs.cli.context import paths_of
from oumi_jobs.cli.output import Output
from oumi_jobs.cli.submit_options import (
    AutostopOpt,
    DownOpt,
    DryRunOpt,
    GpusOpt,
    NodesOpt,
    NoPreflightOpt,
    with_policy,
)
from oumi_jobs.exits import sweep_cancel_exit_code
from oumi_jobs.policy import JobPolicy
from oumi_jobs.render.outcome import EncodedDocument
from oumi_jobs.render.sweeps import (
    compare_document,
    sweep_cancel_document,
    sweep_document,
    sweep_document_text,
    sweep_dry_run_outcome,
    sweep_summary_document,
)
from oumi_jobs.submitting import SubmitRequest
from oumi_jobs.sweeps import service
from oumi_jobs.sweeps.compare import CompareRow, compare_sweep
from oumi_jobs.sweeps.service import SweepCancel, SweepDocuments, SweepDryRun, SweepStatus, SweepSummary

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
ListOpt = list[str]


@with_policy
def sweep(
    ctx: typer.Context,
    config: Annotated[Path, typer.Argument(help="An Oumi job config (run:/resources:) or task config (train, ...).")],
    set_: Annotated[
        ListOpt, typer.Option("--set", help="PATH=V1,V2,...: a setting and its values (repeatable; every combination).")
    ] = [],  # noqa: B006
    zip_values: Annotated[bool, typer.Option("--zip", help="Pair the --set lists position by position.")] = False,
    values: Annotated[
        Optional[str], typer.Option("--values", help="A YAML/JSON list of {path: value} mappings, one per child.")
    ] = None,
    cloud: Annotated[
        Optional[str], typer.Option("--cloud", help="Cloud to run on (default: the config's, else local).")
    ] = None,
    cluster: Annotated[Optional[str], typer.Option("--cluster", help="Cluster to run on.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="The sweep's name: children are NAME-0000, ...")] = None,
    command: Annotated[Optional[str], typer.Option("--command", help="oumi command for a task config.")] = None,
    env: Annotated[ListOpt, typer.Option("--env", help="Environment variable K=V (repeatable).")] = [],  # noqa: B006
    workdir: Annotated[Optional[str], typer.Option("--workdir", help="Working directory.")] = None,
    after: Annotated[ListOpt, typer.Option("--after", help="Start only when this job has succeeded.")] = [],  # noqa: B006
    parallel: Annotated[
        Optional[int], typer.Option("--parallel", help="Local: children run at once (default 1); cloud: launches.")
    ] = None,
    gpus: GpusOpt = None,
    nodes: NodesOpt = None,
    autostop: AutostopOpt = None,
    down: DownOpt = False,
    dry_run: DryRunOpt = False,
    no_preflight: NoPreflightOpt = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Print only the sweep id.")] = False,
    as_json: JsonOpt = False,
    policy: JobPolicy | None = None,
) -> None:
    """Many jobs from one config: every combination of the --set values (or --zip, or --values FILE)."""

    out = Output.from_flags(as_json=as_json, quiet=quiet)
    child = SubmitRequest(
        config=str(config), cloud=cloud, cluster=cluster, name=name, command=command, env=tuple(env),
        workdir=workdir, after=tuple(after), gpus=gpus, nodes=nodes, autostop=autostop, down=down,
        preflight=not no_preflight, policy=policy or JobPolicy(),
    )  # fmt: skip
    request = service.SweepRequest(
        child, sets=tuple(set_), zip_values=zip_values, values_file=values, parallel=parallel
    )
    if dry_run:
        dry = service.dry_run_sweep(paths_of(ctx), request)
        raise typer.Exit(out.outcome(sweep_dry_run_outcome(dry), human=lambda: print_sweep_dry_run(dry)))
    status = service.create_sweep(paths_of(ctx), request)
    for warning in status.warnings:
        out.warn(warning)
    out.value(status.sweep.sweep_id)
    out.hint(f"submitted {status.sweep.size} jobs; follow them with: oumi-jobs status {status.sweep.sweep_id}")
    out.result(sweep_document(status))


def sweeps(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The sweeps, newest first: id, name, size, counts by state."""

    summaries = service.list_sweeps(paths_of(ctx))
    Output.from_flags(as_json=as_json).result(
        [sweep_summary_document(s) for s in summaries], human=lambda: print_sweeps(summaries)
    )


def compare(
    ctx: typer.Context,
    sweep_ref: Annotated[str, typer.Argument(metavar="SWEEP", help="A sweep id, or a unique prefix of one.")],
    metric: Annotated[str, typer.Option("--metric", help="The metric to compare (default: loss).")] = "loss",
    highest: Annotated[bool, typer.Option("--max", help="Higher is better: highest first.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """One row per child: its overrides, state, and the last and best value of --metric, best first."""

    rows = compare_sweep(paths_of(ctx), sweep_ref, metric=metric, highest=highest)
    Output.from_flags(as_json=as_json).result([compare_document(r) for r in rows], human=lambda: print_compare(rows))


# -- what the job commands do with a sweep id (called from cli/app.py) ---------------------------------
def show_status(out: Output, status: SweepStatus) -> None:
    out.result(sweep_document(status), human=lambda: print_sweep(status))


def show_documents(out: Output, documents: SweepDocuments) -> None:
    """``status SWEEP --json``: the sweep document as the lean listing builds it."""
    out.result(EncodedDocument(sweep_document_text(documents)))


def show_cancel(out: Output, result: SweepCancel) -> None:
    """Print ``cancel SWEEP`` and exit: the worst of the children's cancellations (a child already over is
    not a conflict in a sweep)."""
    out.result(sweep_cancel_document(result), human=lambda: print_sweep_cancel(result))
    raise typer.Exit(sweep_cancel_exit_code(result.outcomes))


# -- rendering for a person -------------------------------------------------------------------------
def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no children"


def print_sweep(status: SweepStatus) -> None:
    sweep = status.sweep
    output.print_line(f"{sweep.sweep_id}  {sweep.size} jobs of {sweep.config_path} on {sweep.cloud}")
    output.print_line(f"  {_counts(status.counts)}{'  (done)' if status.done else ''}")
    render.print_jobs(status.children)


def print_sweep_dry_run(dry: SweepDryRun) -> None:
    """What would run: each child's values and command line (local) or staged config (a cloud); a cloud
    sweep's first child's job config as YAML, as ``submit --dry-run`` shows it."""
    import shlex

    import yaml

    base = dry.base
    where = f"{base.cloud} (cluster {dry.cluster or 'named by the cloud'})"
    output.print_line(f"# sweep {dry.sweep_id}: {len(dry.children)} jobs of {base.config_path} on {where}")
    for child in dry.children:
        values = " ".join(f"{path}={value}" for path, value in child.overrides.items())
        ran = f"argv: {shlex.join(child.plan.argv)}" if child.job_config is None else ""
        staged = f"config: {child.staged[0]}" if child.staged is not None else ""
        output.print_line("  ".join(part for part in (child.record.job_id, values, ran, staged) if part))
    first = dry.children[0]
    if first.job_config is not None:
        output.print_line(f"# job config for {first.record.job_id}")
        output.print_line(yaml.safe_dump(first.job_config, sort_keys=False).rstrip())
    output.hint("dry run: nothing was registered, started or provisioned")


def print_sweeps(summaries: list[SweepSummary]) -> None:
    if not summaries:
        output.hint("no sweeps")
        return
    for s in summaries:
        output.print_line(f"{s.sweep.sweep_id}  {s.sweep.name}  {s.sweep.size} jobs  {_counts(s.counts)}")


def print_sweep_cancel(result: SweepCancel) -> None:
    output.print_line(
        f"{result.sweep_id}: {len(result.cancelled_before_start)} cancelled before they started, "
        f"{len(result.outcomes)} cancelled while waiting or running"
    )
    if result.outcomes:
        render_cancel.print_bulk(result.outcomes)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def print_compare(rows: list[CompareRow]) -> None:
    if not rows:
        output.hint("no children")
        return
    output.print_line(f"{'job':<24} {'state':<10} {'last':>10} {'best':>10} {'step':>6}  overrides")
    for r in rows:
        values = ", ".join(f"{k}={v}" for k, v in (r.overrides or {}).items())
        output.print_line(
            f"{r.view.job_id:<24} {r.view.state.value:<10} {_number(r.last):>10} {_number(r.best):>10} "
            f"{_number(r.step):>6}  {values}"
        )
