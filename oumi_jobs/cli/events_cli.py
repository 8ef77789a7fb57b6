"""``events JOB``: a job's timeline.  Parse, one call into :mod:`oumi_jobs.timeline`, render."""

from __future__ import annotations

from typing import Any

import typer

from oumi_jobs import timeline as timelines
from oumi_jobs.cli.context import paths_of
from oumi_jobs.cli.options import JobArg, JsonOpt
from oumi_jobs.cli.output import Output, console, hint
from oumi_jobs.cli.render import short_time
from oumi_jobs.render.events import timeline_documents


def events(ctx: typer.Context, job: JobArg, as_json: JsonOpt = False) -> None:
    """A job's timeline: submitted, each attempt's start and end, guards, retries, cancellations, notifications."""
    found = timelines.timeline(paths_of(ctx), job)
    Output.from_flags(as_json=as_json).result(lambda: timeline_documents(found), human=lambda: _print(found))


def _print(found: timelines.Timeline) -> None:
    if not found.events:
        hint(f"{found.job_id}: no events")
        return
    from rich.table import Table

    table = Table(title=f"events of {found.job_id}", title_justify="left")
    for column in ("at", "attempt", "kind", "what"):
        table.add_column(column, overflow="fold")
    for event in found.events:
        table.add_row(short_time(event.at), str(event.attempt), event.kind, _what(event.detail))
    console().print(table)


def _what(detail: dict[str, Any]) -> str:
    """The event's own facts on one line, the unknown ones left out."""
    parts = []
    for key, value in detail.items():
        if value is None or value == "":
            continue
        if isinstance(value, dict):  # a failure: its class and cause say it
            value = " - ".join(str(value[k]) for k in ("class", "cause") if value.get(k)) or value
        parts.append(f"{key}={value}")
    return ", ".join(parts)
