"""The cluster commands: ``clusters``, ``stop``, ``down``, and ``cost``, which sums what the clusters cost."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from oumi_jobs import clusters
from oumi_jobs.cli import output, render_clusters
from oumi_jobs.cli.cloud_progress import with_cloud_progress
from oumi_jobs.cli.context import paths_of
from oumi_jobs.cli.options import CloudTimeoutOpt, JsonOpt
from oumi_jobs.cli.output import Output
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.cost_report import cost_report
from oumi_jobs.errors import ExitCode
from oumi_jobs.render.clusters import cluster_action_document, cluster_document, cost_document
from oumi_jobs.render.outcome import Outcome, asked_cloud_exit


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
    found = with_cloud_progress(
        lambda watcher: clusters.list_clusters(
            paths_of(ctx), cloud=cloud, all_clouds=all_clouds, cloud_timeout_s=cloud_timeout, watcher=watcher
        ),
        live=out.live,
    )
    outcome = Outcome(
        lambda: [cluster_document(row) for row in found.rows],
        unreachable=found.unreachable,
        exit_code=asked_cloud_exit(found.unreachable, cloud),
    )
    raise typer.Exit(out.outcome(outcome, human=lambda: render_clusters.print_clusters(found.rows)))


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
        paths_of(ctx), action, cloud, cluster, confirmed=confirmed, cancel_jobs=cancel_jobs, cloud_timeout_s=timeout
    )
    out.result(cluster_action_document(result), human=lambda: render_clusters.print_cluster_action(result))


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


def cost(
    ctx: typer.Context,
    since: Annotated[str, typer.Option("--since", help="Jobs submitted since an age (30d) or a date.")] = "30d",
    by: Annotated[str, typer.Option("--by", help="Sum by cloud, cluster or day.")] = "cloud",
    cloud_timeout: CloudTimeoutOpt = DEFAULT_CLOUD_TIMEOUT_S,
    as_json: JsonOpt = False,
) -> None:
    """Estimated cost of the cloud jobs launched here: each cluster's price times the time its job ran."""

    out = Output.from_flags(as_json=as_json)
    report = with_cloud_progress(
        lambda watcher: cost_report(paths_of(ctx), since=since, by=by, cloud_timeout_s=cloud_timeout, watcher=watcher),
        live=out.live,
    )
    outcome = Outcome(cost_document(report), unreachable=report.unreachable)
    raise typer.Exit(out.outcome(outcome, human=lambda: render_clusters.print_cost(report)))
