"""oumi-jobs as a library: everything the command line does, as calls.

    from oumi_jobs import api

    paths = api.Paths.from_env()                  # honours OUMI_JOBS_HOME and XDG
    job = api.submit(paths, api.SubmitRequest(config="hello.yaml"))
    print(api.get_status(paths, job.job_id).state)
    record = api.cancel_job(paths, job.job_id, api.CancelOptions(timeout_s=10, reason="done"))
    print(record.status, api.cancellation_exit_code(record))

The core returns frozen dataclasses and never prints; it raises
:class:`OumiJobsError` subclasses, each with its ``exit_code``.  The
``*_document`` functions give the versioned JSON objects ``--json`` prints.

Cloud calls run in this process (importing ``oumi.launcher``, 10-15 s, once).
The warm server answers them in milliseconds: ``api.connect_server(paths)``
returns a :class:`Client` of it (started if none runs) whose methods give the
REST API's documents, and ``oumi_jobs.server.forwarding.install(paths)`` makes
this process's own cloud calls go through it, as the command line does.

A facade only: each name is re-exported from the module that defines it.
Importing it loads neither oumi, torch, SkyPilot nor rich: ``oumi.launcher``
is imported by the first call that asks a cloud.
"""

from __future__ import annotations

from oumi_jobs.cancel.request import CancelRequest, CancelResult
from oumi_jobs.cancel.request import run as run_cancel
from oumi_jobs.cancel.service import (
    BulkOutcome,
    CancelOptions,
    cancel_job,
    cancel_jobs,
    cancellation_history,
    cancellation_status,
    follow_cancellation,
)
from oumi_jobs.client import Client, ServerUnavailableError
from oumi_jobs.cloud.model import ConfigProblem, CredentialCheck
from oumi_jobs.clusters import (
    CancelThenDown,
    ClusterAction,
    ClusterList,
    ClusterRow,
    act_on_cluster,
    cancel_then_down,
    jobs_running_on,
    list_clusters,
)
from oumi_jobs.cost_report import CostGroup, CostReport, cost_report
from oumi_jobs.costs import cost_so_far
from oumi_jobs.errors import (
    AmbiguousJobError,
    CloudUnreachableError,
    ConflictError,
    ExitCode,
    JobNotFoundError,
    OumiJobsError,
    PreflightError,
    RegistryError,
    UsageError,
    WaitInterrupted,
)
from oumi_jobs.exits import (
    bulk_cancel_exit_code,
    cancellation_exit_code,
    job_exit_code,
    problems_exit_code,
    sweep_cancel_exit_code,
    wait_exit_code,
    worst_exit_code,
)
from oumi_jobs.external import CloudIdentity, adopt_by_identity, find_by_identity
from oumi_jobs.legacy import ImportResult, SkippedEntry, import_registry
from oumi_jobs.listing import JobDocuments, JobList, list_job_documents, list_jobs, list_jobs_report
from oumi_jobs.logs import log_path, read_log
from oumi_jobs.metrics import metrics_text
from oumi_jobs.notify.records import notification_history
from oumi_jobs.notify.sender import send_test as notify_test
from oumi_jobs.paths import Paths
from oumi_jobs.plots import Plot, follow_plot, read_plot, write_image
from oumi_jobs.policy import JobPolicy, PolicyTexts, parse_policy
from oumi_jobs.preflight import ConfigCheck, Preflight, PreflightProblem, check_config, preflight
from oumi_jobs.progress import MetricSeries, Progress
from oumi_jobs.prune import PruneResult, prune
from oumi_jobs.render.base import SCHEMA_VERSION, encode_json, job_document, progress_document
from oumi_jobs.render.cancel import (
    bulk_document,
    cancel_document,
    cancel_down_document,
    cancel_outcome,
    cancellation_document,
)
from oumi_jobs.render.clusters import cluster_action_document, cluster_document, cost_document
from oumi_jobs.render.events import event_document, timeline_documents
from oumi_jobs.render.jobs import check_document, dry_run_document, log_document, plot_document
from oumi_jobs.render.notifications import event_document as notification_event_document
from oumi_jobs.render.notifications import notification_document
from oumi_jobs.render.registry import import_document, prune_document
from oumi_jobs.render.sweeps import (
    compare_document,
    sweep_cancel_document,
    sweep_document,
    sweep_document_text,
    sweep_dry_run_document,
    sweep_summary_document,
)
from oumi_jobs.retry_job import retry
from oumi_jobs.server.lifecycle import connect as connect_server
from oumi_jobs.states import DONE_STATES, State, parse_states
from oumi_jobs.status import get_progress, get_status, metric_series, read_status, status_by_identity
from oumi_jobs.store.cancellations import CancellationRecord, CancellationStatus, CancellationStep, StepStatus
from oumi_jobs.store.notifications import NotificationRecord
from oumi_jobs.submitting import DryRun, SubmitRequest, Submitted, dry_run, submit
from oumi_jobs.sweeps.compare import CompareRow, compare_sweep
from oumi_jobs.sweeps.service import (
    SweepCancel,
    SweepDocuments,
    SweepDryRun,
    SweepRequest,
    SweepStatus,
    SweepSummary,
    cancel_sweep,
    create_sweep,
    dry_run_sweep,
    list_sweeps,
    sweep_documents,
    sweep_status,
)
from oumi_jobs.timeline import Event, Timeline, timeline
from oumi_jobs.views import JobView
from oumi_jobs.waiting import WaitResult, follow_jobs, follow_until_done, wait_for_jobs

__all__ = [
    "DONE_STATES",
    "SCHEMA_VERSION",
    "AmbiguousJobError",
    "BulkOutcome",
    "CancelOptions",
    "CancelRequest",
    "CancelResult",
    "CancelThenDown",
    "CancellationRecord",
    "CancellationStatus",
    "CancellationStep",
    "Client",
    "CloudIdentity",
    "CloudUnreachableError",
    "ClusterAction",
    "ClusterList",
    "ClusterRow",
    "CompareRow",
    "ConfigCheck",
    "ConfigProblem",
    "ConflictError",
    "CostGroup",
    "CostReport",
    "CredentialCheck",
    "DryRun",
    "Event",
    "ExitCode",
    "ImportResult",
    "JobDocuments",
    "JobList",
    "JobNotFoundError",
    "JobPolicy",
    "JobView",
    "MetricSeries",
    "NotificationRecord",
    "OumiJobsError",
    "Paths",
    "Plot",
    "PolicyTexts",
    "Preflight",
    "PreflightError",
    "PreflightProblem",
    "Progress",
    "PruneResult",
    "RegistryError",
    "ServerUnavailableError",
    "SkippedEntry",
    "State",
    "StepStatus",
    "SubmitRequest",
    "Submitted",
    "SweepCancel",
    "SweepDocuments",
    "SweepDryRun",
    "SweepRequest",
    "SweepStatus",
    "SweepSummary",
    "Timeline",
    "UsageError",
    "WaitInterrupted",
    "WaitResult",
    "act_on_cluster",
    "adopt_by_identity",
    "bulk_cancel_exit_code",
    "bulk_document",
    "cancel_document",
    "cancel_down_document",
    "cancel_job",
    "cancel_jobs",
    "cancel_outcome",
    "cancel_sweep",
    "cancel_then_down",
    "cancellation_document",
    "cancellation_exit_code",
    "cancellation_history",
    "cancellation_status",
    "check_config",
    "check_document",
    "cluster_action_document",
    "cluster_document",
    "compare_document",
    "compare_sweep",
    "connect_server",
    "cost_document",
    "cost_report",
    "cost_so_far",
    "create_sweep",
    "dry_run",
    "dry_run_document",
    "dry_run_sweep",
    "encode_json",
    "event_document",
    "find_by_identity",
    "follow_cancellation",
    "follow_jobs",
    "follow_plot",
    "follow_until_done",
    "get_progress",
    "get_status",
    "import_document",
    "import_registry",
    "job_document",
    "job_exit_code",
    "jobs_running_on",
    "list_clusters",
    "list_job_documents",
    "list_jobs",
    "list_jobs_report",
    "list_sweeps",
    "log_document",
    "log_path",
    "metric_series",
    "metrics_text",
    "notification_document",
    "notification_event_document",
    "notification_history",
    "notify_test",
    "parse_policy",
    "parse_states",
    "plot_document",
    "preflight",
    "problems_exit_code",
    "progress_document",
    "prune",
    "prune_document",
    "read_log",
    "read_plot",
    "read_status",
    "retry",
    "run_cancel",
    "status_by_identity",
    "submit",
    "sweep_cancel_document",
    "sweep_cancel_exit_code",
    "sweep_document",
    "sweep_document_text",
    "sweep_documents",
    "sweep_dry_run_document",
    "sweep_status",
    "sweep_summary_document",
    "timeline",
    "timeline_documents",
    "wait_exit_code",
    "wait_for_jobs",
    "worst_exit_code",
    "write_image",
]
