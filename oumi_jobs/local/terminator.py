"""Finding every process of a local job, signalling them, and checking they are gone.

A job's processes are found six ways, since a job may fork workers that
leave its process group or session (``torchrun``-style launchers whose
workers call ``setsid``), or whose parent dies so they are re-parented:

* the members of the job's cgroup, where it has one (:mod:`.containment`);
  no process of the job can leave it;
* live descendants of its supervisor (verified by its start time), which is
  the subreaper of the job's orphans where the OS has subreapers;
* members of the job's process group and session (only while the job's own
  process is verified alive, so a reused group number is never taken);
* live descendants of the job's process;
* descendants the supervisor recorded while the job ran (pid + start time);
* processes whose environment carries the job's marker
  (``OUMI_JOBS_JOB_ID=<id>``, set by the supervisor and inherited).

Every signal goes to a process verified by its start time, through a pidfd
where the OS has them, so a pid reused by an unrelated process is never hit.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from oumi_jobs.errors import UsageError
from oumi_jobs.local import containment
from oumi_jobs.local.procs import boot_id, is_alive, same_process, start_time_of
from oumi_jobs.store.registry import JobRecord

JOB_MARKER_ENV = "OUMI_JOBS_JOB_ID"


@dataclass(frozen=True)
class Proc:
    pid: int
    start_time: float
    name: str


@dataclass(frozen=True)
class SignalReport:
    signalled: tuple[int, ...]
    failed: tuple[tuple[int, str], ...]  # (pid, reason), e.g. EPERM


def parse_signal(text: str) -> signal.Signals:
    """``TERM``, ``SIGTERM``, ``term`` or ``15``."""
    name = text.strip().upper()
    try:
        if name.isdigit():
            return signal.Signals(int(name))
        return signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    except (KeyError, ValueError):
        raise UsageError(f"unknown signal {text!r}; use a name such as TERM, INT or USR1") from None


def _start_time(process: object) -> float:
    started = start_time_of(process.pid)  # type: ignore[attr-defined]
    if started is None:
        import psutil

        raise psutil.NoSuchProcess(process.pid)  # type: ignore[attr-defined]
    return started


def _has_marker(process: object, marker: bytes) -> bool:
    try:
        with open(f"/proc/{process.pid}/environ", "rb") as handle:  # type: ignore[attr-defined]
            return marker in handle.read().split(b"\0")
    except OSError:
        return False


def find_job_processes(record: JobRecord, recorded: list[tuple[int, float]]) -> list[Proc]:
    """Every live (non-zombie) process of the job, as best this OS lets us see."""
    import psutil

    if record.pid is None or record.boot_id != boot_id():
        return []
    found: dict[int, Proc] = {}

    def add(process: psutil.Process) -> None:
        try:
            if process.pid == os.getpid() or process.status() == psutil.STATUS_ZOMBIE:
                return
            found[process.pid] = Proc(process.pid, _start_time(process), process.name())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass

    leader_alive = False
    try:
        leader = psutil.Process(record.pid)
        if record.process_start_time is not None and abs(_start_time(leader) - record.process_start_time) < 0.005:
            leader_alive = leader.status() != psutil.STATUS_ZOMBIE
            if leader_alive:
                add(leader)
            for child in leader.children(recursive=True):
                add(child)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass

    for pid, start in recorded:
        try:
            process = psutil.Process(pid)
            if abs(_start_time(process) - start) < 0.005:
                add(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    for process in _contained(record):
        add(process)

    marker = f"{JOB_MARKER_ENV}={record.job_id}".encode()
    group = record.pgid or record.pid
    for process in psutil.process_iter():
        if process.pid in found or process.pid == os.getpid():
            continue
        try:
            same_group = leader_alive and (os.getpgid(process.pid) == group or os.getsid(process.pid) == group)
        except OSError:
            continue
        if same_group or _has_marker(process, marker):
            add(process)
    return sorted(found.values(), key=lambda p: p.pid)


def _contained(record: JobRecord) -> list[object]:
    """The job's processes its containment keeps: its cgroup's members, its supervisor's descendants."""
    import psutil

    found: list[object] = []
    if record.cgroup:
        for pid in containment.pids_in(Path(record.cgroup)):
            try:
                found.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                pass
    if record.supervisor_pid and is_alive(record.supervisor_pid, record.supervisor_start_time, record.boot_id):
        try:
            found.extend(psutil.Process(record.supervisor_pid).children(recursive=True))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def cgroup_left(record: JobRecord) -> list[int]:
    """Live (non-zombie) pids still in the job's cgroup: the proof a cgroup job is gone is an empty list."""
    if not record.cgroup or record.boot_id != boot_id():
        return []
    return [pid for pid in containment.pids_in(Path(record.cgroup)) if (start := start_time_of(pid)) is not None
            and same_process(pid, start)]  # fmt: skip


def kill_cgroup(record: JobRecord) -> bool:
    """SIGKILL the job's whole cgroup at once; False where it has none (or the kernel no ``cgroup.kill``).

    Not when this very process is in it (a job cancelling itself): the signals go one by one then."""
    if not record.cgroup or record.boot_id != boot_id():
        return False
    cgroup = Path(record.cgroup)
    return os.getpid() not in containment.pids_in(cgroup) and containment.kill(cgroup)


def is_running(proc: Proc) -> bool:
    return same_process(proc.pid, proc.start_time)


def still_running(procs: list[Proc]) -> list[Proc]:
    return [p for p in procs if is_running(p)]


def _send(proc: Proc, signum: int) -> str | None:
    """Signal one verified process; returns why it failed, or None."""
    import psutil

    pidfd = None
    try:
        if hasattr(os, "pidfd_open"):
            pidfd = os.pidfd_open(proc.pid)
        # With the pidfd open the pid cannot be recycled under us; check it is still ours.
        process = psutil.Process(proc.pid)
        if abs(_start_time(process) - proc.start_time) >= 0.005:
            return None  # it ended and the number went to someone else: nothing to do
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, signum)
        else:
            os.kill(proc.pid, signum)
        return None
    except (ProcessLookupError, psutil.NoSuchProcess):
        return None
    except PermissionError as exc:
        return f"{errno.errorcode.get(exc.errno or 0, 'EPERM')}: {exc.strerror}"
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            return None
        return f"{errno.errorcode.get(exc.errno or 0, 'error')}: {exc.strerror}"
    finally:
        if pidfd is not None:
            os.close(pidfd)


def signal_processes(procs: list[Proc], signum: int) -> SignalReport:
    signalled, failed = [], []
    for proc in procs:
        reason = _send(proc, signum)
        if reason is None:
            signalled.append(proc.pid)
        else:
            failed.append((proc.pid, reason))
    return SignalReport(tuple(signalled), tuple(failed))


def gpu_pids() -> set[int]:
    """Pids holding an NVIDIA GPU, where ``nvidia-smi`` exists (empty otherwise)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return set()
    try:
        out = subprocess.run(
            [exe, "--query-compute-apps=pid", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return {int(line) for line in out.split() if line.strip().isdigit()}
