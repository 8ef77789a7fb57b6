"""What a person sees of cancellations: a cancellation's steps, a table of several, ``cancel --down``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from oumi_jobs.cancel.request import CancelResult
from oumi_jobs.cancel.service import BulkOutcome
from oumi_jobs.cli.output import console, error, hint
from oumi_jobs.cli.render import short_time
from oumi_jobs.cli.render_clusters import print_cluster_action
from oumi_jobs.clusters import CancelThenDown
from oumi_jobs.store.cancellations import CancellationRecord
from oumi_jobs.timestamps import from_iso

# -- cancellations -------------------------------------------------------------
CANCELLATION_STYLES = {
    "requested": "blue",
    "in_progress": "yellow",
    "completed": "green",
    "failed": "bold red",
    "not_needed": "dim",
}


def _styled_cancellation_status(status: str) -> str:
    return f"[{CANCELLATION_STYLES.get(status, 'white')}]{status}[/]"


def cancellation_panel(record: CancellationRecord) -> Any:
    from rich.console import Group
    from rich.table import Table

    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    mode = "force (SIGKILL)" if record.force else f"graceful ({record.signal}, timeout {record.timeout_s:g} s)"
    for label, value in [
        ("cancellation", record.cancellation_id),
        ("job", record.job_id),
        ("status", _styled_cancellation_status(record.status.value)),
        ("mode", mode),
        ("reason", record.reason),
        ("caused by", record.caused_by),
        ("requested", short_time(record.requested_at)),
        ("finished", short_time(record.finished_at) if record.finished_at else None),
        ("final state", record.final_state),
        ("survivors", ", ".join(map(str, record.survivors)) if record.survivors else None),
        ("detail", record.detail),
    ]:
        if value:
            head.add_row(label, value)
    steps = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("STEP", "STATUS", "TIME", "DETAIL"):
        steps.add_column(column, overflow="fold")
    for step in record.steps:
        took = "-"
        if step.ended_at:
            took = f"{(from_iso(step.ended_at) - from_iso(step.started_at)).total_seconds():.2f}s"
        steps.add_row(step.name, _styled_cancellation_status(step.status.value), took, step.detail or "")
    return Group(head, "", steps)


def print_cancellation(record: CancellationRecord) -> None:
    console().print(cancellation_panel(record))


def cancellations_table(records: list[CancellationRecord]) -> Any:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("CANCELLATION", no_wrap=True)
    table.add_column("JOB", no_wrap=True)
    for column in ("STATUS", "MODE", "REQUESTED", "TOOK", "FINAL STATE", "CAUSED BY"):
        table.add_column(column, no_wrap=True)
    table.add_column("REASON", overflow="fold")
    for record in records:
        took = f"{record.duration_s:.2f}s" if record.duration_s is not None else "-"
        table.add_row(
            record.cancellation_id, record.job_id, _styled_cancellation_status(record.status.value), record.mode,
            short_time(record.requested_at), took, record.final_state or "-", record.caused_by or "-",
            record.reason or "",
        )  # fmt: skip
    return table


def print_cancellations(records: list[CancellationRecord]) -> None:
    if not records:
        hint("no cancellations")
        return
    console().print(cancellations_table(records))


def print_bulk(outcomes: Sequence[BulkOutcome]) -> None:
    records = [o.record for o in outcomes if o.record is not None]
    if records:
        console().print(cancellations_table(records))
    for outcome in outcomes:
        if outcome.error is not None:
            error(f"{outcome.job_ref}: {outcome.error}")
    if not outcomes:
        hint("no jobs to cancel")


def print_cancel_down(outcome: CancelThenDown) -> None:
    print_cancellation(outcome.cancellation)
    if outcome.down is not None:
        print_cluster_action(outcome.down)
    else:
        hint(f"the cluster was not torn down: {outcome.left_up}")


def print_cancel_result(result: CancelResult) -> None:
    """``cancel``: one cancellation, a table of several, or a cancellation and the down of its cluster."""
    if result.then_down is not None:
        print_cancel_down(result.then_down)
    elif result.outcomes is not None:
        print_bulk(result.outcomes)
    elif result.record is not None:
        print_cancellation(result.record)
