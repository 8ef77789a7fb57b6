"""What was read of each job's progress, kept for next time: a small file per job and an index of finished jobs.

A small cache file per job (under ``paths.cache_dir``, replaced atomically)
keeps the offsets read so far and the last values parsed, so a running job
costs only what it wrote since the last look, and a job read after it ended
is never read again (and its progress is kept in the registry, where
``list`` over thousands of finished jobs finds it).  The cache is only a cache: losing it costs a re-read, and a file
that was replaced or truncated is read anew.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from oumi_jobs.errors import OumiJobsError
from oumi_jobs.paths import Paths, open_private_file
from oumi_jobs.progress import Progress
from oumi_jobs.store.registry import JobRecord

CACHE_VERSION = 1


def as_dict(progress: Progress | None) -> dict[str, Any] | None:
    """As the cache keeps it: render.base.progress_document's very dictionary."""
    return None if progress is None else asdict(progress)


@dataclass
class JobState:
    """What has been read of one job so far (the cache file's content)."""

    # Which job it was read for: a job id can be used again (``--name`` after a prune); its submit time tells.
    submitted: str = ""
    # Where the job's own lines begin (the record's ``metrics_start``) when it was read: a job read before its
    # start was recorded was read as a whole, and is read again from its start once it is.
    starts: str = ""
    done: bool = False
    config_total: int | None = None
    config_read: bool = False
    files: dict[str, list[int]] = field(default_factory=dict)  # path -> [inode, offset]
    ranks: dict[str, dict[str, float]] = field(default_factory=dict)  # rank -> latest step/loss/epoch/mtime
    trainer: dict[str, float] = field(default_factory=dict)
    bars: dict[str, list[float | None]] = field(default_factory=dict)  # total -> [n, rate, mtime]
    logged: dict[str, float] = field(default_factory=dict)  # latest metric line of the logs
    samples: list[list[float]] = field(default_factory=list)  # [step, mtime]: the first and the latest
    progress: dict[str, Any] | None = None

    @classmethod
    def load(cls, text: bytes) -> JobState:
        data = _loads(text)
        if not isinstance(data, dict) or data.pop("v", None) != CACHE_VERSION:
            return cls()
        try:
            return cls(**data)
        except TypeError:
            return cls()

    def dump(self) -> bytes:
        if self.done:  # read after the job ended: never read again, so only the result is kept
            final = {"v": CACHE_VERSION, "submitted": self.submitted, "done": True, "progress": self.progress}
            return json.dumps(final).encode()
        return json.dumps({"v": CACHE_VERSION, **asdict(self)}, separators=(",", ":")).encode()


def _loads(text: bytes) -> Any:
    try:
        import orjson  # several times faster on the thousand small files of a `list`
    except ImportError:
        return json.loads(text)
    return orjson.loads(text)


def _cache_file(paths: Paths, job_id: str) -> Path:
    return paths.cache_dir / "progress" / f"{job_id}.json"


def load_state(paths: Paths, record: JobRecord) -> tuple[JobState, bytes]:
    """What was read of this job before, and the cache file's bytes; nothing where the cache is missing,
    unreadable, of an earlier job of the same id, or read from other starts than the job's."""
    raw = b""
    try:
        raw = _cache_file(paths, record.job_id).read_bytes()
        state = JobState.load(raw)
    except (OSError, ValueError):  # orjson's JSONDecodeError is a ValueError too
        state = JobState()
    starts = record.metrics_start or ""
    if state.submitted != record.submit_time or (not state.done and state.starts != starts):
        state = JobState(submitted=record.submit_time, starts=starts)
    return state, raw


def forget(paths: Paths, job_ids: Iterable[str]) -> None:
    """Remove what was read of these jobs (``prune``: they are gone from the registry)."""
    for job_id in set(job_ids):
        try:
            _cache_file(paths, job_id).unlink(missing_ok=True)
        except OSError:
            pass


_checked_folders: set[Path] = set()


def save_state(paths: Paths, job_id: str, state: JobState, previous: bytes, *, touch: bool = False) -> None:
    """Keep what was read for next time, replaced atomically (a rename), not synced: losing a cache file to a
    crash costs only a re-read.  A cache that cannot be written costs the same.  Unchanged (a job that
    wrote nothing since ``previous`` was read): not written at all, only its time set anew with ``touch``
    (a cloud job's: when its log was last read, see :func:`cloud_log_age`)."""
    data = state.dump()
    if data == previous and (previous or not touch):
        if touch:
            try:
                os.utime(_cache_file(paths, job_id))
            except OSError:
                pass
        return
    folder = paths.cache_dir / "progress"
    partial = folder / f".{job_id}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        if folder not in _checked_folders:
            paths.private_dir(folder)
            _checked_folders.add(folder)
        fd = open_private_file(partial, os.O_WRONLY)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(partial, folder / f"{job_id}.json")
    except (OSError, OumiJobsError):
        partial.unlink(missing_ok=True)


def cloud_log_age(paths: Paths, job_id: str) -> float | None:
    """Seconds since a cloud job's log stream was last read for its progress; None: never."""
    try:
        return max(0.0, time.time() - os.stat(_cache_file(paths, job_id)).st_mtime)
    except OSError:
        return None
