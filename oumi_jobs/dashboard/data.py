"""What each page shows, read through the same library calls and documents as the CLI and the REST API.

Every value a page renders is a piece of a ``--json`` document (:mod:`oumi_jobs.api`
builds them); this module only picks the documents a page needs, pages the jobs
on the server, groups them by sweep and reads the log tails.  No rule of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson

from oumi_jobs import api
from oumi_jobs.errors import JobNotFoundError, OumiJobsError, UsageError
from oumi_jobs.paths import Paths
from oumi_jobs.render.listing import lean_texts

PAGE_SIZE = 50
LOG_TAIL_LINES = 200
# The sweep page's overlaid curves: at most this many children (the request names each).
MAX_OVERLAID = 50


@dataclass(frozen=True)
class JobsQuery:
    """The jobs page's filters and page (0 first)."""

    state: str | None = None
    cloud: str | None = None
    sweep: str | None = None
    page: int = 0

    def params(self, page: int | None = None) -> str:
        """The query string of these filters (and ``page``), for links and the live fragment."""
        values = {"state": self.state, "cloud": self.cloud, "sweep": self.sweep}
        values["page"] = str(self.page if page is None else page)
        return urlencode({key: value for key, value in values.items() if value})


@dataclass(frozen=True)
class JobGroup:
    sweep_id: str | None  # None: jobs of no sweep
    jobs: list[dict[str, Any]]


@dataclass(frozen=True)
class JobsPage:
    query: JobsQuery
    groups: list[JobGroup]
    has_more: bool
    count: int


def jobs_page(paths: Paths, query: JobsQuery) -> JobsPage:
    """One page of ``list --json`` (no cloud asked: the page must answer at once), grouped by sweep."""
    if query.page < 0:
        raise UsageError("page must not be negative")
    states = api.parse_states([query.state]) if query.state else []
    end = (query.page + 1) * PAGE_SIZE
    report = api.list_job_documents(
        paths, cloud=query.cloud or None, states=states, sweep=query.sweep or None, limit=end + 1, local_only=True
    )
    texts = lean_texts(report)
    jobs = [orjson.loads(text) for text in texts[query.page * PAGE_SIZE : end]]
    groups: list[JobGroup] = []
    for job in jobs:  # consecutive jobs of one sweep make one group, in the listing's order
        sweep = job.get("sweep_id")
        if groups and groups[-1].sweep_id == sweep:
            groups[-1].jobs.append(job)
        else:
            groups.append(JobGroup(sweep, [job]))
    return JobsPage(query, groups, len(texts) > end, len(jobs))


@dataclass(frozen=True)
class JobPage:
    job: dict[str, Any]
    stdout: str | None
    stderr: str | None
    cancellation: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)  # what could not be read, said on the page


def job_page(paths: Paths, ref: str) -> JobPage:
    """``status --json``, the last LOG_TAIL_LINES of each log, and the latest cancellation with its steps."""
    job = api.job_document(api.get_status(paths, ref))
    notes: list[str] = []
    stdout = _tail(paths, job["job_id"], stderr=False, notes=notes)
    stderr = _tail(paths, job["job_id"], stderr=True, notes=notes) if job["cloud"] == "local" else None
    try:
        cancellation: dict[str, Any] | None = api.cancellation_document(api.cancellation_status(paths, job["job_id"]))
    except JobNotFoundError:
        cancellation = None
    return JobPage(job, stdout, stderr, cancellation, notes)


def _tail(paths: Paths, job_id: str, *, stderr: bool, notes: list[str]) -> str | None:
    try:
        return "".join(api.read_log(paths, job_id, stderr=stderr, tail=LOG_TAIL_LINES))
    except OumiJobsError as exc:
        notes.append(f"{'stderr' if stderr else 'stdout'}: {exc}")
        return None


@dataclass(frozen=True)
class SweepPage:
    sweep: dict[str, Any]
    compare: list[dict[str, Any]]


def sweep_page(paths: Paths, ref: str) -> SweepPage:
    """``status SWEEP --json`` and ``compare SWEEP --json`` (its loss)."""
    sweep = api.sweep_document(api.sweep_status(paths, ref))
    rows = [api.compare_document(row) for row in api.compare_sweep(paths, sweep["sweep_id"])]
    return SweepPage(sweep, rows)


def cancellations_page(paths: Paths, page: int) -> tuple[list[dict[str, Any]], bool]:
    """``cancellations --json``, PAGE_SIZE at a time; and whether there are more."""
    if page < 0:
        raise UsageError("page must not be negative")
    records = api.cancellation_history(paths, limit=PAGE_SIZE + 1, offset=page * PAGE_SIZE)
    return [api.cancellation_document(record) for record in records[:PAGE_SIZE]], len(records) > PAGE_SIZE
