"""The settings each kind of Oumi task config accepts, in the oumi installed here.

Oumi rejects a config with a key its config classes lack ("Key 'x' not in
'TrainingParams'"), so a config written for a newer oumi fails on a cluster
that runs this one, after minutes of provisioning.  Submit warns first.

Reading the config classes means importing ``oumi.core.configs`` (8-15 s),
which a submit must not pay.  The process that launches a cloud job imports
it anyway, so it writes the schema to the cache dir once per oumi version;
submits read that file (a few milliseconds).  Until it exists, no check.

The walk over the config classes is here; the classes themselves come from
the cloud adapter, the one module that imports oumi, which hands them to
:func:`build` and returns its trees as plain data.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from oumi_jobs.cloud.model import Tree
from oumi_jobs.paths import Paths, ensure_private_dir

# The oumi config class each task command reads, by its name in oumi.core.configs.
CONFIG_CLASSES = {
    "train": "TrainingConfig",
    "evaluate": "EvaluationConfig",
    "infer": "InferenceConfig",
    "tune": "TuningConfig",
    "synth": "SynthesisConfig",
    "judge": "JudgeConfig",
    "quantize": "QuantizationConfig",
    "analyze": "AnalyzeConfig",
}


def schema_file(paths: Paths, version: str) -> Path:
    return paths.cache_dir / f"oumi-{version}-settings.json"


def build(config_classes: Mapping[str, type]) -> dict[str, Tree | None]:
    # None: a class whose settings cannot be read, which accepts anything (see unknown_settings)
    """The setting trees of every task command, from the config class each reads (see CONFIG_CLASSES)."""
    return {command: _tree(config_class, ()) for command, config_class in config_classes.items()}


def _tree(config_class: type, seen: tuple[type, ...]) -> Tree | None:
    if config_class in seen:
        return None  # a recursive type: accept anything below
    try:
        hints = typing.get_type_hints(config_class)
    except Exception:  # an annotation that does not resolve: accept anything below
        return None
    return {f.name: _subtree(hints.get(f.name), (*seen, config_class)) for f in dataclasses.fields(config_class)}


def _subtree(annotation: Any, seen: tuple[type, ...]) -> Tree | None:
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return _tree(annotation, seen)
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, typing.Union, types.UnionType):
        # Optional[X], X | None, list[X]: the nested config class, if there is one.
        for argument in typing.get_args(annotation):
            found = _subtree(argument, seen)
            if found is not None:
                return found
    return None


def write_cache(paths: Paths, version: str | None, read: Callable[[], dict[str, Tree | None]]) -> Path | None:
    """Write oumi ``version``'s trees, from ``read``, to the cache once per version (atomic: readers never
    see half a file); ``read`` is not called where the file exists."""
    if version is None:
        return None
    target = schema_file(paths, version)
    if target.exists():
        return target
    ensure_private_dir(target.parent)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    partial.write_text(json.dumps(read()), encoding="utf-8")
    os.replace(partial, target)
    return target


def cached(paths: Paths, version: str) -> dict[str, Tree | None] | None:
    """The trees of oumi ``version`` from the cache, or None where no launch has written them yet."""
    try:
        trees: dict[str, Tree | None] = json.loads(schema_file(paths, version).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return trees


def unknown_settings(tree: Tree, config: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Dotted names of the settings in ``config`` that ``tree`` does not have."""
    for key, value in config.items():
        name = f"{prefix}{key}"
        if key not in tree:
            yield name
            continue
        below = tree[key]
        if below is None:
            continue
        if isinstance(value, Mapping):
            yield from unknown_settings(below, value, f"{name}.")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, Mapping):
                    yield from unknown_settings(below, item, f"{name}[{index}].")
