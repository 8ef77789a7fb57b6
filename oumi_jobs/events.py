"""Structured event log: one JSON object per line in the state dir.

Every submit, cancel step and prune appends a line.  Each line is one
``write`` on a file opened with O_APPEND, so lines from concurrent processes
never interleave.  The file is never opened through a symbolic link.  A failure to log never fails the operation being logged.
"""

from __future__ import annotations

import json
import os
from typing import Any

from oumi_jobs.errors import OumiJobsError
from oumi_jobs.paths import Paths, open_private_file
from oumi_jobs.timestamps import now_iso


def log_event(paths: Paths, event: str, **fields: Any) -> None:
    line = json.dumps({"ts": now_iso(), "event": event, **fields}, default=str, separators=(",", ":")) + "\n"
    try:
        paths.private_dir(paths.state_dir)
        fd = open_private_file(paths.event_log_file)  # never through a planted symbolic link
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except (OSError, OumiJobsError):
        pass
