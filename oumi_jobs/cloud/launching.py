"""The detached process that launches one cloud job through ``oumi.launcher``.

``submit --cloud C`` returns at once; this process, started like a local
job's supervisor, runs ``launcher.up`` (minutes of provisioning) and records
the cluster and launcher job id.  The job is ``launching`` meanwhile.

The pre-launch race guard: a ``cancel`` that arrives while ``up`` runs only
persists ``cancel_requested``.  When ``up`` returns, one transaction records
the launcher's identity *and* reads that flag; if it is set the new job is
cancelled at once and the steps go into the same cancellation record.
"""

from __future__ import annotations

import sys
from pathlib import Path

from oumi_jobs.cloud import launcher
from oumi_jobs.cloud import schema as oumi_schema
from oumi_jobs.local.detach import daemonize
from oumi_jobs.paths import Paths
from oumi_jobs.store.cancellations import CancellationStatus, CancellationTracker, StepStatus
from oumi_jobs.store.registry import Registry


def staged_config(paths: Paths, job_id: str) -> Path:
    return paths.state_dir / "launch" / job_id / "job.yaml"


def _finish_cancellation(registry: Registry, job_id: str, step: str, detail: str, final_state: str) -> None:
    tracker = CancellationTracker(registry)
    if not tracker.active_for_job(job_id):
        return
    record = tracker.latest_for_job(job_id)
    seq = tracker.begin_step(record.cancellation_id, step)
    tracker.end_step(record.cancellation_id, seq, StepStatus.COMPLETED, detail)
    tracker.finish(record.cancellation_id, CancellationStatus.COMPLETED, final_state=final_state)


def launch(paths: Paths, job_id: str) -> int:
    with Registry.open(paths) as registry:
        record = registry.get(job_id)
        if record is None:
            return 1
        if record.cancel_requested:
            registry.end_before_start(job_id, "cancelled before launch")
            _finish_cancellation(registry, job_id, "prevent_start", "cancelled before launcher.up", "cancelled")
            return 0
    oumi_launcher = launcher.load()
    from oumi.core.configs import JobConfig

    _write_settings_schema(paths)

    try:
        config = JobConfig.from_yaml(str(staged_config(paths, job_id)))
        _cluster, status = oumi_launcher.up(config, record.cluster)
    except Exception as exc:  # the launcher's own message is what the user needs
        with Registry.open(paths) as registry:
            registry.record_exit(job_id, detail=f"launch failed: {type(exc).__name__}: {exc}")
            _finish_cancellation(registry, job_id, "launcher_up", f"launch failed: {exc}", "failed")
        return 0
    with Registry.open(paths) as registry:
        if registry.record_launch(job_id, status.cluster, str(status.id)):
            answer = oumi_launcher.cancel(str(status.id), record.cloud, status.cluster)
            _finish_cancellation(
                registry, job_id, "launcher_cancel",
                f"cancelled the moment launcher.up returned (job {status.id}): {answer.status}", "cancelled",
            )  # fmt: skip
    return 0


def _write_settings_schema(paths: Paths) -> None:
    """oumi is imported here anyway: leave its settings for the next submit's checks (see oumi_schema)."""

    try:
        oumi_schema.write_cache(paths)
    except Exception as exc:  # a missing check must never fail a launch
        print(f"oumi-jobs: could not write oumi's settings schema: {exc!r}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    paths, job_id = Paths.parse_helper_argv("oumi-jobs-launch", "job_id", argv)
    daemonize(paths.supervisor_log(job_id))
    try:
        return launch(paths, job_id)
    except Exception as exc:
        print(f"oumi-jobs launcher of {job_id} failed: {exc!r}", file=sys.stderr)
        raise


if __name__ == "__main__":
    sys.exit(main())
