"""Waiting for something to become true, by asking again and again until a deadline: one loop for all.

A deadline is on a clock: the monotonic clock for a wait that starts in this
process (immune to the wall clock being set), the wall clock for one that
started in another process (a ``--no-wait`` finisher picks up the wait of the
command that signalled the job, from the time recorded then).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Deadline:
    at: float
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    @classmethod
    def at_wall_time(cls, epoch_s: float) -> Deadline:
        return cls(epoch_s, time.time)

    def remaining(self) -> float:
        return self.at - self.clock()

    def passed(self) -> bool:
        return self.clock() >= self.at


def poll_until(
    limit: Deadline | float | None,
    check: Callable[[], T],
    interval: float,
    *,
    until: Callable[[T], bool] = bool,
) -> T:
    """Call ``check`` every ``interval`` seconds until ``until`` holds for its answer or ``limit`` passes.

    ``limit`` is a :class:`Deadline`, a number of seconds from now, or None
    (no limit: until ``until`` holds).  ``check`` runs at least once; its last
    answer is returned whether ``until`` held or the limit passed, so the
    caller tells a timeout by ``until(answer)`` being false.
    """
    deadline = Deadline.after(limit) if isinstance(limit, (int, float)) else limit
    while True:
        answer = check()
        if until(answer) or (deadline is not None and deadline.passed()):
            return answer
        time.sleep(interval)
