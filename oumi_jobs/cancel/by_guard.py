"""A guard's stop: the cancellation service run for a job one of its guards stopped, in a process of its own.

The watcher of the job's guards starts it (:mod:`oumi_jobs.local.guard_watch`)
with the guard's words as the cancellation's reason: the job is cancelled as a
person's ``cancel`` would (its graceful signal and SIGCONT, the wait, SIGKILL,
the re-scan), recorded and audited the same way.  Its own process keeps the
supervisor lean: the service and all it imports load only when a guard fires.
Its dependants are not cancelled with it: they see it failed.
"""

from __future__ import annotations

import os
import sys

from oumi_jobs.cancel.service import CancelOptions, cancel_job
from oumi_jobs.errors import ExitCode, OumiJobsError
from oumi_jobs.exits import cancellation_exit_code
from oumi_jobs.guards import GUARD_REASON_ENV
from oumi_jobs.paths import Paths


def main(argv: list[str] | None = None) -> int:
    paths, job_id = Paths.parse_helper_argv("oumi-jobs-guard-stop", "job_id", argv)
    reason = os.environ.get(GUARD_REASON_ENV) or "guard"
    try:
        record = cancel_job(paths, job_id, CancelOptions(reason=reason, cascade=False))
    except OumiJobsError as exc:
        print(f"oumi-jobs: a guard could not cancel {job_id}: {exc}", file=sys.stderr)
        return int(ExitCode.FAILURE)
    return cancellation_exit_code(record)


if __name__ == "__main__":
    sys.exit(main())
