"""Parsing what a job writes: tqdm bars, the metric lines Python prints, JSON metrics lines; no I/O here."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from typing import Any

# tqdm's bar: `  40%|████      | 2/5 [00:01<00:01, 2.01it/s]` (or `s/it`, or `?it/s` at first).
_TQDM = re.compile(r"(\d+)/(\d+) \[[\d:]+<[\d:?]+,\s*([\d.]+|\?)\s*(it/s|s/it)")


_BAR_PREFIX = re.compile(r"\s*\d{1,3}%\|[^|]*\|\s*$")


_MAX_DICT_LINE = 8192


_LOSS_KEYS = ("loss", "train_loss", "eval_loss")


METRICS_GLOB = re.compile(r"^metrics_rank(\d+)\.jsonl$")


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer past a float's range
        return None
    return number if number == number and abs(number) != float("inf") else None


def numeric(entry: Mapping[str, Any], *, text_too: bool = False) -> dict[str, float]:
    """The numeric values of a logged entry (the trainer prints them as text on stdout: ``'loss': '3.153'``)."""
    found = {}
    for key, value in entry.items():
        if text_too and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                continue
        if (number := as_number(value)) is not None:
            found[str(key)] = number
    return found


def parse_tqdm(segment: str) -> tuple[int, int, float | None, str] | None:
    """``(n, total, steps per second, description)`` of one tqdm bar, else None."""
    match, start = None, 0
    for found in _TQDM.finditer(segment):  # the last bar of a segment is the current one
        start = match.end() if match is not None else 0
        match = found
    if match is None:
        return None
    n, total = int(match.group(1)), int(match.group(2))
    raw, unit = match.group(3), match.group(4)
    try:
        speed = float(raw)
    except ValueError:  # `?` before the first step, or not a number
        speed = 0.0
    rate = None
    if speed > 0:
        rate = speed if unit == "it/s" else 1.0 / speed
    prefix = _BAR_PREFIX.sub("", segment[start : match.start()]).strip().lstrip("]").strip().rstrip(":").strip()
    return n, total, rate, prefix


def parse_metric_line(line: str) -> dict[str, float] | None:
    """The numeric values of a metrics line Python printed (``{'loss': 2.9, 'epoch': 0.1}``) or JSON, else None."""
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")) or len(text) > _MAX_DICT_LINE:
        return None
    try:
        value = json.loads(text) if '"' in text[:3] else ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):  # TypeError: `{[1]: 2}`
        return None
    if not isinstance(value, dict):
        return None
    numbers = numeric(value, text_too=True)
    return numbers if any(k in numbers for k in (*_LOSS_KEYS, "learning_rate", "step")) else None


def json_line(line: str) -> dict[str, float] | None:
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return None  # a torn or foreign line
    return numeric(value) if isinstance(value, dict) else None


LATEST_KEYS = ("step", "epoch", "loss")


def fill_missing(newest: dict[str, float], entry: Mapping[str, float]) -> None:
    """Fold an older entry into the newest values found so far (read newest first): only what is still missing."""
    older: dict[str, float] = {}
    merge_entry(older, entry)
    for key, value in older.items():
        newest.setdefault(key, value)


def merge_entry(latest: dict[str, float], entry: Mapping[str, float]) -> None:
    """Fold one logged entry into the latest values: step, epoch, the training loss and the end's rate."""
    step = entry.get("step", entry.get("global_step"))
    if step is not None:
        latest["step"] = step
    for key in ("epoch", "loss", "train_steps_per_second"):
        if key in entry:
            latest[key] = entry[key]
