"""Warnings at submit for cloud jobs (warnings, not walls): the surprises the
Oumi job server's users ran into most (seed 003, sections 2-3)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from oumi_jobs.cloud import schema as oumi_schema
from oumi_jobs.cloud.facts import SKY_CLOUDS
from oumi_jobs.configs import LaunchPlan, accelerator_count, installed_oumi_version
from oumi_jobs.paths import Paths

_PATH_KEYS = ("path", "dataset_path", "data_path", "input_path", "train_path", "eval_path", "file")
# `oumi`, `oumi[gpu]`, `"oumi[gpu]>=0.7"`... after a pip/uv install on one line of a setup script.
_OUMI_INSTALL = re.compile(
    r"""\binstall\b.*?(?<![\w./-])oumi(?:\[[\w,\s-]*\])?(?P<spec>[=<>~!]=?[^\s'"]*)?(?![\w./-])"""
)
_MAX_NAMED = 5


def _string_paths(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, Mapping):
        for child_key, value in node.items():
            yield from _string_paths(value, str(child_key))
    elif isinstance(node, list):
        for value in node:
            yield from _string_paths(value, key)
    elif isinstance(node, str) and key.endswith(_PATH_KEYS) and "://" not in node:
        yield key, node


def cloud_guidance(plan: LaunchPlan, cwd: Path, paths: Paths) -> list[str]:
    if plan.cloud == "local":
        return []
    warnings: list[str] = [*_version_guidance(plan, paths), *_gpu_guidance(plan)]
    config = plan.config
    mounts = {**(config.get("file_mounts") or {}), **(config.get("storage_mounts") or {})} if plan.kind == "job" else {}
    if plan.cloud in SKY_CLOUDS and not mounts:
        where = f" ({plan.output_dir})" if plan.output_dir else ""
        warnings.append(
            f"cloud disks are ephemeral: outputs written on the cluster{where} are lost when it is stopped or "
            "recreated; add a storage mount or copy them out before it goes down"
        )
    if plan.cloud in SKY_CLOUDS and plan.cluster:
        warnings.append(
            f"if cluster {plan.cluster} already exists, SkyPilot re-uses it (sky exec) without re-syncing local "
            "edits to the working dir; use a new cluster name to sync them"
        )
    synced = plan.workdir if plan.kind == "job" else None
    for key, text in _string_paths(config):
        local = (cwd / Path(text).expanduser()).resolve()
        if not local.exists():
            continue
        if synced is not None and local.is_relative_to(synced.resolve()) and not Path(text).is_absolute():
            continue  # synced with the working dir, at the same relative path
        warnings.append(
            f"`{key}: {text}` is a path on this machine ({local}); it will not exist on the {plan.cloud} cluster "
            "unless it is synced or mounted there"
        )
    return warnings


def _version_guidance(plan: LaunchPlan, paths: Paths) -> Iterator[str]:
    """The oumi the cluster runs against the oumi this config is checked with here."""

    installed = installed_oumi_version()
    if installed is None:
        return
    if plan.kind == "job":
        setup = plan.config.get("setup") or ""
        for match in _OUMI_INSTALL.finditer(setup if isinstance(setup, str) else ""):
            spec = match.group("spec")
            if not spec or not spec.startswith("=="):  # unpinned, or a lower bound: the newest
                yield (
                    f"setup installs the newest oumi while this machine has oumi {installed}; setting names "
                    f"change between versions, so pin it (oumi=={installed}) or check the config against the newest"
                )
            elif spec.startswith("==") and spec[2:] != installed:
                yield f"setup installs oumi {spec[2:]} while this machine has oumi {installed}: settings may differ"
        return
    trees = oumi_schema.cached(paths, installed)
    tree = trees.get(plan.command) if trees else None
    if tree is None:
        return
    unknown = list(oumi_schema.unknown_settings(tree, plan.config))
    if unknown:
        named = ", ".join(unknown[:_MAX_NAMED]) + (
            f" and {len(unknown) - _MAX_NAMED} more" if len(unknown) > _MAX_NAMED else ""
        )
        yield (
            f"{named}: not {'a setting' if len(unknown) == 1 else 'settings'} of oumi {installed} (installed here, "
            f"and what the cluster installs if it has no oumi); `oumi {plan.command}` rejects "
            f"{'it' if len(unknown) == 1 else 'them'} unless the cluster runs a newer oumi"
        )


def _gpu_guidance(plan: LaunchPlan) -> Iterator[str]:
    """A task config that shards a model across GPUs, sent with one GPU or none."""
    if plan.kind != "task":
        return
    sharded = [name for name, key in (("fsdp", "enable_fsdp"), ("deepspeed", "enable_deepspeed"))
               if isinstance(plan.config.get(name), Mapping) and plan.config[name].get(key)]  # fmt: skip
    if sharded and accelerator_count(plan.accelerators) <= 1 and (plan.num_nodes or 1) <= 1:
        asked = plan.accelerators or "no --gpus"
        yield (
            f"the config enables {' and '.join(sharded)}, which shards the model over several GPUs, but the job "
            f"asks for {asked}; pass --gpus TYPE:COUNT (e.g. A100:8) to run it under oumi distributed torchrun"
        )
