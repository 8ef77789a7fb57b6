"""``notifications`` (the delivery records, newest first) and ``notify test URL``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from oumi_jobs.cli.context import paths_of
from oumi_jobs.cli.options import JsonOpt, count, job_ref
from oumi_jobs.cli.output import Output, console, hint
from oumi_jobs.cli.render import short_time
from oumi_jobs.notify.records import notification_history
from oumi_jobs.notify.sender import send_test
from oumi_jobs.render.notifications import notification_document, test_document
from oumi_jobs.store.notifications import NotificationRecord

notify_app = typer.Typer(help="Notifications: send a test event to a URL.", no_args_is_help=True)


def notifications(
    ctx: typer.Context,
    job: Annotated[
        Optional[str], typer.Option("--job", help="Only this job's (or sweep's) notifications.", callback=job_ref)
    ] = None,
    status_: Annotated[Optional[str], typer.Option("--status", help="Only pending, sent or failed ones.")] = None,
    limit: Annotated[
        int, typer.Option("--limit", help="At most this many, newest first.", callback=count("--limit"))
    ] = 20,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many first.", callback=count("--offset"))] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Notification deliveries, newest first (URLs shown with their credentials redacted)."""
    records = notification_history(paths_of(ctx), job=job, status=status_, limit=limit, offset=offset)
    Output.from_flags(as_json=as_json).result(
        lambda: [notification_document(r) for r in records], human=lambda: _print(records)
    )


@notify_app.command("test")
def test(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="Where to send it: https://..., slack://..., ntfys://...")],
    as_json: JsonOpt = False,
) -> None:
    """Send a test event to URL now: exit 0 when it was delivered, 1 with the reason when not."""
    shown = send_test(paths_of(ctx), url)
    Output.from_flags(as_json=as_json).result(
        lambda: test_document(shown), human=lambda: console().print(f"delivered to {shown}")
    )


def _print(records: list[NotificationRecord]) -> None:
    if not records:
        hint("no notifications")
        return
    from rich.table import Table

    table = Table(title="notifications", title_justify="left")
    for column in ("id", "job", "event", "url", "status", "tries", "sent", "error"):
        table.add_column(column, overflow="fold")
    for r in records:
        table.add_row(str(r.notification_id), r.job_id, r.event, r.shown_url, r.status, str(r.attempts),
                      short_time(r.sent_at) if r.sent_at else "", r.last_error or "")  # fmt: skip
    console().print(table)
