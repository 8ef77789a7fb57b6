"""Submitting jobs and reading their live state: the core behind submit, status and list."""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from oumi_jobs import bounds, configs, preflight, progress
from oumi_jobs.cancel import takeover
from oumi_jobs.cloud import adapter, facts, survey
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S  # light: oumi loads lazily
from oumi_jobs.cloud.guidance import cloud_guidance
from oumi_jobs.cloud.launching import staged_config, write_launch_options
from oumi_jobs.cloud.survey import CloudAnswer, CloudWatcher
from oumi_jobs.durations import is_duration, parse_duration
from oumi_jobs.errors import AmbiguousJobError, JobNotFoundError, OumiJobsError, PreflightError, UsageError
from oumi_jobs.events import log_event
from oumi_jobs.ids import job_id_from_name, new_job_id
from oumi_jobs.local import detach, queues
from oumi_jobs.local.procs import boot_id, identify
from oumi_jobs.paths import Paths, ensure_private_dir
from oumi_jobs.progress import MetricSeries, Progress
from oumi_jobs.render.base import SCHEMA_VERSION, encode_json, job_document, progress_document
from oumi_jobs.states import State
from oumi_jobs.store.queues import MAX_PARALLEL
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.timestamps import from_iso, now, now_iso, to_iso
from oumi_jobs.views import JobView, cloud_job_view, external_view, live_cloud_view, view_of


@dataclass(frozen=True)
class SubmitRequest:
    config: str
    cloud: str | None = None
    cluster: str | None = None
    name: str | None = None
    command: str | None = None
    env: Sequence[str] = ()
    workdir: str | None = None
    after: Sequence[str] = ()
    parallel: int | None = None
    gpus: str | None = None  # accelerators of a cloud job, e.g. "A100:8"
    nodes: int | None = None  # nodes of a cloud job
    autostop: str | None = None  # a duration (30m, 2h): stop the cluster when idle this long (SkyPilot clouds)
    down: bool = False  # tear the cluster down when it goes idle after the job (SkyPilot clouds)
    cwd: Path = field(default_factory=Path.cwd)
    preflight: bool = True  # False: a cloud launch skips the blocking checks (said in the warnings)


@dataclass(frozen=True)
class Submitted:
    """What ``submit`` returns: the new job, and warnings worth reading before it runs far."""

    view: JobView
    warnings: tuple[str, ...] = ()

    @property
    def job_id(self) -> str:
        return self.view.job_id


def submit(paths: Paths, request: SubmitRequest) -> Submitted:
    """Validate the request, register the job and start it.  Nothing is written on bad input.

    A submit that fails after the job was registered (its supervisor or launching
    process cannot be started, a file cannot be written, Ctrl-C) takes the
    record back out: no half-made job is ever left "pending" for a process
    that will not come.
    """

    plan = _plan(request)
    job_id = job_id_from_name(request.name) if request.name else new_job_id(plan.command)
    options = _launch_options(plan, request)  # options the job cannot take: exit 2 before any check
    if plan.cloud != facts.LOCAL_CLOUD:
        checked = _preflight(paths, request, plan, job_id)
        warnings = (*checked, *cloud_guidance(plan, request.cwd, paths))
        return Submitted(_submit_to_cloud(paths, request, plan, job_id, options), warnings)
    cluster = plan.cluster or facts.DEFAULT_LOCAL_CLUSTER
    log_dir = paths.job_log_dir(job_id)
    record = JobRecord(
        job_id=job_id,
        cloud=plan.cloud,
        submit_time=now_iso(),
        name=request.name,
        command=plan.command,
        config_path=str(plan.config_path),
        cluster=cluster,
        model_name=plan.model_name,
        output_dir=plan.output_dir,
        argv=plan.argv,
        workdir=str(plan.workdir),
        stdout_path=str(log_dir / "stdout.log"),
        stderr_path=str(log_dir / "stderr.log"),
        boot_id=boot_id(),
    )
    with Registry.open(paths) as registry:
        depends_on = _resolve_dependencies(registry, job_id, request.after)
        registry.add(dataclasses.replace(record, depends_on=depends_on))
        with _taken_back_on_failure(registry, job_id, log_dir):
            if request.parallel is not None:
                registry.set_parallel(cluster, request.parallel)
            ensure_private_dir(log_dir)
            env = dict(os.environ) | dict(plan.env_overrides)
            pid = _spawn(paths, job_id, env, module=detach.SUPERVISOR, verb="start")
        stored = _record_started(paths, registry, plan, job_id, pid)
    return Submitted(view_of(stored))


def _plan(request: SubmitRequest) -> configs.LaunchPlan:
    if request.parallel is not None:
        bounds.check_count("--parallel", request.parallel, low=1, high=MAX_PARALLEL)
    return configs.plan_launch(
        request.config,
        cwd=request.cwd,
        cloud=request.cloud,
        cluster=request.cluster,
        command=request.command,
        workdir=request.workdir,
        env=request.env,
        gpus=request.gpus,
        nodes=request.nodes,
    )


def _preflight(paths: Paths, request: SubmitRequest, plan: configs.LaunchPlan, job_id: str) -> tuple[str, ...]:
    """The pre-flight of a cloud launch: PreflightError naming each problem, else its warnings."""
    if not request.preflight:
        return (f"pre-flight checks skipped (--no-preflight): {plan.config_path} is launched unchecked",)
    job_config = configs.cloud_job_config(
        plan, job_id=job_id, staging_dir=staged_config(paths, job_id).parent, stage=False
    )
    checked = preflight.preflight(plan, job_config, cwd=request.cwd)
    if not checked.ok:
        count = len(checked.problems)
        raise PreflightError(
            f"pre-flight found {count} problem{'s' if count > 1 else ''} in {plan.config_path}; nothing was "
            "launched or registered (--no-preflight skips these checks)",
            tuple(f"{p.check}: {p.line()}" for p in checked.problems),
        )
    return checked.warnings


@dataclass(frozen=True)
class DryRun:
    """What ``submit`` would do, and nothing done: no record, no process, no file, no cluster.

    A cloud job: the job config its cloud would be handed (``job_config``) and,
    for a task config, the copy staged beside it (``staged_config``: its path
    and settings).  A local job: the command line (``argv``), the directory it
    runs in and what is added to the environment (``env``).
    """

    job_id: str  # the id the job would get (a --name's; a new one is different each time)
    request: SubmitRequest
    plan: configs.LaunchPlan
    job_config: dict[str, Any] | None
    staged_config: dict[str, Any] | None
    checked: bool  # whether the pre-flight ran (not with --no-preflight)
    problems: tuple[preflight.PreflightProblem, ...]
    warnings: tuple[str, ...]


def dry_run(paths: Paths, request: SubmitRequest) -> DryRun:
    """Plan a submit and run its checks (the pre-flight, also for a local job), changing nothing anywhere."""
    plan = _plan(request)
    job_id = job_id_from_name(request.name) if request.name else new_job_id(plan.command)
    _launch_options(plan, request)  # the option checks of a submit, as every other check
    job_config = staged = None
    if plan.cloud != facts.LOCAL_CLOUD:
        staging = staged_config(paths, job_id).parent
        job_config = configs.cloud_job_config(plan, job_id=job_id, staging_dir=staging, stage=False)
        if plan.kind == "task":
            staged = {"path": str(staging / plan.config_path.name), "settings": dict(plan.config)}
    if not request.preflight:
        found = preflight.Preflight((), ("pre-flight checks skipped (--no-preflight)",))
    else:
        found = preflight.preflight(plan, job_config, cwd=request.cwd)
    guidance = tuple(cloud_guidance(plan, request.cwd, paths))
    return DryRun(job_id, request, plan, job_config, staged, request.preflight, found.problems,
                  (*found.warnings, *guidance))  # fmt: skip


def _submit_to_cloud(paths: Paths, request: SubmitRequest, plan: Any, job_id: str, options: dict[str, Any]) -> JobView:
    """Register a cloud job and start its detached launching process (which runs launcher.up)."""
    import yaml

    staged = staged_config(paths, job_id)
    record = JobRecord(
        job_id=job_id, cloud=plan.cloud, submit_time=now_iso(), name=request.name, command=plan.command,
        config_path=str(plan.config_path), cluster=plan.cluster, model_name=plan.model_name,
        output_dir=plan.output_dir, boot_id=boot_id(),
    )  # fmt: skip
    with Registry.open(paths) as registry:
        registry.add(record)
        with _taken_back_on_failure(registry, job_id, staged.parent):
            ensure_private_dir(staged.parent)
            job_config = configs.cloud_job_config(plan, job_id=job_id, staging_dir=staged.parent)
            fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                yaml.safe_dump(job_config, handle, sort_keys=False)
            write_launch_options(paths, job_id, options)
            pid = _spawn(paths, job_id, dict(os.environ), module=detach.CLOUD_LAUNCHER, verb="launch")
        stored = _record_started(paths, registry, plan, job_id, pid)
    return view_of(stored)


def _launch_options(plan: configs.LaunchPlan, request: SubmitRequest) -> dict[str, Any]:
    """``--autostop``/``--down`` as the launcher's options for ``up``; exit 2 where the job cannot take its
    options: those or ``--after``/``--parallel`` (local jobs only)."""
    if plan.cloud != facts.LOCAL_CLOUD and (request.after or request.parallel is not None):
        raise UsageError("--after and --parallel are for local jobs")
    problem = facts.idle_action_problem(plan.cloud, autostop=request.autostop is not None, down=request.down)
    if problem:
        raise UsageError(problem)
    options: dict[str, Any] = {}
    if request.autostop is not None:
        seconds = parse_duration(request.autostop).total_seconds()
        if seconds < 60:
            raise UsageError(f"--autostop {request.autostop}: at least 1m (SkyPilot counts idle whole minutes)")
        options["idle_minutes_to_autostop"] = math.ceil(seconds / 60)
    if request.down:
        options["down"] = True
    return options


@contextmanager
def _taken_back_on_failure(registry: Registry, job_id: str, job_dir: Path) -> Iterator[None]:
    """Until its detached process runs, a new job is undone by any failure: its record goes, and its folder
    (logs, a staged config) if this submit made it; a reused ``--name`` may have kept an old job's logs there.

    BaseException too: a Ctrl-C between the insert and the spawn must not leave
    a job waiting for a supervisor that was never started.
    """
    made_here = not job_dir.exists()
    try:
        yield
    except BaseException:
        registry.delete([job_id])
        if made_here:
            shutil.rmtree(job_dir, ignore_errors=True)
        raise


def _spawn(paths: Paths, job_id: str, env: dict[str, str], *, module: str, verb: str) -> int:
    """Start the registered job's detached process (its supervisor, or its launching process); its pid."""
    try:
        return detach.spawn_daemon(paths, module, job_id, env)
    except (OSError, RuntimeError, ValueError) as exc:  # ValueError: the environment cannot cross exec
        raise OumiJobsError(f"cannot {verb} job {job_id}: {exc}") from exc


def _record_started(paths: Paths, registry: Registry, plan: Any, job_id: str, pid: int) -> JobRecord:
    """Record the running detached process of a new job; from here on the job exists, whatever fails."""
    identity = identify(pid)
    registry.update(job_id, supervisor_pid=pid, supervisor_start_time=identity.start_time if identity else None)
    log_event(paths, "submit", job_id=job_id, cloud=plan.cloud, command=plan.command, config=str(plan.config_path))
    stored = registry.get(job_id)
    assert stored is not None
    return stored


def _resolve_dependencies(registry: Registry, job_id: str, refs: Sequence[str]) -> tuple[str, ...]:
    """``--after`` refs as job ids; an unknown job or a cycle is a usage error (nothing is written)."""
    resolved = []
    for ref in refs:
        try:
            dep = registry.resolve(ref).job_id
        except (JobNotFoundError, AmbiguousJobError, UsageError) as exc:
            raise UsageError(f"--after {ref}: {exc}") from None
        if dep == job_id:
            raise UsageError(f"--after {ref}: a job cannot wait for itself")
        resolved.append(dep)
    return tuple(dict.fromkeys(resolved))


def get_status(
    paths: Paths,
    ref: str,
    *,
    cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S,
    with_progress: bool = True,
    live_progress: bool = False,
) -> JobView:
    """One job's live state; with its progress (a cloud job's from a short read of its log stream, made when
    what was read is over CLOUD_LOG_MAX_AGE_S old, or each time with ``live_progress``: ``--watch``)."""
    bounds.check_cloud_timeout(cloud_timeout_s)
    with Registry.open(paths) as registry:
        record = registry.resolve(ref)
        if record.cancel_requested:
            # A cancellation whose owner died (kill -9, a reboot) is handed on, never left in progress.
            takeover.adopt_orphan(paths, registry, record.job_id, cloud_timeout_s=cloud_timeout_s)
        if record.is_local:
            view = _with_queue_detail(registry, view_of(record))
            return _with_progress(paths, view) if with_progress else view
    view = live_cloud_view(record, timeout_s=cloud_timeout_s)
    if not with_progress:
        return view
    age = progress.cloud_log_age(paths, record.job_id)
    fresh = not live_progress and age is not None and age < CLOUD_LOG_MAX_AGE_S
    return _with_progress(paths, view, cloud_logs_s=None if fresh else CLOUD_LOG_BUDGET_S)


# A cloud job's progress comes from its log stream, which is read for this long at most (status, --watch;
# never by list, which shows what was read last).
CLOUD_LOG_BUDGET_S = 3.0
# Opening a cloud job's log stream costs a round trip to its cluster and a wait for its first lines (about
# a second): a plain `status` reads it again only when what was read is older than this, so asking again
# and again stays fast; `--watch`, `--wait` and `wait` read it at each refresh.
CLOUD_LOG_MAX_AGE_S = 30.0


def _with_progress(paths: Paths, view: JobView, *, cloud_logs_s: float | None = None) -> JobView:
    """``view`` with its progress: a local job's read from its files, a cloud job's from its log stream when
    ``cloud_logs_s`` allows, else as read last."""
    record = view.record
    if record.is_local:
        found = progress.local_progress(paths, record, done=view.done)
    elif not record.job_id:
        return view  # an external job: nothing of ours to keep a cache under
    else:
        lines = None
        if cloud_logs_s and record.cluster and record.launcher_job_id and view.state is not State.UNKNOWN:
            try:
                lines = adapter.current().log_stream(
                    record.cloud, record.cluster, record.launcher_job_id, timeout_s=min(cloud_logs_s * 3, 10.0)
                )
            except OumiJobsError:
                lines = None  # no stream (a cloud without one, or slow): what was read before
        try:
            found = progress.cloud_progress(paths, record, lines, done=view.done, budget_s=cloud_logs_s or 0)
        finally:
            if lines is not None:
                lines.close()
    return dataclasses.replace(view, progress=found) if found is not None else view


def get_progress(
    paths: Paths, job: str | JobView, *, cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S
) -> Progress | None:
    """How far along a job is (None: nothing tells yet); ``job`` is a job id or prefix, or a view read before."""
    if isinstance(job, JobView):
        return (
            job.progress
            if job.progress is not None
            else _with_progress(paths, job, cloud_logs_s=CLOUD_LOG_BUDGET_S).progress
        )
    return get_status(paths, job, cloud_timeout_s=cloud_timeout_s).progress


def metric_series(paths: Paths, job: str, metric: str) -> MetricSeries:
    """One metric a local job logged, over its steps; a metric it does not have is a usage error naming
    those it has (a cloud job's metrics live on its cluster)."""
    with Registry.open(paths) as registry:
        record = registry.resolve(job)
    if not record.is_local:
        raise UsageError(f"job {record.job_id} runs on {record.cloud}: its metrics files are on its cluster")
    series, source = progress.read_series(record)
    return progress.select_series(record.job_id, series, metric, source)


def status_by_identity(
    paths: Paths, cloud: str, cluster: str, launcher_job_id: str, *, cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S
) -> JobView:
    """A job named by its cloud identity; one launched outside oumi-jobs is marked external."""
    bounds.check_cloud_timeout(cloud_timeout_s)
    with Registry.open(paths) as registry:
        record = registry.find_by_launcher_identity(cloud, cluster, launcher_job_id)
    if record is not None:
        return live_cloud_view(record, timeout_s=cloud_timeout_s)
    external = JobRecord(
        job_id="", cloud=cloud, submit_time="", cluster=cluster, launcher_job_id=launcher_job_id, source="external"
    )
    view = live_cloud_view(external, timeout_s=cloud_timeout_s, external=True)
    if view.missing:
        raise JobNotFoundError(f"cluster {cluster} of {cloud} reports no job {launcher_job_id}")
    return view


def _with_queue_detail(registry: Registry, view: JobView) -> JobView:
    """A pending local job says what it waits for: a dependency or its place in the queue."""
    if view.state is not State.PENDING or not view.record.is_local or view.record.supervisor_pid is None:
        return view
    detail = queues.queue_detail(registry, view.record)
    return dataclasses.replace(view, detail=detail) if detail else view


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
class _CloudAnswers:
    clouds: dict[str, CloudAnswer]  # every cloud asked, and its answer

    @property
    def unreachable(self) -> dict[str, str]:
        """cloud -> why it could not be read."""
        return {name: answer.error for name, answer in self.clouds.items() if answer.error}


@dataclass(frozen=True)
class JobList(_CloudAnswers):
    views: list[JobView]


@dataclass(frozen=True)
class JobDocuments(_CloudAnswers):
    """The jobs of :func:`list_jobs_report` as JSON texts, each a ``render.base.job_document``."""

    documents: list[str]


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
) -> _ListQuery:
    if limit is not None:
        bounds.check_count("--limit", limit)
    cloud_timeout_s = bounds.check_cloud_timeout(cloud_timeout_s)
    if all_clouds and (local_only or cloud is not None):
        raise UsageError("--all-clouds asks every cloud: it goes with neither --local-only nor --cloud")
    lower_bound = parse_since(since) if since else None
    return _ListQuery(
        cloud, cluster, frozenset(states), lower_bound, limit, local_only, all_clouds, cloud_timeout_s, watcher,
        with_progress,
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
        records = registry.jobs(cloud=query.cloud, since=query.since, cluster=query.cluster, with_argv=False)
        if query.cluster is not None:
            records.reverse()  # one queue: shown in its order, oldest first
        views, answers = _live_views(registry, records, query)
    views = views[: query.limit] if query.limit is not None else views
    if query.with_progress:
        views = [_with_progress(paths, view) for view in views]
    return JobList(answers, views)


def list_job_documents(paths: Paths, **filters: Any) -> JobDocuments:
    """What :func:`list_jobs_report` finds, as JSON documents, read the lean way (``list --json``).

    Finished local jobs, usually nearly all of a big registry, come out of the
    store as JSON built by SQLite (``store/listing.py``); only the others get
    a record and a view.  tests/test_listing.py checks both ways agree.
    """
    query = _list_query(**filters)
    as_of = now_iso()
    with Registry.open(paths) as registry:
        newest_first = query.cluster is None  # one queue: shown in its order, oldest first
        rows = registry.listing(
            cloud=query.cloud, cluster=query.cluster, since=query.since, newest_first=newest_first,
            as_of=as_of, schema_version=SCHEMA_VERSION,
        )  # fmt: skip
        others = registry.jobs(
            cloud=query.cloud, since=query.since, cluster=query.cluster, with_argv=False,
            newest_first=newest_first, finished_local=False,
        )  # fmt: skip
        views, answers = _live_views(registry, others, query, as_of)
    by_id = {view.job_id: view for view in views if not view.external}
    listed: list[tuple[str, str] | JobView] = []  # a finished local job's id and document, or a view
    for job_id, state, document in rows:
        if document is not None:
            if query.wants(State(state)):
                listed.append((job_id, document))
        elif (view := by_id.get(job_id)) is not None:
            listed.append(view)
    listed += [view for view in views if view.external]
    if query.limit is not None:
        listed = listed[: query.limit]
    return JobDocuments(answers, _encoded(paths, listed, with_progress=query.with_progress))


def _encoded(paths: Paths, listed: list[tuple[str, str] | JobView], *, with_progress: bool) -> list[str]:
    """The documents as JSON texts.  A finished local job's progress, read once after it ended and kept in
    the progress cache, is appended to its document as it is; the others are read as for any view."""
    found: dict[str, dict[str, Any] | None] = {}
    if with_progress:
        cached = progress.cached_documents(
            paths, [(item[0], _submit_time(item[1])) for item in listed if not isinstance(item, JobView)]
        )
        found = {job_id: document for job_id, (_, document) in cached.items()}
        found.update(_final_progress(paths, [job_id for job_id, (final, _) in cached.items() if not final]))
    documents = []
    for item in listed:
        if isinstance(item, JobView):
            view = _with_progress(paths, item) if with_progress else item
            documents.append(encode_json(job_document(view)))
        else:
            job_id, document = item
            documents.append(document[:-1] + ',"progress":' + encode_json(found.get(job_id)) + "}")
    return documents


_SUBMIT_TIME_KEY = '"submit_time":"'


def _submit_time(document: str) -> str | None:
    """A lean document's submit time, found in its text (an ISO time: no character JSON would escape)."""
    start = document.find(_SUBMIT_TIME_KEY)
    if start < 0:
        return None
    start += len(_SUBMIT_TIME_KEY)
    return document[start : document.find('"', start)]


def _final_progress(paths: Paths, job_ids: list[str]) -> dict[str, dict[str, Any] | None]:
    """Finished local jobs' progress read from their files (the first time since they ended)."""
    if not job_ids:
        return {}
    with Registry.open(paths) as registry:
        records = [r for job_id in job_ids if (r := registry.get(job_id)) is not None]
    return {r.job_id: progress_document(progress.local_progress(paths, r, done=True)) for r in records}


def _live_views(
    registry: Registry, records: list[JobRecord], query: _ListQuery, as_of: str | None = None
) -> tuple[list[JobView], dict[str, CloudAnswer]]:
    """The views of ``records`` that ``query`` wants, in order, then the external jobs; and the clouds' answers."""
    answers: dict[str, CloudAnswer] = {}
    if not query.local_only:
        answers = _ask_clouds(records, query.cloud, query.all_clouds, query.cloud_timeout_s, query.watcher)
    live = {(j.cloud, j.cluster, j.launcher_job_id): j for a in answers.values() for j in a.jobs}
    as_of = as_of or now_iso()  # local states of a batch are read within milliseconds of each other
    views: list[JobView] = []
    for record in records:
        if record.is_local or record.cloud not in answers:
            view = view_of(record, as_of)
        else:
            key = (record.cloud, record.cluster or "", record.launcher_job_id or "")
            view = cloud_job_view(record, live.pop(key, None), answers[record.cloud].error, as_of)
        if query.wants(view.state):
            views.append(_with_queue_detail(registry, view))
    externals = [external_view(job, as_of) for job in live.values() if query.cluster in (None, job.cluster)]
    return views + [v for v in externals if query.wants(v.state)], answers


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
        if asked_for_unregistered and cloud not in known:
            raise UsageError(f"unknown cloud {cloud!r}; oumi.launcher knows: {', '.join(facts.listable(known))}")
        if all_clouds:
            clouds.update(facts.listable(known))
    return survey.list_clouds(sorted(clouds), timeout_s=timeout_s, watcher=watcher)
