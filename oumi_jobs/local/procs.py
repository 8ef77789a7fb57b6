"""Process identity: is the process behind a recorded pid still the one we started?

A pid alone is not an identity: after the process ends the kernel may hand the
number to an unrelated process, and after a reboot every number starts over.
We record the pid with the process's start time and the machine's boot id, and
take a pid for our process only when all three match.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

_BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


@functools.lru_cache(maxsize=1)
def boot_id() -> str:
    try:
        return _BOOT_ID_FILE.read_text().strip()
    except OSError:  # not Linux: the boot time stands in for the boot id
        import psutil

        return f"boot-{int(psutil.boot_time())}"


@dataclass(frozen=True)
class ProcessIdentity:
    pid: int
    start_time: float
    boot_id: str


def _linux_stat(pid: int) -> tuple[float, bool] | None:
    """(start time in seconds after boot, is a zombie) from /proc, or None if there is no such process.

    The kernel's start tick never changes, unlike an epoch time derived from
    it, which moves when the clock is stepped (btime is recomputed).
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return round(int(fields[19]) / _CLOCK_TICKS, 2), fields[0] == b"Z"


def _psutil_stat(pid: int) -> tuple[float, bool] | None:
    import psutil

    try:
        process = psutil.Process(pid)
        return round(process.create_time(), 2), process.status() == psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


_HAS_PROC = Path("/proc/self/stat").exists()
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if _HAS_PROC else 100
_stat = _linux_stat if _HAS_PROC else _psutil_stat


def start_time_of(pid: int) -> float | None:
    """The process's start time (an opaque, stable number at 1/100 s resolution), or None if it is gone."""
    found = _stat(pid)
    return None if found is None else found[0]


def identify(pid: int) -> ProcessIdentity | None:
    started = start_time_of(pid)
    return None if started is None else ProcessIdentity(pid, started, boot_id())


def same_process(pid: int, start_time: float) -> bool:
    """True if ``pid`` is still the live (non-zombie) process that started at ``start_time``."""
    found = _stat(pid)
    return found is not None and not found[1] and abs(found[0] - start_time) < 0.005


def is_alive(pid: int | None, start_time: float | None, recorded_boot_id: str | None) -> bool:
    """True only if ``pid`` is still the very process recorded (not a zombie, not a reused pid)."""
    if pid is None or start_time is None or recorded_boot_id != boot_id():
        return False
    return same_process(pid, start_time)
