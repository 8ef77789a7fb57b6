"""Metrics of jobs over their steps, for ``plot``: read, followed while the jobs run, and drawn into images.

The series come from :mod:`oumi_jobs.progress.series` (the job's metrics files, else
its logged metric lines).  Images are drawn with matplotlib's object API on
its Agg canvas, imported only when an image is asked for, so no global
backend is chosen for a program that uses the library; the terminal plot is
the command line's (``cli/render.py``, with plotext).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from oumi_jobs.errors import OumiJobsError, UsageError
from oumi_jobs.paths import Paths
from oumi_jobs.progress import MetricSeries
from oumi_jobs.progress.series import read_series, select_series
from oumi_jobs.states import recorded_state
from oumi_jobs.store.registry import JobRecord, Registry

DEFAULT_METRIC = "loss"
IMAGE_FORMATS = ("png", "svg")
WATCH_INTERVAL_S = 2.0


@dataclass(frozen=True)
class Plot:
    """The series asked for: for each metric, one per job (in the order asked); ``done``: every job ended."""

    metrics: tuple[str, ...]
    series: tuple[MetricSeries, ...]
    done: bool

    def of(self, metric: str) -> list[MetricSeries]:
        return [s for s in self.series if s.metric == metric]


def _records(paths: Paths, jobs: Sequence[str]) -> list[JobRecord]:
    if not jobs:
        raise UsageError("name at least one JOB to plot")
    with Registry.open(paths) as registry:
        records = [registry.resolve(ref) for ref in jobs]
    for record in records:
        if not record.is_local:
            raise UsageError(f"job {record.job_id} runs on {record.cloud}: its metrics files are on its cluster")
    return list({r.job_id: r for r in records}.values())  # a job named twice is drawn once


def read_plot(paths: Paths, jobs: Sequence[str], metrics: Sequence[str] = (), *, waiting: bool = False) -> Plot:
    """The metrics (default ``loss``) of each job.  A metric a job does not have is a usage error naming those
    it has; ``waiting``: a job that has logged nothing yet and has not ended gets an empty series instead."""
    wanted = tuple(dict.fromkeys(metrics or (DEFAULT_METRIC,)))
    records = _records(paths, jobs)
    found: list[MetricSeries] = []
    all_done = True
    for record in records:
        done = recorded_state(record)[0].done
        all_done = all_done and done
        series, source = read_series(record)
        for metric in wanted:
            if waiting and not done and metric not in series:
                found.append(MetricSeries(record.job_id, metric, (), (), tuple(sorted(series)), source))
            else:
                found.append(select_series(record.job_id, series, metric, source))
    ordered = tuple(s for metric in wanted for s in found if s.metric == metric)
    return Plot(wanted, ordered, all_done)


def follow_plot(
    paths: Paths, jobs: Sequence[str], metrics: Sequence[str] = (), *, interval: float = WATCH_INTERVAL_S
) -> Iterator[Plot]:
    """The plot every ``interval`` seconds until every job has ended (the last one yielded is final)."""
    while True:
        plot = read_plot(paths, jobs, metrics, waiting=True)
        yield plot
        if plot.done:
            return
        time.sleep(interval)


def write_image(plot: Plot, path: Path, image_format: str) -> Path:
    """Draw ``plot`` into ``path`` as a PNG or SVG: one panel per metric, a line and a legend entry per job."""
    if image_format not in IMAGE_FORMATS:
        raise UsageError(f"unknown image format {image_format!r}; formats: {', '.join(IMAGE_FORMATS)}")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3 * len(plot.metrics)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(plot.metrics), 1, squeeze=False)[:, 0]
    for ax, metric in zip(axes, plot.metrics, strict=True):
        for series in plot.of(metric):
            ax.plot(series.steps, series.values, label=series.job_id, marker="." if len(series.steps) < 50 else None)
        ax.set_title(metric)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    try:
        figure.savefig(path, format=image_format)
    except OSError as exc:
        raise OumiJobsError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
