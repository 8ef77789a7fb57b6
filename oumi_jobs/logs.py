"""Reading a local job's log files: whole, the last N lines, or followed live.

A log file is never read through a symbolic link (one planted in the state
dir could show another file's contents).
"""

from __future__ import annotations

import codecs
import dataclasses
import os
import time
from collections import deque
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import BinaryIO

from oumi_jobs.cloud import adapter
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.errors import CloudCallError, JobNotFoundError, OumiJobsError, UsageError
from oumi_jobs.external import CloudIdentity, find_by_identity, registered
from oumi_jobs.paths import Paths, open_private_file
from oumi_jobs.status import get_status
from oumi_jobs.store.registry import JobRecord, Registry

_CHUNK = 64 * 1024


def log_path(
    paths: Paths, ref: str | CloudIdentity, *, stderr: bool = False, attempt: int | None = None
) -> tuple[str, Path | None]:
    """``(job_id, path)`` of the job's stdout or stderr log (no path: a cloud job's log is a stream), of its
    latest attempt or of ``attempt``.

    A job named by its cloud identity that is not registered has no id here: ``""``.
    """
    if isinstance(ref, CloudIdentity):
        known = registered(paths, ref)
        return (known.job_id if known else ""), None
    with Registry.open(paths) as registry:
        record = _of_attempt(registry.resolve(ref), attempt)
    if not record.is_local:
        return record.job_id, None
    chosen = record.stderr_path if stderr else record.stdout_path
    if not chosen:
        raise OumiJobsError(f"job {record.job_id} has no log files")
    return record.job_id, Path(chosen)


def _of_attempt(record: JobRecord, attempt: int | None) -> JobRecord:
    """The record as it was for ``attempt`` (its log files; for a cloud job, its launch): the latest for None."""
    if attempt is None or attempt == record.attempt:
        return record
    kept = next((a for a in record.earlier_attempts if a.attempt == attempt), None)
    if kept is None or attempt < 1:
        raise JobNotFoundError(f"job {record.job_id} has no attempt {attempt} (its attempts: 1 to {record.attempt})")
    return dataclasses.replace(
        record, stdout_path=kept.stdout_path, stderr_path=kept.stderr_path, cluster=kept.cluster,
        launcher_job_id=kept.launcher_job_id,
    )  # fmt: skip


def _tail_lines(path: Path, count: int) -> tuple[str, int]:
    """The last ``count`` lines of ``path`` and the offset where the file ended."""
    with _open(path) as handle:
        lines = deque(handle, maxlen=count) if count else deque()
        end = handle.tell()
    return b"".join(lines).decode(errors="replace"), end


def read_log(
    paths: Paths,
    ref: str | CloudIdentity,
    *,
    stderr: bool = False,
    tail: int | None = None,
    follow: bool = False,
    poll_interval: float = 0.2,
    heartbeat: bool = False,
    cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S,
    attempt: int | None = None,
) -> Iterator[str]:
    """Yield the log's text in chunks; with ``follow``, keep yielding until the job is done.

    ``ref`` is a job id (or unique prefix), or the cloud identity of a job launched here or elsewhere
    (nothing is written for one this registry does not know; one its cloud does not know: exit 3).
    ``heartbeat``: while following, also yield ``""`` after each poll that found nothing new, so a caller
    that streams the log (the server, to a client that may have gone away) gets a turn to stop.
    ``attempt``: that attempt's log (each attempt writes its own), not the latest's.
    """
    if tail is not None and tail < 0:
        raise UsageError("--tail must not be negative")
    if isinstance(ref, CloudIdentity):
        yield from cloud_log(find_by_identity(paths, ref, cloud_timeout_s=cloud_timeout_s), stderr=stderr, tail=tail)
        return
    with Registry.open(paths) as registry:
        record = _of_attempt(registry.resolve(ref), attempt)
    if not record.is_local:
        yield from cloud_log(record, stderr=stderr, tail=tail)
        return
    job_id, path = log_path(paths, ref, stderr=stderr, attempt=attempt)
    assert path is not None
    # One decoder for the whole read: a chunk may end inside a UTF-8 character.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    offset = 0
    if path.exists():
        if tail is not None:
            text, offset = _tail_lines(path, tail)
            if text:
                yield text
        else:
            offset = yield from _read_from(path, 0, decoder)
    elif not follow:
        return
    while follow:
        done = get_status(paths, job_id, with_progress=False).done
        before = offset
        if path.exists():
            offset = yield from _read_from(path, offset, decoder)
        if done:
            break
        if heartbeat and offset == before:
            yield ""
        time.sleep(poll_interval)
    if rest := decoder.decode(b"", final=True):
        yield rest


def cloud_log(record: JobRecord, *, stderr: bool = False, tail: int | None = None) -> Iterator[str]:
    """A cloud job's log, from its cluster's log stream (followed until the job ends, as the launcher does)."""

    if stderr:
        raise UsageError("a cloud job's log is one stream; --stderr is for local jobs")
    if not (record.launcher_job_id and record.cluster):
        raise OumiJobsError(f"job {record.job_id} has not been launched yet: no log to read")
    try:
        lines = adapter.current().log_stream(
            record.cloud, record.cluster, record.launcher_job_id, timeout_s=DEFAULT_CLOUD_TIMEOUT_S * 4
        )
    except CloudCallError as exc:
        if exc.error_type == "NotImplementedError":
            raise OumiJobsError(f"cloud {record.cloud!r} does not stream job logs") from None
        raise
    with lines:
        if tail is not None:
            yield "".join(deque(lines, maxlen=tail))
            return
        yield from lines


def _read_from(path: Path, offset: int, decoder: codecs.IncrementalDecoder) -> Generator[str, None, int]:
    """Yield the text after ``offset``; returns the new offset."""
    with _open(path) as handle:
        handle.seek(offset)
        while chunk := handle.read(_CHUNK):
            offset += len(chunk)
            if text := decoder.decode(chunk):
                yield text
    return offset


def _open(path: Path) -> BinaryIO:
    return os.fdopen(open_private_file(path, os.O_RDONLY, create=False), "rb")
