"""Sweeps: many jobs from one config, registered together, started as slots free, read and cancelled together.

:func:`create_sweep` plans every child (:mod:`oumi_jobs.sweeps.plan`),
registers the sweep and all its children in one transaction, and starts the
processes of the first ``--parallel`` children; each of those starts the
next as it ends (:mod:`oumi_jobs.sweeps.handoff`).  Every child is an
ordinary job: ``status``, ``logs``, ``cancel``, ``wait`` work on it as on any.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from oumi_jobs import bounds, configs, listing
from oumi_jobs.cancel.service import BulkOutcome, CancelOptions, cancel_jobs
from oumi_jobs.cloud import facts
from oumi_jobs.cloud import schema as oumi_schema
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.cloud.model import Tree
from oumi_jobs.errors import AmbiguousJobError, ConflictError, JobNotFoundError, UsageError
from oumi_jobs.events import log_event
from oumi_jobs.ids import job_id_from_name, new_job_id
from oumi_jobs.local.launching import staged_config
from oumi_jobs.local.procs import is_alive
from oumi_jobs.paths import Paths, ensure_private_dir
from oumi_jobs.policy import JobPolicy
from oumi_jobs.states import recorded_state
from oumi_jobs.store.queues import MAX_PARALLEL
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.store.sweeps import SweepRecord
from oumi_jobs.sweeps import expand, handoff
from oumi_jobs.sweeps.plan import ChildPlan, SweepContext, plan_child, sweep_dir
from oumi_jobs.timestamps import now_iso
from oumi_jobs.views import JobView

SWEEP_PREFIX = "sw-"
# Launches in flight at once for a cloud sweep without --parallel: each is a process running launcher.up.
DEFAULT_CLOUD_PARALLEL = 4


@dataclass(frozen=True)
class SweepRequest:
    config: str
    sets: Sequence[str] = ()
    zip_values: bool = False
    values_file: str | None = None
    cloud: str | None = None
    cluster: str | None = None
    name: str | None = None
    command: str | None = None
    env: Sequence[str] = ()
    workdir: str | None = None
    after: Sequence[str] = ()
    parallel: int | None = None
    gpus: str | None = None
    nodes: int | None = None
    cwd: Path = field(default_factory=Path.cwd)
    policy: JobPolicy = field(default_factory=JobPolicy)  # every child's retries, guards, notifications


@dataclass(frozen=True)
class SweepStatus:
    """A sweep and its children as seen now, in their order."""

    sweep: SweepRecord
    children: list[JobView]

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(view.state.value for view in self.children))

    @property
    def done(self) -> bool:
        return all(view.done for view in self.children)


@dataclass(frozen=True)
class SweepDocuments:
    """A sweep and its children read the lean way (``status SWEEP --json``, ``GET /api/sweeps/{sweep}``):
    finished local children as the documents the store built, the others as views, in their order."""

    sweep: SweepRecord
    children: list[listing.LeanDocument | JobView]

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(child.state.value for child in self.children))

    @property
    def done(self) -> bool:
        return all(isinstance(child, listing.LeanDocument) or child.done for child in self.children)


@dataclass(frozen=True)
class SweepSummary:
    """A sweep in the ``sweeps`` listing: its counts by state, read without asking any cloud."""

    sweep: SweepRecord
    counts: dict[str, int]
    done: bool


@dataclass(frozen=True)
class SweepCancel:
    """``cancel SWEEP``: the children cancelled before they started (one step), and the others' cancellations."""

    sweep_id: str
    cancelled_before_start: list[str]
    outcomes: list[BulkOutcome]


def is_sweep_ref(ref: str) -> bool:
    """Could a JOB argument name a sweep?  Sweep ids start with ``sw-``."""
    return ref.startswith(SWEEP_PREFIX)


def names_sweep(paths: Paths, ref: str) -> bool:
    """Does a JOB argument name a sweep (its id or a prefix starting ``sw-``)?  A job named ``sw-...`` by its
    ``--name`` is still reached when no sweep matches."""
    if not is_sweep_ref(ref):
        return False
    try:
        resolve_sweep(paths, ref)
    except JobNotFoundError:
        return False
    except AmbiguousJobError:
        return True
    return True


def create_sweep(paths: Paths, request: SweepRequest) -> SweepStatus:
    """Check everything, register the sweep and all its children in one transaction, and start the first ones.

    Every refusal (bad options, a path the config does not have, an empty or
    oversized expansion, an id taken) comes before anything is written.
    """
    base = _base_plan(request)
    combos = expand.expand(
        request.sets,
        zip_values=request.zip_values,
        values_file=(request.cwd / request.values_file) if request.values_file else None,
    )
    expand.check_paths(combos, base.config, job_config=base.kind == "job", tree=_settings_tree(paths, base))
    name = job_id_from_name(request.name) if request.name else new_job_id(base.command)
    sweep_id = SWEEP_PREFIX + name
    submit_time = now_iso()
    with Registry.open(paths) as registry:
        depends_on = _dependencies(registry, request.after)
        ctx = SweepContext(paths, base, sweep_id, submit_time, request.env, request.workdir, request.cwd, depends_on,
                           request.policy.encode())  # fmt: skip
        children = [plan_child(ctx, f"{name}-{index:04d}", combo) for index, combo in enumerate(combos)]
        local = base.cloud == facts.LOCAL_CLOUD
        cluster = (base.cluster or facts.DEFAULT_LOCAL_CLUSTER) if local else base.cluster
        parallel = request.parallel or (registry.parallel_of(str(cluster)) if local else DEFAULT_CLOUD_PARALLEL)
        sweep = SweepRecord(sweep_id, name, str(base.config_path), base.cloud, cluster, len(children), parallel,
                            submit_time)  # fmt: skip
        registry.check_sweep_ids(sweep_id, [child.record.job_id for child in children])  # before any file
        _stage(paths, sweep_id, children)
        try:
            registry.add_sweep(sweep, [child.record for child in children])
        except ConflictError:
            raise  # a sweep of the same name registered meanwhile: its files, not ours
        except BaseException:
            _unstage(paths, sweep_id, children)
            raise
        if local and request.parallel is not None:
            registry.set_parallel(str(cluster), request.parallel)
    log_event(paths, "sweep", sweep_id=sweep_id, size=len(children), cloud=base.cloud, config=str(base.config_path))
    _start_first(paths, sweep_id, min(parallel, len(children)))
    return sweep_status(paths, sweep_id)


def _base_plan(request: SweepRequest) -> configs.LaunchPlan:
    if request.parallel is not None:
        bounds.check_count("--parallel", request.parallel, low=1, high=MAX_PARALLEL)
    base = configs.plan_launch(
        request.config, cwd=request.cwd, cloud=request.cloud, cluster=request.cluster, command=request.command,
        workdir=request.workdir, env=request.env, gpus=request.gpus, nodes=request.nodes,
    )  # fmt: skip
    if base.cloud != facts.LOCAL_CLOUD and request.after:
        raise UsageError("--after is for local sweeps")
    return base


def _settings_tree(paths: Paths, base: configs.LaunchPlan) -> Tree | None:
    """The settings the installed oumi's config class of a task config has, where a launch cached them."""
    version = configs.installed_oumi_version()
    trees = oumi_schema.cached(paths, version) if base.kind == "task" and version else None
    return (trees or {}).get(base.command)


def _dependencies(registry: Registry, refs: Sequence[str]) -> tuple[str, ...]:
    """``--after`` refs as job ids; an unknown or ambiguous one is a usage error (nothing is written)."""
    resolved = []
    for ref in refs:
        try:
            resolved.append(registry.resolve(ref).job_id)
        except (JobNotFoundError, AmbiguousJobError, UsageError) as exc:
            raise UsageError(f"--after {ref}: {exc}") from None
    return tuple(dict.fromkeys(resolved))


def _stage(paths: Paths, sweep_id: str, children: Sequence[ChildPlan]) -> None:
    """Write the files the children read: staged configs, and a cloud child's job config for the launcher."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    if any(child.staged for child in children):
        ensure_private_dir(sweep_dir(paths, sweep_id))
    for child in children:
        if child.job_config is not None:
            launch = staged_config(paths, child.record.job_id)
            ensure_private_dir(launch.parent)
            _write_private(launch, yaml.dump(child.job_config, Dumper=dumper, sort_keys=False))
        if child.staged is not None:
            path, settings = child.staged
            _write_private(path, yaml.dump(dict(settings), Dumper=dumper, sort_keys=False))


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _unstage(paths: Paths, sweep_id: str, children: Sequence[ChildPlan]) -> None:
    """A sweep that was not registered leaves none of its files behind."""
    shutil.rmtree(sweep_dir(paths, sweep_id), ignore_errors=True)
    for child in children:
        if child.job_config is not None:
            shutil.rmtree(staged_config(paths, child.record.job_id).parent, ignore_errors=True)


def _start_first(paths: Paths, sweep_id: str, count: int) -> None:
    """Start the first ``count`` children's processes.  If none can start, the sweep ends: no child is left
    waiting for a process that will never come."""
    started = 0
    try:
        for _ in range(count):
            if handoff.start_next(paths, sweep_id) is None:
                break
            started += 1
    except BaseException:
        if started == 0:
            with Registry.open(paths) as registry:
                registry.end_unstarted(sweep_id, "never started: the sweep could not start its first child")
        raise


def resolve_sweep(paths: Paths, ref: str) -> SweepRecord:
    with Registry.open(paths) as registry:
        return registry.resolve_sweep(ref)


def sweep_status(paths: Paths, ref: str, *, cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S) -> SweepStatus:
    """The sweep and each child's live state (a cloud's children asked of their cloud, once for all)."""
    sweep = resolve_sweep(paths, ref)
    restart_stalled(paths, sweep)
    report = listing.list_jobs_report(
        paths, sweep=sweep.sweep_id, local_only=sweep.cloud == facts.LOCAL_CLOUD, cloud_timeout_s=cloud_timeout_s,
        with_progress=False,
    )  # fmt: skip
    return SweepStatus(sweep, report.views)


def sweep_documents(paths: Paths, ref: str, *, cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S) -> SweepDocuments:
    """What :func:`sweep_status` finds, read as ``list --json`` reads jobs: a finished local child's document
    is built by SQLite (``store/listing.py``), so a sweep of thousands of children costs one query."""
    sweep = resolve_sweep(paths, ref)
    restart_stalled(paths, sweep)
    report = listing.list_job_documents(
        paths, sweep=sweep.sweep_id, local_only=sweep.cloud == facts.LOCAL_CLOUD, cloud_timeout_s=cloud_timeout_s,
        with_progress=False,
    )  # fmt: skip
    return SweepDocuments(sweep, report.listed)


def restart_stalled(paths: Paths, sweep: SweepRecord) -> list[str]:
    """A write, named as one: restart a sweep whose hand-over chain broke; the children started.

    Each child's process starts the next child's; one killed (``kill -9``, a
    reboot) starts none, and the children after it would wait for ever.  When
    children wait for a process and no process of the sweep is alive, the
    first ``parallel`` of them are started here (by ``status SWEEP``, ``wait
    SWEEP``).
    """
    with Registry.open(paths) as registry:
        records = registry.jobs(sweep=sweep.sweep_id, with_argv=False)
    waiting = sum(1 for r in records if r.supervisor_pid is None and r.end_time is None and not r.cancel_requested)
    if not waiting or any(is_alive(r.supervisor_pid, r.supervisor_start_time, r.boot_id) for r in records):
        return []
    started = [
        job_id for _ in range(min(sweep.parallel, waiting)) if (job_id := handoff.start_next(paths, sweep.sweep_id))
    ]
    log_event(paths, "sweep_restarted", sweep_id=sweep.sweep_id, started=started)
    return started


def list_sweeps(paths: Paths) -> list[SweepSummary]:
    """Every sweep, newest first, with its children's counts by state as this machine sees them."""
    summaries = []
    with Registry.open(paths) as registry:
        for sweep in registry.sweeps():
            states = [recorded_state(r)[0] for r in registry.jobs(sweep=sweep.sweep_id, with_argv=False)]
            counts = dict(Counter(state.value for state in states))
            summaries.append(SweepSummary(sweep, counts, all(state.done for state in states)))
    return summaries


def child_ids(paths: Paths, refs: Sequence[str]) -> list[str]:
    """``refs`` with every sweep id (or prefix starting ``sw-``) replaced by its children's ids, in order."""
    ids: list[str] = []
    with Registry.open(paths) as registry:
        for ref in refs:
            if not is_sweep_ref(ref):
                ids.append(ref)
                continue
            try:
                sweep = registry.resolve_sweep(ref)
            except JobNotFoundError:
                ids.append(ref)  # a job named sw-...
                continue
            restart_stalled(paths, sweep)
            ids += [r.job_id for r in reversed(registry.jobs(sweep=sweep.sweep_id, with_argv=False))]
    return ids


def cancel_sweep(paths: Paths, ref: str, options: CancelOptions | None = None) -> SweepCancel:
    """Cancel every child not done: those no process has taken yet in one step in the store, then the others
    (waiting in their queue, running, launching) in parallel, each verified as a job's cancel is."""
    options = options or CancelOptions()
    options.checked()
    with Registry.open(paths) as registry:
        sweep = registry.resolve_sweep(ref)
        unstarted = registry.end_unstarted(sweep.sweep_id, f"cancelled before it started (cancel of {sweep.sweep_id})")
        # Read after that step: a child claimed meanwhile has its process, and is cancelled below.
        rest = [r.job_id for r in reversed(registry.jobs(sweep=sweep.sweep_id, with_argv=False)) if _live(r)]
    if not unstarted and not rest:
        raise ConflictError(f"every child of sweep {sweep.sweep_id} is done; nothing to cancel")
    outcomes = cancel_jobs(paths, rest, dataclasses.replace(options, cascade=False)) if rest else []
    log_event(paths, "cancel_sweep", sweep_id=sweep.sweep_id, before_start=len(unstarted), cancelled=len(rest))
    return SweepCancel(sweep.sweep_id, unstarted, outcomes)


def _live(record: JobRecord) -> bool:
    """Not known to be done from here (a launched cloud child is asked of its cloud by its cancel)."""
    return not recorded_state(record)[0].done
