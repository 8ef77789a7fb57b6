"""The REST API's request bodies and the shapes of its documents, as pydantic models for OpenAPI.

Request bodies are validated here (a bad field is a 422 naming it).  The
document models only describe what :mod:`oumi_jobs.render` builds: endpoints
return those documents as they are (a ``Response``, which FastAPI does not
re-validate), so the API serves exactly what ``--json`` prints;
tests/test_server_rest.py checks each model names the same keys as its document.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from oumi_jobs import bounds
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.failures.rules import CLASSES
from oumi_jobs.policy import MAX_RETRIES
from oumi_jobs.states import State
from oumi_jobs.store.queues import MAX_PARALLEL

JobState = Literal["pending", "launching", "running", "cancelling", "succeeded", "failed", "cancelled", "lost",
                   "unknown"]  # fmt: skip
CancellationState = Literal["requested", "in_progress", "completed", "failed", "not_needed"]
NotificationState = Literal["pending", "sent", "failed"]
# A name, a path, an id: nothing a person types is longer (the body as a whole is bounded at 1 MiB).
_TEXT = 4096


def _any_case(word: str) -> str:
    """``word`` as a pattern of any letter case (JSON Schema's patterns have no flags)."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


def one_of_words(words: Iterable[str]) -> str:
    """A pattern of exactly one of ``words``, in any letter case, for a value the server reads case-blind."""
    return "(?:" + "|".join(_any_case(w) for w in sorted(set(words), key=lambda w: (-len(w), w))) + ")"


# What `parse_signal` reads: a signal's name, with or without SIG, in any case, or its number.  The pattern
# is enforced before it (a 422), so the schema can only be stricter than the parser, never looser.
SIGNAL_PATTERN = (
    f"^(?:(?:{_any_case('SIG')})?{one_of_words(name.removeprefix('SIG') for name in signal.Signals.__members__)}"
    f"|{'|'.join(sorted({str(int(s)) for s in signal.Signals}, key=lambda n: (-len(n), n)))})$"
)
# What `parse_states` reads: state names in any case, comma-separated (an empty item is skipped).
_STATE = one_of_words(state.value for state in State)
STATES_PATTERN = f"^ *(?:{_STATE})? *(?:, *(?:{_STATE})? *)*$"
# An id, a name, a filter value: never empty or blank (the registry refuses those, a 400 otherwise).  Python's
# str.strip() also strips \x1c-\x1f, which no regex engine's \s counts: they are left out here too.
NOT_BLANK = r"[^\s\x1c-\x1f]"


# failures.rules.CLASSES (tests/test_failures.py checks they agree).
FailureClass = Literal["config_error", "host_oom", "gpu_oom", "disk_full", "nccl", "preempted", "diverged", "stalled",
                       "over_time", "over_budget", "killed", "exit_code", "lost", "unknown"]  # fmt: skip


# What durations.parse_duration reads (a number and a unit); a value too large for it is a 400.
DURATION_PATTERN = r"^\s*\d+(?:\.\d+)?\s*[smhdwSMHDW]\s*$"
MAX_NOTIFY_URLS = 16


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt option is a 422 naming it, never silently ignored


class SubmitBody(_Body):
    """``oumi-jobs submit``'s argument and options.  A relative ``config`` is resolved against ``cwd``."""

    config: str = Field(min_length=1, max_length=_TEXT, description="An Oumi job config or task config (a path).")
    cwd: str | None = Field(
        None, max_length=_TEXT, description="Absolute directory that relative paths are resolved against "
        "(required for a relative config; default: the config's folder).",
    )  # fmt: skip
    cloud: str | None = Field(
        None, max_length=_TEXT, description="Cloud to run on (default: the config's, else local)."
    )
    cluster: str | None = Field(default=None, max_length=_TEXT, description="Cluster to run on.")
    name: str | None = Field(default=None, max_length=_TEXT, description="A name that becomes the job id.")
    command: str | None = Field(default=None, max_length=_TEXT, description="oumi command for a task config.")
    env: list[str] = Field(default_factory=list, description="Environment variables K=V for the job.")
    workdir: str | None = Field(default=None, max_length=_TEXT, description="Working directory (relative to cwd).")
    after: list[str] = Field(default_factory=list, description="Start only when these jobs have succeeded.")
    parallel: int | None = Field(
        None, ge=1, le=MAX_PARALLEL, description="Let N jobs of this local cluster run at once."
    )
    gpus: str | None = Field(
        default=None, max_length=_TEXT, description="Accelerators per node of a cloud job (A100:8)."
    )
    nodes: int | None = Field(default=None, ge=1, le=bounds.MAX_NODES, description="Nodes of a cloud job.")
    retries: int | None = Field(
        default=None, ge=0, le=MAX_RETRIES, description="Retry a failed or lost job (`--retries`)."
    )
    retry_on: list[FailureClass] | None = Field(
        default=None, max_length=len(CLASSES), description="Failure classes worth a retry (`--retry-on`)."
    )
    retry_delay: str | None = Field(default=None, pattern=DURATION_PATTERN, description="e.g. 10s (`--retry-delay`).")
    stall_after: str | None = Field(
        default=None, pattern=f"{DURATION_PATTERN}|^auto$", description="A duration or `auto` (`--stall-after`)."
    )
    max_duration: str | None = Field(default=None, pattern=DURATION_PATTERN, description="`--max-duration`.")
    max_cost: float | None = Field(default=None, gt=0, allow_inf_nan=False, description="USD (`--max-cost`).")
    nan_guard: bool = Field(default=False, description="`--nan-guard`.")
    guard_action: Literal["stop", "retry", "alert"] | None = Field(default=None, description="`--guard-action`.")
    notify: list[Annotated[str, StringConstraints(min_length=1, max_length=_TEXT)]] = Field(
        default_factory=list, max_length=MAX_NOTIFY_URLS, description="URLs to send the job's events to (`--notify`)."
    )


class CancelBody(_Body):
    """``oumi-jobs cancel``'s options for one job; every field may be left out."""

    reason: str | None = Field(default=None, max_length=_TEXT, description="Why; recorded with the cancellation.")
    force: bool = Field(default=False, description="SIGKILL the whole process tree at once.")
    signal: str = Field(default="TERM", max_length=32, pattern=SIGNAL_PATTERN,
                        description="Graceful signal: TERM, INT, USR1... (a name, SIGTERM, or a number).")  # fmt: skip
    timeout_s: float = Field(default=30.0, ge=0, le=bounds.MAX_SECONDS, allow_inf_nan=False,
                             description="Seconds after the graceful signal before SIGKILL.")  # fmt: skip
    cascade: bool = Field(default=True, description="Also cancel the jobs waiting on this one.")
    wait: bool = Field(default=True, description="Answer once verified (200); false: once signalled (202).")
    cloud_timeout_s: float = Field(default=DEFAULT_CLOUD_TIMEOUT_S, ge=bounds.MIN_CLOUD_TIMEOUT_S, le=bounds.MAX_SECONDS,
                                   allow_inf_nan=False, description="Seconds the job's cloud gets to answer.")  # fmt: skip


class ProgressDocument(BaseModel):
    """How far along a job is, read live from its metrics files or logs (README "Training progress")."""

    step: int | None
    total_steps: int | None
    fraction: float | None = Field(description="step / total_steps, 0..1.")
    epoch: float | None
    loss: float | None = Field(description="The latest training loss logged.")
    eta_s: float | None = Field(description="Seconds left at the current rate; null when done or unknown.")
    rate: float | None = Field(description="Steps per second.")
    source: Literal["metrics", "logs"] | None
    as_of: str | None


class FailureDocument(BaseModel):
    """Why a job failed or was lost (SPEC "Failures and retries")."""

    failure_class: FailureClass = Field(alias="class")
    cause: str = Field(description="One line.")
    hint: str = Field(description="What to do.")
    evidence: str | None = Field(description="The log line, exit code, signal or counter it came from.")


class AttemptDocument(BaseModel):
    """One attempt of a job (SPEC "Failures and retries"): the same job id, one entry per attempt."""

    attempt: int = Field(ge=1)
    state: JobState
    start_time: str | None
    end_time: str | None
    exit_code: int | None
    exit_signal: int | None
    failure: FailureDocument | None
    resumed_from_step: int | None = Field(description="The step of the checkpoint it resumed from.")
    first_step: int | None = Field(description="The first step it logged.")
    redone_steps: int | None = Field(description="Steps trained twice: the last attempt's last step minus "
                                     "resumed_from_step.")  # fmt: skip


class JobDocument(BaseModel):
    """A job, as ``status --json`` prints it (README "JSON")."""

    schema_version: int
    job_id: str | None = Field(description="null for an external job (launched elsewhere).")
    name: str | None
    state: JobState
    status: str | None = Field(description="The source's own words, e.g. `exited 3`.")
    done: bool
    cloud: str
    cluster: str | None
    launcher_job_id: str | None
    command: str | None
    config_path: str | None
    model_name: str | None
    output_dir: str | None
    submit_time: str | None
    start_time: str | None
    end_time: str | None
    exit_code: int | None
    exit_signal: int | None
    pid: int | None
    containment: Literal["cgroup", "subreaper", "session"] | None
    external: bool
    cancel_requested: bool
    depends_on: list[str]
    detail: str | None
    stdout_path: str | None
    stderr_path: str | None
    cost_per_hour: float | None = Field(description="The launcher's price of the job's cluster, USD per hour.")
    cost_so_far: float | None = Field(description="An estimate: that price times the time the job ran.")
    sweep_id: str | None = Field(description="The sweep the job is a child of; null for a job of its own.")
    overrides: dict[str, Any] | None = Field(description="A sweep child's values, {path: value}; else null.")
    as_of: str | None
    attempt: int = Field(ge=1, description="The current attempt, 1-based.")
    max_attempts: int = Field(ge=1, description="1 + --retries.")
    attempts: list[AttemptDocument]
    failure: FailureDocument | None = Field(description="null unless the job failed or was lost.")
    progress: ProgressDocument | None = Field(description="null where nothing tells yet.")


class SubmitDocument(JobDocument):
    """``submit --json``: the new job, and the submit-time guidance."""

    warnings: list[str]


class CancellationStepDocument(BaseModel):
    name: str
    status: Literal["in_progress", "completed", "failed", "skipped"]
    started_at: str
    ended_at: str | None
    detail: str | None


class CancellationDocument(BaseModel):
    """A cancellation, as ``cancel --json`` and ``cancel-status --json`` print it."""

    schema_version: int
    cancellation_id: str
    job_id: str
    cloud: str
    status: CancellationState
    reason: str | None
    force: bool
    signal: str
    timeout_s: float
    requested_at: str
    finished_at: str | None
    duration_s: float | None
    final_state: str | None
    caused_by: str | None
    survivors: list[int]
    runners_signalled: int
    detail: str | None
    steps: list[CancellationStepDocument]


class LoginCodeDocument(BaseModel):
    """``POST /api/ui/login-codes``: a one-time dashboard login code (``oumi-jobs ui`` makes its link)."""

    schema_version: int
    code: str = Field(description="Works once, at `/login?code=`, within `expires_in_s`.")
    expires_at: str
    expires_in_s: float


class SeriesDocument(BaseModel):
    """One metric of one job over its steps (``plot --json``'s series)."""

    job_id: str
    metric: str
    source: str | None
    steps: list[float]
    values: list[float]
    metrics: list[str] = Field(description="Every metric the job has logged.")


class PlotDocument(BaseModel):
    """``plot --json``: each series asked for, one per job and metric."""

    schema_version: int
    metrics: list[str]
    done: bool
    image: str | None
    series: list[SeriesDocument]


class EventDocument(BaseModel):
    """One event of a job's timeline, as ``events --json`` prints it: the common keys, then its kind's own."""

    model_config = ConfigDict(extra="allow")
    schema_version: int
    event_id: int | None = Field(description="null for what is read from the job's records (submitted, ended...).")
    job_id: str
    attempt: int = Field(description="The attempt it belongs to, from 1.")
    at: str = Field(description="When it happened, ISO 8601.")
    kind: str = Field(description="submitted, started, ended, cancel, guard, retrying, ...")


class NotificationDocument(BaseModel):
    """A notification's delivery record, as ``notifications --json`` prints it."""

    schema_version: int
    notification_id: int
    job_id: str = Field(description="The job's id (a sweep's for `sweep_done`).")
    attempt: int
    event: str = Field(description="started, succeeded, failed, cancelled, lost, retrying, guard or sweep_done.")
    url: str = Field(description="Where it goes, with its credentials redacted.")
    status: NotificationState
    attempts: int = Field(description="Delivery tries so far.")
    last_error: str | None
    sent_at: str | None
    created_at: str


class ErrorDocument(BaseModel):
    """Every error answer: the command line's message and exit code, and the exception to raise again."""

    error: str
    exit_code: int
    type: str = Field(description="The oumi-jobs exception's class, e.g. JobNotFoundError.")
    fields: dict[str, object]
    candidates: list[str] | None = Field(default=None, description="An ambiguous job prefix (409): the jobs it names.")
    detail: list[str] | None = Field(
        default=None, description="A request refused before any service saw it: why, by field."
    )


def errors(*statuses: int, also: dict[int | str, dict[str, Any]] | None = None) -> dict[int | str, dict[str, Any]]:
    """The documented answers of an endpoint: ``also``, these error statuses, and 401 (TCP without the token)."""
    said = {400: "Bad input (exit code 2)", 401: "Missing or wrong bearer token (TCP)", 404: "No such job",
            409: "Ambiguous job prefix (with `candidates`), or a conflict", 413: "Request body over 1 MiB",
            422: "A field failed validation (`detail` names it)", 503: "A cloud could not be reached",
            504: "A cloud did not answer in time"}  # fmt: skip
    documented = dict(also or {})
    documented.update(
        {status: {"model": ErrorDocument, "description": said[status]} for status in sorted({*statuses, 401})}
    )
    return documented


def _operation_ref(path: str, method: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


# The operations a job id leads to: what a client does next with the id an answer gives it.  A job's
# cancellation-status exists only once it was cancelled: only a cancel's answer leads there.
_BY_JOB = {
    "JobStatus": ("/api/jobs/{job}", "get"),
    "JobLogs": ("/api/jobs/{job}/logs", "get"),
    "CancelJob": ("/api/jobs/{job}/cancel", "post"),
    "CancellationStatus": ("/api/jobs/{job}/cancellation-status", "get"),
}


def job_links(pointer: str, *, only: Iterable[str] = ("JobStatus", "JobLogs", "CancelJob")) -> dict[str, Any]:
    """OpenAPI ``links`` from an answer's job id (at JSON ``pointer``) to the operations on that job."""
    expression = f"$response.body#{pointer}"
    links: dict[str, Any] = {
        name: {"operationRef": _operation_ref(*_BY_JOB[name]), "parameters": {"job": expression}} for name in only
    }
    links["CancellationHistory"] = {
        "operationRef": _operation_ref("/api/cancellations", "get"), "parameters": {"query.job_id": expression},
    }  # fmt: skip
    return links
