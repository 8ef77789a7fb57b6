"""Times are stored and printed as ISO 8601 with a UTC offset."""

from __future__ import annotations

from datetime import datetime, timezone


def now() -> datetime:
    return datetime.now(timezone.utc)


def now_iso() -> str:
    return to_iso(now())


def to_iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.isoformat(timespec="milliseconds")


def from_iso(text: str) -> datetime:
    """Parse an ISO 8601 time; a naive one (legacy registries) is taken as UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment


def from_epoch(seconds: float) -> str:
    return to_iso(datetime.fromtimestamp(seconds, timezone.utc))
