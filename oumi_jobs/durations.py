"""Parse ages such as ``90s``, ``30m``, ``12h``, ``7d``, ``2w``."""

from __future__ import annotations

import re
from datetime import timedelta

from oumi_jobs.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
# Ages are subtracted from now: a thousand years back stays well inside what a
# datetime holds (year 1), so "older than 99999999w" is refused, not an OverflowError.
MAX_AGE = timedelta(days=365_000)


def is_duration(text: str) -> bool:
    """Whether ``text`` is written as an age (a number and a unit), whatever its size."""
    return _DURATION.match(text) is not None


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if not match:
        raise UsageError(f"invalid duration {text!r}: use a number and a unit, e.g. 90s, 30m, 12h, 7d, 2w")
    seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]  # inf for 400 digits: refused below
    if not seconds <= MAX_AGE.total_seconds():
        raise UsageError(f"invalid duration {text!r}: at most {MAX_AGE.days}d (about 1000 years)")
    return timedelta(seconds=seconds)
