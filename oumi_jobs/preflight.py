"""Checks before a launch: ``oumi-jobs check``, the pre-flight of a cloud submit, and what a dry run reports.

A cloud launch that is doomed (a setting oumi refuses, a dataset that is not
there, no credentials, a login node that does not answer) otherwise fails
minutes later, after provisioning.  The pre-flight refuses it before anything
is registered or provisioned, naming each problem; warnings stay warnings.

* The config, by oumi's own config classes (through the cloud adapter:
  importing them costs 8-15 s in a new process, nothing in a warm server).
* Local inputs the config names (datasets, an inference input, a DeepSpeed
  config) and ``file_mounts`` sources, resolved against the caller's
  directory.  A relative path that is missing is a problem; an absolute one
  is a problem only for a job that runs here (on a cluster it may well be a
  path of the cluster's own disks: a warning).
* The chosen cloud's credentials, by SkyPilot's own check, under a time
  limit.  A check that cannot be answered (no SkyPilot API server running,
  none answering in time) is a warning and the launch goes on: the pre-flight
  never starts a server, and the launch reports missing credentials itself.
* A Slurm cluster named ``user@host``: ``ssh`` must reach the host within a
  time limit, without a password prompt (the launch runs detached).

Everything returns frozen dataclasses; nothing prints.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oumi_jobs import configs
from oumi_jobs.cloud import adapter, facts
from oumi_jobs.cloud.model import ConfigProblem
from oumi_jobs.configs import LaunchPlan
from oumi_jobs.errors import CloudUnreachableError, UsageError

# Importing oumi's config classes in a new process is most of it (8-15 s).
CHECK_TIMEOUT_S = 120.0
CREDENTIALS_TIMEOUT_S = 30.0
SSH_TIMEOUT_S = 15.0

# Settings that name an input file or folder oumi reads (by their last name); output paths are left out:
# they need not exist yet.
_INPUT_KEYS = frozenset({"dataset_path", "input_path", "deepspeed_config_path", "environment_config_path"})
# Settings that name a model, which may be a folder: checked only when written as a path.
_MODEL_KEYS = frozenset({"model_name", "tokenizer_name", "adapter_model", "teacher_model_name_or_path"})
_PATH_STARTS = ("/", "./", "../", "~")


@dataclass(frozen=True)
class ConfigCheck:
    """What ``oumi-jobs check`` found: the config's kind and every problem (none: it is clean)."""

    config_path: str
    kind: str  # "job" or "task"
    command: str  # "job", or the task's oumi command
    cloud: str | None  # the cloud a job config names (or --cloud); None for a task config without --cloud
    problems: tuple[ConfigProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_config(
    config: str | os.PathLike[str],
    *,
    cwd: Path,
    command: str | None = None,
    cloud: str | None = None,
    timeout_s: float = CHECK_TIMEOUT_S,
) -> ConfigCheck:
    """Check an Oumi job or task config with oumi's own config classes; UsageError for an unreadable one."""
    path = (cwd / Path(config)).absolute()
    settings = configs.load_yaml(path)
    if command is not None and command not in configs.TASK_COMMANDS:
        raise UsageError(f"unknown --command {command!r}; choose one of {', '.join(configs.TASK_COMMANDS)}")
    if cloud is not None and not configs.is_known_cloud(cloud.strip()):
        raise UsageError(f"unknown cloud {cloud!r}; known clouds: {', '.join(sorted(facts.KNOWN_CLOUDS))}")
    if configs.is_job_config(settings) and command is None:
        chosen, problems = _job_cloud(settings, cloud)
        checked = dict(settings)
        if isinstance(checked.get("resources", {}), Mapping):  # else oumi says what is wrong with it
            checked["resources"] = dict(checked.get("resources") or {}) | {"cloud": chosen}
        problems += adapter.current().check_config(checked, "job", timeout_s=timeout_s)
        return ConfigCheck(str(path), "job", "job", chosen, tuple(problems))
    task = configs.task_command_of(settings, path, command)
    problems = adapter.current().check_config(settings, task, timeout_s=timeout_s)
    return ConfigCheck(str(path), "task", task, cloud, tuple(problems))


def _job_cloud(settings: Mapping[str, Any], cloud: str | None) -> tuple[str, list[ConfigProblem]]:
    """The cloud a job config runs on (``--cloud`` wins over ``resources.cloud``, else local), and what is
    wrong with the one it names."""
    resources = settings.get("resources")
    named = resources.get("cloud") if isinstance(resources, Mapping) else None
    if cloud is not None:
        return cloud.strip(), []
    if named is None:
        return facts.LOCAL_CLOUD, []
    if not isinstance(named, str) or not configs.is_known_cloud(named.strip()):
        known = ", ".join(sorted(facts.KNOWN_CLOUDS))
        return facts.LOCAL_CLOUD, [ConfigProblem("resources.cloud", f"unknown cloud {named!r}; known clouds: {known}")]
    return named.strip(), []


@dataclass(frozen=True)
class PreflightProblem:
    """One reason a launch would fail: ``check`` is ``config``, ``file``, ``file_mounts``, ``credentials``
    or ``ssh``; ``path`` the setting (or option) concerned, ``""`` for none."""

    check: str
    path: str
    problem: str
    value: str = field(default="", compare=False, repr=False)  # the path a file problem is about

    def line(self) -> str:
        return f"{self.path}: {self.problem}" if self.path else self.problem


@dataclass(frozen=True)
class Preflight:
    problems: tuple[PreflightProblem, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def preflight(plan: LaunchPlan, job_config: Mapping[str, Any] | None, *, cwd: Path) -> Preflight:
    """Every check of a launch of ``plan`` (``job_config``: what a cloud would be handed; None for a local job).

    The slow ones (oumi's config classes, the cloud's credentials, ssh) run at once, each under its limit.
    """
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="oumi-jobs preflight") as pool:
        config_check = pool.submit(_config_problems, plan, job_config)
        credentials = pool.submit(_credentials, plan.cloud)
        ssh = pool.submit(_ssh_problems, plan)
        missing_credentials, unchecked = credentials.result()
        elsewhere = dict(_absolute_inputs(plan, cwd))
        files = list(_file_problems(plan, cwd))
        # oumi checks some paths itself (a dataset_path, against this process's directory): one line for each
        # missing file, ours (the full setting, where it was looked for); and where the file may be the
        # cluster's own (an absolute path), oumi's word is a warning too.
        named = [*elsewhere, *(f.value for f in files)]
        config_problems = [c for c in config_check.result() if not any(repr(v) in c.problem for v in named)]
        problems = [*config_problems, *files, *missing_credentials, *ssh.result()]
    return Preflight(tuple(problems), (*elsewhere.values(), *unchecked))


def _config_problems(plan: LaunchPlan, job_config: Mapping[str, Any] | None) -> list[PreflightProblem]:
    if plan.kind == "job":
        settings = dict(job_config or plan.config)
        if isinstance(settings.get("resources", {}), Mapping):
            settings["resources"] = dict(settings.get("resources") or {}) | {"cloud": plan.cloud}
        found = adapter.current().check_config(settings, "job", timeout_s=CHECK_TIMEOUT_S)
    else:
        found = adapter.current().check_config(plan.config, plan.command, timeout_s=CHECK_TIMEOUT_S)
    return [PreflightProblem("config", p.path, p.problem) for p in found]


def _inputs(settings: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted name, value) of each setting that names a local input (see _INPUT_KEYS, _MODEL_KEYS)."""
    items = (
        settings.items() if isinstance(settings, Mapping) else enumerate(settings) if isinstance(settings, list) else ()
    )
    for key, value in items:
        name = f"{prefix}[{key}]" if isinstance(key, int) else f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, str):
            if not value.strip() or "://" in value or "${" in value:
                continue  # a URL or bucket, or resolved by oumi at run time
            leaf = str(key)
            under_input = "input" in prefix.rsplit(".", 1)[-1] and leaf == "path"  # synth's input_data[].path
            if leaf in _INPUT_KEYS or under_input or (leaf in _MODEL_KEYS and value.startswith(_PATH_STARTS)):
                yield name, value
        else:
            yield from _inputs(value, name)


def _missing(value: str, cwd: Path) -> Path | None:
    local = cwd / Path(value).expanduser()
    try:
        return None if local.exists() else local
    except OSError:  # a name too long for the file system: not there either
        return local


def _file_problems(plan: LaunchPlan, cwd: Path) -> Iterator[PreflightProblem]:
    runs_here = plan.cloud == facts.LOCAL_CLOUD
    for name, value in _inputs(plan.config) if plan.kind == "task" else ():
        if (runs_here or not Path(value).expanduser().is_absolute()) and (local := _missing(value, cwd)):
            yield PreflightProblem("file", name, f"{value} does not exist (looked for {local})", value)
    mounts = plan.config.get("file_mounts") if plan.kind == "job" else None
    for remote, source in mounts.items() if isinstance(mounts, Mapping) else ():
        if isinstance(source, str) and "://" not in source and (local := _missing(source, cwd)):
            yield PreflightProblem(
                "file_mounts", f"file_mounts.{remote}", f"source {source} does not exist ({local})", source
            )


def _absolute_inputs(plan: LaunchPlan, cwd: Path) -> Iterator[tuple[str, str]]:
    """Absolute input paths missing here, of a job that runs elsewhere (they may be the cluster's own disks'):
    each path, and the warning that says so."""
    if plan.cloud == facts.LOCAL_CLOUD or plan.kind != "task":
        return
    for name, value in _inputs(plan.config):
        if Path(value).expanduser().is_absolute() and _missing(value, cwd):
            yield value, f"`{name}: {value}` is not on this machine; it must exist on the {plan.cloud} cluster"


def _credentials(cloud: str) -> tuple[list[PreflightProblem], list[str]]:
    """The cloud's credentials: a problem where its check says they are missing, a warning where it cannot say."""
    if not facts.is_sky_cloud(cloud):
        return [], []
    try:
        check = adapter.current().check_credentials(cloud, timeout_s=CREDENTIALS_TIMEOUT_S)
    except CloudUnreachableError as exc:
        check_ready, detail = None, str(exc)
    else:
        check_ready, detail = check.ready, check.detail
    if check_ready is False:
        return [PreflightProblem("credentials", "resources.cloud", detail)], []
    if check_ready is None:
        return [], [
            f"credentials of {cloud} not checked ({detail}); launching anyway: the launch fails if they are missing"
        ]
    return [], []


def _ssh_problems(plan: LaunchPlan) -> list[PreflightProblem]:
    """A Slurm ``user@host`` cluster whose host does not answer over ssh (no prompt: the launch runs detached)."""
    if plan.cloud != "slurm" or not plan.cluster or "@" not in plan.cluster:
        return []
    problem = ssh_problem(plan.cluster, timeout_s=SSH_TIMEOUT_S)
    return [PreflightProblem("ssh", "--cluster", problem)] if problem else []


def ssh_problem(destination: str, *, timeout_s: float) -> str | None:
    """Why ``ssh destination true`` fails within ``timeout_s`` (None: it answered).

    Through oumi's own control socket where one is open (as oumi's Slurm client
    connects), else a new connection with no password prompt.
    """
    argv = ["ssh", "-S", "~/.ssh/control-%h-%p-%r", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, int(timeout_s))}",
            destination, "true"]  # fmt: skip
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_s + 5)
    except subprocess.TimeoutExpired:
        return f"{destination} did not answer over ssh within {timeout_s:g} s"
    except OSError as exc:
        return f"cannot run ssh: {exc}"
    if done.returncode == 0:
        return None
    said = [line for line in done.stderr.strip().splitlines() if "control socket" not in line.lower()]
    return f"{destination} does not answer over ssh: {said[-1] if said else f'ssh exited {done.returncode}'}"
