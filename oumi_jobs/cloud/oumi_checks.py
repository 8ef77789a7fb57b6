"""Checking settings with oumi's own config classes (``check``, the pre-flight) and SkyPilot's credentials check.

Imports ``oumi`` (its config classes) and ``sky`` (``sky check``), lazily, as the adapter does.
"""

from __future__ import annotations

import copy
import functools
import tempfile
import threading
from collections.abc import Mapping
from typing import Any

from oumi_jobs.cloud import schema as oumi_schema
from oumi_jobs.cloud.model import (
    ConfigProblem,
    CredentialCheck,
    Tree,
)
from oumi_jobs.cloud.oumi_loading import before_oumi


def config_classes() -> dict[str, type]:
    """The oumi config class of each task command that this oumi has."""
    before_oumi()
    import oumi.core.configs as oumi_configs

    classes = {command: getattr(oumi_configs, name, None) for command, name in oumi_schema.CONFIG_CLASSES.items()}
    return {command: found for command, found in classes.items() if found is not None}


# A config with more problems than this is reported in part: each round loads it once more.
_MAX_PARSE_ROUNDS = 50


# finalize_and_validate looks a model up on the Hugging Face Hub (is it an adapter?), retrying for
# seconds where there is no network; a check reads the local cache only.  A process-wide setting of
# huggingface_hub, so changed under a lock and put back.
_offline_lock = threading.Lock()


def _config_class(kind: str) -> type:
    """The oumi config class a ``kind`` of config is read with (``job``, or a task command)."""
    before_oumi()
    import oumi.core.configs as oumi_configs

    name = "JobConfig" if kind == "job" else oumi_schema.CONFIG_CLASSES.get(kind)
    found = getattr(oumi_configs, name, None) if name else None
    if found is None:
        raise ValueError(f"this oumi has no config class for {kind!r}")
    return found  # type: ignore[no-any-return]


def _load_settings(config_class: Any, settings: Mapping[str, Any]) -> Any:
    """``config_class`` loaded from ``settings`` the way ``oumi <command> -c FILE`` loads a file."""
    import yaml

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="oumi-jobs-check-") as handle:
        yaml.safe_dump(dict(settings), handle, sort_keys=False)
        handle.flush()
        return config_class.from_yaml(handle.name)


def _parse_problems(config_class: Any, settings: dict[str, Any]) -> tuple[list[ConfigProblem], Any]:
    """What oumi refuses while loading ``settings`` (all of it: each refused setting is taken out and the
    rest loaded again), and the loaded config where it finally loads (else None)."""
    from oumi.exceptions import OumiConfigParsingError

    problems: list[ConfigProblem] = []
    for _ in range(_MAX_PARSE_ROUNDS):
        try:
            return problems, _load_settings(config_class, settings)
        except OumiConfigParsingError as exc:
            cause = exc.__cause__
            message = str(getattr(cause, "msg", None) or exc).strip().splitlines()[0]
            where = oumi_schema.locate(settings, exc.config_key)
            problems.append(ConfigProblem(where or exc.config_key or "", message))
            if where is None or not oumi_schema.drop_path(settings, where):
                return problems, None  # e.g. a required setting that is missing: nothing to take out
        except Exception as exc:  # a check of oumi's own while loading (a __post_init__)
            message = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            where = oumi_schema.named_in(message, settings)
            problems.append(ConfigProblem(where or "", message))
            if where is None or not oumi_schema.drop_path(settings, where):
                return problems, None
    return problems, None


def _params_paths(node: Any, prefix: str, found: dict[int, str]) -> dict[int, str]:
    """id of each nested params object of a loaded config -> its dotted name (to say where validation failed)."""
    import dataclasses

    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        if prefix:
            found.setdefault(id(node), prefix)
        for field in dataclasses.fields(node):
            _params_paths(getattr(node, field.name, None), f"{prefix}.{field.name}" if prefix else field.name, found)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _params_paths(item, f"{prefix}[{index}]", found)
    return found


def _validation_problem(loaded: Any, settings: Mapping[str, Any]) -> ConfigProblem | None:
    """What ``finalize_and_validate`` refuses, named by the innermost settings object that raised it."""
    import huggingface_hub.constants as hub

    where = _params_paths(loaded, "", {})
    with _offline_lock:
        was, hub.HF_HUB_OFFLINE = hub.HF_HUB_OFFLINE, True
        try:
            loaded.finalize_and_validate()
            return None
        except Exception as exc:
            path = ""
            trace = exc.__traceback__
            while trace is not None:  # the innermost frame that ran a method of one of the config's settings
                path = where.get(id(trace.tb_frame.f_locals.get("self")), path)
                trace = trace.tb_next
            message = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            named = oumi_schema.named_in(message, settings)
            return ConfigProblem(named if named and named.startswith(path) else path, message)
        finally:
            hub.HF_HUB_OFFLINE = was


@functools.cache
def _settings_tree(kind: str) -> Tree | None:
    """The settings of ``kind``'s config class, walked once per process (a warm process checks many configs)."""
    return oumi_schema.build({kind: _config_class(kind)}).get(kind)


def _oumi_version() -> str:
    from importlib.metadata import version

    return version("oumi")


def check_settings(settings: Mapping[str, Any], kind: str) -> list[ConfigProblem]:
    """Every problem oumi's config class for ``kind`` finds in ``settings`` (see CloudAdapter.check_config)."""
    config_class = _config_class(kind)
    remaining = copy.deepcopy(dict(settings))
    problems = []
    tree = _settings_tree(kind)
    version = _oumi_version()
    for name in list(oumi_schema.unknown_settings(tree, remaining)) if tree else []:
        problems.append(ConfigProblem(name, oumi_schema.unknown_setting_problem(tree, name, version)))  # type: ignore[arg-type]
        oumi_schema.drop_path(remaining, name)
    parsed, loaded = _parse_problems(config_class, remaining)
    problems += parsed
    if loaded is not None:
        problem = _validation_problem(loaded, remaining)
        problems += [problem] if problem else []
    return problems


# oumi's names of SkyPilot clouds that SkyPilot names otherwise.
_SKY_INFRA = {"k8s": "kubernetes", "sky-slurm": "slurm"}


def sky_credentials(cloud: str) -> CredentialCheck:
    """SkyPilot's own check (``sky check CLOUD``) through its API server, only where one already answers:
    a pre-flight never starts one (the launch does that, and says so)."""
    before_oumi()
    from sky.client import sdk
    from sky.server import common

    url = common.get_server_url()
    if common.get_api_server_status(url).status != common.ApiServerStatus.HEALTHY:
        return CredentialCheck(cloud, None, f"no SkyPilot API server answers at {url}")
    infra = _SKY_INFRA.get(cloud, cloud)
    workspaces = sdk.get(sdk.check((infra,), verbose=False))
    enabled = {name.lower() for clouds in (workspaces or {}).values() for name, abilities in clouds.items()
               if "compute" in [str(a).lower() for a in abilities]}  # fmt: skip
    if infra.lower() in enabled:
        return CredentialCheck(cloud, True, f"SkyPilot's check: {infra} is enabled")
    return CredentialCheck(
        cloud,
        False,
        f"credentials of {cloud} are not set up (SkyPilot's check: `sky check {infra}` says what is missing)",
    )
