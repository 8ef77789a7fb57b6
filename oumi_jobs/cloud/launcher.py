"""The launcher adapter: the only module that imports ``oumi.launcher``.

``import oumi.launcher`` costs 10-15 s (it pulls in torch and transformers),
so it happens lazily, once per process, and only in commands that touch a
cloud.  Telemetry of Oumi and SkyPilot is off unless the user turned it on.

Every call into a cloud runs in a daemon thread with a time limit: a cloud
that hangs makes its jobs ``unknown`` with the reason, never the command hang
(the thread is abandoned; being a daemon it never delays the exit).  We do not
use ``launcher.status()``: it builds every registered cloud even when asked for
one, and one unreachable cloud then fails them all.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from oumi_jobs.errors import CloudUnreachableError
from oumi_jobs.states import State

DEFAULT_CLOUD_TIMEOUT_S = 30.0
T = TypeVar("T")

_load_lock = threading.Lock()
_module: Any = None


def load() -> Any:
    """``oumi.launcher``, imported once."""
    global _module
    with _load_lock:
        if _module is None:
            # Off unless the user said otherwise: with no internet telemetry only costs time.
            os.environ.setdefault("DO_NOT_TRACK", "1")
            os.environ.setdefault("SKYPILOT_DISABLE_USAGE_COLLECTION", "1")
            import oumi.launcher

            _module = oumi.launcher
    return _module


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


@dataclass(frozen=True)
class CloudJob:
    """One job as its cloud reports it right now."""

    cloud: str
    cluster: str
    launcher_job_id: str
    name: str | None
    state: State
    status: str
    done: bool
    submit_time: float | None = None
    end_time: float | None = None


def _from_job_status(cloud: str, cluster: str, job_status: Any) -> CloudJob:
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
    )


def with_time_limit(call: Callable[[], T], timeout_s: float, what: str) -> T:
    """Run ``call`` in a daemon thread; CloudUnreachableError if it fails or outlasts ``timeout_s``."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # reported to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"oumi-jobs {what}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise CloudUnreachableError(f"{what} did not answer within {timeout_s:g} s")
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, CloudUnreachableError):
            raise error
        raise CloudUnreachableError(f"{what} failed: {type(error).__name__}: {error}") from error
    return outcome["value"]


def _cluster(cloud: str, cluster: str) -> Any:
    found = load().get_cloud(cloud).get_cluster(cluster)
    if found is None:
        raise CloudUnreachableError(f"cluster {cluster!r} of cloud {cloud!r} not found")
    return found


def get_job(
    cloud: str, cluster: str, launcher_job_id: str, *, timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S
) -> CloudJob | None:
    """One job's live status (None if its cluster no longer knows it)."""

    def ask() -> CloudJob | None:
        job_status = _cluster(cloud, cluster).get_job(launcher_job_id)
        return None if job_status is None else _from_job_status(cloud, cluster, job_status)

    return with_time_limit(ask, timeout_s, f"cloud {cloud!r}")


def list_jobs(cloud: str, *, timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S) -> list[CloudJob]:
    """Every job of every cluster of ``cloud``."""

    def ask() -> list[CloudJob]:
        found = []
        for cluster in load().get_cloud(cloud).list_clusters():
            name = cluster.name()
            found += [_from_job_status(cloud, name, js) for js in cluster.get_jobs()]
        return found

    return with_time_limit(ask, timeout_s, f"cloud {cloud!r}")


# Oumi's own "local" cloud keeps its jobs in one process's memory: asking it
# from a new process always finds nothing, and oumi-jobs has its local jobs.
_NOT_LISTED = frozenset({"local"})


def enabled_clouds() -> list[str]:
    """Every cloud oumi.launcher has registered (custom ones too) that can hold jobs we could list."""
    return [name for name in load().which_clouds() if name not in _NOT_LISTED]


@dataclass(frozen=True)
class CloudAnswer:
    cloud: str
    jobs: list[CloudJob]
    error: str | None  # why the cloud could not be read, or None
    elapsed_s: float = 0.0


class CloudWatcher(Protocol):
    """Told which clouds are asked and as each answers (a progress display)."""

    def asking(self, clouds: list[str]) -> None: ...

    def answered(self, answer: CloudAnswer) -> None: ...


def list_clouds(
    clouds: Iterable[str],
    *,
    timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S,
    watcher: CloudWatcher | None = None,
) -> dict[str, CloudAnswer]:
    """Ask several clouds at once, each within ``timeout_s``; a failing cloud does not stop the others."""
    names = list(dict.fromkeys(clouds))
    if not names:
        return {}
    load()  # once, before the threads: the import is not something to race on
    if watcher is not None:
        watcher.asking(names)
    answers: dict[str, CloudAnswer] = {}
    lock = threading.Lock()

    def ask(cloud: str) -> None:
        started = time.monotonic()
        try:
            jobs, error = list_jobs(cloud, timeout_s=timeout_s), None
        except CloudUnreachableError as exc:
            jobs, error = [], str(exc)
        answer = CloudAnswer(cloud, jobs, error, time.monotonic() - started)
        with lock:
            answers[cloud] = answer
        if watcher is not None:
            watcher.answered(answer)

    threads = [threading.Thread(target=ask, args=(c,), daemon=True) for c in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout_s + 5)
    for cloud in names:  # a thread that did not even finish its time limit
        answers.setdefault(
            cloud, CloudAnswer(cloud, [], f"cloud {cloud!r} did not answer within {timeout_s:g} s", timeout_s)
        )
    return answers
