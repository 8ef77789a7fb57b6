"""Reading Oumi configs without importing ``oumi``.

Two kinds of config are accepted:

* an Oumi **job config** (``run``, ``setup``, ``working_dir``, ``envs``,
  ``resources``...), which runs ``setup`` then ``run`` like Oumi's local cloud;
* an Oumi **task config** (train, evaluate, infer...), which is wrapped as
  ``oumi <command> -c CONFIG``.

Everything here validates and plans; nothing is written.  Bad input raises
:class:`~oumi_jobs.errors.UsageError` with one clear line.

Over 400 lines, kept whole on purpose: both kinds of config go through the
same reading, validation and planning, and the job config a cloud launch
sends is built from that same plan, so splitting it would spread one set of
rules over modules that must change together.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oumi_jobs import bounds
from oumi_jobs.cloud import facts, survey
from oumi_jobs.cloud.facts import KNOWN_CLOUDS, LOCAL_CLOUD
from oumi_jobs.errors import UsageError

# The oumi sub-commands a task config can be wrapped in.
TASK_COMMANDS = ("train", "evaluate", "infer", "tune", "synth", "judge", "quantize", "analyze")

# Top-level keys that tell a task config's command, checked in this order
# (an evaluation config has `generation` too, so `tasks` is tested first;
# a tuning config may have `peft`, so `tuning` is).
_COMMAND_MARKERS: list[tuple[str, tuple[str, ...]]] = [
    ("tune", ("tuning",)),
    ("train", ("training", "fsdp", "deepspeed", "peft")),
    ("evaluate", ("tasks",)),
    ("synth", ("strategy_params",)),
    ("judge", ("judge_params",)),
    ("quantize", ("quantization",)),
    ("analyze", ("analyzers",)),
    ("infer", ("generation", "input_path", "inference_engine")),
]

_JOB_CONFIG_KEYS = {"run", "setup", "resources", "envs", "working_dir", "num_nodes", "file_mounts", "storage_mounts"}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Far deeper than any Oumi config (a handful of levels), far shallower than the recursion limit.
MAX_DEPTH = 100
# A cluster name must fit in a file name (NAME_MAX, in bytes) wherever a cloud or we make one of it.
MAX_CLUSTER_BYTES = 255

# Task commands Oumi runs across GPUs and nodes under `oumi distributed
# torchrun`.  The others run once per node: inference engines spread a model
# over the GPUs themselves, and a torchrun would only start N copies.
DISTRIBUTED_COMMANDS = frozenset({"train"})
# SkyPilot's accelerator syntax, as in a job config's resources.accelerators.
_ACCELERATORS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(:[1-9][0-9]*)?$")

# Bash runs `setup` and then, only if it succeeded, `run` in its place (exec),
# so the job's pid is the run script's own.  The scripts arrive as positional
# arguments: data, never spliced into the command line.
_SETUP_THEN_RUN = '/bin/bash -c "$1" || exit $?; exec /bin/bash -c "$2"'


@dataclass(frozen=True)
class LaunchPlan:
    """What to run, where and with what: the outcome of reading a config."""

    kind: str  # "job" or "task"
    command: str  # the oumi sub-command, or "job" for a job config
    config_path: Path
    cloud: str
    cluster: str | None
    argv: tuple[str, ...]
    workdir: Path
    env_overrides: Mapping[str, str] = field(default_factory=dict)
    model_name: str | None = None
    output_dir: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    accelerators: str | None = None  # --gpus, e.g. "A100:8"
    num_nodes: int | None = None  # --nodes


def load_yaml(path: Path) -> Mapping[str, Any]:
    import yaml

    try:
        exists, is_file = path.exists(), path.is_file()
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte
        raise UsageError(f"cannot read config {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not exists:
        raise UsageError(f"config file not found: {path}")
    if not is_file:
        raise UsageError(f"config path is not a file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read config {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise UsageError(f"cannot parse config {path}{where}: {problem}") from exc
    except RecursionError:  # PyYAML composes nested collections recursively
        raise UsageError(f"cannot parse config {path}: nested more than {MAX_DEPTH} levels deep") from None
    except (ValueError, OverflowError) as exc:  # a scalar YAML tags as a date or number that is none (2001-02-30)
        raise UsageError(f"cannot parse config {path}: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"config {path} is not a YAML mapping of Oumi settings")
    if _depth(data) > MAX_DEPTH:
        # Loaded, but dumping it for a cloud or walking it for guidance would recurse past Python's limit.
        raise UsageError(f"config {path} is nested more than {MAX_DEPTH} levels deep")
    return data


def _depth(data: Any) -> int:
    """How deeply ``data``'s mappings and lists nest, without recursion; each shared node (a YAML alias) once."""
    deepest, seen, stack = 0, set(), [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, (dict, list)) or id(node) in seen:
            continue
        seen.add(id(node))
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def parse_env_assignments(pairs: Sequence[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not _ENV_NAME.match(name):
            raise UsageError(f"invalid --env {pair!r}: expected NAME=VALUE with NAME a valid variable name")
        _no_nul(f"--env {name}", value)
        env[name] = value
    return env


def _no_nul(what: str, text: str) -> None:
    """A NUL byte cannot cross exec(2) (argv, environment): refused here rather than when the job starts."""
    if "\0" in text:
        raise UsageError(f"{what} contains a NUL byte")


def check_cluster_name(cluster: str | None) -> None:
    """A ``--cluster`` must be a usable name: not blank, no control characters, short enough for a file name."""
    if cluster is None:
        return
    if not cluster.strip():
        raise UsageError("--cluster must not be empty")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in cluster):
        raise UsageError("--cluster must not contain control characters")
    if len(cluster.encode("utf-8", "surrogateescape")) > MAX_CLUSTER_BYTES:
        raise UsageError(f"--cluster is longer than {MAX_CLUSTER_BYTES} bytes")


def is_job_config(config: Mapping[str, Any]) -> bool:
    return "run" in config or (bool(_JOB_CONFIG_KEYS & set(config) - {"working_dir"}) and "model" not in config)


def infer_task_command(config: Mapping[str, Any]) -> str | None:
    for command, markers in _COMMAND_MARKERS:
        if any(key in config for key in markers):
            return command
    return None


def _nested(config: Mapping[str, Any], *keys: str) -> str | None:
    node: Any = config
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return str(node) if node not in (None, "") else None


def oumi_executable() -> str:
    """The ``oumi`` command of this environment, else whatever ``oumi`` is on PATH."""
    beside = Path(sys.executable).with_name("oumi")
    if beside.exists():
        return str(beside)
    return shutil.which("oumi") or "oumi"


def plan_launch(
    config_path: str | os.PathLike[str],
    *,
    cwd: Path,
    cloud: str | None = None,
    cluster: str | None = None,
    command: str | None = None,
    workdir: str | None = None,
    env: Sequence[str] = (),
    gpus: str | None = None,
    nodes: int | None = None,
) -> LaunchPlan:
    """Read and check a config and the submit options; raises UsageError on bad input."""
    path = (cwd / Path(config_path)).absolute()
    env_overrides = parse_env_assignments(env)
    if gpus is not None and not _ACCELERATORS.match(gpus):
        raise UsageError(f"invalid --gpus {gpus!r}: expected a type, or TYPE:COUNT (e.g. A100 or A100:8)")
    if nodes is not None:
        bounds.check_count("--nodes", nodes, low=1, high=bounds.MAX_NODES)
    check_cluster_name(cluster)
    if workdir is not None:
        _no_nul("--workdir", workdir)
    _no_nul("the config path", str(path))
    config = load_yaml(path)
    if command is not None and command not in TASK_COMMANDS:
        raise UsageError(f"unknown --command {command!r}; choose one of {', '.join(TASK_COMMANDS)}")

    job_config = is_job_config(config) and command is None
    config_cloud = _config_cloud(config, path) if job_config else None
    chosen_cloud = (cloud or config_cloud or LOCAL_CLOUD).strip()
    if not is_known_cloud(chosen_cloud):
        raise UsageError(f"unknown cloud {chosen_cloud!r}; known clouds: {', '.join(sorted(KNOWN_CLOUDS))}")
    if chosen_cloud == LOCAL_CLOUD and (gpus is not None or nodes is not None):
        raise UsageError("--gpus and --nodes are for cloud jobs; a local job uses this machine's GPUs")
    common = _PlanBase(path, config, chosen_cloud, cluster, env_overrides, gpus, nodes)
    if job_config:
        return _job_plan(common, workdir, cwd)
    return _task_plan(common, command, workdir, cwd)


def replan_job_config(
    plan: LaunchPlan, config: Mapping[str, Any], path: Path, *, env: Sequence[str], workdir: str | None, cwd: Path
) -> LaunchPlan:
    """``plan`` (a job config's) for other settings of the same config, kept at ``path``: a sweep's child, whose
    staged copy has its values written in.  ``env`` and ``workdir`` are the options ``plan`` was made with."""
    base = _PlanBase(path, config, plan.cloud, plan.cluster, parse_env_assignments(env), plan.accelerators,
                     plan.num_nodes)  # fmt: skip
    return _job_plan(base, workdir, cwd)


def _config_cloud(config: Mapping[str, Any], path: Path) -> str | None:
    """A job config's ``resources.cloud``, checked: ``resources`` a mapping, the cloud a name."""
    resources = config.get("resources")
    if resources is None:
        return None
    if not isinstance(resources, Mapping):
        raise UsageError(f"job config {path}: `resources:` must be a mapping (cloud, accelerators...)")
    cloud = resources.get("cloud")
    if cloud is not None and not isinstance(cloud, str):
        raise UsageError(f"job config {path}: `resources.cloud` must be a cloud name, not {type(cloud).__name__}")
    return cloud


@dataclass(frozen=True)
class _PlanBase:
    """What every plan shares, checked: the config, where it runs and the options given."""

    path: Path
    config: Mapping[str, Any]
    cloud: str
    cluster: str | None
    env_overrides: dict[str, str]
    gpus: str | None
    nodes: int | None


def _job_plan(base: _PlanBase, workdir: str | None, cwd: Path) -> LaunchPlan:
    """A job config: ``setup`` then ``run`` in bash, with its ``envs`` (``--env`` wins)."""
    config, path = base.config, base.path
    run = config.get("run")
    if not isinstance(run, str) or not run.strip():
        raise UsageError(f"job config {path} has no `run:` script")
    setup = config.get("setup")
    if setup is not None and not isinstance(setup, str):
        raise UsageError(f"job config {path}: `setup:` must be a script (a string)")
    _no_nul(f"job config {path}: `run:`", run)
    if setup is not None:
        _no_nul(f"job config {path}: `setup:`", setup)
    job_env = _config_envs(config, path)
    argv: tuple[str, ...]
    if setup and setup.strip():
        argv = ("/bin/bash", "-c", _SETUP_THEN_RUN, "oumi-job", setup, run)
    else:
        argv = ("/bin/bash", "-c", run)
    return LaunchPlan(
        kind="job",
        command="job",
        config_path=path,
        cloud=base.cloud,
        cluster=base.cluster,
        argv=argv,
        workdir=_resolve_workdir(workdir or config.get("working_dir"), cwd),
        # --env on the command line wins over the config's envs.
        env_overrides=job_env | base.env_overrides,
        model_name=_nested(config, "model", "model_name"),
        output_dir=_nested(config, "envs", "OUTPUT_DIR"),
        config=config,
        accelerators=base.gpus,
        num_nodes=base.nodes,
    )


def _config_envs(config: Mapping[str, Any], path: Path) -> dict[str, str]:
    """A job config's ``envs``: names a process environment takes, values plain text (a number or bool is written out)."""
    envs = config.get("envs") or {}
    if not isinstance(envs, Mapping):
        raise UsageError(f"job config {path}: `envs:` must be a mapping of NAME: value")
    job_env = {}
    for name, value in envs.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise UsageError(f"job config {path}: `envs:` has {name!r}, which is not a variable name")
        if isinstance(value, (Mapping, list)):
            raise UsageError(f"job config {path}: `envs.{name}` must be text or a number, not a {type(value).__name__}")
        job_env[name] = "" if value is None else str(value)
        _no_nul(f"job config {path}: `envs.{name}`", job_env[name])
    return job_env


def _task_plan(base: _PlanBase, command: str | None, workdir: str | None, cwd: Path) -> LaunchPlan:
    """A task config (train, evaluate...): ``oumi <command> -c CONFIG``, the command inferred if not given."""
    config, path = base.config, base.path
    task_command = task_command_of(config, path, command)
    return LaunchPlan(
        kind="task",
        command=task_command,
        config_path=path,
        cloud=base.cloud,
        cluster=base.cluster,
        argv=(oumi_executable(), task_command, "-c", str(path)),
        workdir=_resolve_workdir(workdir, cwd),
        env_overrides=base.env_overrides,
        model_name=_nested(config, "model", "model_name"),
        output_dir=(
            _nested(config, "training", "output_dir") or _nested(config, "output_dir") or _nested(config, "output_path")
        ),
        config=config,
        accelerators=base.gpus,
        num_nodes=base.nodes,
    )


def task_command_of(config: Mapping[str, Any], path: Path, command: str | None) -> str:
    """The oumi command that runs a task config: ``command`` (--command), else inferred; UsageError if neither."""
    task_command = command or infer_task_command(config)
    if task_command is None:
        if "model" in config:
            raise UsageError(f"cannot tell which oumi command runs {path}; pass --command ({', '.join(TASK_COMMANDS)})")
        raise UsageError(
            f"{path} is neither an Oumi job config (no `run:`) nor an Oumi task config (train, evaluate, infer...)"
        )
    return task_command


def _resolve_workdir(workdir: Any, cwd: Path) -> Path:
    if workdir in (None, ""):
        return cwd
    if not isinstance(workdir, str):
        raise UsageError(f"`working_dir:` must be a path, not a {type(workdir).__name__}")
    _no_nul("the working directory", workdir)
    resolved = (cwd / Path(workdir).expanduser()).absolute()
    try:
        is_dir = resolved.is_dir()
    except OSError as exc:  # a name too long for the file system, say
        raise UsageError(f"working directory {resolved}: {exc.strerror or exc}") from None
    if not is_dir:
        raise UsageError(f"working directory does not exist: {resolved}")
    return resolved


def is_known_cloud(name: str) -> bool:
    """A cloud oumi ships with, or one registered with oumi.launcher (asked only for an unusual name: slow)."""
    return name in KNOWN_CLOUDS or name in _registered_clouds()


def _registered_clouds() -> set[str]:
    """Clouds oumi.launcher knows, custom ones included (slow: imports oumi; only for unusual names)."""

    try:
        return set(survey.registered_clouds())
    except Exception:  # no usable oumi: only the built-in names are known
        return set()


def cloud_job_config(plan: LaunchPlan, *, job_id: str, staging_dir: Path, stage: bool = True) -> dict[str, Any]:
    """The Oumi job config to hand to ``launcher.up`` for ``plan``.

    A job config passes through with its ``working_dir`` resolved against the
    caller's directory; a task config is staged (a copy in ``staging_dir``,
    which becomes the working dir) and run as ``oumi <command> -c <copy>``,
    under ``oumi distributed torchrun`` when it asks for several GPUs or nodes,
    after a setup that installs this machine's oumi where the cluster has none.
    ``--gpus`` and ``--nodes`` win over the config's own resources.  ``stage``
    False (a dry run) writes nothing: the config it returns names the copy
    that a submit would make.
    """
    if plan.kind == "job":
        job = dict(plan.config)
        workdir = str(plan.workdir)
    else:
        staged = staging_dir / plan.config_path.name
        if stage:
            staging_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copyfile(plan.config_path, staged)
        job = {"name": job_id, "setup": default_setup(), "run": task_run_script(plan, staged.name)}
        workdir = str(staging_dir)
    # A trailing slash: rsync (Slurm, SkyPilot) otherwise nests the folder one level down.
    job["working_dir"] = workdir.rstrip("/") + "/"
    job["resources"] = dict(job.get("resources") or {}) | {"cloud": plan.cloud}
    if plan.accelerators:
        job["resources"]["accelerators"] = plan.accelerators
    if plan.num_nodes:
        job["num_nodes"] = plan.num_nodes
    job["envs"] = {str(k): str(v) for k, v in dict(plan.env_overrides).items()}
    job.setdefault("name", job_id)
    user = facts.cluster_user(plan.cluster)
    if user and not job.get("user"):
        job["user"] = user  # Slurm logs in as the user of user@host
    return job


def accelerator_count(accelerators: str | None) -> int:
    """GPUs per node that ``TYPE[:COUNT]`` asks for (0 when none are asked for)."""
    if not accelerators:
        return 0
    _, _, count = accelerators.partition(":")
    return int(count) if count.isdigit() else 1


def task_run_script(plan: LaunchPlan, staged_name: str) -> str:
    """``oumi <command> -c CONFIG``, under ``oumi distributed torchrun`` where it spans GPUs or nodes."""
    config = shlex.quote(staged_name)
    several = accelerator_count(plan.accelerators) > 1 or (plan.num_nodes or 1) > 1
    if plan.command in DISTRIBUTED_COMMANDS and several:
        # torchrun's ranks, node count and master address come from the cloud's
        # environment (SkyPilot, Slurm, PBS): `oumi distributed` reads them.
        return f"oumi distributed torchrun -m oumi {plan.command} -c {config}"
    return f"oumi {plan.command} -c {config}"


def installed_oumi_version() -> str | None:
    """The version of the oumi installed here, read from its metadata (no import)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("oumi")
    except PackageNotFoundError:
        return None


def default_setup() -> str:
    """A task config's setup: install the oumi of this machine (the one it was written against) if absent."""
    installed = installed_oumi_version()
    pinnable = installed and not any(mark in installed for mark in ("dev", "+"))  # a dev build is on no index
    spec = f"oumi[gpu]=={installed}" if pinnable else "oumi[gpu]"
    return f'if ! command -v oumi >/dev/null 2>&1; then\n  pip install "{spec}"\nfi\n'
