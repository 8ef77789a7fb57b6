"""Warnings at submit for cloud jobs (warnings, not walls): the surprises the
Oumi job server's users ran into most (seed 003, sections 2-3)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from oumi_jobs.configs import LaunchPlan

# Clouds oumi.launcher reaches through SkyPilot.
SKY_CLOUDS = frozenset({"aws", "azure", "gcp", "lambda", "runpod", "kubernetes", "k8s", "nebius", "sky-slurm"})
_PATH_KEYS = ("path", "dataset_path", "data_path", "input_path", "train_path", "eval_path", "file")


def _string_paths(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, Mapping):
        for child_key, value in node.items():
            yield from _string_paths(value, str(child_key))
    elif isinstance(node, list):
        for value in node:
            yield from _string_paths(value, key)
    elif isinstance(node, str) and key.endswith(_PATH_KEYS) and "://" not in node:
        yield key, node


def cloud_guidance(plan: LaunchPlan, cwd: Path) -> list[str]:
    if plan.cloud == "local":
        return []
    warnings: list[str] = []
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
