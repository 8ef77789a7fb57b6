"""The warm server's watch of the jobs that need someone while nobody looks: their guards, their next
attempts, their ends to notify.

A cloud job has no supervisor of its own, so this is the server's: a
background thread that every :data:`WATCH_INTERVAL_S` reads, from the
registry, the cloud jobs to watch (retries left, a guard, an end to notify),
asks their clouds (through the adapter the server holds: one listing per
cloud and round, not one question per job), and

* feeds a running job's guards one look (:mod:`oumi_jobs.server.cloud_guards`);
* when one failed or was lost with a retry due under its policy (or stopped
  by its guard's ``retry``), keeps that attempt and schedules the next
  (:mod:`oumi_jobs.retrying`); once its delay is over, it starts the next
  attempt as a new launch through the job's launching process;
* when one ended for good, notifies its end (:func:`oumi_jobs.notify.points.seen_ended`,
  idempotent: a ``status`` that saw it first sent it already).

It also takes over local jobs waiting for their next attempt whose supervisor died.

The watched set is read from the registry each round, so a restarted server
takes the watch up again; while it watches any job, the server is not idle
(:meth:`Activity.watching`).
"""

from __future__ import annotations

import logging
import os
import threading

from oumi_jobs import retrying
from oumi_jobs.cloud import survey
from oumi_jobs.errors import OumiJobsError
from oumi_jobs.local.procs import identify, is_alive
from oumi_jobs.notify import points
from oumi_jobs.notify.config import load_config
from oumi_jobs.paths import Paths
from oumi_jobs.policy import JobPolicy
from oumi_jobs.server.activity import Activity
from oumi_jobs.server.cloud_guards import CloudGuards
from oumi_jobs.states import State, launch_state
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.timestamps import now_iso
from oumi_jobs.views import JobView, cloud_job_view, live_cloud_view

WATCH_INTERVAL_S = 2.0

log = logging.getLogger("oumi_jobs.server")


def start(paths: Paths, activity: Activity) -> threading.Thread:
    """Watch in a daemon thread until the server stops."""

    settled: set[str] = set()
    held = CloudGuards()

    def run() -> None:
        while not activity.stop_event.wait(WATCH_INTERVAL_S):
            try:
                activity.watching(watch_round(paths, settled, held))
            except (OumiJobsError, OSError) as exc:  # the registry busy or unwritable: next round
                log.warning("watching jobs: %s", exc)

    thread = threading.Thread(target=run, name="oumi-jobs watcher", daemon=True)
    thread.start()
    return thread


def watch_round(paths: Paths, settled: set[str], held: CloudGuards | None = None) -> int:
    """One look at every job to watch; how many are still watched after it.  ``settled``: the cloud jobs seen
    ended for good by this server (its cloud is not asked about them again; a restarted server asks once);
    ``held``: what is held for the guards of cloud jobs from one round to the next."""
    held = held if held is not None else CloudGuards()
    with Registry.open(paths) as registry:
        jobs = registry.jobs_to_watch(every_cloud_job=_default_urls(paths))
        records = [r for job_id, local in jobs if job_id not in settled and (r := registry.get(job_id)) is not None]
    live = _LiveStates([r for r in records if not r.is_local and r.launcher_job_id and r.retry_at is None])
    watched = 0
    for record in records:
        try:
            if record.is_local:
                retrying.take_over(paths, record.job_id)
                continue  # its supervisor looks after it from here
            if _look(paths, record, live, held):
                watched += 1
            else:
                settled.add(record.job_id)
                held.forget(record.job_id)
        except OumiJobsError as exc:  # one job's cloud or record: the others are still looked at
            log.warning("watching job %s: %s", record.job_id, exc)
            watched += 1
    return watched


def _default_urls(paths: Paths) -> bool:
    """Whether config.toml gives default notification URLs (every cloud job's end is then notified)."""
    try:
        return bool(load_config(paths).urls)
    except OumiJobsError as exc:
        log.warning("watching jobs: %s", exc)
        return False


class _LiveStates:
    """The live states of this round's cloud jobs: one listing per cloud (every cluster's jobs at once), not one
    question per job; a job its cloud's listing leaves out is asked alone (a cluster gone reads lost)."""

    def __init__(self, records: list[JobRecord]) -> None:
        clouds = sorted({r.cloud for r in records})
        self._answers = survey.list_clouds(clouds) if clouds else {}
        self._jobs = {(j.cloud, j.cluster, j.launcher_job_id): j for a in self._answers.values() for j in a.jobs}
        self._as_of = now_iso()

    def view(self, record: JobRecord) -> JobView:
        answer = self._answers.get(record.cloud)
        if answer is None:
            return live_cloud_view(record)
        job = self._jobs.get((record.cloud, record.cluster or "", record.launcher_job_id or ""))
        if job is None and answer.error is None:
            return live_cloud_view(record)
        return cloud_job_view(record, job, answer.error, self._as_of)


def _look(paths: Paths, record: JobRecord, live: _LiveStates, held: CloudGuards) -> bool:
    """Look after one cloud job; whether it is still to be watched."""
    if record.has_exit_record:
        return False
    if record.retry_at is not None:
        return not record.cancel_requested and _start_when_due(paths, record)
    if not record.launcher_job_id:
        return not launch_state(record)[0].done  # launching: its launching process records the launch
    if held.stopping(record.job_id):
        return True  # its guard's cancel is under way: what follows is seen once it is over
    view = live.view(record)
    if not view.done:
        if view.state is State.RUNNING:
            _guard_look(paths, record, held)
        return True
    if _retried(paths, record, view):
        return True
    points.seen_ended(paths, view, attempt=record.attempt)  # nobody may ever run `status` on it
    return False


def _guard_look(paths: Paths, record: JobRecord, held: CloudGuards) -> None:
    try:
        held.look(paths, record)
    except Exception as exc:  # whatever a job logged, the watch of every job goes on: the next round looks again
        log.warning("watching the guards of job %s: %r", record.job_id, exc)


def _retried(paths: Paths, record: JobRecord, view: JobView) -> bool:
    """An attempt that ended: keep it and schedule the next one, if its policy (or its guard's `retry`) says so."""
    policy = JobPolicy.decode(record.policy)
    by_guard = policy.guard_action == "retry" and record.failure is not None and view.state is State.FAILED
    if view.state not in (State.FAILED, State.LOST) or retrying.not_retried_because(
        record, view.failure, by_guard=by_guard
    ):
        return False
    ended = retrying.ended_attempt(record, view.state, view.failure, end_time=view.cloud_end or now_iso())
    delay = retrying.retry_delay_s(policy, record.attempt)
    with Registry.open(paths) as registry:
        if not retrying.schedule(registry, record, ended, view.failure, delay_s=delay, by_guard=by_guard):
            return False
    log.info("job %s: attempt %d %s; attempt %d in %.0f s", record.job_id, record.attempt, view.state.value,
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
