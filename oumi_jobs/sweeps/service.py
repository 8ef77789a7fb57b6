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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oumi_jobs import bounds, configs, listing, submitting
from oumi_jobs.cancel.service import BulkOutcome, CancelOptions, cancel_jobs
from oumi_jobs.cloud import facts
from oumi_jobs.cloud import schema as oumi_schema
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.cloud.model import Tree
from oumi_jobs.errors import AmbiguousJobError, ConflictError, JobNotFoundError, UsageError
from oumi_jobs.events import log_event
from oumi_jobs.ids import job_id_from_name, new_job_id
from oumi_jobs.local.launching import staged_config, write_launch_options
from oumi_jobs.local.procs import is_alive
from oumi_jobs.paths import Paths, ensure_private_dir
from oumi_jobs.preflight import PreflightProblem
from oumi_jobs.states import State, recorded_state
from oumi_jobs.store.queues import MAX_PARALLEL
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.store.sweeps import SweepRecord
from oumi_jobs.submitting import SubmitRequest
from oumi_jobs.sweeps import expand, handoff
from oumi_jobs.sweeps.plan import ChildPlan, SweepContext, plan_child, sweep_dir
from oumi_jobs.timestamps import now_iso
from oumi_jobs.views import JobView

SWEEP_PREFIX = "sw-"
# Launches in flight at once for a cloud sweep without --parallel: each is a process running launcher.up.
DEFAULT_CLOUD_PARALLEL = 4


@dataclass(frozen=True)
class SweepRequest:
    """``sweep``: what every child is submitted with, as a submit's request (``child``), and the grid.

    ``child.name`` is the sweep's (its children are ``NAME-0000``, ...); its ``parallel`` is a single job's
    and stays None: ``parallel`` here is how many children run (local) or launch (a cloud) at once.
    """

    child: SubmitRequest
    sets: Sequence[str] = ()
    zip_values: bool = False
    values_file: str | None = None
    parallel: int | None = None


@dataclass(frozen=True)
class SweepStatus:
    """A sweep and its children as seen now, in their order."""

    sweep: SweepRecord
    children: list[JobView]
    warnings: tuple[str, ...] = ()  # a new cloud sweep's: its pre-flight's, and the cloud's guidance

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
class SweepDryRun:
    """``sweep --dry-run``: the sweep and each child as they would be, what the checks found, nothing done."""

    sweep_id: str  # the id it would get (a --name's; a new one is different each time)
    name: str
    base: configs.LaunchPlan
    cluster: str | None
    parallel: int | None  # None: a local cluster's own, as kept
    children: list[ChildPlan]
    checked: bool  # whether the pre-flight ran (not with --no-preflight)
    problems: tuple[PreflightProblem, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class SweepSummary:
    """A sweep in the ``sweeps`` listing: its counts by state (a cloud's children asked of their cloud)."""

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
    oversized expansion, an id taken, a cloud sweep's pre-flight) comes before anything is written.  A cloud
    sweep's pre-flight is a submit's, of its first child (the checks of credentials, ssh and files are the
    same for every child; the config check sees that child's values).
    """
    draft = _draft(paths, request)
    warnings: tuple[str, ...] = ()
    if draft.base.cloud != facts.LOCAL_CLOUD:
        (first,) = _children(paths, request, draft, (), count=1)
        warnings = submitting.check_cloud_launch(paths, request.child, first.plan, first.record.job_id)
    with Registry.open(paths) as registry:
        depends_on = _dependencies(registry, request.child.after)
        children = _children(paths, request, draft, depends_on)
        local = draft.base.cloud == facts.LOCAL_CLOUD
        parallel = request.parallel or (registry.parallel_of(str(draft.cluster)) if local else DEFAULT_CLOUD_PARALLEL)
        sweep = SweepRecord(draft.sweep_id, draft.name, str(draft.base.config_path), draft.base.cloud, draft.cluster,
                            len(children), parallel, draft.submit_time)  # fmt: skip
        registry.check_sweep_ids(draft.sweep_id, [child.record.job_id for child in children])  # before any file
        _stage(paths, draft.sweep_id, children, draft.options)
        try:
            registry.add_sweep(sweep, [child.record for child in children])
        except ConflictError:
            raise  # a sweep of the same name registered meanwhile: its files, not ours
        except BaseException:
            _unstage(paths, draft.sweep_id, children)
            raise
        if local and request.parallel is not None:
            registry.set_parallel(str(draft.cluster), request.parallel)
    log_event(paths, "sweep", sweep_id=draft.sweep_id, size=len(children), cloud=draft.base.cloud,
              config=str(draft.base.config_path))  # fmt: skip
    _start_first(paths, draft.sweep_id, min(parallel, len(children)))
    return dataclasses.replace(sweep_status(paths, draft.sweep_id), warnings=warnings)


def dry_run_sweep(paths: Paths, request: SweepRequest) -> SweepDryRun:
    """What ``sweep`` would do, and nothing done: every child as it would run, and the checks of a dry run of
    the first (as ``submit --dry-run``'s: the pre-flight, also of a local sweep, unless ``--no-preflight``).
    The registry is not even opened: ``--after`` is shown as given, and a local sweep's ``parallel`` without
    ``--parallel`` is its cluster's (null)."""
    draft = _draft(paths, request)
    local = draft.base.cloud == facts.LOCAL_CLOUD
    children = _children(paths, request, draft, tuple(request.child.after))
    found = submitting.dry_run_checks(paths, request.child, children[0].plan, children[0].job_config)
    parallel = request.parallel or (None if local else DEFAULT_CLOUD_PARALLEL)
    return SweepDryRun(draft.sweep_id, draft.name, draft.base, draft.cluster, parallel, children,
                       request.child.preflight, found.problems, found.warnings)  # fmt: skip


@dataclass(frozen=True)
class _Draft:
    """A sweep planned and checked, before its children are: its plan, values, id and the launch's options."""

    base: configs.LaunchPlan
    combos: list[expand.Overrides]
    name: str
    sweep_id: str
    submit_time: str
    cluster: str | None  # a local sweep's always
    options: dict[str, Any]  # a cloud child's options for launcher.up (--autostop, --down)


def _draft(paths: Paths, request: SweepRequest) -> _Draft:
    base = _base_plan(request)
    options = submitting.launch_options(base, request.child)  # as a submit's: exit 2 before any check
    combos = expand.expand(
        request.sets,
        zip_values=request.zip_values,
        values_file=(request.child.cwd / request.values_file) if request.values_file else None,
    )
    expand.check_paths(combos, base.config, job_config=base.kind == "job", tree=_settings_tree(paths, base))
    name = job_id_from_name(request.child.name) if request.child.name else new_job_id(base.command)
    local = base.cloud == facts.LOCAL_CLOUD
    cluster = (base.cluster or facts.DEFAULT_LOCAL_CLUSTER) if local else base.cluster
    return _Draft(base, list(combos), name, SWEEP_PREFIX + name, now_iso(), cluster, options)


def _children(
    paths: Paths, request: SweepRequest, draft: _Draft, depends_on: tuple[str, ...], *, count: int | None = None
) -> list[ChildPlan]:
    """The plans of the sweep's children (the first ``count`` of them), in order."""
    child = request.child
    ctx = SweepContext(paths, draft.base, draft.sweep_id, draft.submit_time, child.env, child.workdir, child.cwd,
                       depends_on, child.policy.encode())  # fmt: skip
    combos = draft.combos[:count] if count is not None else draft.combos
    return [plan_child(ctx, f"{draft.name}-{index:04d}", combo) for index, combo in enumerate(combos)]


def _base_plan(request: SweepRequest) -> configs.LaunchPlan:
    if request.parallel is not None:
        bounds.check_count("--parallel", request.parallel, low=1, high=MAX_PARALLEL)
    child = request.child
    base = configs.plan_launch(
        child.config, cwd=child.cwd, cloud=child.cloud, cluster=child.cluster, command=child.command,
        workdir=child.workdir, env=child.env, gpus=child.gpus, nodes=child.nodes,
    )  # fmt: skip
    if base.cloud != facts.LOCAL_CLOUD and child.after:
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


def _stage(paths: Paths, sweep_id: str, children: Sequence[ChildPlan], options: dict[str, Any]) -> None:
    """Write the files the children read: staged configs, and a cloud child's job config and options for
    the launcher."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    if any(child.staged for child in children):
        ensure_private_dir(sweep_dir(paths, sweep_id))
    for child in children:
        if child.job_config is not None:
            launch = staged_config(paths, child.record.job_id)
            ensure_private_dir(launch.parent)
            _write_private(launch, yaml.dump(child.job_config, Dumper=dumper, sort_keys=False))
            write_launch_options(paths, child.record.job_id, options)
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


def list_sweeps(paths: Paths, *, cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S) -> list[SweepSummary]:
    """Every sweep, newest first, with its children's counts by state as this machine sees them; a sweep
    with launched cloud children, whose state only their cloud knows, asks it as ``status SWEEP`` does."""
    with Registry.open(paths) as registry:
        sweeps = registry.sweeps()
        children = {sweep.sweep_id: registry.jobs(sweep=sweep.sweep_id, with_argv=False) for sweep in sweeps}
    summaries = []
    for sweep in sweeps:
        states = [recorded_state(r)[0] for r in children[sweep.sweep_id]]
        if sweep.cloud != facts.LOCAL_CLOUD and State.UNKNOWN in states:
            report = listing.list_jobs_report(
                paths, sweep=sweep.sweep_id, local_only=False, cloud_timeout_s=cloud_timeout_s, with_progress=False
            )
            states = [view.state for view in report.views]
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
