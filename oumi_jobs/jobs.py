"""Submitting jobs and reading their live state: the core behind submit, status and list."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from oumi_jobs import bounds, configs, preflight
from oumi_jobs.cancel import takeover
from oumi_jobs.cloud import facts, survey
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S  # light: oumi loads lazily
from oumi_jobs.cloud.guidance import cloud_guidance
from oumi_jobs.cloud.launching import staged_config
from oumi_jobs.cloud.survey import CloudAnswer, CloudWatcher
from oumi_jobs.documents import SCHEMA_VERSION, encode_json, job_document
from oumi_jobs.durations import is_duration, parse_duration
from oumi_jobs.errors import AmbiguousJobError, JobNotFoundError, OumiJobsError, PreflightError, UsageError
from oumi_jobs.events import log_event
from oumi_jobs.ids import job_id_from_name, new_job_id
from oumi_jobs.local import detach, queues
from oumi_jobs.local.procs import boot_id, identify
from oumi_jobs.paths import Paths, ensure_private_dir
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
    if plan.cloud != facts.LOCAL_CLOUD:
        if request.after or request.parallel is not None:
            raise UsageError("--after and --parallel are for local jobs")
        checked = _preflight(paths, request, plan, job_id)
        warnings = (*checked, *cloud_guidance(plan, request.cwd, paths))
        return Submitted(_submit_to_cloud(paths, request, plan, job_id), warnings)
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
    job_config = staged = None
    if plan.cloud != facts.LOCAL_CLOUD:
        if request.after or request.parallel is not None:
            raise UsageError("--after and --parallel are for local jobs")
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


def _submit_to_cloud(paths: Paths, request: SubmitRequest, plan: Any, job_id: str) -> JobView:
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
            pid = _spawn(paths, job_id, dict(os.environ), module=detach.CLOUD_LAUNCHER, verb="launch")
        stored = _record_started(paths, registry, plan, job_id, pid)
    return view_of(stored)


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


def get_status(paths: Paths, ref: str, *, cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S) -> JobView:
    bounds.check_cloud_timeout(cloud_timeout_s)
    with Registry.open(paths) as registry:
        record = registry.resolve(ref)
        if record.cancel_requested:
            # A cancellation whose owner died (kill -9, a reboot) is handed on, never left in progress.
            takeover.adopt_orphan(paths, registry, record.job_id, cloud_timeout_s=cloud_timeout_s)
        if record.is_local:
            return _with_queue_detail(registry, view_of(record))
    return live_cloud_view(record, timeout_s=cloud_timeout_s)


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
    """The jobs of :func:`list_jobs_report` as JSON texts, each a ``documents.job_document``."""

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
) -> _ListQuery:
    if limit is not None:
        bounds.check_count("--limit", limit)
    cloud_timeout_s = bounds.check_cloud_timeout(cloud_timeout_s)
    if all_clouds and (local_only or cloud is not None):
        raise UsageError("--all-clouds asks every cloud: it goes with neither --local-only nor --cloud")
    lower_bound = parse_since(since) if since else None
    return _ListQuery(
        cloud, cluster, frozenset(states), lower_bound, limit, local_only, all_clouds, cloud_timeout_s, watcher
    )


def list_jobs(paths: Paths, **filters: Any) -> list[JobView]:
    """Registered jobs, newest first, with their live states (see :func:`list_jobs_report`)."""
    return list_jobs_report(paths, **filters).views


def list_jobs_report(paths: Paths, **filters: Any) -> JobList:
    """Registered jobs merged with what their clouds report now (jobs launched elsewhere too).

    Filters: ``cloud``, ``cluster``, ``states``, ``since``, ``limit``,
    ``local_only``, ``all_clouds``, ``cloud_timeout_s``, ``watcher``.  Every
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
    return JobList(answers, views[: query.limit] if query.limit is not None else views)


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
    documents = []
    for job_id, state, document in rows:
        if document is not None:
            if query.wants(State(state)):
                documents.append(document)
        elif (view := by_id.get(job_id)) is not None:
            documents.append(encode_json(job_document(view)))
    documents += [encode_json(job_document(view)) for view in views if view.external]
    return JobDocuments(answers, documents[: query.limit] if query.limit is not None else documents)


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


# How often a followed job is asked about: a local job's state is a process
# check; a cloud job's is a round trip to its cloud (SSH, an API server).
LOCAL_POLL_S = 0.5
CLOUD_POLL_S = 3.0


def follow_until_done(paths: Paths, job_id: str, *, interval: float | None = None) -> Iterator[JobView]:
    """Yield the job's view every ``interval`` seconds (by default, as suits its cloud), the last one done."""
    while True:
        view = get_status(paths, job_id)
        yield view
        if view.done:
            return
        time.sleep(interval or (LOCAL_POLL_S if view.record.is_local else CLOUD_POLL_S))
