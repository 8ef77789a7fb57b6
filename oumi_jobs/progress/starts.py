"""Where a job's own lines begin in the files of an output folder that an earlier run may have used.

Oumi appends to ``metrics_rank*.jsonl`` when a run reuses an output folder,
so the lines before a job started are another run's.  Just before a local
job's process starts, its supervisor measures every such file (and
``trainer_state.json``, which an earlier run left whole); progress and series
then read only what came after.  The registry keeps the measure as JSON text,
one entry per attempt: ``{"1": {"metrics_rank0000.jsonl": [inode, size,
mtime_ns]}}``.  A file replaced or truncated since is the job's own from its
start; a job with no measure (recorded by an earlier release) reads whole.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from oumi_jobs.progress.parse import METRICS_GLOB
from oumi_jobs.store.registry import JobRecord

TRAINER_STATE = "trainer_state.json"

# What a file was at a job's start: its inode, its size (the offset of the job's first line), its mtime in ns.
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


def with_attempt(encoded: str | None, attempt: int, files: dict[str, FileStart]) -> str:
    """``encoded`` (a job's recorded starts, or None) with ``attempt``'s start set to ``files``."""
    starts = attempts(encoded)
    starts[attempt] = files
    return json.dumps({str(n): starts[n] for n in sorted(starts)}, separators=(",", ":"))


def attempts(encoded: str | None) -> dict[int, dict[str, FileStart]]:
    """Each attempt's start, by attempt number; nothing where none was recorded or the text is not ours."""
    try:
        data = json.loads(encoded) if encoded else {}
    except ValueError:
        return {}
    found: dict[int, dict[str, FileStart]] = {}
    for key, files in data.items() if isinstance(data, dict) else ():
        if isinstance(key, str) and key.isdigit() and isinstance(files, dict):
            found[int(key)] = {
                name: [int(v) for v in start]
                for name, start in files.items()
                if isinstance(start, list) and len(start) == 3 and all(isinstance(v, int) for v in start)
            }
    return found


def own_starts(record: JobRecord) -> dict[str, FileStart]:
    """Where the job's own lines begin: its first attempt's start (a later attempt's lines are its own too)."""
    found = attempts(record.metrics_start)
    return found[min(found)] if found else {}


def own_offset(start: FileStart | None, inode: int, size: int) -> int:
    """The offset of the job's first line in a file that is now ``inode`` of ``size`` bytes: 0 where the job
    found no such file, or the file was replaced or truncated since (all it holds then is the job's)."""
    if start is None or start[0] != inode or size < start[1]:
        return 0
    return start[1]


def left_before(start: FileStart | None, info: os.stat_result) -> bool:
    """Whether a file is still as an earlier run left it when the job started (so none of it is the job's)."""
    return start is not None and start == [info.st_ino, info.st_size, info.st_mtime_ns]
