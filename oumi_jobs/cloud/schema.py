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


def unknown_setting_problem(tree: Tree, name: str, oumi_version: str) -> str:
    """Why ``name`` (a dotted name ``unknown_settings`` gave) is refused, with the closest setting oumi has."""
    import difflib

    parent: Any = tree
    for step in split_path(name)[:-1]:
        if isinstance(step, str) and isinstance(parent, Mapping):
            parent = parent.get(step)
    leaf = str(split_path(name)[-1])
    close = difflib.get_close_matches(leaf, list(parent) if isinstance(parent, Mapping) else [], n=1)
    return f"not a setting of oumi {oumi_version}{f' (did you mean {close[0]!r}?)' if close else ''}"


def split_path(name: str) -> list[str | int]:
    """``data.train.datasets[0].x`` as ``["data", "train", "datasets", 0, "x"]``."""
    steps: list[str | int] = []
    for part in name.split("."):
        key, _, rest = part.partition("[")
        if key:
            steps.append(key)
        for index in rest.replace("]", "").split("[") if rest else ():
            steps.append(int(index) if index.isdigit() else index)
    return steps


def _parent_of(settings: Any, steps: list[str | int]) -> Any:
    node = settings
    for step in steps[:-1]:
        in_mapping = isinstance(node, Mapping) and step in node
        in_list = isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)
        if not (in_mapping or in_list):
            return None
        node = node[step]
    return node


def has_path(settings: Mapping[str, Any], name: str) -> bool:
    steps = split_path(name)
    parent = _parent_of(settings, steps)
    return bool(steps) and (
        (isinstance(parent, Mapping) and steps[-1] in parent)
        or (isinstance(parent, list) and isinstance(steps[-1], int) and 0 <= steps[-1] < len(parent))
    )


def drop_path(settings: dict[str, Any], name: str) -> bool:
    """Remove the setting ``name`` from ``settings`` (in place); whether it was there."""
    if not has_path(settings, name):
        return False
    steps = split_path(name)
    parent = _parent_of(settings, steps)
    del parent[steps[-1]]
    return True


def leaf_paths(settings: Any, prefix: str = "") -> Iterator[str]:
    """The dotted name of every setting in ``settings``, nested ones too."""
    items = (
        settings.items() if isinstance(settings, Mapping) else enumerate(settings) if isinstance(settings, list) else ()
    )
    for key, value in items:
        name = f"{prefix}[{key}]" if isinstance(key, int) else f"{prefix}.{key}" if prefix else str(key)
        yield name
        yield from leaf_paths(value, name)


def named_in(message: str, settings: Mapping[str, Any]) -> str | None:
    """The one setting of ``settings`` that oumi's ``message`` names in backquotes (```sample_count` must be
    greater than 0``), as a full dotted name; None where it names none, or several could be meant."""
    import re

    for quoted in re.findall(r"`([A-Za-z_][\w.]*)`", message):
        found = locate(settings, quoted)
        if found:
            return found
    return None


def locate(settings: Mapping[str, Any], key: str | None) -> str | None:
    """The full dotted name of the setting oumi reported as ``key``.

    OmegaConf names a setting inside a list by its path below the list item
    only (``bogus`` for ``data.train.datasets[0].bogus``): such a key is found
    as the one setting whose name ends with it.
    """
    if not key:
        return None
    if has_path(settings, key):
        return key
    ends = [name for name in leaf_paths(settings) if name.endswith(f".{key}")]
    return ends[0] if len(ends) == 1 else None
