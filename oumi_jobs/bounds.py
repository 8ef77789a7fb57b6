"""Bounds of numeric inputs: counts and seconds a person or script may give.

Every numeric option goes through here, from the command line and from the
library alike, so an absurd value (``--limit 10**20``, ``--timeout nan``) is a
usage error with one clear line, never an ``OverflowError`` deep inside
SQLite, ``deque`` or ``time.sleep``.
"""

from __future__ import annotations

import math

from oumi_jobs.errors import UsageError

# SQLite's INTEGER and C's ssize_t (deque's maxlen, a file offset) are 64-bit signed.
MAX_COUNT = 2**63 - 1
# A year: any wait or time limit longer than that is a typo, and every clock
# and sleep this package uses (threading.TIMEOUT_MAX is ~292 years) takes it.
MAX_SECONDS = 365 * 86400.0
# A cloud gets at least this long to answer (less is not a time limit, it is a refusal).
MIN_CLOUD_TIMEOUT_S = 0.1
# More nodes than any cluster has; SkyPilot and Slurm take it as an int.
MAX_NODES = 100_000


def check_count(option: str, value: int, *, low: int = 0, high: int = MAX_COUNT) -> int:
    """``value`` if ``low <= value <= high``; a usage error naming ``option`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UsageError(f"{option} must be a whole number from {low} to {high}, not {value!r}")
    return value


def check_seconds(option: str, value: float, *, low: float = 0.0, high: float = MAX_SECONDS) -> float:
    """``value`` as a float if it is finite and within ``[low, high]``; a usage error naming ``option`` otherwise."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{option} must be a number of seconds, not {value!r}") from None
    if not math.isfinite(seconds) or not low <= seconds <= high:
        raise UsageError(f"{option} must be a number of seconds from {_plain(low)} to {_plain(high)}, not {value!r}")
    return seconds


def _plain(number: float) -> str:
    """31536000 rather than 3.1536e+07; 0.1 as it is."""
    return str(int(number)) if number.is_integer() else str(number)


def check_cloud_timeout(value: float) -> float:
    """``--cloud-timeout``: finite seconds, at least :data:`MIN_CLOUD_TIMEOUT_S`."""
    return check_seconds("--cloud-timeout", value, low=MIN_CLOUD_TIMEOUT_S)
