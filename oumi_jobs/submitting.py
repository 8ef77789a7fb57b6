"""Submitting a job: checking a request, registering the job and starting its detached process; or a dry run."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oumi_jobs import bounds, configs, preflight
from oumi_jobs.cloud import facts
from oumi_jobs.cloud.guidance import cloud_guidance
from oumi_jobs.durations import parse_duration
from oumi_jobs.errors import AmbiguousJobError, JobNotFoundError, OumiJobsError, PreflightError, UsageError
from oumi_jobs.events import log_event
from oumi_jobs.ids import job_id_from_name, new_job_id
from oumi_jobs.local import detach
from oumi_jobs.local.launching import staged_config, write_launch_options
from oumi_jobs.local.procs import boot_id, identify
from oumi_jobs.paths import Paths, ensure_private_dir
from oumi_jobs.policy import JobPolicy
from oumi_jobs.store.queues import MAX_PARALLEL
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.timestamps import now_iso
from oumi_jobs.views import JobView, view_of


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
    policy: JobPolicy = field(default_factory=JobPolicy)  # retries, guards, notifications: kept with the job


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
    options = launch_options(plan, request)  # options the job cannot take: exit 2 before any check
    if plan.cloud != facts.LOCAL_CLOUD:
        warnings = check_cloud_launch(paths, request, plan, job_id)
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
        policy=request.policy.encode(),
        # Kept: a later attempt's supervisor may be started by another process (`retry JOB`, a takeover).
        environment=json.dumps(dict(plan.env_overrides)) if plan.env_overrides else None,
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


def check_cloud_launch(paths: Paths, request: SubmitRequest, plan: configs.LaunchPlan, job_id: str) -> tuple[str, ...]:
    """Before a cloud launch of ``plan`` as ``job_id`` (a submit, a sweep's first child): its pre-flight, a
    PreflightError naming each problem; else its warnings, and the cloud's guidance."""
    return (*_preflight(paths, request, plan, job_id), *cloud_guidance(plan, request.cwd, paths))


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
    launch_options(plan, request)  # the option checks of a submit, as every other check
    job_config = staged = None
    if plan.cloud != facts.LOCAL_CLOUD:
        staging = staged_config(paths, job_id).parent
        job_config = configs.cloud_job_config(plan, job_id=job_id, staging_dir=staging, stage=False)
        if plan.kind == "task":
            staged = {"path": str(staging / plan.config_path.name), "settings": dict(plan.config)}
    found = dry_run_checks(paths, request, plan, job_config)
    return DryRun(job_id, request, plan, job_config, staged, request.preflight, found.problems, found.warnings)


def dry_run_checks(
    paths: Paths, request: SubmitRequest, plan: configs.LaunchPlan, job_config: dict[str, Any] | None
) -> preflight.Preflight:
    """The checks of a dry run of ``plan`` (a submit's, a sweep's first child's): its pre-flight, also for a
    local job, unless ``--no-preflight``; what it found, and the cloud's guidance among the warnings."""
    if not request.preflight:
        found = preflight.Preflight((), ("pre-flight checks skipped (--no-preflight)",))
    else:
        found = preflight.preflight(plan, job_config, cwd=request.cwd)
    return preflight.Preflight(found.problems, (*found.warnings, *cloud_guidance(plan, request.cwd, paths)))


def _submit_to_cloud(paths: Paths, request: SubmitRequest, plan: Any, job_id: str, options: dict[str, Any]) -> JobView:
    """Register a cloud job and start its detached launching process (which runs launcher.up)."""
    import yaml

    staged = staged_config(paths, job_id)
    record = JobRecord(
        job_id=job_id, cloud=plan.cloud, submit_time=now_iso(), name=request.name, command=plan.command,
        config_path=str(plan.config_path), cluster=plan.cluster, model_name=plan.model_name,
        output_dir=plan.output_dir, boot_id=boot_id(), policy=request.policy.encode(),
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


def launch_options(plan: configs.LaunchPlan, request: SubmitRequest) -> dict[str, Any]:
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
