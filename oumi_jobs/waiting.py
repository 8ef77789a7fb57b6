"""Following jobs to their end: ``wait JOB...``, ``submit --wait`` and ``status --watch``, one loop for all.

Each job is read live, as ``status`` reads it, and no more often than suits
its source: a local job's state is a process check (every half second), a
cloud job's a round trip to its cloud (every 3 s, each question under a time
limit that never outlasts the wait's own).  Nothing is stored: a wait that is
interrupted or times out leaves the jobs as they were.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from oumi_jobs import bounds
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.durations import is_duration, parse_duration
from oumi_jobs.errors import UsageError, WaitInterrupted
from oumi_jobs.paths import Paths
from oumi_jobs.polling import Deadline
from oumi_jobs.status import get_status
from oumi_jobs.store.registry import Registry
from oumi_jobs.views import JobView

# How often a followed job is asked about: a local job's state is a process
# check; a cloud job's is a round trip to its cloud (SSH, an API server).
LOCAL_POLL_S = 0.5
CLOUD_POLL_S = 3.0


@dataclass(frozen=True)
class WaitResult:
    """The named jobs as last seen, in the order they were named; ``timed_out`` when the wait ran out first."""

    views: tuple[JobView, ...]
    timed_out: bool = False

    @property
    def done(self) -> bool:
        """Every job is done (succeeded, failed, cancelled or lost)."""
        return all(view.done for view in self.views)

    @property
    def pending(self) -> tuple[JobView, ...]:
        """The jobs not done yet."""
        return tuple(view for view in self.views if not view.done)


def parse_timeout(text: str) -> float:
    """``wait --timeout``: seconds (``90``) or a duration (``90s``, ``30m``, ``2h``, ``1d``), up to a year."""
    if is_duration(text):
        seconds = parse_duration(text).total_seconds()
    else:
        try:
            seconds = float(text)
        except ValueError:
            raise UsageError(f"invalid --timeout {text!r}: use seconds or a duration such as 90s, 30m, 2h") from None
    return bounds.check_seconds("--timeout", seconds)


def resolve_jobs(paths: Paths, refs: Sequence[str]) -> list[str]:
    """The job ids ``refs`` name (ids or unique prefixes), each once; an unknown or ambiguous one raises (exit 3)."""
    if not refs:
        raise UsageError("name the jobs to wait for")
    with Registry.open(paths) as registry:
        return list(dict.fromkeys(registry.resolve(ref).job_id for ref in refs))


def follow_jobs(
    paths: Paths,
    refs: Sequence[str],
    *,
    timeout_s: float | None = None,
    cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S,
    interval: float | None = None,
) -> Iterator[WaitResult]:
    """Every job named resolves now (or this raises); then yield the jobs as seen at each poll, until all are
    done or ``timeout_s`` passes (the last result then says ``timed_out``).

    Ctrl-C raises :class:`WaitInterrupted` (exit 130): the jobs go on.
    """
    if timeout_s is not None:
        bounds.check_seconds("--timeout", timeout_s)
    bounds.check_cloud_timeout(cloud_timeout_s)
    job_ids = resolve_jobs(paths, refs)
    return _interruptible(_poll(paths, job_ids, timeout_s, cloud_timeout_s, interval), job_ids)


def wait_for_jobs(
    paths: Paths,
    refs: Sequence[str],
    timeout_s: float | None = None,
    *,
    cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S,
) -> WaitResult:
    """Wait until every named job is done, or ``timeout_s`` passes; see :func:`follow_jobs`."""
    *_, last = follow_jobs(paths, refs, timeout_s=timeout_s, cloud_timeout_s=cloud_timeout_s)
    return last


def follow_until_done(paths: Paths, job_id: str, *, interval: float | None = None) -> Iterator[JobView]:
    """Yield the job's view every ``interval`` seconds (by default, as suits its cloud), the last one done."""
    for result in _poll(paths, resolve_jobs(paths, [job_id]), None, DEFAULT_CLOUD_TIMEOUT_S, interval):
        yield result.views[0]


def _interruptible(results: Iterator[WaitResult], job_ids: list[str]) -> Iterator[WaitResult]:
    try:
        yield from results
    except KeyboardInterrupt:
        raise WaitInterrupted(f"interrupted: stopped waiting; {', '.join(job_ids)} not touched") from None


def _poll(
    paths: Paths, job_ids: list[str], timeout_s: float | None, cloud_timeout_s: float, interval: float | None
) -> Iterator[WaitResult]:
    deadline = Deadline.after(timeout_s) if timeout_s is not None else None
    seen: dict[str, JobView] = {}
    due = dict.fromkeys(job_ids, 0.0)  # when each job is next asked about (monotonic clock)
    while True:
        for job_id in job_ids:
            if (job_id in seen and seen[job_id].done) or due[job_id] > time.monotonic():
                continue
            seen[job_id] = get_status(
                paths, job_id, cloud_timeout_s=_question_limit(cloud_timeout_s, deadline), live_progress=True
            )
            pause = interval or (LOCAL_POLL_S if seen[job_id].record.is_local else CLOUD_POLL_S)
            due[job_id] = time.monotonic() + pause
        result = WaitResult(tuple(seen[job_id] for job_id in job_ids))
        if result.done:
            yield result
            return
        if deadline is not None and deadline.passed():
            yield dataclasses.replace(result, timed_out=True)
            return
        yield result
        next_due = min(due[job_id] for job_id in job_ids if not seen[job_id].done) - time.monotonic()
        time.sleep(max(0.0, min(next_due, deadline.remaining() if deadline is not None else math.inf)))


def _question_limit(cloud_timeout_s: float, deadline: Deadline | None) -> float:
    """A cloud question gets what is left of the wait (at least a second), at most ``cloud_timeout_s``."""
    if deadline is None:
        return cloud_timeout_s
    return min(cloud_timeout_s, max(1.0, deadline.remaining()))
