"""The detached supervisor of a local job.

``submit`` starts ``python -m oumi_jobs.supervisor`` in a new session; it forks
once more (so it is nobody's child and never a zombie of the submitting
process), reports its pid, and then, on its own:

1. starts the job in a session and process group of its own, stdout and
   stderr to files in the state dir;
2. records the job's pid, process group, start time, boot id and containment
   (:mod:`oumi_jobs.local.containment`: a cgroup of its own where the system
   allows it; the supervisor is the subreaper of the job's orphans);
3. waits, and writes the exit record (exit code or signal, end time);
4. stays while an orphan of the job lives (reaping it, so cancel still finds
   it among its descendants), then removes the job's cgroup.

It ignores SIGHUP and SIGINT, so closing the submitting terminal does not
touch the job, and passes a SIGTERM on to the job's group (a shutdown), still
recording the exit.  It imports nothing heavy: it starts once per job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from oumi_jobs.local import containment
from oumi_jobs.local.detach import daemonize
from oumi_jobs.local.procs import boot_id, identify, start_time_of
from oumi_jobs.local.queues import wait_for_turn
from oumi_jobs.local.terminator import JOB_MARKER_ENV
from oumi_jobs.paths import Paths
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.timestamps import now_iso

EXIT_CANNOT_START = 127


def _open_log(path: str) -> int:
    Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


def supervise(paths: Paths, job_id: str) -> int:
    with Registry.open(paths) as registry:
        record = registry.get(job_id)
        if record is None:
            print(f"oumi-jobs supervisor: job {job_id} is not in the registry", file=sys.stderr)
            return 1
        lease = wait_for_turn(paths, registry, job_id)
        if lease is None or not registry.claim_start(job_id):
            return 0
    # The slot's lock is inherited by the job: it stays taken while any process of the job lives.
    return _run_job(paths, record, lease.fd)


def _run_job(paths: Paths, record: JobRecord, slot_fd: int) -> int:
    assert record.stdout_path and record.stderr_path
    stdout_fd, stderr_fd = _open_log(record.stdout_path), _open_log(record.stderr_path)
    contained = containment.JobContainment(record.job_id)
    try:
        process = subprocess.Popen(
            list(record.argv),
            cwd=record.workdir,
            stdin=subprocess.DEVNULL,
            stdout=stdout_fd,
            stderr=stderr_fd,
            start_new_session=True,  # its own session and process group: cancel reaches the whole tree
            close_fds=True,
            pass_fds=(slot_fd,),
            # Inherited by every descendant: cancel finds workers that left the group.
            env=os.environ | {JOB_MARKER_ENV: record.job_id},
            preexec_fn=contained.preexec_fn,
        )
    except OSError as exc:
        contained.release()
        detail = f"cannot start {record.argv[0]!r}: {exc.strerror or exc}"
        os.write(stderr_fd, f"oumi-jobs: {detail}\n".encode())
        with Registry.open(paths) as registry:
            registry.record_exit(record.job_id, exit_code=EXIT_CANNOT_START, detail=detail)
        return 0
    finally:
        os.close(stdout_fd)
        os.close(stderr_fd)

    def forward(signum: int, _frame: object) -> None:
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    identity = identify(process.pid)
    kind = contained.settle(process.pid)
    with Registry.open(paths) as registry:
        registry.update(
            record.job_id,
            pid=process.pid,
            pgid=process.pid,
            process_start_time=identity.start_time if identity else None,
            boot_id=boot_id(),
            started_at=now_iso(),
            containment=kind.value,
            cgroup=str(contained.cgroup) if contained.cgroup else None,
        )
    returncode = _wait_recording_descendants(paths, record.job_id, process)
    with Registry.open(paths) as registry:
        registry.record_exit(
            record.job_id,
            exit_code=returncode if returncode >= 0 else None,
            exit_signal=-returncode if returncode < 0 else None,
        )
    os.close(slot_fd)  # the job's orphans keep the slot through their own copies, as before
    contained.outlive_orphans()
    return 0


def _ignore(_signum: int, _frame: object) -> None:
    pass


def _wait_recording_descendants(paths: Paths, job_id: str, process: subprocess.Popen[bytes]) -> int:
    """Wait for the job, noting its descendants as they appear (cancel needs them if they escape)."""
    import psutil

    seen: set[tuple[int, float]] = set()
    interval = 0.2
    reaper = containment.Reaper(process.pid)
    while True:
        deadline = time.monotonic() + interval
        while (remaining := deadline - time.monotonic()) > 0:
            if (returncode := reaper.wait(remaining)) is not None:
                process.returncode = returncode
                return returncode
        interval = min(interval * 1.5, 2.0)
        try:
            # The supervisor's own descendants: the job's, and its orphans (adopted by this subreaper).
            children = psutil.Process().children(recursive=True)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found = {(c.pid, started) for c in children if (started := start_time_of(c.pid)) is not None}
        if found - seen:
            with Registry.open(paths) as registry:
                registry.record_processes(job_id, found - seen)
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
