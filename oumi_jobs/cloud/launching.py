"""The detached process that launches one cloud job through the cloud adapter (``oumi.launcher``).

``submit --cloud C`` returns at once; this process, started like a local
job's supervisor, runs ``launcher.up`` (minutes of provisioning) and records
the cluster and launcher job id.  The job is ``launching`` meanwhile.

The pre-launch race guard: a ``cancel`` that arrives while ``up`` runs only
persists ``cancel_requested``.  When ``up`` returns, one transaction records
the launcher's identity *and* reads that flag; if it is set the new job is
cancelled at once and the steps go into the same cancellation record.

Both calls run under a time limit, ``up``'s a generous one: provisioning
takes minutes, but a launcher that never returns must not leave the job
``launching`` for ever.
"""

from __future__ import annotations

import sys
from pathlib import Path

from oumi_jobs.cancel.recorder import Recorder
from oumi_jobs.cloud import adapter
from oumi_jobs.cloud import schema as oumi_schema
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S, CloudAdapter
from oumi_jobs.cloud.model import LaunchResult
from oumi_jobs.configs import installed_oumi_version
from oumi_jobs.errors import CloudCallError, CloudUnreachableError
from oumi_jobs.local.detach import daemonize
from oumi_jobs.paths import Paths
from oumi_jobs.store.cancellations import CancellationStatus
from oumi_jobs.store.registry import Registry

# Provisioning takes minutes, and SkyPilot may try zone after zone before it
# gives up; a launcher silent for this long is taken for hung.
UP_TIMEOUT_S = 3 * 3600.0


def staged_config(paths: Paths, job_id: str) -> Path:
    return paths.state_dir / "launch" / job_id / "job.yaml"


def _finish_cancellation(
    paths: Paths, registry: Registry, job_id: str, step: str, detail: str, final_state: str
) -> None:
    """End the job's cancellation, if one is under way, with its last step: the launch did not happen."""
    recorder = Recorder.for_active_cancellation(paths, registry, job_id)
    if recorder is None:
        return
    recorder.note(step, detail)
    recorder.finish(CancellationStatus.COMPLETED, final_state=final_state)


def _cancel_at_once(
    paths: Paths, registry: Registry, job_id: str, cloud: str, launched: LaunchResult, clouds: CloudAdapter
) -> None:
    """A cancel came while ``up`` ran: cancel the new job now, as the last step of that cancellation."""
    launcher_id = launched.launcher_job_id

    def cancel() -> str:
        answer = clouds.cancel(cloud, launched.cluster, launcher_id, timeout_s=DEFAULT_CLOUD_TIMEOUT_S)
        return f"cancelled the moment launcher.up returned (job {launcher_id}): {answer.status}"

    recorder = Recorder.for_active_cancellation(paths, registry, job_id)
    if recorder is None:  # the cancellation ended meanwhile: the flag still means no job is left running
        cancel()
        return
    # An error fails the step and ends this process; a cancel waiting on the launch then cancels the job
    # itself (see cancel/cloud_flow.py).
    with recorder.step("launcher_cancel") as step:
        step.detail = cancel()
    recorder.finish(CancellationStatus.COMPLETED, final_state="cancelled")


def launch(paths: Paths, job_id: str) -> int:
    with Registry.open(paths) as registry:
        record = registry.get(job_id)
        if record is None:
            return 1
        if record.cancel_requested:
            registry.end_before_start(job_id, "cancelled before launch")
            _finish_cancellation(paths, registry, job_id, "prevent_start", "cancelled before launcher.up", "cancelled")
            return 0
    clouds = adapter.current()
    clouds.prepare()  # the launcher's import, before the launch's time limit starts
    _write_settings_schema(paths)

    try:
        launched = clouds.up(str(staged_config(paths, job_id)), record.cluster, timeout_s=UP_TIMEOUT_S)
    except Exception as exc:  # the launcher's own message is what the user needs
        end_detail, step_detail = _launch_failure(exc)
        with Registry.open(paths) as registry:
            registry.record_exit(job_id, detail=end_detail)
            _finish_cancellation(paths, registry, job_id, "launcher_up", step_detail, "failed")
        return 0
    with Registry.open(paths) as registry:
        if registry.record_launch(job_id, launched.cluster, launched.launcher_job_id):
            _cancel_at_once(paths, registry, job_id, record.cloud, launched, clouds)
    return 0


def _launch_failure(exc: Exception) -> tuple[str, str]:
    """The job's end detail and the cancellation step's detail for a failed ``up``: the launcher's own words."""
    if isinstance(exc, CloudCallError):  # the launcher raised: its error, as if it had been raised here
        return f"launch failed: {exc.error_type}: {exc.error_message}", f"launch failed: {exc.error_message}"
    if isinstance(exc, CloudUnreachableError):  # no answer within UP_TIMEOUT_S
        return f"launch failed: {exc}", f"launch failed: {exc}"
    return f"launch failed: {type(exc).__name__}: {exc}", f"launch failed: {exc}"


def _write_settings_schema(paths: Paths) -> None:
    """oumi is imported here anyway: leave its settings for the next submit's checks (see oumi_schema)."""

    try:
        oumi_schema.write_cache(
            paths,
            installed_oumi_version(),
            lambda: adapter.current().settings_schema(timeout_s=DEFAULT_CLOUD_TIMEOUT_S),
        )
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
