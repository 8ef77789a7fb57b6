"""Process identity: is the process behind a recorded pid still the one we started?

A pid alone is not an identity: after the process ends the kernel may hand the
number to an unrelated process, and after a reboot every number starts over.
We record the pid with the process's start time and the machine's boot id, and
take a pid for our process only when all three match.
"""

from __future__ import annotations

import functools
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


def start_time_of(pid: int) -> float | None:
    """The process's start time (seconds since the epoch, 1/100 s resolution), or None if it is gone."""
    import psutil

    try:
        return round(psutil.Process(pid).create_time(), 2)
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def identify(pid: int) -> ProcessIdentity | None:
    started = start_time_of(pid)
    return None if started is None else ProcessIdentity(pid, started, boot_id())


def is_alive(pid: int | None, start_time: float | None, recorded_boot_id: str | None) -> bool:
    """True only if ``pid`` is still the very process recorded (not a zombie, not a reused pid)."""
    if pid is None or start_time is None or recorded_boot_id != boot_id():
        return False
    import psutil

    try:
        process = psutil.Process(pid)
        if abs(round(process.create_time(), 2) - start_time) > 0.015:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False
