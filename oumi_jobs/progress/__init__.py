"""How far along a job is: step, total, loss, rate and ETA, read live from the files the job writes.

Nothing here is stored as truth.  The package's modules: ``parse`` (what a
job writes: tqdm bars, metric lines), ``reading`` (a job's files or log
stream, read incrementally: ``local_progress``, ``cloud_progress``),
``cache`` (what was read, kept for next time, and the index of finished
jobs the lean ``list --json`` reads), ``series`` (a metric over its steps,
for plots), ``starts`` (where a job's own lines lie in files an earlier or
later run in its output folder appends to).  This module holds only the two results they share.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """A job's progress as read now; each value None where unknown (the JSON ``progress`` object)."""

    step: int | None = None
    total_steps: int | None = None
    fraction: float | None = None  # step / total_steps, 0..1
    epoch: float | None = None
    loss: float | None = None  # the latest training loss logged
    eta_s: float | None = None  # seconds left at the current rate; None when done or unknown
    rate: float | None = None  # steps per second
    source: str | None = None  # "metrics" (the output dir) or "logs" (tqdm and metric lines)
    as_of: str | None = None  # when the newest data read was written


@dataclass(frozen=True)
class MetricSeries:
    """One metric of one job over its steps, and every metric the job has logged."""

    job_id: str
    metric: str
    steps: tuple[float, ...]
    values: tuple[float, ...]
    metrics: tuple[str, ...]
    source: str | None
