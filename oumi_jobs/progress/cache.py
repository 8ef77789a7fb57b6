"""What was read of each job's progress, kept for next time: a small file per job and an index of finished jobs.

A small cache file per job (under ``paths.cache_dir``, replaced atomically)
keeps the offsets read so far and the last values parsed, so a running job
costs only what it wrote since the last look, and a job read after it ended
is never read again (``list`` over thousands of finished jobs reads one
index).  The cache is only a cache: losing it costs a re-read, and a file
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
    gone = set(job_ids)
    for job_id in gone:
        try:
            _cache_file(paths, job_id).unlink(missing_ok=True)
        except OSError:
            pass
    index = _final_index(paths)
    kept = [line for line in _index_lines(index) if _index_entry(line)[0] not in gone]
    partial = index.with_name(f".{index.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = open_private_file(partial, os.O_WRONLY)
        with os.fdopen(fd, "wb") as handle:
            handle.write(b"".join(kept))
        os.replace(partial, index)
    except (OSError, OumiJobsError):
        partial.unlink(missing_ok=True)  # a longer index costs only its reading: the per-job files are gone


# The final progress of every job read after it ended, a line each, so that the lean `list --json` reads one
# file for thousands of finished jobs rather than a file each.  Appended to (a line is one write); the per-job
# files stay the source for a job whose line is missing or torn.
FINAL_INDEX = "final.jsonl"


def _final_index(paths: Paths) -> Path:
    return paths.cache_dir / "progress" / FINAL_INDEX


def _index_lines(index: Path) -> list[bytes]:
    try:
        return index.read_bytes().splitlines(keepends=True)
    except OSError:
        return []


def _index_entry(line: bytes) -> tuple[str | None, Any]:
    """``(job id, entry)`` of one index line; ``(None, None)`` for a torn or foreign one."""
    try:
        entry = _loads(line)
    except ValueError:
        return None, None
    return (entry.get("job"), entry) if isinstance(entry, dict) else (None, None)


def _append_final(paths: Paths, job_id: str, state: JobState) -> None:
    line = json.dumps({"job": job_id, "submitted": state.submitted, "progress": state.progress}) + "\n"
    try:
        fd = open_private_file(_final_index(paths))
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except (OSError, OumiJobsError):
        pass  # the per-job file still says it


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
        return
    if state.done:
        _append_final(paths, job_id, state)


def cached_documents(
    paths: Paths, jobs: Iterable[tuple[str, str | None]]
) -> dict[str, tuple[bool, dict[str, Any] | None]]:
    """For each ``(job id, submit time)``: ``(final, progress document)`` as last read, final when read after
    the job ended; ``(False, None)`` where not read, or read for an earlier job of that id.

    The lean ``list --json`` asks this of every finished job, so it reads the
    small files directly, without building a state for each.
    """
    folder = os.path.join(paths.cache_dir, "progress")
    try:
        cached = set(os.listdir(folder))  # one read of the folder, not a failed open per job never read
    except OSError:
        cached = set()
    final: dict[str, Any] = {}
    for line in _index_lines(_final_index(paths)) if FINAL_INDEX in cached else ():
        job, entry = _index_entry(line)
        if job is not None:
            final[job] = entry  # the last line of a job wins
    found: dict[str, tuple[bool, dict[str, Any] | None]] = {}
    for job_id, submitted in jobs:
        entry = final.get(job_id)
        if entry is not None and entry.get("submitted") == submitted:
            found[job_id] = (True, entry.get("progress"))
            continue
        if job_id + ".json" not in cached:
            found[job_id] = (False, None)
            continue
        try:
            with open(os.path.join(folder, job_id + ".json"), "rb") as handle:
                data = _loads(handle.read())
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict) and data.get("v") == CACHE_VERSION and data.get("submitted") == submitted:
            found[job_id] = (data.get("done") is True, data.get("progress"))
        else:
            found[job_id] = (False, None)
    return found


def cloud_log_age(paths: Paths, job_id: str) -> float | None:
    """Seconds since a cloud job's log stream was last read for its progress; None: never."""
    try:
        return max(0.0, time.time() - os.stat(_cache_file(paths, job_id)).st_mtime)
    except OSError:
        return None
