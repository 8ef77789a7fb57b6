"""What a person sees of clusters and their cost: the clusters table, a stop or down, the cost table."""

from __future__ import annotations

from oumi_jobs.cli.output import console, hint, print_line
from oumi_jobs.cli.render import money, short_time
from oumi_jobs.clusters import ClusterAction, ClusterRow
from oumi_jobs.cost_report import CostReport


def print_clusters(rows: list[ClusterRow]) -> None:
    if not rows:
        hint("no clusters")
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("CLOUD", "CLUSTER", "STATE", "RUNNING", "QUEUED", "COST/H", "AUTOSTOP", "AS OF"):
        table.add_column(column, no_wrap=column != "RUNNING", overflow="fold")
    for row in rows:
        autostop = "-"
        if row.autostop_minutes is not None:
            autostop = f"{row.autostop_minutes}m" + (", down" if row.autodown else "")
        table.add_row(
            row.cloud, row.cluster, row.state or "-", ", ".join(row.running) or "-", ", ".join(row.queued) or "-",
            money(row.cost_per_hour), autostop, short_time(row.as_of),
        )  # fmt: skip
    console().print(table)


def print_cluster_action(action: ClusterAction) -> None:
    for job_id in action.cancelled_jobs:
        print_line(f"cancelled {job_id}")
    if action.acted:
        print_line(f"{action.action}: {action.detail}")
    else:  # the call succeeded, and the cloud did nothing: never reported as done
        print_line(f"{action.action} of {action.cluster} did nothing: {action.detail}")


def print_cost(report: CostReport) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in (report.by.upper(), "JOBS", "PRICED", "COST (EST.)"):
        table.add_column(column, justify="left" if column == report.by.upper() else "right")
    for group in report.groups:
        table.add_row(group.group, str(group.jobs), str(group.priced_jobs), money(group.cost_so_far))
    table.add_row("[bold]total[/]", str(report.jobs), str(report.jobs - report.unpriced_jobs),
                  f"[bold]{money(report.total_cost_so_far)}[/]")  # fmt: skip
    console().print(table)
    since = f" since {short_time(report.since)}" if report.since else ""
    hint(f"estimates{since}: the launcher's price of each cluster times the time its job ran")
    if report.unpriced_jobs:
        hint(f"{report.unpriced_jobs} job(s) without a price or a known end are not in the sums")
