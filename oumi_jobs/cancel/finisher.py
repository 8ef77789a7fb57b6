"""The detached finisher of a ``cancel --no-wait``: waits, escalates and verifies after the command returned."""

from __future__ import annotations

import os
import sys

from oumi_jobs.cancel.cloud_flow import CloudFlow
from oumi_jobs.cancel.local_flow import LocalFlow
from oumi_jobs.cancel.recorder import Recorder
from oumi_jobs.metrics import write_metrics
from oumi_jobs.paths import Paths
from oumi_jobs.polling import poll_until
from oumi_jobs.store.cancellations import CancellationTracker
from oumi_jobs.store.registry import Registry

# The cancelling command makes this process the record's owner right after starting it.
HANDOVER_WAIT_S = 10.0
HANDOVER_POLL_S = 0.02


def main(argv: list[str] | None = None) -> int:
    paths, cancellation_id = Paths.parse_helper_argv("oumi-jobs-cancel-finisher", "cancellation_id", argv)
    with Registry.open(paths) as registry:
        tracker = CancellationTracker(registry)
        # Wait until the cancelling command has handed the record over to us (or the record is gone).
        record = poll_until(
            HANDOVER_WAIT_S,
            lambda: tracker.get(cancellation_id),
            HANDOVER_POLL_S,
            until=lambda found: found is None or tracker.owner_pid(cancellation_id) == os.getpid(),
        )
        if record is None:
            return 1
        recorder = Recorder(paths, registry, record)
        if recorder.job().is_local:
            LocalFlow(recorder).finish()
        else:
            CloudFlow(recorder).finish()
        write_metrics(paths, registry, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
