"""Planning a sweep's children: each child's launch plan and record, from the base plan and its overrides.

A task config's child gets its values as Oumi's own command-line overrides
(``oumi train -c CONFIG --training.learning_rate 1e-05``), and, unless the
sweep sets it, an output folder of its own, ``{output_dir}/{child}``.  A job
config's child gets a staged copy of the config with its values written in
(``envs.LR`` sets a variable).  A cloud child's config is staged either way:
the launcher reads files, not arguments.  Nothing is registered here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oumi_jobs import configs
from oumi_jobs.cloud import facts
from oumi_jobs.local.launching import staged_config
from oumi_jobs.local.procs import boot_id
from oumi_jobs.paths import Paths
from oumi_jobs.store.records import JobRecord
from oumi_jobs.sweeps import expand

# Where a task config keeps its output folder, in the order configs.py reads it.
_OUTPUT_KEYS = ("training.output_dir", "output_dir", "output_path")
# Oumi's own default output folder of a training run.
_TRAIN_OUTPUT_DEFAULT = "output"


@dataclass(frozen=True)
class ChildPlan:
    """One child: its record, and the config file it needs written before it starts (path, settings)."""

    plan: configs.LaunchPlan  # what it runs: the sweep's plan with its values
    record: JobRecord
    overrides: expand.Overrides
    staged: tuple[Path, Mapping[str, Any]] | None
    job_config: dict[str, Any] | None  # a cloud child's: what its launching process hands the launcher


@dataclass(frozen=True)
class SweepContext:
    """What every child shares: the base plan and the options it was made with."""

    paths: Paths
    base: configs.LaunchPlan
    sweep_id: str
    submit_time: str
    env: Sequence[str]
    workdir: str | None
    cwd: Path
    depends_on: tuple[str, ...]
    policy: str | None = None  # every child's (oumi_jobs.policy, as the registry keeps it)


def sweep_dir(paths: Paths, sweep_id: str) -> Path:
    """Where a sweep keeps its children's staged configs."""
    return paths.state_dir / "sweeps" / sweep_id


def output_key(base: configs.LaunchPlan) -> str | None:
    """The setting that names a task config's output folder (None for a job config, or a command with none)."""
    if base.kind != "task":
        return None
    for key in _OUTPUT_KEYS:
        if expand.lookup(base.config, key) is not None:
            return key
    return "training.output_dir" if base.command == "train" else None


def plan_child(ctx: SweepContext, job_id: str, overrides: expand.Overrides) -> ChildPlan:
    base = ctx.base
    values = dict(overrides)
    key = output_key(base)
    if key is not None and key not in values:  # children never share an output folder
        parent = expand.lookup(base.config, key) or _TRAIN_OUTPUT_DEFAULT
        values[key] = f"{str(parent).rstrip('/')}/{job_id}"
    staged: tuple[Path, Mapping[str, Any]] | None = None
    if base.kind == "job":
        path = sweep_dir(ctx.paths, ctx.sweep_id) / f"{job_id}.yaml"
        settings = expand.apply(base.config, values)
        plan = configs.replan_job_config(base, settings, path, env=ctx.env, workdir=ctx.workdir, cwd=ctx.cwd)
        staged = (path, settings)
    elif base.cloud != facts.LOCAL_CLOUD:
        path = staged_config(ctx.paths, job_id).parent / base.config_path.name  # beside its job.yaml
        settings = expand.apply(base.config, values)
        plan = dataclasses.replace(base, config_path=path, config=settings, output_dir=_output(values, key, base))
        staged = (path, settings)
    else:
        arguments = [part for path, value in values.items() for part in (f"--{path}", expand.as_argument(value))]
        plan = dataclasses.replace(base, argv=(*base.argv, *arguments), output_dir=_output(values, key, base))
    job_config = None
    if plan.cloud != facts.LOCAL_CLOUD:
        job_config = configs.cloud_job_config(
            plan, job_id=job_id, staging_dir=staged_config(ctx.paths, job_id).parent, stage=False
        )
    return ChildPlan(plan, _record(ctx, plan, job_id, overrides), dict(overrides), staged, job_config)


def _output(values: Mapping[str, Any], key: str | None, base: configs.LaunchPlan) -> str | None:
    return str(values[key]) if key is not None and values.get(key) is not None else base.output_dir


def _record(ctx: SweepContext, plan: configs.LaunchPlan, job_id: str, overrides: expand.Overrides) -> JobRecord:
    local = plan.cloud == facts.LOCAL_CLOUD
    log_dir = ctx.paths.job_log_dir(job_id)
    return JobRecord(
        job_id=job_id, cloud=plan.cloud, submit_time=ctx.submit_time, name=job_id, command=plan.command,
        config_path=str(plan.config_path), cluster=(plan.cluster or facts.DEFAULT_LOCAL_CLUSTER) if local else plan.cluster,
        model_name=plan.model_name, output_dir=plan.output_dir, argv=plan.argv if local else (),
        workdir=str(plan.workdir) if local else None,
        stdout_path=str(log_dir / "stdout.log") if local else None,
        stderr_path=str(log_dir / "stderr.log") if local else None,
        boot_id=boot_id(), sweep_id=ctx.sweep_id, overrides=json.dumps(overrides, separators=(",", ":")),
        environment=json.dumps(dict(plan.env_overrides), separators=(",", ":")) if local else None,
        depends_on=ctx.depends_on, policy=ctx.policy,
    )  # fmt: skip
