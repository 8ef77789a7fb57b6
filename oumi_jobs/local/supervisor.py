"""The detached supervisor of a local job.

``submit`` starts ``python -m oumi_jobs.supervisor`` in a new session; it forks
once more (so it is nobody's child and never a zombie of the submitting
process), reports its pid, and then, on its own:

1. starts the job in a session and process group of its own, stdout and
   stderr to files in the state dir;
2. records the job's pid, process group, start time, boot id and containment
   (:mod:`oumi_jobs.local.containment`: a cgroup of its own where the system
   allows it; the supervisor is the subreaper of the job's orphans);
3. waits, and writes the exit record (exit code or signal, end time, and
   why it failed: :mod:`oumi_jobs.failures`, while its facts still exist);
4. stays while an orphan of the job lives (reaping it, so cancel still finds
   it among its descendants), then removes the job's cgroup.

It ignores SIGHUP and SIGINT, so closing the submitting terminal does not
touch the job, and passes a SIGTERM on to the job's group (a shutdown), still
recording the exit.  It imports nothing heavy: it starts once per job.

The records it writes exist nowhere else: where the registry refuses one (a
full disk), it keeps it and tries again with backoff until it is taken, so
a job that ended on a full disk is never left ``lost``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from oumi_jobs import retrying
from oumi_jobs.errors import OumiJobsError
from oumi_jobs.failures import Ending, Failure, encode_failure, triage
from oumi_jobs.guards import Firing
from oumi_jobs.local import containment, guard_watch
from oumi_jobs.local.detach import daemonize
from oumi_jobs.local.procs import boot_id, identify, start_time_of
from oumi_jobs.local.queues import wait_for_turn
from oumi_jobs.local.terminator import JOB_MARKER_ENV
from oumi_jobs.notify import emission, points
from oumi_jobs.paths import Paths, open_private_file
from oumi_jobs.policy import JobPolicy
from oumi_jobs.progress import resume, starts
from oumi_jobs.progress.reading import job_output_dir
from oumi_jobs.states import State
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.sweeps.handoff import hand_over
from oumi_jobs.timestamps import now_iso

EXIT_CANNOT_START = 127
RETRY_MAX_DELAY_S = 5.0
# How often a supervisor waiting to retry looks for a cancel: a cancel waits for it (LocalFlow's START_RACE_S).
RETRY_POLL_S = 0.2


def _open_log(paths: Paths, path: str) -> int:
    paths.private_dir(Path(path).parent)
    return open_private_file(path)  # never through a planted symbolic link


def _store(paths: Paths, what: str, write: Callable[[Registry], object]) -> None:
    """Write to the registry, retrying with backoff (at most 5 s apart) until it takes the write."""
    delay = 0.1
    while True:
        try:
            with Registry.open(paths) as registry:
                write(registry)
            return
        except (OumiJobsError, OSError) as exc:
            try:  # the log may be on the full disk too
                print(f"oumi-jobs supervisor: cannot record {what} yet ({exc}); retrying", file=sys.stderr)
            except OSError:
                pass
        time.sleep(delay)
        delay = min(delay * 2, RETRY_MAX_DELAY_S)


def supervise(paths: Paths, job_id: str) -> int:
    with Registry.open(paths) as registry:
        record = registry.get(job_id)
        if record is None:
            print(f"oumi-jobs supervisor: job {job_id} is not in the registry", file=sys.stderr)
            return 1
    # Started for a later attempt (`retry JOB`, or a supervisor killed between attempts): its delay first.
    if record.retry_at is not None and not _waited_out(paths, record):
        hand_over(paths, job_id, record.sweep_id)
        points.job_ended(paths, job_id, attempt=record.attempt)
        return 0
    with Registry.open(paths) as registry:
        lease = wait_for_turn(paths, registry, job_id)
        if lease is None or not registry.claim_start(job_id):
            hand_over(paths, job_id, record.sweep_id)  # a sweep's child that will never run frees its slot too
            points.job_ended(paths, job_id, attempt=record.attempt)
            return 0
        record = registry.get(job_id) or record
    # The slot's lock is inherited by the job: it stays taken while any process of the job lives.
    return _run_attempts(paths, record, lease.fd)


def _run_attempts(paths: Paths, record: JobRecord, slot_fd: int) -> int:
    """Run the job's attempts, one after the other, as long as its policy retries them (the slot held
    throughout: the job is not over until its last attempt is)."""
    current: JobRecord | None = record
    attempt = record.attempt
    while current is not None:
        attempt = current.attempt
        current = _run_job(paths, current, slot_fd)
        if current is not None and not (_waited_out(paths, current) and _claim(paths, current.job_id)):
            current = None
    os.close(slot_fd)  # the job's orphans keep the slot through their own copies, as before
    hand_over(
        paths, record.job_id, record.sweep_id
    )  # only now: the next child's supervisor must be no orphan of this job
    points.job_ended(paths, record.job_id, attempt=attempt)  # last: its sender is no orphan of the job either
    return 0


def _claim(paths: Paths, job_id: str) -> bool:
    with Registry.open(paths) as registry:
        return registry.claim_start(job_id)


def _waited_out(paths: Paths, record: JobRecord) -> bool:
    """Wait until the job's next attempt is due; False if a cancel came first (the job then ends here,
    cancelled, and no attempt starts) or the job moved on."""
    while True:
        with Registry.open(paths) as registry:
            now_record = registry.get(record.job_id)
            if now_record is None or now_record.has_exit_record or now_record.attempt != record.attempt:
                return False
            if now_record.cancel_requested:
                registry.end_before_start(record.job_id, f"cancelled before attempt {record.attempt} started")
                return False
        left = retrying.when_due(now_record)
        if left <= 0:
            return True
        time.sleep(min(left, RETRY_POLL_S))


def _run_job(paths: Paths, record: JobRecord, slot_fd: int) -> JobRecord | None:
    """Run the job's current attempt to its end; the job as it waits for its next attempt, or None when it
    ended."""
    assert record.stdout_path and record.stderr_path
    try:
        stdout_fd, stderr_fd = _open_log(paths, record.stdout_path), _open_log(paths, record.stderr_path)
    except (OumiJobsError, OSError) as exc:
        _cannot_start(paths, record, f"cannot open its log: {exc}")
        return None
    metrics_start = _record_metrics_start(paths, record)
    resume_noted = resume.at_start(record)  # the checkpoint it should resume from, before it can write one
    contained = containment.JobContainment(record.job_id)
    try:
        process = subprocess.Popen(
            list(retrying.resume_argv(record)),
            cwd=record.workdir,
            stdin=subprocess.DEVNULL,
            stdout=stdout_fd,
            stderr=stderr_fd,
            start_new_session=True,  # its own session and process group: cancel reaches the whole tree
            close_fds=True,
            pass_fds=(slot_fd,),
            env=_job_env(record),
            preexec_fn=contained.preexec_fn,
        )
    except OSError as exc:
        contained.release()
        detail = f"cannot start {record.argv[0]!r}: {exc.strerror or exc}"
        os.write(stderr_fd, f"oumi-jobs: {detail}\n".encode())
        _cannot_start(paths, record, detail)
        return None
    finally:
        os.close(stdout_fd)
        os.close(stderr_fd)

    def forward(signum: int, _frame: object) -> None:
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    _record_started(paths, record, process.pid, contained, resume_noted)
    emission.emit(paths, record.job_id, "started", attempt=record.attempt)
    watch = guard_watch.start(paths, record, attempt=record.attempt)  # None unless the job's policy has a guard
    look = retrying.resume_watch(paths, record.job_id)
    returncode, descendants = _wait_recording_descendants(paths, record.job_id, process, look)
    _quietly(look)  # an attempt quicker than a look
    stopped_by = guard_watch.ended(watch)
    by_guard = stopped_by is not None and watch is not None and watch.retry_requested
    pids = (process.pid, *descendants)
    retried = _record_end(paths, record, returncode, pids, contained.cgroup, metrics_start, stopped_by, by_guard)
    guard_watch.finish(watch)  # a guard's cancel waits for the exit record
    contained.outlive_orphans()  # before the next attempt, too: it must not meet this one's orphans
    return retried


def _record_started(
    paths: Paths, record: JobRecord, pid: int, contained: containment.JobContainment, resume_noted: str | None
) -> None:
    identity = identify(pid)
    kind = contained.settle(pid)
    _store(
        paths, "the job's process",
        lambda registry: registry.update(
            record.job_id, pid=pid, pgid=pid,
            process_start_time=identity.start_time if identity else None, boot_id=boot_id(), started_at=now_iso(),
            containment=kind.value, cgroup=str(contained.cgroup) if contained.cgroup else None, retry_at=None,
            resume=resume_noted,
        ),
    )  # fmt: skip


def _record_metrics_start(paths: Paths, record: JobRecord) -> str:
    """Where the job's own lines will begin in its output folder's metrics files, measured before it can write
    any: Oumi appends to the files an earlier run left there, and those lines are not this job's.  Returned:
    the record's new ``metrics_start``."""
    files = starts.measure(job_output_dir(record))
    encoded = starts.with_attempt(record.metrics_start, record.attempt, files)
    _store(paths, "where its metrics start", lambda r: r.update(record.job_id, metrics_start=encoded))
    return encoded


def _job_env(record: JobRecord) -> dict[str, str]:
    """This environment, a sweep child's own variables (its supervisor may be another child's), and the job
    marker, inherited by every descendant: cancel finds workers that left the group."""
    own: dict[str, str] = json.loads(record.environment or "{}")
    return os.environ | own | {JOB_MARKER_ENV: record.job_id}


def _record_end(
    paths: Paths,
    record: JobRecord,
    returncode: int,
    pids: tuple[int, ...],
    cgroup: Path | None,
    metrics_start: str,
    stopped_by: Firing | None = None,
    by_guard: bool = False,
) -> JobRecord | None:
    """Write the attempt's end: the job's exit record, or, where its policy (or its guard's ``retry``:
    ``by_guard``) retries it, the attempt kept and the job waiting for the next one (returned; None when the
    job ended)."""
    ended = now_iso()  # kept, with the rest, should the registry refuse the record for a while
    # Where its lines end, before it is seen ended: a later run in its folder appends after them.
    metrics = starts.with_attempt(metrics_start, record.attempt, starts.measure(job_output_dir(record)), end=True)
    code, signum = (returncode, None) if returncode >= 0 else (None, -returncode)
    # Now, while the job's cgroup and the kernel's record of its end still exist.
    failure = (
        None if returncode == 0 and stopped_by is None else _failure(record, code, signum, pids, cgroup, stopped_by)
    )
    _store(paths, "where its metrics end", lambda r: r.update(record.job_id, metrics_start=metrics))
    waiting: list[JobRecord] = []

    def write(registry: Registry) -> None:
        now_record = registry.get(record.job_id) or record
        if retrying.not_retried_because(now_record, failure, by_guard=by_guard) is None:
            policy_delay = retrying.retry_delay_s(JobPolicy.decode(now_record.policy), now_record.attempt)
            kept = retrying.ended_attempt(
                now_record, State.FAILED, failure, exit_code=code, exit_signal=signum, end_time=ended
            )
            if retrying.schedule(registry, now_record, kept, failure, delay_s=policy_delay, by_guard=by_guard):
                waiting.append(registry.get(record.job_id) or now_record)
                return
        registry.record_exit(
            record.job_id,
            exit_code=code,
            exit_signal=signum,
            end_time=ended,
            failure=encode_failure(failure),
            detail=_not_retried_detail(now_record, failure),
            stopped_by_guard=stopped_by is not None,
        )

    _store(paths, "the exit record", write)
    return waiting[0] if waiting else None


def _not_retried_detail(record: JobRecord, failure: Failure | None) -> str | None:
    """The end detail of a failed attempt that had retries left and was not retried as it failed as the one
    before it did: why not (the timeline shows it)."""
    if failure is None or record.attempt >= JobPolicy.decode(record.policy).max_attempts:
        return None
    return (
        f"not retried: {retrying.not_retried_because(record, failure)}"
        if retrying.repeats_last_failure(record, failure)
        else None
    )


def _failure(
    record: JobRecord,
    code: int | None,
    signum: int | None,
    pids: tuple[int, ...],
    cgroup: Path | None,
    stopped_by: Firing | None,
) -> Failure:
    """Why the job failed: a guard that stopped it says so itself, whatever signal ended it; else triage."""
    if stopped_by is not None:
        return stopped_by.failure()
    return triage(Ending(
        exit_code=code, exit_signal=signum, pids=pids, cgroup=str(cgroup) if cgroup else None,
        log_paths=tuple(path for path in (record.stderr_path, record.stdout_path) if path),
    ))  # fmt: skip


def _cannot_start(paths: Paths, record: JobRecord, detail: str) -> None:
    failure = encode_failure(triage(Ending(exit_code=EXIT_CANNOT_START, detail=detail)))
    _store(
        paths, "the exit record",
        lambda r: r.record_exit(record.job_id, exit_code=EXIT_CANNOT_START, detail=detail, failure=failure),
    )  # fmt: skip


def _ignore(_signum: int, _frame: object) -> None:
    pass


def _quietly(look: Callable[[], None]) -> None:
    """A resume check is worth having, never worth a job: a failure to read or record it is only logged."""
    try:
        look()
    except (OumiJobsError, OSError, ValueError) as exc:
        print(f"oumi-jobs supervisor: resume check failed: {exc!r}", file=sys.stderr)


def _wait_recording_descendants(
    paths: Paths, job_id: str, process: subprocess.Popen[bytes], look: Callable[[], None]
) -> tuple[int, tuple[int, ...]]:
    """Wait for the job, noting its descendants as they appear (cancel needs them if they escape; triage
    looks for them in the kernel's OOM records) and looking at its resume; its return code and the
    descendants' pids seen."""
    import psutil

    seen: set[tuple[int, float]] = set()
    interval = 0.2
    reaper = containment.Reaper(process.pid)
    while True:
        deadline = time.monotonic() + interval
        while (remaining := deadline - time.monotonic()) > 0:
            if (returncode := reaper.wait(remaining)) is not None:
                process.returncode = returncode
                return returncode, tuple(sorted({pid for pid, _ in seen}))
        interval = min(interval * 1.5, 2.0)
        _quietly(look)
        try:
            # The supervisor's own descendants: the job's, and its orphans (adopted by this subreaper).
            children = psutil.Process().children(recursive=True)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found = {
            (c.pid, started)
            for c in children
            if c.pid not in emission.SPAWNED
            and (started := start_time_of(c.pid)) is not None  # a sender is not the job's
        }
        if found - seen:
            try:
                with Registry.open(paths) as registry:
                    registry.record_processes(job_id, found - seen)
            except (OumiJobsError, OSError):
                continue  # a full disk: tried again next round, while the job runs on
            seen |= found


def main(argv: list[str] | None = None) -> int:
    paths, job_id = Paths.parse_helper_argv("oumi-jobs-supervisor", "job_id", argv)
    # A handler, not SIG_IGN: ignored signals stay ignored across exec, and
    # the job must still get SIGINT or SIGHUP if someone sends them.
    for signum in (signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, _ignore)
    daemonize(paths.supervisor_log(job_id))
    try:
        return supervise(paths, job_id)
    except Exception as exc:  # the log file is the only place left to tell
        print(f"oumi-jobs supervisor of {job_id} failed: {exc!r}", file=sys.stderr)
        raise


if __name__ == "__main__":
    sys.exit(main())
