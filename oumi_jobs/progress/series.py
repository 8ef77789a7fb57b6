"""A job's metrics over its steps, read whole for plots (``plot``, ``metric_series``)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from oumi_jobs.errors import UsageError
from oumi_jobs.progress import MetricSeries
from oumi_jobs.progress.parse import (
    METRICS_GLOB,
    json_line,
    numeric,
    parse_metric_line,
)
from oumi_jobs.progress.reading import job_output_dir
from oumi_jobs.progress.starts import TRAINER_STATE, OwnLines, own_lines
from oumi_jobs.store.registry import JobRecord


def read_series(record: JobRecord) -> tuple[dict[str, list[tuple[float, float]]], str | None]:
    """Every metric a local job logged, as (step, value) points, and where they were read: rank 0's metrics
    file or trainer_state.json (``metrics``), else the metric lines of its stdout log (``logs``)."""
    output_dir = job_output_dir(record) if record.is_local else None
    entries: list[dict[str, float]] = []
    source = None
    if output_dir is not None:
        entries, source = _metrics_entries(output_dir, own_lines(record)), "metrics"
    if not entries and record.stdout_path and record.is_local:
        entries, source = _logged_entries(Path(record.stdout_path)), "logs"
    series: dict[str, list[tuple[float, float]]] = {}
    for index, entry in enumerate(entries, 1):
        x = entry.get("step", entry.get("global_step", float(index)))
        for name, value in entry.items():
            if name not in ("step", "global_step"):
                series.setdefault(name, []).append((x, value))
    return series, source if entries else None


def own_entries(output_dir: Path, own: OwnLines) -> list[dict[str, float]]:
    """The entries of the lines ``own`` marks in the output folder's metrics (an attempt's, say)."""
    return _metrics_entries(output_dir, own)


def _metrics_entries(output_dir: Path, own: OwnLines) -> list[dict[str, float]]:
    """The job's own entries: its own lines of its lowest rank's metrics file, else trainer_state.json as the
    job wrote it."""
    try:
        names = {e.name: int(m.group(1)) for e in os.scandir(output_dir) if (m := METRICS_GLOB.match(e.name))}
    except OSError:
        names = {}
    if names:
        name = min(names, key=names.__getitem__)
        text = _read_text(output_dir / name, own)
        return [e for line in text.splitlines() if (e := json_line(line)) is not None]
    try:
        data = json.loads(_read_text(output_dir / TRAINER_STATE, own, whole=True) or "{}")
    except (ValueError, RecursionError):
        return []
    history = data.get("log_history") if isinstance(data, dict) else None
    return [numeric(e) for e in history if isinstance(e, dict)] if isinstance(history, list) else []


def _logged_entries(path: Path) -> list[dict[str, float]]:
    text = _read_text(path)
    return [e for line in text.splitlines() if line.startswith("{") and (e := parse_metric_line(line)) is not None]


def _read_text(path: Path, own: OwnLines | None = None, *, whole: bool = False) -> str:
    """The job's ``own`` lines of the file (all of it without); a file rewritten ``whole`` is all or nothing."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if own is None or whole:
            mine = own is None or own.rewritten_by_it(path.name, info)
            return handle.read().decode("utf-8", errors="replace") if mine else ""
        begin, stop = own.span(path.name, info.st_ino, info.st_size)
        handle.seek(begin)
        return handle.read(max(0, stop - begin)).decode("utf-8", errors="replace")


def select_series(
    job_id: str, series: Mapping[str, list[tuple[float, float]]], metric: str, source: str | None = None
) -> MetricSeries:
    """One metric of ``series``; an unknown one is a usage error naming those the job has."""
    if metric not in series:
        have = ", ".join(sorted(series)) or "none yet"
        raise UsageError(f"job {job_id} has no metric {metric!r}; its metrics: {have}")
    points = series[metric]
    return MetricSeries(
        job_id, metric, tuple(x for x, _ in points), tuple(y for _, y in points), tuple(sorted(series)), source
    )
