"""Prometheus text-format metrics for node_exporter's textfile collector.

The numbers are derived from the cancellation records each time, so they are
cumulative across every oumi-jobs process without shared counters, and the
file is replaced atomically (a temporary file renamed over it): the one in
the state dir 0600, like every file there.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from oumi_jobs.paths import Paths, write_private_file
from oumi_jobs.states import State
from oumi_jobs.store.cancellations import CancellationTracker
from oumi_jobs.store.registry import Registry
from oumi_jobs.timestamps import from_iso
from oumi_jobs.views import view_of

if TYPE_CHECKING:  # prometheus-client is imported when metrics are written, not at start-up
    from prometheus_client import CollectorRegistry

DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def build_registry(registry: Registry) -> CollectorRegistry:
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client

    metrics = CollectorRegistry()
    labels = ("cloud", "mode")
    requests = Counter("oumi_jobs_cancellation_requests", "Cancellation requests.", labels, registry=metrics)
    failures = Counter("oumi_jobs_cancellation_failures", "Cancellations that failed.", labels, registry=metrics)
    terminated = Counter(
        "oumi_jobs_runners_terminated", "Processes signalled by cancellations.", labels, registry=metrics
    )
    duration = Histogram(
        "oumi_jobs_cancellation_duration_seconds", "Time from request to end of a cancellation.", labels,
        buckets=DURATION_BUCKETS, registry=metrics,
    )  # fmt: skip
    jobs = Gauge("oumi_jobs_jobs", "Registered jobs by state.", ("state",), registry=metrics)

    for cloud, force, status, requested_at, finished_at, signalled in CancellationTracker(registry).summaries():
        key = (cloud, "force" if force else "graceful")
        requests.labels(*key).inc()
        terminated.labels(*key).inc(signalled)
        if status == "failed":
            failures.labels(*key).inc()
        if finished_at:
            duration.labels(*key).observe((from_iso(finished_at) - from_iso(requested_at)).total_seconds())
    counts = {state: 0 for state in State}
    for record in registry.jobs():
        counts[view_of(record).state] += 1
    for state, count in counts.items():
        jobs.labels(state.value).set(count)
    return metrics


def write_metrics(paths: Paths, registry: Registry, extra_file: Path | None = None) -> None:
    """Write the metrics file in the state dir (and ``extra_file``, e.g. for node_exporter)."""
    from prometheus_client import generate_latest, write_to_textfile

    metrics = build_registry(registry)
    paths.private_dir(paths.state_dir)
    write_private_file(paths.metrics_file, generate_latest(metrics))
    if extra_file is not None:  # node_exporter's folder: its reader is another user, so the umask decides
        extra_file.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(extra_file), metrics)
