"""Listing jobs: the registered ones merged with what their clouds report now, as views or as lean JSON.

The lean path (``list --json``) over a registry of finished local jobs needs only the store: the views of
jobs (their live states, their progress read from files, their failures) are imported by the functions
that make them, when the listing has such a job (bench/bench_local.py times it; tests/test_listing.py
checks what it imports).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from oumi_jobs import bounds
from oumi_jobs.cloud import facts, survey
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S  # light: oumi loads lazily
from oumi_jobs.cloud.survey import CloudAnswer, CloudAnswers, CloudWatcher
from oumi_jobs.contract import SCHEMA_VERSION
from oumi_jobs.durations import is_duration, parse_duration
from oumi_jobs.errors import OumiJobsError, UsageError
from oumi_jobs.paths import Paths
from oumi_jobs.states import State
from oumi_jobs.store.listing import ListedRow
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.timestamps import from_iso, now, now_iso, to_iso

if TYPE_CHECKING:
    from oumi_jobs.progress import Progress
    from oumi_jobs.views import JobView


def parse_since(text: str, *, reference: datetime | None = None) -> str:
    """``--since``: an age (``2h``, ``7d``) or an ISO date/time; returns an ISO lower bound."""

    if is_duration(text):
        return to_iso((reference or now()) - parse_duration(text))  # too long an age: its own usage error
    try:
        return to_iso(from_iso(text))
    except (ValueError, OverflowError):
        raise UsageError(
            f"invalid --since {text!r}: use an age such as 2h or 7d, or a date such as 2026-11-01"
        ) from None


@dataclass(frozen=True)
class JobList(CloudAnswers):
    views: list[JobView]


class LeanDocument(NamedTuple):
    """A finished local job read the lean way: the JSON text of its whole document, progress included, as the
    store built it (``store/listing.py``)."""

    job_id: str
    state: State
    text: str


@dataclass(frozen=True)
class JobDocuments(CloudAnswers):
    """The jobs of :func:`list_jobs_report`, read the lean way, in order: a finished local job as a
    :class:`LeanDocument`, any other as a view."""

    listed: list[LeanDocument | JobView]


@dataclass(frozen=True)
class _ListQuery:
    """``list``'s filters, checked."""

    cloud: str | None
    cluster: str | None
    states: frozenset[State]
    since: str | None  # an ISO lower bound
    limit: int | None
    local_only: bool
    all_clouds: bool
    cloud_timeout_s: float
    watcher: CloudWatcher | None
    with_progress: bool
    sweep: str | None = None  # a sweep id or prefix: only its children, in their order

    def wants(self, state: State) -> bool:
        return not self.states or state in self.states


def _list_query(
    *,
    cloud: str | None = None,
    cluster: str | None = None,
    states: Sequence[State] = (),
    since: str | None = None,
    limit: int | None = None,
    local_only: bool = True,
    all_clouds: bool = False,
    cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S,
    watcher: CloudWatcher | None = None,
    with_progress: bool = True,
    sweep: str | None = None,
) -> _ListQuery:
    if limit is not None:
        bounds.check_count("--limit", limit)
    cloud_timeout_s = bounds.check_cloud_timeout(cloud_timeout_s)
    if all_clouds and (local_only or cloud is not None):
        raise UsageError("--all-clouds asks every cloud: it goes with neither --local-only nor --cloud")
    lower_bound = parse_since(since) if since else None
    return _ListQuery(
        cloud, cluster, frozenset(states), lower_bound, limit, local_only, all_clouds, cloud_timeout_s, watcher,
        with_progress, sweep,
    )  # fmt: skip


def list_jobs(paths: Paths, **filters: Any) -> list[JobView]:
    """Registered jobs, newest first, with their live states (see :func:`list_jobs_report`)."""
    return list_jobs_report(paths, **filters).views


def list_jobs_report(paths: Paths, **filters: Any) -> JobList:
    """Registered jobs merged with what their clouds report now (jobs launched elsewhere too).

    Filters: ``cloud``, ``cluster``, ``states``, ``since``, ``limit``,
    ``local_only``, ``all_clouds``, ``cloud_timeout_s``, ``watcher``, ``with_progress`` (default True: each
    job's progress, a local job's read from its files, a cloud job's as last read; see
    :mod:`oumi_jobs.progress`).  Every
    cloud with jobs in the registry is asked at once, each within
    ``cloud_timeout_s``; a cloud that fails or times out leaves its jobs
    ``unknown`` with the reason.  ``cloud`` (not local) is asked even with no
    registered job, to find jobs launched elsewhere; ``all_clouds`` asks every
    cloud oumi.launcher has enabled.  ``local_only`` asks no cloud.
    """
    query = _list_query(**filters)
    with Registry.open(paths) as registry:
        sweep = registry.resolve_sweep(query.sweep).sweep_id if query.sweep is not None else None
        records = registry.jobs(
            cloud=query.cloud, since=query.since, cluster=query.cluster, with_argv=False, sweep=sweep
        )
        if query.cluster is not None or sweep is not None:
            records.reverse()  # one queue, or one sweep: shown in its order, oldest first
        views, answers = _live_views(registry, records, query)
    views = views[: query.limit] if query.limit is not None else views
    if query.with_progress:
        views = _with_progress(paths, views)
    return JobList(answers, views)


def list_job_documents(paths: Paths, **filters: Any) -> JobDocuments:
    """What :func:`list_jobs_report` finds, as JSON documents, read the lean way (``list --json``).

    Finished local jobs, usually nearly all of a big registry, come out of the
    store as JSON built by SQLite (``store/listing.py``), their progress as the
    registry keeps it; only the others get a record and a view.
    tests/test_listing.py checks both ways agree.
    """
    query = _list_query(**filters)
    as_of = now_iso()
    with Registry.open(paths) as registry:
        sweep = registry.resolve_sweep(query.sweep).sweep_id if query.sweep is not None else None
        # One queue or one sweep: shown in its order, oldest first.
        newest_first = query.cluster is None and sweep is None
        rows = registry.listing(
            cloud=query.cloud, cluster=query.cluster, since=query.since, newest_first=newest_first,
            as_of=as_of, schema_version=SCHEMA_VERSION, sweep=sweep, with_progress=query.with_progress,
        )  # fmt: skip
        # The jobs the store gave no document of, read as records (none, in a registry of finished local jobs).
        others = registry.jobs(
            cloud=query.cloud, since=query.since, cluster=query.cluster, with_argv=False,
            newest_first=newest_first, finished_local=False, sweep=sweep,
        ) if any(row[2] is None for row in rows) else []  # fmt: skip
        views, answers = _live_views(registry, others, query, as_of)
        listed, unkept = _in_order(rows, views, query)
        reading = unkept if query.with_progress else set()  # finished jobs whose progress is read and kept now
        if reading:
            listed = _with_kept_progress(paths, registry, listed, reading, as_of)
        # Only a document whose progress is kept is kept (store/listing.py): asking for the others would take
        # the registry's write lock on every listing to write nothing.
        built = [row[0] for row in rows if row[2] is not None and not row[4] and (row[3] or row[0] in reading)]
        _keep_documents(registry, built)
    if query.with_progress and views:
        progressed = iter(_with_progress(paths, [item for item in listed if not isinstance(item, LeanDocument)]))
        listed = [item if isinstance(item, LeanDocument) else next(progressed) for item in listed]
    return JobDocuments(answers, listed)


def _with_progress(paths: Paths, views: list[JobView]) -> list[JobView]:
    # lazy import: reading progress from files, only for jobs the registry has no document of
    from oumi_jobs.view_details import add_progress

    return [add_progress(paths, view) for view in views]


# A state by its value, without Enum's call machinery: looked up once per listed job, thousands of times.
_STATES = {state.value: state for state in State}


def _in_order(
    rows: list[ListedRow], views: list[JobView], query: _ListQuery
) -> tuple[list[LeanDocument | JobView], set[str]]:
    """The listing in order, within ``--limit``: a finished local job's id and document, or a view; and the
    finished jobs listed whose progress the registry does not keep yet."""
    listed: list[LeanDocument | JobView]
    if not views and not query.states:  # only finished local jobs, all wanted (a big registry, usually)
        listed = [
            LeanDocument(job_id, _STATES[state or ""], text) for job_id, state, text, _, _ in rows if text is not None
        ]
    else:
        by_id = {view.job_id: view for view in views if not view.external}
        listed = []
        for job_id, state, document, _, _ in rows:
            if document is not None:
                if query.wants(found := _STATES[state or ""]):  # a document always comes with its state
                    listed.append(LeanDocument(job_id, found, document))
            elif (view := by_id.get(job_id)) is not None:
                listed.append(view)
        listed += [view for view in views if view.external]
    if query.limit is not None:
        listed = listed[: query.limit]
    unkept = {job_id for job_id, _, text, kept, _ in rows if text is not None and not kept}
    if unkept:
        unkept.intersection_update(item.job_id for item in listed if isinstance(item, LeanDocument))
    return listed, unkept


def _with_kept_progress(
    paths: Paths, registry: Registry, listed: list[LeanDocument | JobView], unkept: set[str], as_of: str
) -> list[LeanDocument | JobView]:
    """Finished jobs never read since they ended (ended since the last look, or before the registry kept
    progress): read from their files once, kept in one transaction, and their documents built again."""
    # lazy import: reading files, only for jobs whose progress the registry does not keep yet
    from oumi_jobs.progress import reading

    records = {job_id: r for job_id in sorted(unkept) if (r := registry.get(job_id)) is not None}
    finals = {job_id: reading.local_progress(paths, r, done=True, keep=False) for job_id, r in records.items()}
    try:
        registry.keep_final_progress([reading.final_text(records[j], progress) for j, progress in finals.items()])
    except OumiJobsError:  # a registry this user cannot write: these documents take the general path
        return [_as_view(item, records, finals, as_of) for item in listed]
    built = registry.documents(sorted(unkept), as_of=as_of, schema_version=SCHEMA_VERSION)
    return [
        item._replace(text=built.get(item.job_id, item.text)) if isinstance(item, LeanDocument) else item
        for item in listed
    ]


def _keep_documents(registry: Registry, built: list[str]) -> None:
    """Keep the documents this listing built, for the next one; a registry this user cannot write, or one
    busy for longer than its timeout, keeps none, and the next listing builds them again."""
    if built:
        try:
            registry.keep_documents(built, schema_version=SCHEMA_VERSION)
        except OumiJobsError:
            pass


def _as_view(
    item: LeanDocument | JobView,
    records: Mapping[str, JobRecord],
    finals: Mapping[str, Progress | None],
    as_of: str,
) -> LeanDocument | JobView:
    # lazy import: as _with_progress
    from oumi_jobs.views import view_of

    if not isinstance(item, LeanDocument) or item.job_id not in records:
        return item
    return dataclasses.replace(view_of(records[item.job_id], as_of), progress=finals[item.job_id])


def _live_views(
    registry: Registry, records: list[JobRecord], query: _ListQuery, as_of: str | None = None
) -> tuple[list[JobView], dict[str, CloudAnswer]]:
    """The views of ``records`` that ``query`` wants, in order, then the external jobs; and the clouds' answers."""
    answers: dict[str, CloudAnswer] = {}
    if not query.local_only:
        answers = _ask_clouds(records, query.cloud, query.all_clouds, query.cloud_timeout_s, query.watcher)
    if not records and not answers:
        return [], answers
    # lazy import: the views of jobs, their live states and failures, only when the listing has some
    from oumi_jobs.view_details import add_queue_detail
    from oumi_jobs.views import cloud_job_view, external_view, live_cloud_views, view_of

    live = {(j.cloud, j.cluster, j.launcher_job_id): j for a in answers.values() for j in a.jobs}
    unlisted = _unlisted(records, answers, live)
    alone = live_cloud_views(unlisted, timeout_s=min(query.cloud_timeout_s, ASK_ALONE_S)) if unlisted else {}
    as_of = as_of or now_iso()  # local states of a batch are read within milliseconds of each other
    views: list[JobView] = []
    for record in records:
        if record.is_local or record.cloud not in answers:
            view = view_of(record, as_of)
        elif (asked := alone.get(record.job_id)) is not None:
            view = asked
        else:
            key = (record.cloud, record.cluster or "", record.launcher_job_id or "")
            view = cloud_job_view(record, live.pop(key, None), answers[record.cloud].error, as_of)
        if query.wants(view.state):
            views.append(add_queue_detail(registry, view))
    externals = [
        external_view(job, as_of) for job in live.values() if query.cluster in (None, job.cluster) and not query.sweep
    ]
    return views + [v for v in externals if query.wants(v.state)], answers


# A launched job its cloud's listing leaves out has often just ended (Slurm's queue drops a job its accounting
# still has): at most this many are asked of their cloud alone, as `status` asks, within this many seconds,
# before they are called unknown.
MAX_ASKED_ALONE = 16
ASK_ALONE_S = 10.0


def _unlisted(
    records: list[JobRecord], answers: Mapping[str, CloudAnswer], live: Mapping[tuple[str, str, str], object]
) -> list[JobRecord]:
    """The launched cloud jobs of ``records`` that their cloud answered for without listing them."""
    unlisted = [
        r for r in records
        if not r.is_local and r.cloud in answers and answers[r.cloud].error is None and r.cluster
        and r.launcher_job_id and (r.cloud, r.cluster, r.launcher_job_id) not in live
    ]  # fmt: skip
    return unlisted[:MAX_ASKED_ALONE]


def _ask_clouds(
    records: list[JobRecord], cloud: str | None, all_clouds: bool, timeout_s: float, watcher: CloudWatcher | None
) -> dict[str, CloudAnswer]:
    clouds = {r.cloud for r in records if not r.is_local}
    if cloud is not None and cloud != facts.LOCAL_CLOUD:
        clouds.add(cloud)
    if not clouds and not all_clouds:
        return {}  # nothing to ask: oumi.launcher is not even imported

    asked_for_unregistered = cloud is not None and not any(r.cloud == cloud for r in records)
    if asked_for_unregistered or all_clouds:
        known = survey.registered_clouds(timeout_s=timeout_s)
        if asked_for_unregistered and cloud is not None:
            survey.check_known(cloud, known)
        if all_clouds:
            clouds.update(facts.listable(known))
    return survey.list_clouds(sorted(clouds), timeout_s=timeout_s, watcher=watcher)
