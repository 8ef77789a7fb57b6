"""The detached finisher of a ``cancel --no-wait``: waits, escalates and verifies after the command returned."""

from __future__ import annotations

import os
import sys
import time

from oumi_jobs.cancel.service import POLL_S, _Run
from oumi_jobs.metrics import write_metrics
from oumi_jobs.paths import Paths
from oumi_jobs.store.cancellations import CancellationTracker
from oumi_jobs.store.registry import Registry


def main(argv: list[str] | None = None) -> int:
    paths, cancellation_id = Paths.parse_helper_argv("oumi-jobs-cancel-finisher", "cancellation_id", argv)
    with Registry.open(paths) as registry:
        tracker = CancellationTracker(registry)
        deadline = time.monotonic() + 10
        # Wait until the submitting process has handed the record over to us.
        while (record := tracker.get(cancellation_id)) is not None and time.monotonic() < deadline:
            if tracker.owner_pid(cancellation_id) == os.getpid():
                break
            time.sleep(POLL_S)
        if record is None:
            return 1
        run = _Run(paths, registry, record)
        if run.job().is_local:
            run.finish_local()
        else:
            run.finish_cloud()
        write_metrics(paths, registry, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
