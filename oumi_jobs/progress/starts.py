"""Where a job's own lines begin and end in the files of an output folder that other runs may share.

Oumi appends to ``metrics_rank*.jsonl`` when a run reuses an output folder,
so the lines before a job started are another run's.  Just before a local
job's process starts, its supervisor measures every such file (and
``trainer_state.json``, which an earlier run left whole); progress and series
then read only what came after, and, once it ended (measured again as its
process ends), nothing a later run appended.  The registry keeps the measures
as JSON text, one entry per attempt: ``{"1": {"start": {"metrics_rank0000.jsonl":
[inode, size, mtime_ns]}, "end": {...}}}``.  A file replaced or truncated
since is the job's own from its start; a job with no measure (recorded by an
earlier release) reads whole.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from oumi_jobs.progress.parse import METRICS_GLOB
from oumi_jobs.store.registry import JobRecord

TRAINER_STATE = "trainer_state.json"

# A file as measured at a job's start or end: its inode, its size (the offset of a line boundary), its mtime in ns.
FileStart = list[int]


def measure(output_dir: Path | None) -> dict[str, FileStart]:
    """The files of ``output_dir`` that a job's progress reads, as they are now (none: an empty dict)."""
    if output_dir is None:
        return {}
    try:
        names = [e.name for e in os.scandir(output_dir) if METRICS_GLOB.match(e.name) or e.name == TRAINER_STATE]
    except OSError:
        return {}
    found: dict[str, FileStart] = {}
    for name in names:
        try:
            info = os.stat(output_dir / name, follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            found[name] = [info.st_ino, info.st_size, info.st_mtime_ns]
    return found


def with_attempt(encoded: str | None, attempt: int, files: dict[str, FileStart], *, end: bool = False) -> str:
    """``encoded`` (a job's recorded starts, or None) with ``attempt``'s start (or ``end``) set to ``files``."""
    recorded = attempts(encoded)
    recorded.setdefault(attempt, {})["end" if end else "start"] = files
    return json.dumps({str(n): recorded[n] for n in sorted(recorded)}, separators=(",", ":"))


def attempts(encoded: str | None) -> dict[int, dict[str, dict[str, FileStart]]]:
    """Each attempt's ``start`` (and ``end``, once it ended), by attempt number; nothing where none was
    recorded or the text is not ours."""
    try:
        data = json.loads(encoded) if encoded else {}
    except ValueError:
        return {}
    found: dict[int, dict[str, dict[str, FileStart]]] = {}
    for key, ends in data.items() if isinstance(data, dict) else ():
        if isinstance(key, str) and key.isdigit() and isinstance(ends, dict):
            found[int(key)] = {which: _files(files) for which, files in ends.items() if which in ("start", "end")}
    return found


def _files(files: object) -> dict[str, FileStart]:
    if not isinstance(files, dict):
        return {}
    return {
        name: [int(v) for v in start]
        for name, start in files.items()
        if isinstance(start, list) and len(start) == 3 and all(isinstance(v, int) for v in start)
    }


@dataclass(frozen=True)
class OwnLines:
    """Where a job's own lines are in the files of its output folder: from its first attempt's start to its
    last attempt's end (None while that attempt runs, or where its end was never recorded)."""

    start: dict[str, FileStart] = field(default_factory=dict)
    end: dict[str, FileStart] | None = None

    def span(self, name: str, inode: int, size: int) -> tuple[int, int]:
        """The job's bytes in a file that is now ``inode`` of ``size`` bytes, as ``(begin, stop)``."""
        stop = self.end.get(name) if self.end is not None else None
        if self.end is not None and stop is None:
            return 0, 0  # the job ended with no such file: what it holds now is a later run's
        if stop is not None and stop[0] == inode and stop[1] <= size:
            return own_offset(self.start.get(name), stop[0], stop[1]), stop[1]
        return own_offset(self.start.get(name), inode, size), size

    def rewritten_by_it(self, name: str, info: os.stat_result) -> bool:
        """Whether a file rewritten whole (trainer_state.json) is the job's: changed since its start, and as it
        ended, where its end is known."""
        if left_before(self.start.get(name), info):
            return False
        return self.end is None or left_before(self.end.get(name), info)


def own_lines(record: JobRecord) -> OwnLines:
    """Where the job's own lines are (everything, for a job recorded before this was measured)."""
    found = attempts(record.metrics_start)
    if not found:
        return OwnLines()
    first, last = found[min(found)], found[max(found)]
    return OwnLines(first.get("start", {}), last.get("end"))


def own_offset(start: FileStart | None, inode: int, size: int) -> int:
    """The offset of the job's first line in a file that is now ``inode`` of ``size`` bytes: 0 where the job
    found no such file, or the file was replaced or truncated since (all it holds then is the job's)."""
    if start is None or start[0] != inode or size < start[1]:
        return 0
    return start[1]


def left_before(start: FileStart | None, info: os.stat_result) -> bool:
    """Whether a file is still as it was measured (``start``): the same inode, size and mtime."""
    return start is not None and start == [info.st_ino, info.st_size, info.st_mtime_ns]
