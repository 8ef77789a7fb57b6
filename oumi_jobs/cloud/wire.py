"""The cloud adapter's plain data as JSON, and back: what lets an adapter call cross a process boundary.

The adapter's arguments and results are frozen dataclasses of strings,
numbers, lists, dicts and our enums (:mod:`oumi_jobs.cloud.model`).  Encoding
walks the value; decoding walks the *declared* type (the adapter Protocol's
annotations), so a result is rebuilt as the very types an in-process call
returns, and a malformed one is refused rather than passed on half-typed.
Errors the adapter raises travel as ``{"type", "message", "fields"}``.

Written by hand over ``typing`` rather than with pydantic: a cloud command
pays for every import, and this is all it needs.
"""

from __future__ import annotations

import dataclasses
import datetime
import types
import typing
from collections.abc import Mapping, Sequence
from enum import Enum
from functools import cache
from typing import Any

from oumi_jobs.errors import (
    AmbiguousJobError,
    CloudCallError,
    CloudTimeoutError,
    CloudUnreachableError,
    ClusterNotFoundError,
    ConflictError,
    JobNotFoundError,
    OumiJobsError,
    UsageError,
)


class WireError(CloudUnreachableError):
    """What came over the wire is not what the adapter's types say: a server of another version, or a bug."""


def encode(value: Any) -> Any:
    """``value`` as JSON-ready data: dataclasses as objects of their fields, enums as their values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()  # YAML reads `2024-01-01` as a date: a config's settings may hold one
    return value


def decode(declared: Any, data: Any) -> Any:
    """``data`` rebuilt as the ``declared`` type; WireError where it does not fit."""
    origin = typing.get_origin(declared)
    if declared is Any or declared is object:
        return data
    if origin in (typing.Union, types.UnionType):
        return _decode_union(typing.get_args(declared), data)
    if origin in (list, Sequence, tuple):
        _expect(data, list, declared)
        (item,) = typing.get_args(declared)[:1] or (Any,)
        items = [decode(item, v) for v in data]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        _expect(data, dict, declared)
        value_type = typing.get_args(declared)[1] if typing.get_args(declared) else Any
        return {k: decode(value_type, v) for k, v in data.items()}
    if isinstance(declared, type) and dataclasses.is_dataclass(declared):
        _expect(data, dict, declared)
        hints = _hints(declared)
        known = {f.name for f in dataclasses.fields(declared) if f.init}
        return declared(**{k: decode(hints[k], v) for k, v in data.items() if k in known})
    if isinstance(declared, type) and issubclass(declared, Enum):
        try:
            return declared(data)
        except ValueError:
            raise WireError(f"{data!r} is not a {declared.__name__}") from None
    if declared is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    if isinstance(declared, type) and declared is not type(None):
        _expect(data, declared, declared)
    return data


def _decode_union(options: tuple[Any, ...], data: Any) -> Any:
    if data is None and type(None) in options:
        return None
    errors = []
    for option in options:
        if option is type(None):
            continue
        try:
            return decode(option, data)
        except (WireError, TypeError) as exc:
            errors.append(str(exc))
    raise WireError(f"{data!r} fits none of {options}: {'; '.join(errors)}")


def _expect(data: Any, kind: type, declared: Any) -> None:
    if not isinstance(data, kind) or (kind is int and isinstance(data, bool)):
        raise WireError(f"expected {declared}, got {type(data).__name__}")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def return_type(protocol: type, method: str) -> Any:
    """The declared result type of ``protocol.method``."""
    return typing.get_type_hints(getattr(protocol, method))["return"]


# Errors an adapter raises, by name: rebuilt on the far side as the same type, so callers catch what they
# would catch in-process (a cloud's own error stays a CloudCallError with its type name and message).
_ERRORS: dict[str, type[OumiJobsError]] = {
    cls.__name__: cls
    for cls in (
        AmbiguousJobError,
        CloudCallError,
        ClusterNotFoundError,
        CloudTimeoutError,
        CloudUnreachableError,
        UsageError,
        JobNotFoundError,
        ConflictError,
        OumiJobsError,
    )
}


def encode_error(exc: OumiJobsError) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if isinstance(exc, CloudCallError):
        fields = {"error_type": exc.error_type, "error_message": exc.error_message}
    elif isinstance(exc, ClusterNotFoundError):
        fields = {"cloud": exc.cloud, "cluster": exc.cluster}
    elif isinstance(exc, AmbiguousJobError):
        fields = {"prefix": exc.prefix, "candidates": list(exc.candidates)}
    name = next((n for n, cls in _ERRORS.items() if type(exc) is cls), None)
    return {"type": name or _nearest(exc), "message": str(exc), "fields": fields}


def _nearest(exc: OumiJobsError) -> str:
    for name, cls in _ERRORS.items():
        if isinstance(exc, cls) and cls not in (CloudCallError, ClusterNotFoundError, AmbiguousJobError):
            return name
    return "OumiJobsError"


def decode_error(data: Mapping[str, Any]) -> OumiJobsError:
    """The error an ``encode_error`` document describes, as the exception to raise here."""
    name, message, fields = data.get("type"), str(data.get("message", "")), data.get("fields") or {}
    if name == "CloudCallError":
        return CloudCallError(
            message, error_type=str(fields.get("error_type", "")), error_message=str(fields.get("error_message", ""))
        )
    if name == "AmbiguousJobError":
        return AmbiguousJobError(str(fields.get("prefix", "")), [str(c) for c in fields.get("candidates") or []])
    if name == "ClusterNotFoundError":
        return ClusterNotFoundError(str(fields.get("cloud", "")), str(fields.get("cluster", "")))
    return _ERRORS.get(str(name), OumiJobsError)(message)
