"""A sweep's children, as the overrides each one gets: the ``--set`` grid, ``--zip`` or a ``--values`` file.

Everything here checks and plans; nothing is written.  Every refusal is a
:class:`~oumi_jobs.errors.UsageError` of one line (exit 2), raised before the
sweep registers anything.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from oumi_jobs.cloud.model import Tree
from oumi_jobs.cloud.schema import unknown_settings
from oumi_jobs.errors import UsageError

MAX_CHILDREN = 10_000
# A number YAML 1.1 leaves as text (PyYAML wants a dot in a float: 1e-5 is a string to it).
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")

Overrides = dict[str, Any]


def parse_value(text: str) -> Any:
    """One value, read as a YAML scalar: ``1e-5`` a float, ``true`` a bool, ``adamw`` text, ``null`` None."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise UsageError(f"value {text!r} is not a YAML scalar") from None
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value) if any(c in value for c in ".eE") else int(value)
    if isinstance(value, (dict, list)):
        raise UsageError(f"value {text!r} is not a YAML scalar (a mapping or a list)")
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"value {text!r}: a sweep value must be a finite number")
    return value


def parse_set(option: str) -> tuple[str, list[Any]]:
    """``--set PATH=V1,V2,...`` as the path and its values."""
    path, sep, values = option.partition("=")
    path = path.strip()
    if not sep or not _PATH.fullmatch(path):
        raise UsageError(f"--set {option!r}: expected PATH=V1,V2,... with a dotted PATH (training.learning_rate)")
    items = values.split(",")
    if any(not item.strip() for item in items):
        raise UsageError(f"--set {option!r}: an empty value")
    return path, [parse_value(item) for item in items]


def expand(sets: Sequence[str], *, zip_values: bool = False, values_file: Path | None = None) -> list[Overrides]:
    """Each child's overrides, in order: every combination of the ``--set`` lists (the first varies slowest),
    the lists paired position by position with ``zip_values``, or the rows of ``values_file``."""
    if values_file is not None:
        if sets or zip_values:
            raise UsageError("--values FILE gives every child's values: it goes with neither --set nor --zip")
        return _checked_size(_read_values(values_file))
    if not sets:
        raise UsageError("a sweep needs --set PATH=V1,V2,... or --values FILE")
    parsed = [parse_set(option) for option in sets]
    paths = [path for path, _ in parsed]
    if len(set(paths)) != len(paths):
        raise UsageError(f"--set names {next(p for p in paths if paths.count(p) > 1)} twice")
    if zip_values:
        lengths = {len(values) for _, values in parsed}
        if len(lengths) > 1:
            raise UsageError(f"--zip pairs the --set lists position by position: they have {sorted(lengths)} values")
        return _checked_size(
            [dict(zip(paths, row, strict=True)) for row in zip(*(values for _, values in parsed), strict=True)]
        )
    size = math.prod(len(values) for _, values in parsed)
    if size > MAX_CHILDREN:
        raise UsageError(f"the sweep would have {size} children; at most {MAX_CHILDREN}")
    return [dict(zip(paths, row, strict=True)) for row in itertools.product(*(values for _, values in parsed))]


def _checked_size(children: list[Overrides]) -> list[Overrides]:
    if not children:
        raise UsageError("the sweep would have no children")
    if len(children) > MAX_CHILDREN:
        raise UsageError(f"the sweep would have {len(children)} children; at most {MAX_CHILDREN}")
    return children


def _read_values(path: Path) -> list[Overrides]:
    """``--values FILE``: a YAML (or JSON) list of ``{path: value}`` mappings, one per child."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read --values {path}: {getattr(exc, 'strerror', None) or exc}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"cannot parse --values {path}: {getattr(exc, 'problem', None) or 'invalid YAML'}") from None
    if not isinstance(data, list):
        raise UsageError(f"--values {path}: expected a list of {{path: value}} mappings")
    rows: list[Overrides] = []
    for index, row in enumerate(data):
        if not isinstance(row, Mapping) or not row:
            raise UsageError(f"--values {path}: item {index} is not a mapping of path: value")
        for key, value in row.items():
            if not isinstance(key, str) or not _PATH.fullmatch(key):
                raise UsageError(f"--values {path}: item {index} has {key!r}, which is not a dotted path")
            if isinstance(value, (Mapping, list)):
                raise UsageError(f"--values {path}: item {index}: {key} must be a scalar")
        rows.append(dict(row))
    return rows


def check_paths(
    children: Sequence[Overrides], config: Mapping[str, Any], *, job_config: bool, tree: Tree | None = None
) -> None:
    """Every path names a setting the config can have, else UsageError.

    A setting the config has is always fine.  A job config may also add a
    variable (``envs.NAME``).  A task config may set a setting it leaves at
    Oumi's default (``training.learning_rate``): one that Oumi's config class
    has (``tree``, the installed oumi's settings, where known), else one whose
    section the config has.
    """
    for path in dict.fromkeys(path for child in children for path in child):
        keys = path.split(".")
        node = lookup(config, path)
        if isinstance(node, (Mapping, list)):
            raise UsageError(f"{path} is a {'mapping' if isinstance(node, Mapping) else 'list'} in the config; "
                             "a sweep sets single values")  # fmt: skip
        if node is not None or _has_key(config, keys):
            continue
        if job_config:
            if len(keys) == 2 and keys[0] == "envs":
                continue
        elif tree is not None:
            if not any(unknown_settings(tree, apply({}, {path: None}))):
                continue
        elif len(keys) > 1 and isinstance(lookup(config, ".".join(keys[:-1])), Mapping):
            continue
        raise UsageError(f"the config has no {path}; a sweep sets only settings the config can have")


def _has_key(config: Mapping[str, Any], keys: list[str]) -> bool:
    """The config names this setting (with a null value, say)."""
    parent = lookup(config, ".".join(keys[:-1])) if len(keys) > 1 else config
    return isinstance(parent, Mapping) and keys[-1] in parent


def lookup(config: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path of ``config``; None where it has none."""
    node: Any = config
    for key in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def apply(config: Mapping[str, Any], overrides: Overrides) -> dict[str, Any]:
    """A copy of ``config`` with the overrides written in (``envs`` made if a job config has none)."""
    result: dict[str, Any] = copy.deepcopy(dict(config))
    for path, value in overrides.items():
        *parents, last = path.split(".")
        node = result
        for key in parents:
            child = node.get(key)
            if not isinstance(child, dict):  # a job config's missing or empty `envs:`
                child = node[key] = {}
            node = child
        node[last] = value
    return result


def as_argument(value: Any) -> str:
    """A value as Oumi's command line reads it (``--training.learning_rate 1e-05``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return repr(value) if isinstance(value, float) else str(value)
