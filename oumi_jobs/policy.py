"""A job's policy: what oumi-jobs does for it while nobody watches.

Retries (how many, on which failure classes, after how long), guards (a stall,
a run too long or too costly, a NaN) and where to send notifications.  It is
chosen at ``submit``/``sweep`` time, from the command line or a REST body
through :func:`parse_policy`, and kept with the job (the ``policy`` column, as
:meth:`JobPolicy.encode` writes it): the supervisor and the server that look
after the job read it from there, in another process, maybe days later.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from oumi_jobs import bounds
from oumi_jobs.durations import parse_duration
from oumi_jobs.errors import UsageError
from oumi_jobs.failures.rules import CLASSES

# Failures a second attempt can cure: the machine, not the job, was at fault.  `config_error` and `diverged`
# come back every time, so they are retried only when named.
DEFAULT_RETRY_ON = ("preempted", "lost", "nccl", "host_oom", "stalled", "killed")
DEFAULT_RETRY_DELAY_S = 10.0
GUARD_ACTIONS = ("stop", "retry", "alert")
MAX_RETRIES = 100
# `--stall-after auto`: this many times the job's 95th-percentile step interval, and never less than the floor.
STALL_AUTO_FACTOR = 5.0
STALL_AUTO_FLOOR_S = 120.0


@dataclass(frozen=True)
class JobPolicy:
    retries: int = 0
    retry_on: tuple[str, ...] = DEFAULT_RETRY_ON
    retry_delay_s: float = DEFAULT_RETRY_DELAY_S
    stall_after_s: float | None = None  # None: no stall guard (see stall_auto)
    stall_auto: bool = False  # the stall limit is learnt from the job's own step intervals
    max_duration_s: float | None = None
    max_cost: float | None = None  # USD
    nan_guard: bool = False
    guard_action: str = "stop"
    notify: tuple[str, ...] = field(default=())  # URLs given for this job; config.toml's defaults are added on send

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    @property
    def guarded(self) -> bool:
        """Whether any guard watches the job."""
        return (
            self.stall_after_s is not None
            or self.stall_auto
            or self.max_duration_s is not None
            or self.max_cost is not None
            or self.nan_guard
        )

    def retries_on(self, failure_class: str | None) -> bool:
        """Whether a failure of this class is worth another attempt under this policy."""
        return failure_class is not None and failure_class in self.retry_on

    def encode(self) -> str | None:
        """The registry's column: None for the default policy (most jobs), so their rows stay as before."""
        return None if self == JobPolicy() else json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def decode(cls, text: str | None) -> JobPolicy:
        if not text:
            return cls()
        fields_: dict[str, Any] = json.loads(text)
        known = cls.__dataclass_fields__
        # A policy written by a newer release may have fields this one does not know: they are left out.
        values = {name: value for name, value in fields_.items() if name in known}
        for name in ("retry_on", "notify"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)


@dataclass(frozen=True)
class PolicyTexts:
    """A policy as the command line and the REST body give it: words, before any check."""

    retries: int | None = None
    retry_on: str | Sequence[str] | None = None  # "a,b" or ["a", "b"]
    retry_delay: str | None = None  # a duration, e.g. 10s
    stall_after: str | None = None  # a duration or "auto"
    max_duration: str | None = None
    max_cost: float | None = None
    nan_guard: bool = False
    guard_action: str | None = None
    notify: Sequence[str] = ()


def parse_policy(texts: PolicyTexts) -> JobPolicy:
    """Check every value and build the policy; a bad one is a :class:`UsageError` naming its option."""
    stall_auto = texts.stall_after is not None and texts.stall_after.strip().lower() == "auto"
    policy = JobPolicy(
        retries=0 if texts.retries is None else bounds.check_count("--retries", texts.retries, high=MAX_RETRIES),
        retry_on=DEFAULT_RETRY_ON if texts.retry_on is None else _classes(texts.retry_on),
        retry_delay_s=(
            DEFAULT_RETRY_DELAY_S if texts.retry_delay is None else _seconds("--retry-delay", texts.retry_delay)
        ),
        stall_after_s=None if texts.stall_after is None or stall_auto else _seconds("--stall-after", texts.stall_after),
        stall_auto=stall_auto,
        max_duration_s=None if texts.max_duration is None else _seconds("--max-duration", texts.max_duration),
        max_cost=None if texts.max_cost is None else _usd(texts.max_cost),
        nan_guard=texts.nan_guard,
        guard_action=_guard_action(texts.guard_action),
        notify=tuple(_url(url) for url in texts.notify),
    )
    if policy.guard_action == "retry" and policy.retries == 0:
        # A guard's retry starts the next attempt: with no attempt left it could only stop, which the user
        # did not ask for.  Refused rather than granting a retry nobody counted on.
        raise UsageError("--guard-action retry needs --retries N: the attempts a guard may start")
    return policy


def _classes(value: str | Sequence[str]) -> tuple[str, ...]:
    words = value.split(",") if isinstance(value, str) else list(value)
    classes = tuple(dict.fromkeys(word.strip() for word in words if word.strip()))
    unknown = [name for name in classes if name not in CLASSES]
    if unknown:
        raise UsageError(f"--retry-on: unknown failure class {unknown[0]!r}; one of: {', '.join(CLASSES)}")
    return classes


def _seconds(option: str, text: str) -> float:
    try:
        seconds = parse_duration(text).total_seconds()
    except UsageError as exc:
        raise UsageError(f"{option}: {exc}") from None
    if seconds <= 0:
        raise UsageError(f"{option}: must be longer than 0s")
    return seconds


def _usd(value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise UsageError("--max-cost: must be a number of USD above 0")
    return float(value)


def _guard_action(value: str | None) -> str:
    if value is None:
        return "stop"
    if value not in GUARD_ACTIONS:
        raise UsageError(f"--guard-action: {value!r} is not one of {', '.join(GUARD_ACTIONS)}")
    return value


def _url(text: str) -> str:
    url = text.strip()
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme or not rest or any(ch.isspace() for ch in url):
        raise UsageError(f"--notify: {text!r} is not a URL (e.g. https://host/hook, slack://..., ntfys://...)")
    return url
