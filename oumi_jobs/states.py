"""Job states (SPEC "States") and how a local job's state is read live.

A local job's state comes only from its process and the exit record its
supervisor writes; nothing here is ever stored.
"""

from __future__ import annotations

import json
import math
import signal
from enum import Enum

from oumi_jobs.errors import UsageError
from oumi_jobs.local.procs import is_alive
from oumi_jobs.store.registry import JobRecord
from oumi_jobs.timestamps import from_iso, now


class State(str, Enum):
    PENDING = "pending"
    LAUNCHING = "launching"
    RUNNING = "running"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value

    @property
    def done(self) -> bool:
        return self in DONE_STATES


DONE_STATES = frozenset({State.SUCCEEDED, State.FAILED, State.CANCELLED, State.LOST})


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_exit(record: JobRecord) -> str:
    if record.exit_signal is not None:
        return f"killed by {signal_name(record.exit_signal)}"
    if record.exit_code is not None:
        return f"exited {record.exit_code}"
    return record.end_detail or "ended"


# How long a submit may take between registering a job and recording its supervisor.
SUPERVISOR_START_GRACE_S = 120.0


def _age_s(iso: str) -> float:

    return (now() - from_iso(iso)).total_seconds()


def retry_wait(record: JobRecord, supervisor_alive: bool = True) -> tuple[State, str, str | None] | None:
    """A job between two attempts (oumi_jobs.retrying) is pending, and says when its next attempt starts."""
    if record.retry_at is None or record.has_exit_record or record.pid is not None:
        return None
    try:  # the policy's retry count, read here: oumi_jobs.policy imports what imports this module
        retries = int(json.loads(record.policy).get("retries", 0)) if record.policy else 0
    except (ValueError, TypeError, AttributeError):
        retries = 0
    left = (from_iso(record.retry_at) - now()).total_seconds()
    when = f"retrying in {math.ceil(left)}s" if left > 0 else "retrying now"
    detail = f"{when} (attempt {record.attempt}/{max(retries + 1, record.attempt)})"
    if not supervisor_alive:
        detail += "; the process that was to start it is gone: `oumi-jobs status JOB` starts it"
    return State.PENDING, "retrying", detail


def local_state(record: JobRecord) -> tuple[State, str, str | None]:
    """``(state, status string, detail)`` of a local job, read from its processes and exit record."""
    if record.has_exit_record:
        status = describe_exit(record)
        if record.cancel_requested:
            return State.CANCELLED, status, record.end_detail
        # A job its guard stopped may still have exited 0 on the signal: its stored failure says it failed.
        if record.exit_code == 0 and record.exit_signal is None and not record.failure:
            return State.SUCCEEDED, status, record.end_detail
        return State.FAILED, status, record.end_detail
    if record.supervisor_pid is None:
        if record.sweep_id is not None:  # started by the sweep's child before it, as a slot frees
            return State.PENDING, "queued", f"waiting for a slot of sweep {record.sweep_id}"
        if record.source == "import":
            # The legacy job server ran local jobs inside its own process: no
            # process of theirs can be found again, so none can still be running.
            return State.LOST, "imported", "imported from a legacy registry, which kept no process identity"
        if _age_s(record.submit_time) > SUPERVISOR_START_GRACE_S:
            # Its submit was interrupted between registering and starting the supervisor.
            return State.LOST, "lost", "its supervisor never started (the submit was interrupted)"
        return State.PENDING, "starting", "the supervisor has not started yet"
    supervisor_alive = is_alive(record.supervisor_pid, record.supervisor_start_time, record.boot_id)
    if (waiting := retry_wait(record, supervisor_alive)) is not None:
        return waiting
    if record.pid is None:
        if supervisor_alive:
            return State.PENDING, "waiting", None
        return State.LOST, "lost", "the supervisor ended before starting the job"
    if is_alive(record.pid, record.process_start_time, record.boot_id):
        return (State.CANCELLING if record.cancel_requested else State.RUNNING), "running", None
    if supervisor_alive:
        # The process has just ended; its supervisor is writing the exit record.
        return (State.CANCELLING if record.cancel_requested else State.RUNNING), "exiting", None
    return State.LOST, "lost", "the job's process and its supervisor are gone and no exit record was written"


def parse_states(names: list[str] | tuple[str, ...]) -> list[State]:
    """``--state`` values (repeatable, or comma-separated) as states; unknown names are a usage error."""

    states = []
    for name in (part.strip().lower() for value in names for part in value.split(",")):
        if not name:
            continue
        try:
            states.append(State(name))
        except ValueError:
            raise UsageError(f"unknown state {name!r}; states: {', '.join(s.value for s in State)}") from None
    return states


def launch_state(record: JobRecord) -> tuple[State, str, str | None]:
    """A cloud job that has no launcher job id yet: launching, or why it never got one."""
    if record.has_exit_record:
        status = "not launched"
        if record.cancel_requested:
            return State.CANCELLED, status, record.end_detail
        return State.FAILED, status, record.end_detail
    if record.source == "import":
        return State.UNKNOWN, "imported", "imported without a launcher job id"
    if (waiting := retry_wait(record)) is not None:  # the warm server launches its next attempt
        return waiting
    if record.supervisor_pid is None:
        if record.sweep_id is not None:  # launched when a launch of its sweep before it ends
            return State.PENDING, "queued", f"waiting for a launch slot of sweep {record.sweep_id}"
        if _age_s(record.submit_time) > SUPERVISOR_START_GRACE_S:
            return State.LOST, "lost", "its launching process never started (the submit was interrupted)"
        return State.LAUNCHING, "launching", "starting the launching process"
    if is_alive(record.supervisor_pid, record.supervisor_start_time, record.boot_id):
        return State.LAUNCHING, "launching", "launcher.up is provisioning"
    return State.LOST, "lost", "the launching process ended without recording a launcher job id"


def recorded_state(record: JobRecord) -> tuple[State, str | None, str | None]:
    """``(state, status, detail)`` from what this machine can see, never asking a cloud.

    Cheap by design (prune, metrics and queues call it for every job): a
    launched cloud job's live state needs its cloud (``views.live_cloud_view``).
    """
    if record.is_local:
        return local_state(record)
    if not record.launcher_job_id:
        return launch_state(record)
    return State.UNKNOWN, None, f"{record.cloud} was not asked"
