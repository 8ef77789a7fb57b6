"""The detached finisher: carries a cancellation on after the command that owned it returned (``--no-wait``),
was interrupted (Ctrl-C), or died (adopted by ``status`` or ``cancel-status``)."""

from __future__ import annotations

import os
import sys

from oumi_jobs.cancel.recorder import FINISHER_CLOUD_TIMEOUT_ENV, Recorder
from oumi_jobs.cancel.takeover import resume
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.metrics import write_metrics
from oumi_jobs.paths import Paths
from oumi_jobs.polling import poll_until
from oumi_jobs.server import forwarding
from oumi_jobs.store.cancellations import CancellationTracker
from oumi_jobs.store.registry import Registry

# The process that starts this one makes it the record's owner right after starting it.
HANDOVER_WAIT_S = 10.0
HANDOVER_POLL_S = 0.02
# Exit status when the record was never handed over: whoever started us still owns it, or it is gone.
EXIT_NOT_OWNER = 1


def main(argv: list[str] | None = None) -> int:
    paths, cancellation_id = Paths.parse_helper_argv("oumi-jobs-cancel-finisher", "cancellation_id", argv)
    cloud_timeout_s = float(os.environ.get(FINISHER_CLOUD_TIMEOUT_ENV) or DEFAULT_CLOUD_TIMEOUT_S)
    forwarding.install(paths)  # a cloud job's cancel and verify run in the warm server, unless it is off
    with Registry.open(paths) as registry:
        tracker = CancellationTracker(registry)
        poll_until(
            HANDOVER_WAIT_S,
            lambda: tracker.get(cancellation_id) is None or tracker.is_owner(cancellation_id),
            HANDOVER_POLL_S,
        )
        record = tracker.get(cancellation_id)
        # Only the recorded owner may act: after the wait, a record not ours is someone else's to run.
        if record is None or not tracker.is_owner(cancellation_id):
            return EXIT_NOT_OWNER
        resume(Recorder(paths, registry, record, cloud_timeout_s=cloud_timeout_s))
        write_metrics(paths, registry, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
