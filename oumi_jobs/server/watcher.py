"""The warm server's watch of the jobs that need someone while nobody looks: their next attempts.

A cloud job has no supervisor of its own, so its retries are the server's: a
background thread that every :data:`WATCH_INTERVAL_S` reads, from the
registry, the cloud jobs not cancelled that have retries left, asks their
clouds (through the adapter the server holds), and when one failed or was
lost with a retry due under its policy, keeps that attempt and schedules the
next (:mod:`oumi_jobs.retrying`); once its delay is over, it starts the next
attempt as a new launch through the job's launching process.  It also takes
over local jobs waiting for their next attempt whose supervisor died.

The watched set is read from the registry each round, so a restarted server
takes the watch up again; while it watches any job, the server is not idle
(:meth:`Activity.watching`).
"""

from __future__ import annotations

import logging
import os
import threading

from oumi_jobs import retrying
from oumi_jobs.errors import OumiJobsError
from oumi_jobs.local.procs import identify, is_alive
from oumi_jobs.paths import Paths
from oumi_jobs.policy import JobPolicy
from oumi_jobs.server.activity import Activity
from oumi_jobs.states import State, launch_state
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.timestamps import now_iso
from oumi_jobs.views import live_cloud_view

WATCH_INTERVAL_S = 2.0

log = logging.getLogger("oumi_jobs.server")


def start(paths: Paths, activity: Activity) -> threading.Thread:
    """Watch in a daemon thread until the server stops."""

    settled: set[str] = set()

    def run() -> None:
        while not activity.stop_event.wait(WATCH_INTERVAL_S):
            try:
                activity.watching(watch_round(paths, settled))
            except (OumiJobsError, OSError) as exc:  # the registry busy or unwritable: next round
                log.warning("watching jobs: %s", exc)

    thread = threading.Thread(target=run, name="oumi-jobs watcher", daemon=True)
    thread.start()
    return thread


def watch_round(paths: Paths, settled: set[str]) -> int:
    """One look at every job to watch; how many are still watched after it.  ``settled``: the cloud jobs seen
    ended for good by this server (its cloud is not asked about them again; a restarted server asks once)."""
    with Registry.open(paths) as registry:
        jobs = registry.jobs_to_watch()
    watched = 0
    for job_id, local in jobs:
        if job_id in settled:
            continue
        try:
            if local:
                retrying.take_over(paths, job_id)
                continue  # its supervisor looks after it from here
            if _look(paths, job_id):
                watched += 1
            else:
                settled.add(job_id)
        except OumiJobsError as exc:  # one job's cloud or record: the others are still looked at
            log.warning("watching job %s: %s", job_id, exc)
            watched += 1
    return watched


def _look(paths: Paths, job_id: str) -> bool:
    """Look after one cloud job; whether it is still to be watched."""
    with Registry.open(paths) as registry:
        record = registry.get(job_id)
    if record is None or record.cancel_requested or record.has_exit_record:
        return False
    if record.retry_at is not None:
        return _start_when_due(paths, record)
    if not record.launcher_job_id:
        return not launch_state(record)[0].done  # launching: its launching process records the launch
    view = live_cloud_view(record)
    if not view.done:
        return True
    if view.state not in (State.FAILED, State.LOST) or retrying.not_retried_because(record, view.failure):
        return False
    ended = retrying.ended_attempt(record, view.state, view.failure, end_time=view.cloud_end or now_iso())
    delay = retrying.retry_delay_s(JobPolicy.decode(record.policy), record.attempt)
    with Registry.open(paths) as registry:
        retrying.schedule(registry, record, ended, view.failure, delay_s=delay)
    log.info("job %s: attempt %d %s; attempt %d in %.0f s", job_id, record.attempt, view.state.value,
             record.attempt + 1, delay)  # fmt: skip
    return True


def _start_when_due(paths: Paths, record: JobRecord) -> bool:
    """A cloud job waiting for its next attempt: launch it once due (claimed once, whoever else looks)."""
    if retrying.when_due(record) > 0 or is_alive(record.supervisor_pid, record.supervisor_start_time, record.boot_id):
        return True
    me = identify(os.getpid())
    with Registry.open(paths) as registry:
        claimed = (os.getpid(), me.start_time if me else None)
        if registry.claim_retry(record.job_id, record.attempt, record.supervisor_pid, claimed):
            pid = retrying.start_next(paths, registry, record.job_id)
            log.info("job %s: launching attempt %d (pid %d)", record.job_id, record.attempt, pid)
    return True
