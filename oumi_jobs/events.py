"""Structured event log: one JSON object per line in the state dir.

Every submit, cancel step and prune appends a line.  Each line is one
``write`` on a file opened with O_APPEND, so lines from concurrent processes
never interleave.  A failure to log never fails the operation being logged.
"""

from __future__ import annotations

import json
import os
from typing import Any

from oumi_jobs.paths import Paths, ensure_private_dir
from oumi_jobs.timestamps import now_iso


def log_event(paths: Paths, event: str, **fields: Any) -> None:
    line = json.dumps({"ts": now_iso(), "event": event, **fields}, default=str, separators=(",", ":")) + "\n"
    try:
        ensure_private_dir(paths.state_dir)
        fd = os.open(paths.event_log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except OSError:
        pass
