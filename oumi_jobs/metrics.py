"""Prometheus text-format metrics for node_exporter's textfile collector.

The numbers are derived from the cancellation records each time, so they are
cumulative across every oumi-jobs process without shared counters, and the
file is replaced atomically (a temporary file renamed over it): the one in
the state dir 0600, like every file there.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from oumi_jobs.errors import OumiJobsError, SideOutputError
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
        # Every label set from its first cancellation on, at 0 too: increase() misses a series' first sample.
        failures.labels(*key).inc(int(status == "failed"))
        if finished_at:
            duration.labels(*key).observe((from_iso(finished_at) - from_iso(requested_at)).total_seconds())
    counts = {state: 0 for state in State}
    oldest: dict[State, float] = {}
    for record in registry.jobs():
        state = view_of(record).state
        counts[state] += 1
        # A launched cloud job reads `unknown` here only because its cloud is not asked: not a job to alert on.
        if state in (State.LOST, State.UNKNOWN) and (record.is_local or not record.launcher_job_id):
            submitted = from_iso(record.submit_time).timestamp()
            oldest[state] = min(oldest.get(state, submitted), submitted)
    for state, count in counts.items():
        jobs.labels(state.value).set(count)
    _alerting_metrics(metrics, registry, oldest)
    return metrics


def _alerting_metrics(metrics: CollectorRegistry, registry: Registry, oldest: dict[State, float]) -> None:
    """What contrib/prometheus/oumi-jobs.rules.yml alerts on, beside the counters above."""
    from prometheus_client import Counter, Gauge

    labels = ("cloud", "mode")
    survived = Counter(
        "oumi_jobs_cancellation_survivors", "Cancellations that left processes alive.", labels, registry=metrics
    )
    killed = Counter("oumi_jobs_cancellation_sigkills", "Cancellations that sent SIGKILL.", labels, registry=metrics)
    cleanup = Counter(
        "oumi_jobs_cancellation_cleanup_failures", "Cancellations whose cleanup failed.", labels, registry=metrics
    )
    for facts in CancellationTracker(registry).alert_facts():
        key = (facts.cloud, "force" if facts.force else "graceful")
        survived.labels(*key).inc(int(facts.survived))
        killed.labels(*key).inc(int(facts.killed))
        cleanup.labels(*key).inc(int(facts.cleanup_failed))
    unresolved = Gauge(
        "oumi_jobs_oldest_unresolved_job_submit_timestamp_seconds",
        "Submit time of the oldest job lost, or unknown without its cloud being the reason.",
        ("state",), registry=metrics,
    )  # fmt: skip
    for state, submitted in oldest.items():
        unresolved.labels(state.value).set(submitted)


def write_metrics(paths: Paths, registry: Registry, extra_file: Path | None = None) -> None:
    """Write the metrics file in the state dir (and ``extra_file``, e.g. for node_exporter).

    Each file is tried; any that cannot be written raises one
    :class:`~oumi_jobs.errors.SideOutputError` naming them all, after the others were written.
    """
    from prometheus_client import generate_latest, write_to_textfile

    metrics = build_registry(registry)
    problems = []
    try:
        paths.private_dir(paths.state_dir)
        write_private_file(paths.metrics_file, generate_latest(metrics))  # 0600, atomic, no symlink followed
    except (OSError, OumiJobsError) as exc:  # a full disk, or a planted link refused
        problems.append(f"{paths.metrics_file}: {exc}")
    if extra_file is not None:  # node_exporter's folder: its reader is another user, so the umask decides
        try:
            extra_file.parent.mkdir(parents=True, exist_ok=True)
            write_to_textfile(str(extra_file), metrics)  # a temporary file renamed over it, removed if that fails
        except OSError as exc:
            problems.append(f"{extra_file}: {exc}")
    if problems:
        raise SideOutputError(f"metrics not written: {'; '.join(problems)}")


# What a Prometheus server expects of a text-format scrape.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def metrics_text(paths: Paths) -> bytes:
    """The metrics of ``metrics.prom``, computed now from the registry (a scrape, e.g. the server's ``/metrics``)."""
    from prometheus_client import generate_latest

    with Registry.open(paths) as registry:
        return generate_latest(build_registry(registry))
