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

A facade only: each name is re-exported from the module that defines it.
Importing it loads neither oumi, torch, SkyPilot nor rich: ``oumi.launcher``
is imported by the first call that asks a cloud.
"""

from __future__ import annotations

from oumi_jobs.cancel.service import (
    BulkOutcome,
    CancelOptions,
    cancel_job,
    cancel_jobs,
    cancellation_history,
    cancellation_status,
    follow_cancellation,
)
from oumi_jobs.cloud.model import ConfigProblem, CredentialCheck
from oumi_jobs.documents import (
    SCHEMA_VERSION,
    bulk_document,
    cancellation_document,
    check_document,
    dry_run_document,
    encode_json,
    import_document,
    job_document,
    log_document,
    prune_document,
)
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
)
from oumi_jobs.exits import (
    bulk_cancel_exit_code,
    cancellation_exit_code,
    job_exit_code,
    problems_exit_code,
    worst_exit_code,
)
from oumi_jobs.jobs import (
    DryRun,
    JobDocuments,
    JobList,
    SubmitRequest,
    Submitted,
    dry_run,
    follow_until_done,
    get_status,
    list_job_documents,
    list_jobs,
    list_jobs_report,
    status_by_identity,
    submit,
)
from oumi_jobs.legacy import ImportResult, SkippedEntry, import_registry
from oumi_jobs.logs import log_path, read_log
from oumi_jobs.paths import Paths
from oumi_jobs.preflight import ConfigCheck, Preflight, PreflightProblem, check_config, preflight
from oumi_jobs.prune import PruneResult, prune
from oumi_jobs.states import DONE_STATES, State, parse_states
from oumi_jobs.store.cancellations import CancellationRecord, CancellationStatus, CancellationStep, StepStatus
from oumi_jobs.views import JobView

__all__ = [
    "DONE_STATES",
    "SCHEMA_VERSION",
    "AmbiguousJobError",
    "BulkOutcome",
    "CancelOptions",
    "CancellationRecord",
    "CancellationStatus",
    "CancellationStep",
    "CloudUnreachableError",
    "ConfigCheck",
    "ConfigProblem",
    "ConflictError",
    "CredentialCheck",
    "DryRun",
    "ExitCode",
    "ImportResult",
    "JobDocuments",
    "JobList",
    "JobNotFoundError",
    "JobView",
    "OumiJobsError",
    "Paths",
    "Preflight",
    "PreflightError",
    "PreflightProblem",
    "PruneResult",
    "RegistryError",
    "SkippedEntry",
    "State",
    "StepStatus",
    "SubmitRequest",
    "Submitted",
    "UsageError",
    "bulk_cancel_exit_code",
    "bulk_document",
    "cancel_job",
    "cancel_jobs",
    "cancellation_document",
    "cancellation_exit_code",
    "cancellation_history",
    "cancellation_status",
    "check_config",
    "check_document",
    "dry_run",
    "dry_run_document",
    "encode_json",
    "follow_cancellation",
    "follow_until_done",
    "get_status",
    "import_document",
    "import_registry",
    "job_document",
    "job_exit_code",
    "list_job_documents",
    "list_jobs",
    "list_jobs_report",
    "log_document",
    "log_path",
    "parse_states",
    "preflight",
    "problems_exit_code",
    "prune",
    "prune_document",
    "read_log",
    "status_by_identity",
    "submit",
    "worst_exit_code",
]
