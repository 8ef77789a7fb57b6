"""A launcher job's status as our own: its status words and state enum mapped to a State, a CloudJob built.

Reads the launcher's JobStatus by its attributes only: it imports nothing of oumi.
"""

from __future__ import annotations

from typing import Any

from oumi_jobs.cloud.model import (
    CloudJob,
)
from oumi_jobs.states import State

# The first word of a launcher's status string, mapped to our states.  The
# string is trusted over the JobState enum: oumi 0.9 maps Slurm's
# "CANCELLED by 0" to PENDING while its status string says CANCELLED.
_STATUS_WORDS: dict[str, State] = {
    **dict.fromkeys(["PENDING", "QUEUED", "CONFIGURING", "REQUEUED", "RESIZING", "SETTING_UP", "INIT", "STARTING",
                     "SUSPENDED"], State.PENDING),
    **dict.fromkeys(["RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"], State.RUNNING),
    **dict.fromkeys(["SUCCEEDED", "COMPLETED", "DONE"], State.SUCCEEDED),
    **dict.fromkeys(["FAILED", "FAILED_SETUP", "FAILED_DRIVER", "FAILED_PRECHECKS", "FAILED_NO_RESOURCE",
                     "FAILED_CONTROLLER", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
                     "PREEMPTED", "STOPPED", "ERROR"], State.FAILED),
    **dict.fromkeys(["CANCELLED", "CANCELED", "CANCELLING", "REVOKED"], State.CANCELLED),
}  # fmt: skip


_ENUM_STATES = {
    "pending": State.PENDING,
    "running": State.RUNNING,
    "succeeded": State.SUCCEEDED,
    "failed": State.FAILED,
    "cancelled": State.CANCELLED,
}


def map_state(status: str | None, state_value: str | None, done: bool | None) -> State:
    """Our state for a launcher job, from its status string first and its enum second."""
    word = (status or "").strip().split(" ", 1)[0].rstrip("+").upper()
    if word in _STATUS_WORDS:
        return _STATUS_WORDS[word]
    mapped = _ENUM_STATES.get((state_value or "").lower())
    if mapped is not None:
        return mapped
    return State.FAILED if done else State.UNKNOWN


def from_job_status(cloud: str, cluster: str, job_status: Any) -> CloudJob:
    state_enum = getattr(job_status, "state", None)
    state = map_state(job_status.status, getattr(state_enum, "value", None), job_status.done)
    return CloudJob(
        cloud=cloud,
        cluster=job_status.cluster or cluster,
        launcher_job_id=str(job_status.id),
        name=job_status.name or None,
        state=state,
        status=job_status.status,
        done=state.done,
        submit_time=job_status.submit_time,
        end_time=job_status.end_at,
        start_time=getattr(job_status, "start_at", None),
        cost_per_hour=getattr(job_status, "cost_per_hour", None),
        metadata=str(getattr(job_status, "metadata", "") or ""),
    )
