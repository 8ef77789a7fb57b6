"""``compare SWEEP``: each child's overrides, state, and the last and best value of one metric, best first.

The values come from each child's own metrics (:mod:`oumi_jobs.progress`,
the reading ``status`` and ``plot`` use): a sweep's children each train into
their own output folder, so no child reads another's lines.  A cloud child's
metrics files are on its cluster: its row has no values.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.paths import Paths
from oumi_jobs.progress.series import read_series
from oumi_jobs.sweeps.service import sweep_status
from oumi_jobs.views import JobView

DEFAULT_METRIC = "loss"


@dataclass(frozen=True)
class CompareRow:
    view: JobView
    overrides: dict[str, Any] | None
    metric: str
    last: float | None
    best: float | None
    step: float | None  # the step of the last value


def compare_sweep(
    paths: Paths,
    ref: str,
    *,
    metric: str = DEFAULT_METRIC,
    highest: bool = False,
    cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S,
) -> list[CompareRow]:
    """One row per child, sorted by its best value: lowest first (``highest``: highest first); children with
    no value last, in their order."""
    status = sweep_status(paths, ref, cloud_timeout_s=cloud_timeout_s)
    rows = [_row(view, metric, highest) for view in status.children]
    valued = sorted((r for r in rows if r.best is not None), key=lambda r: r.best or 0.0, reverse=highest)
    return valued + [r for r in rows if r.best is None]


def _row(view: JobView, metric: str, highest: bool) -> CompareRow:
    record = view.record
    overrides = json.loads(record.overrides) if record.overrides else None
    points: list[tuple[float, float]] = []
    if record.is_local:
        series, _ = read_series(record)
        points = [(step, value) for step, value in series.get(metric, []) if math.isfinite(value)]
    if not points:
        return CompareRow(view, overrides, metric, None, None, None)
    values = [value for _, value in points]
    best = max(values) if highest else min(values)
    return CompareRow(view, overrides, metric, points[-1][1], best, points[-1][0])
