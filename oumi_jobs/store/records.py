"""A job's record as oumi-jobs keeps it, and its mapping to a row of the ``jobs`` table.

Status is never stored (SPEC principle 1); only identity and the supervisor's
exit record, which *is* the local job's source of truth once its process is
gone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

# The source of a cloud job launched outside oumi-jobs: seen in a cloud's listing, or adopted to be acted on.
EXTERNAL = "external"


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """An attempt of a job that ended and was followed by another: its exit record and where its logs went."""

    attempt: int
    state: str
    start_time: str | None = None
    end_time: str | None = None
    exit_code: int | None = None
    exit_signal: int | None = None
    end_detail: str | None = None
    failure: str | None = None  # JSON text, as the job's own column
    resume: str | None = None  # JSON text, as the job's own column
    stdout_path: str | None = None
    stderr_path: str | None = None
    cluster: str | None = None
    launcher_job_id: str | None = None


ATTEMPT_COLUMNS = [f.name for f in fields(AttemptRecord)]


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job's identity, as oumi-jobs knows it.  No status: that is read live."""

    job_id: str
    cloud: str
    submit_time: str
    name: str | None = None
    command: str | None = None
    config_path: str | None = None
    cluster: str | None = None
    launcher_job_id: str | None = None
    model_name: str | None = None
    output_dir: str | None = None
    source: str = "submit"  # "submit", "import" (a legacy registry) or EXTERNAL
    argv: tuple[str, ...] = ()
    workdir: str | None = None
    stdout_path: str | None = None
    stderr_path: str | None = None
    # The detached supervisor of a local job.
    supervisor_pid: int | None = None
    supervisor_start_time: float | None = None
    # The job's own process, recorded by the supervisor when it starts it.
    pid: int | None = None
    pgid: int | None = None
    process_start_time: float | None = None
    boot_id: str | None = None
    started_at: str | None = None
    # The exit record, written by the supervisor when the process ends.
    exit_code: int | None = None
    exit_signal: int | None = None
    end_time: str | None = None
    end_detail: str | None = None
    cancel_requested: bool = False
    # When a queued local job's dependencies were met and it joined its cluster's queue.
    ready_at: str | None = None
    # How the supervisor keeps the job's processes findable (local.containment), and the job's cgroup.
    containment: str | None = None
    cgroup: str | None = None
    # USD per hour of the whole cluster, as the launcher priced it when the job was launched (None: no price).
    cost_per_hour: float | None = None
    # The sweep a child belongs to, its overrides (JSON text, {path: value}) and the variables its supervisor
    # adds to its environment (JSON text): a child's supervisor may be started by another child's.
    sweep_id: str | None = None
    overrides: str | None = None
    environment: str | None = None
    # Why the job failed (oumi_jobs.failures), as the document's JSON object: computed once, when it ended.
    failure: str | None = None
    # Where each attempt's own lines begin in its output folder's metrics files (progress.starts, JSON text):
    # Oumi appends to the files of a folder an earlier run used.
    metrics_start: str | None = None
    # Its progress (oumi_jobs.progress) as the document's JSON object, kept the first time it was read after
    # the job ended, for the lean listing (store/listing.py); None: not read since it ended.
    final_progress: str | None = None
    # What oumi-jobs does for the job while nobody watches: retries, guards, notifications (oumi_jobs.policy,
    # JSON text); None: the default policy.
    policy: str | None = None
    # The current attempt (1-based; oumi_jobs.retrying): the row's start and exit record are this attempt's.
    attempt: int = 1
    # When the next attempt is due, while the job waits between attempts (None: not waiting to retry).
    retry_at: str | None = None
    # The current attempt's resume check (JSON text: resumed_from_step, first_step, redone_steps, warning).
    resume: str | None = None
    depends_on: tuple[str, ...] = field(default=())
    # The attempts before the current one, oldest first (a table of their own, like depends_on).
    earlier_attempts: tuple[AttemptRecord, ...] = field(default=())

    @property
    def is_local(self) -> bool:
        return self.cloud == "local"

    @property
    def has_exit_record(self) -> bool:
        return self.end_time is not None


# The columns of the jobs table, in the record's field order (depends_on is a table of its own).
RECORD_COLUMNS = [f.name for f in fields(JobRecord) if f.name not in ("depends_on", "earlier_attempts")]
# Columns stored as JSON text, and booleans stored as 0/1.
_JSON_COLUMNS = {"argv"}
_BOOL_COLUMNS = {"cancel_requested"}

SELECT_JOB_COLUMNS = ", ".join(RECORD_COLUMNS)
# The same columns without the argv (a JSON array to decode per row), for
# listings that never run a job: `list` over thousands of jobs.
SELECT_JOB_COLUMNS_NO_ARGV = ", ".join("'[]'" if name == "argv" else name for name in RECORD_COLUMNS)
_ARGV_INDEX = RECORD_COLUMNS.index("argv")
_CANCEL_INDEX = RECORD_COLUMNS.index("cancel_requested")


def row_to_record(
    row: Sequence[Any], depends_on: Sequence[str] = (), earlier_attempts: Sequence[AttemptRecord] = ()
) -> JobRecord:
    """A row of ``SELECT {SELECT_JOB_COLUMNS}`` as a record (hot: ``list`` builds thousands)."""
    values = list(row)
    argv = values[_ARGV_INDEX]
    values[_ARGV_INDEX] = tuple(json.loads(argv)) if argv and argv != "[]" else ()
    values[_CANCEL_INDEX] = bool(values[_CANCEL_INDEX])
    # values are the columns only, depends_on is not among them (mypy cannot count a list).
    return JobRecord(  # type: ignore[misc]
        *values, depends_on=tuple(depends_on), earlier_attempts=tuple(earlier_attempts)
    )


def to_column(name: str, value: Any) -> Any:
    """A record field's value as its column stores it."""
    if name in _JSON_COLUMNS:
        return json.dumps(list(value))
    if name in _BOOL_COLUMNS:
        return int(bool(value))
    return value


def record_to_row(record: JobRecord) -> dict[str, Any]:
    return {name: to_column(name, getattr(record, name)) for name in RECORD_COLUMNS}
