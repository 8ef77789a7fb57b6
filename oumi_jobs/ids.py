"""Job ids: ``{command}-{YYYYMMDD-HHMMSS}-{6 hex}`` or a sanitized ``--name``."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone

from oumi_jobs.errors import UsageError

MAX_NAME_LENGTH = 64
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9_.-]+")


def new_job_id(command: str, now: datetime | None = None) -> str:
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    prefix = slugify(command) or "job"
    return f"{prefix}-{moment:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def slugify(text: str) -> str:
    """Reduce ``text`` to letters, digits, ``_``, ``.`` and ``-``, safe as a file name."""
    slug = _UNSAFE_RUN.sub("-", text)
    slug = re.sub(r"\.{2,}", ".", slug)  # never a ".." path component
    return slug.strip(".-_")


def job_id_from_name(name: str) -> str:
    """The job id a ``--name`` stands for; refuses names that leave nothing usable."""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise UsageError("--name must not contain control characters")
    if len(name) > MAX_NAME_LENGTH:
        raise UsageError(f"--name is longer than {MAX_NAME_LENGTH} characters")
    slug = slugify(name)
    if not slug:
        raise UsageError(f"--name {name!r} has no letters or digits to make a job id from")
    return slug
