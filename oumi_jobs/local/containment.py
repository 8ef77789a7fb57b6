"""Keeping every process of a local job findable, whatever it does to hide.

A worker can leave the job's process group and session (``setsid``), drop
its environment (``env -i``) and lose its parent, and then none of the
terminator's scans would find it.  Two kernel features close that gap:

* **subreaper** (Linux ``PR_SET_CHILD_SUBREAPER``): the supervisor adopts
  the job's orphans instead of init, so they stay its descendants, and it
  reaps them;
* **cgroup** (cgroup v2 with a subtree we may write, as root or in a
  delegated systemd user slice): the job runs in a cgroup of its own,
  ``oumi-jobs-<job id>`` under the supervisor's cgroup, which no process of
  the job can leave without privileges; ``cgroup.kill`` kills all of it at
  once and ``cgroup.procs`` proves it empty.

A job gets the cgroup where the system allows it (``OUMI_JOBS_CGROUPS=off``
opts out), else the subreaper, else neither (``session``: the scans alone).
Its containment is recorded with its pid and shown by ``status --json``.
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path

CGROUPS_ENV = "OUMI_JOBS_CGROUPS"
_PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
# Without a pidfd to wait on, how often the supervisor checks whether the job ended.
_POLL_S = 0.05


class Containment(str, Enum):
    CGROUP = "cgroup"  # a cgroup of its own, and the supervisor is its subreaper
    SUBREAPER = "subreaper"  # the supervisor adopts its orphans
    SESSION = "session"  # neither: process group, session, recorded descendants and marker only

    def __str__(self) -> str:
        return self.value


def become_subreaper(on: bool = True) -> bool:
    """Make this process the subreaper of its descendants (``on`` False: no longer); False where the OS has
    no such thing."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # only the supervisor needs it

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _cgroup2_root() -> tuple[Path, str] | None:
    """(mount point, root within the hierarchy) of the cgroup v2 mount, from this process's mountinfo."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if "-" in fields and fields[fields.index("-") + 1] == "cgroup2":
            return Path(fields[4]), fields[3]
    return None


def own_cgroup() -> Path | None:
    """The directory of this process's cgroup v2, or None where there is none."""
    mount = _cgroup2_root()
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    relative = next((line[3:] for line in lines if line.startswith("0::")), None)
    if mount is None or relative is None or not relative.startswith("/"):
        return None  # no cgroup v2, or "(unreachable)"
    mount_point, mount_root = mount
    if mount_root != "/" and relative.startswith(mount_root):
        relative = relative[len(mount_root) :]
    directory = mount_point / relative.lstrip("/")
    return directory if (directory / "cgroup.procs").exists() else None


def create_cgroup(job_id: str) -> Path | None:
    """A new, empty cgroup for the job under this process's own; None where it cannot be had."""
    if os.environ.get(CGROUPS_ENV, "").lower() in ("off", "0", "no", "false"):
        return None
    parent = own_cgroup()
    if parent is None:
        return None
    directory = parent / f"oumi-jobs-{job_id}"
    try:
        directory.mkdir()
    except FileExistsError:
        if pids_in(directory):  # a cgroup of that name with processes in it is not ours to take
            return None
    except OSError:
        return None  # not ours to write (EACCES, EROFS): the fallback
    if not os.access(directory / "cgroup.procs", os.W_OK):
        remove(directory)
        return None
    return directory


def entering(directory: Path) -> Callable[[], None]:
    """A ``preexec_fn`` that moves the new process into ``directory`` before it runs the job.

    It must not raise (Popen would fail the start): the supervisor checks with
    :func:`holds` afterwards and falls back if the move did not happen.
    """
    procs = str(directory / "cgroup.procs")

    def enter() -> None:
        try:
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, b"0")  # "0" is the writing process itself
            finally:
                os.close(fd)
        except OSError:
            pass

    return enter


def pids_in(directory: Path) -> list[int]:
    """The pids in the cgroup (none once it is gone)."""
    try:
        return [int(pid) for pid in (directory / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def holds(directory: Path, pid: int) -> bool:
    return pid in pids_in(directory)


def kill(directory: Path) -> bool:
    """SIGKILL every process in the cgroup at once (no fork can race it); False where the kernel has no
    ``cgroup.kill`` (before Linux 5.14) or the cgroup is gone."""
    try:
        (directory / "cgroup.kill").write_text("1")
        return True
    except OSError:
        return False


def remove(directory: Path) -> None:
    """Remove the cgroup if it is empty (left alone while a process is in it, or if already gone)."""
    try:
        directory.rmdir()
    except OSError:
        pass


class JobContainment:
    """What the supervisor sets up for one job before starting it, and takes down after."""

    def __init__(self, job_id: str) -> None:
        self.subreaper = become_subreaper()
        self.cgroup = create_cgroup(job_id)
        self.preexec_fn = entering(self.cgroup) if self.cgroup else None

    def settle(self, pid: int) -> Containment:
        """The containment the started job really has (its cgroup only if it is in it)."""
        if self.cgroup and not holds(self.cgroup, pid):
            self.release()
        if self.cgroup:
            return Containment.CGROUP
        return Containment.SUBREAPER if self.subreaper else Containment.SESSION

    def release(self) -> None:
        if self.cgroup:
            remove(self.cgroup)
            self.cgroup = None

    def outlive_orphans(self) -> None:
        """After the job's exit: wait for (and reap) its adopted orphans, then remove its cgroup."""
        reap_until_no_children()
        self.release()


class Reaper:
    """Waits for the job's process and reaps every child of the supervisor that ends meanwhile: as a
    subreaper, the job's orphans become its children, and would stay zombies otherwise."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.pidfd: int | None = None
        if hasattr(os, "pidfd_open"):
            try:
                self.pidfd = os.pidfd_open(pid)
            except OSError:
                self.pidfd = None

    def wait(self, timeout: float) -> int | None:
        """The job's return code (``-N`` for signal N) once it has ended, or None after ``timeout`` s."""
        if self.pidfd is not None:
            select.select([self.pidfd], [], [], timeout)  # readable once the process has ended
        else:
            time.sleep(min(timeout, _POLL_S))
        code = self._reap()
        if code is not None and self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        return code

    def _reap(self) -> int | None:
        code = None
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return code
            if pid == 0:
                return code
            if pid == self.pid:
                code = os.waitstatus_to_exitcode(status)


def reap_until_no_children() -> None:
    """Block until every child (the job's adopted orphans) has ended, reaping each."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return
