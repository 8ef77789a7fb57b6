"""Guards: whether a running job is stuck, diverged, running too long or costing too much.

Pure functions over what is known of one attempt of a job (an
:class:`Observation`: when it started, its training step and when that last
moved, its ETA, its price per hour, a non-finite loss or gradient norm), under
its :class:`~oumi_jobs.policy.JobPolicy`.  :func:`evaluate` returns the guard
that fires, or None.  :class:`AttemptGuards` is what a watcher holds per job
and attempt (the stall clock, the guards that fired): it is fed one look at a
time (the progress read, checkpoint or evaluation activity seen, a NaN found)
and says which guard fires, each once.  Whoever watches the job (its supervisor
for a local job, :mod:`oumi_jobs.local.guard_watch`; the server for a cloud
job) reads and acts.  No I/O here.

The stall clock (:class:`StallClock`) counts from the last time the training
step advanced, or the job was seen saving a checkpoint or evaluating, whichever
is later: a save or an evaluation can take minutes with no step, and is no stall.
Time before the first step is not a stall either (model loading, dataset
preparation): only ``max_duration`` counts it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from oumi_jobs.failures import Failure
from oumi_jobs.policy import STALL_AUTO_FACTOR, STALL_AUTO_FLOOR_S, JobPolicy
from oumi_jobs.progress import Progress
from oumi_jobs.timestamps import from_iso

# A guard's stop is a cancel run in a helper process: the guard's words reach it here (its command line names
# only the job).
GUARD_REASON_ENV = "OUMI_JOBS_GUARD_REASON"
# Each guard's name (in events) and the failure class of a job it stopped (SPEC "Guards").
FAILURE_CLASSES = {"nan": "diverged", "stall": "stalled", "max_duration": "over_time", "max_cost": "over_budget"}
# `auto` learns the step interval from at least this many intervals; before that the floor is the limit.
AUTO_MIN_INTERVALS = 5
# The most step intervals a clock keeps for `auto` (the latest ones).
AUTO_KEPT_INTERVALS = 512

# The metric lines the trainer prints (Python's repr of a dict): `'grad_norm': nan`.
_NON_FINITE_LOGGED = re.compile(r"'(grad_norm|[a-z_]*loss)': '?(nan|-?inf)'?", re.IGNORECASE)

_HINTS = {
    "nan": "lower the learning rate, clip gradients or check the data; it resumes from its last good checkpoint",
    "stall": "read its logs (`oumi-jobs logs JOB`) for a hang (NCCL, data loader, a dead worker); retry it",
    "max_duration": "raise --max-duration, or make the job shorter (fewer steps)",
    "max_cost": "raise --max-cost, pick a cheaper cluster, or make the job shorter",
}


@dataclass(frozen=True)
class Firing:
    """A guard that fired: its name, what was seen and the limit it passed (seconds, USD, or words for NaN)."""

    guard: str
    observed: float | str
    limit: float | str
    cause: str

    @property
    def failure_class(self) -> str:
        return FAILURE_CLASSES[self.guard]

    def failure(self) -> Failure:
        """The failure of a job this guard stopped: the guard's class, not the signal that ended it."""
        evidence = f"{self.guard} guard: observed {_shown(self.observed)}, limit {_shown(self.limit)}"
        return Failure(self.failure_class, self.cause, _HINTS[self.guard], evidence)

    @property
    def reason(self) -> str:
        """The reason of the cancellation that stops the job."""
        return f"guard: {self.failure_class}: {self.cause}"


def _shown(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:g}"


@dataclass(frozen=True)
class Observation:
    """What is known of a running attempt at ``now`` (epoch seconds)."""

    now: float
    started: float  # when the attempt started
    step: int | None = None
    stall_since: float | None = None  # the stall clock's start (StallClock.since); None before the first step
    step_intervals: tuple[float, ...] = ()  # seconds per step, for `--stall-after auto`
    eta_s: float | None = None
    price_per_hour: float | None = None  # USD; None where unknown (a local job)
    non_finite: str | None = None  # e.g. "grad_norm=nan at step 2"


def stall_limit(policy: JobPolicy, intervals: Sequence[float]) -> float | None:
    """The stall guard's limit in seconds: the policy's, or `auto`'s from the job's own step intervals."""
    if policy.stall_after_s is not None:
        return policy.stall_after_s
    if not policy.stall_auto:
        return None
    if len(intervals) < AUTO_MIN_INTERVALS:
        return STALL_AUTO_FLOOR_S
    return max(STALL_AUTO_FLOOR_S, STALL_AUTO_FACTOR * percentile(intervals, 95))


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def cost_estimates(observation: Observation) -> tuple[float, float | None] | None:
    """``(cost so far, cost so far + ETA x price)`` in USD; None without a price."""
    price = observation.price_per_hour
    if price is None:
        return None
    spent = price * max(0.0, observation.now - observation.started) / 3600.0
    forecast = spent + price * observation.eta_s / 3600.0 if observation.eta_s is not None else None
    return spent, forecast


def evaluate(policy: JobPolicy, observation: Observation, *, skip: frozenset[str] = frozenset()) -> Firing | None:
    """The first guard of ``policy`` that fires for ``observation`` (NaN, stall, cost, duration), or None;
    the guards named in ``skip`` (those that fired already: once per attempt) are not evaluated."""
    for name, check in (("nan", _nan), ("stall", _stall), ("max_cost", _cost), ("max_duration", _duration)):
        if name not in skip and (firing := check(policy, observation)) is not None:
            return firing
    return None


def _nan(policy: JobPolicy, seen: Observation) -> Firing | None:
    if not policy.nan_guard or seen.non_finite is None:
        return None
    return Firing("nan", seen.non_finite, "finite", f"the training diverged: {seen.non_finite}")


def _stall(policy: JobPolicy, seen: Observation) -> Firing | None:
    limit = stall_limit(policy, seen.step_intervals)
    if limit is None or seen.stall_since is None:
        return None
    quiet = seen.now - seen.stall_since
    if quiet < limit:
        return None
    cause = f"its training step ({seen.step}) has not advanced for {quiet:.0f} s (limit {limit:g} s)"
    return Firing("stall", round(quiet, 1), limit, cause)


def _cost(policy: JobPolicy, seen: Observation) -> Firing | None:
    if policy.max_cost is None or (estimates := cost_estimates(seen)) is None:
        return None
    spent, forecast = estimates
    if spent >= policy.max_cost:
        cause = f"it has cost about ${spent:.2f}, past its budget of ${policy.max_cost:g}"
        return Firing("max_cost", round(spent, 4), policy.max_cost, cause)
    if forecast is not None and forecast > policy.max_cost:
        cause = f"it would cost about ${forecast:.2f} by its end (ETA x price), past its budget of ${policy.max_cost:g}"
        return Firing("max_cost", round(forecast, 4), policy.max_cost, cause)
    return None


def _duration(policy: JobPolicy, seen: Observation) -> Firing | None:
    if policy.max_duration_s is None:
        return None
    ran = seen.now - seen.started
    if ran < policy.max_duration_s:
        return None
    cause = f"it ran for {ran:.0f} s, past its limit of {policy.max_duration_s:g} s"
    return Firing("max_duration", round(ran, 1), policy.max_duration_s, cause)


@dataclass
class StallClock:
    """When the stall clock started: the latest step advance or checkpoint/evaluation activity.

    Fed one look at a time (:meth:`see`); keeps the step intervals it measured, for `auto`.
    """

    step: int | None = None
    stepped_at: float | None = None
    since: float | None = None
    intervals: list[float] = field(default_factory=list)

    def see(self, step: int | None, at: float, activity: float | None = None) -> None:
        """A look at ``at``: the step read then (and when it was written, ``at`` if unknown), and the latest
        checkpoint or evaluation activity seen (epoch seconds), if any."""
        if step is not None and (self.step is None or step > self.step):
            if self.step is not None and self.stepped_at is not None and at > self.stepped_at:
                per_step = (at - self.stepped_at) / (step - self.step)
                self.intervals = [*self.intervals[-(AUTO_KEPT_INTERVALS - 1) :], per_step]
            self.step, self.stepped_at = step, at
            self.since = at if self.since is None else max(self.since, at)
        if self.step is not None and activity is not None:
            # Activity before the first step is setup, which only max_duration counts.
            self.since = activity if self.since is None else max(self.since, activity)


def non_finite_in_metrics_line(line: str) -> str | None:
    """``"grad_norm=nan at step 2"`` for a metrics line (Oumi's ``metrics_rank*.jsonl``) whose gradient norm or
    a loss is NaN or infinite (``json`` writes them ``NaN``, ``Infinity``); None otherwise."""
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):
        return None  # a torn or foreign line
    if not isinstance(entry, dict):
        return None
    for key, value in entry.items():
        if (key == "grad_norm" or "loss" in str(key)) and isinstance(value, float) and not math.isfinite(value):
            return f"{key}={value} at step {entry.get('step', entry.get('global_step', '?'))}"
    return None


def non_finite_in_log(text: str) -> str | None:
    """The same for log text: the first metric line printed with a NaN or infinite gradient norm or loss (a
    cloud job's log stream, a local job without metrics files)."""
    match = _NON_FINITE_LOGGED.search(text)
    return None if match is None else f"{match.group(1)}={match.group(2)} in the log"


@dataclass
class AttemptGuards:
    """The guards of one attempt of one job, fed one look at a time: what a watcher holds per job (the local
    supervisor's thread, the server's watch of cloud jobs).  Each guard fires once per attempt."""

    policy: JobPolicy
    started: float  # when the attempt started (epoch seconds)
    price_per_hour: float | None = None
    clock: StallClock = field(default_factory=StallClock)
    fired: set[str] = field(default_factory=set)
    non_finite: str | None = None

    def look(
        self, now: float, progress: Progress | None, *, activity: float | None = None, non_finite: str | None = None
    ) -> Firing | None:
        """One look at ``now``: the progress read then, checkpoint/evaluation activity seen (epoch seconds), a
        NaN found in what was read; the guard that fires (recorded as fired), or None."""
        written = from_iso(progress.as_of).timestamp() if progress is not None and progress.as_of else now
        self.clock.see(progress.step if progress is not None else None, min(written, now), activity)
        self.non_finite = self.non_finite or non_finite
        observation = Observation(
            now=now, started=self.started, step=self.clock.step, stall_since=self.clock.since,
            step_intervals=tuple(self.clock.intervals), eta_s=progress.eta_s if progress is not None else None,
            price_per_hour=self.price_per_hour, non_finite=self.non_finite,
        )  # fmt: skip
        firing = evaluate(self.policy, observation, skip=frozenset(self.fired))
        if firing is not None:
            self.fired.add(firing.guard)
        return firing
