"""Local clusters as queues, and ``--after`` chains.

Jobs of one local cluster run at most ``parallel`` at a time (default 1), in
submit order; jobs of different clusters run side by side.  A slot is an
``flock`` on a file, taken by the job's supervisor and inherited by the job:
the kernel frees it when the last process holding it is gone, so a supervisor
that is killed, crashes or dies in a reboot never leaks its slot, and a slot
is never freed while the job's processes still run.

A job with ``--after`` dependencies joins its queue only once every one of
them has succeeded; if one fails, is cancelled or is lost, the job ends
``cancelled`` with that reason and never starts.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from oumi_jobs.cloud.facts import DEFAULT_LOCAL_CLUSTER as DEFAULT_CLUSTER
from oumi_jobs.paths import Paths, ensure_private_dir, open_private_file
from oumi_jobs.states import State, recorded_state
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.timestamps import now_iso

# The head of a queue polls fast, so a freed slot is taken within ~50 ms;
# jobs further back poll more slowly to keep the registry quiet.
HEAD_POLL_S = 0.05
TAIL_POLL_S = 1.0
DEPENDENCY_POLL_S = 0.2


@dataclass(frozen=True)
class Lease:
    """A held slot: keep ``fd`` open (and pass it to the job) for as long as the job runs."""

    slot: int
    fd: int


# Cluster names that are their own folder name: lower case (a case-insensitive
# file system must not merge "GPU" and "gpu"), no leading dot, short.
_PLAIN_CLUSTER = re.compile(r"[a-z0-9_-][a-z0-9_.-]{0,63}")


def slot_file(paths: Paths, cluster: str, slot: int) -> Path:
    """The lock file of one slot of ``cluster``: one folder per cluster name, compared exactly.

    A plain name is its own folder (``local``, ``gpu0``); any other is ``~`` and
    the SHA-256 of the name, so ``q/1`` and ``q-1``, or ``日本`` and ``中国``, are
    different queues, and a name of any length fits.  ``~`` never starts a plain
    name, so the two kinds cannot meet.
    """
    if _PLAIN_CLUSTER.fullmatch(cluster):
        folder = cluster
    else:
        folder = "~" + hashlib.sha256(cluster.encode("utf-8", "surrogateescape")).hexdigest()
    return paths.state_dir / "clusters" / folder / f"slot-{slot}.lock"


def _try_lock(path: Path) -> int | None:
    ensure_private_dir(path.parent)
    fd = open_private_file(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def free_slots(paths: Paths, cluster: str, parallel: int) -> int:
    """How many of the cluster's slots nobody holds right now (a probe; taking one is what counts)."""
    free = 0
    for slot in range(parallel):
        fd = _try_lock(slot_file(paths, cluster, slot))
        if fd is not None:
            os.close(fd)
            free += 1
    return free


def dependency_verdict(registry: Registry, record: JobRecord) -> tuple[str, str | None]:
    """``("go", None)``, ``("wait", what)`` or ``("cancel", why)`` for a job's ``--after`` list."""
    waiting_on = None
    for dep_id in record.depends_on:
        dep = registry.get(dep_id)
        if dep is None:
            return "cancel", f"dependency {dep_id} is no longer in the registry"
        state = recorded_state(dep)[0]
        if state is State.SUCCEEDED:
            continue
        if state.done:
            return "cancel", f"dependency {dep_id} {state.value}"
        waiting_on = waiting_on or dep_id
    return ("wait", f"waiting for {waiting_on} to succeed") if waiting_on else ("go", None)


def wait_for_turn(paths: Paths, registry: Registry, job_id: str) -> Lease | None:
    """Block until the job may start and hold a slot; None if it must never start."""
    while True:
        record = registry.get(job_id)
        if record is None or record.has_exit_record:
            return None
        if record.cancel_requested:
            registry.end_before_start(job_id, "cancelled before it started")
            return None
        verdict, why = dependency_verdict(registry, record)
        if verdict == "cancel":
            registry.end_before_start(job_id, f"never started: {why}")
            return None
        if verdict == "wait":
            time.sleep(DEPENDENCY_POLL_S)
            continue
        if record.ready_at is None:
            registry.update(job_id, ready_at=now_iso())
        parallel = registry.parallel_of(record.cluster or DEFAULT_CLUSTER)
        ahead = registry.waiting_ahead(job_id, record.cluster, enough=parallel)
        if ahead < parallel and ahead < free_slots(paths, record.cluster or DEFAULT_CLUSTER, parallel):
            for slot in range(parallel):
                fd = _try_lock(slot_file(paths, record.cluster or DEFAULT_CLUSTER, slot))
                if fd is not None:
                    return Lease(slot, fd)
        time.sleep(HEAD_POLL_S if ahead < parallel else min(TAIL_POLL_S, HEAD_POLL_S * (ahead + 1)))


def queue_detail(registry: Registry, record: JobRecord) -> str | None:
    """What a pending local job waits for: a dependency, or its place in its cluster's queue."""
    if record.end_time is not None or record.pid is not None:
        return None
    if record.ready_at is None and record.depends_on:
        verdict, why = dependency_verdict(registry, record)
        if verdict == "wait":
            return why
    ahead = registry.waiting_ahead(record.job_id, record.cluster)
    running = registry.running_count(record.cluster)
    return f"position {ahead + 1} in queue {record.cluster} ({running} running)"
