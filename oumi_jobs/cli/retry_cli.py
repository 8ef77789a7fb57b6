"""``retry JOB``: the next attempt of an ended job.  Parse, one call into :mod:`oumi_jobs.retry_job`, render."""

from __future__ import annotations

import typer

from oumi_jobs.cli import render
from oumi_jobs.cli.context import paths_of
from oumi_jobs.cli.options import JobArg, JsonOpt
from oumi_jobs.cli.output import Output
from oumi_jobs.render.base import job_document
from oumi_jobs.retry_job import retry as retry_job


def retry(ctx: typer.Context, job: JobArg, as_json: JsonOpt = False) -> None:
    """Start the next attempt of an ended job (any ended state), with the same id; exit 4 while it is not done."""
    view = retry_job(paths_of(ctx), job)
    Output.from_flags(as_json=as_json).result(job_document(view), human=lambda: render.print_job(view))
