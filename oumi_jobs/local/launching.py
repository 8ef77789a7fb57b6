"""The detached process that launches one cloud job through the cloud adapter (``oumi.launcher``).

``submit --cloud C`` returns at once; this process, started like a local
job's supervisor, runs ``launcher.up`` (minutes of provisioning) and records
the cluster and launcher job id.  The job is ``launching`` meanwhile.

The pre-launch race guard: a ``cancel`` that arrives while ``up`` runs only
persists ``cancel_requested`` and records its request; it does not wait for
``up`` beyond its own timeout.  When ``up`` returns, one transaction records
the launcher's identity *and* reads that flag; if it is set, this process
cancels the new job at once and verifies it ended, the steps going into the
same cancellation record, which this process finishes.  A cancel that
arrives while the launcher is still being imported stops ``up`` from
starting at all.

``up`` runs under a time limit (:func:`up_timeout_s`), and so does the cancel
right after it; a failure of either is recorded, in the job's end detail and
in the cancellation's steps, and ends the cancellation.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from oumi_jobs.cancel.cloud_flow import CloudFlow
from oumi_jobs.cancel.recorder import Recorder
from oumi_jobs.cloud import adapter
from oumi_jobs.cloud import schema as oumi_schema
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S, CloudAdapter
from oumi_jobs.cloud.model import LaunchResult
from oumi_jobs.configs import installed_oumi_version
from oumi_jobs.durations import parse_duration
from oumi_jobs.errors import CloudCallError, CloudUnreachableError
from oumi_jobs.local.detach import daemonize
from oumi_jobs.paths import Paths
from oumi_jobs.server import forwarding
from oumi_jobs.store.cancellations import CancellationStatus, StepStatus
from oumi_jobs.store.registry import Registry
from oumi_jobs.sweeps.handoff import hand_over, sweep_of

# Provisioning takes minutes, and SkyPilot may try zone after zone before it
# gives up; a launcher silent for this long is taken for hung.
UP_TIMEOUT_S = 3 * 3600.0
# Where a site knows its clouds answer sooner (or later): a duration, e.g. 20m.
UP_TIMEOUT_ENV = "OUMI_JOBS_LAUNCH_TIMEOUT"


def staged_config(paths: Paths, job_id: str) -> Path:
    return paths.state_dir / "launch" / job_id / "job.yaml"


def _launch_options_file(paths: Paths, job_id: str) -> Path:
    return paths.state_dir / "launch" / job_id / "options.json"


def write_launch_options(paths: Paths, job_id: str, options: Mapping[str, Any]) -> None:
    """Keep the launcher options of ``submit`` (``--autostop``, ``--down``) beside the staged config, for ``up``."""
    fd = os.open(_launch_options_file(paths, job_id), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(dict(options), handle)


def read_launch_options(paths: Paths, job_id: str) -> dict[str, Any]:
    """The launcher options ``submit`` kept for this job (none for a job submitted before they were kept)."""
    try:
        options: dict[str, Any] = json.loads(_launch_options_file(paths, job_id).read_text())
    except FileNotFoundError:
        return {}
    return options


def up_timeout_s() -> float:
    """How long ``launcher.up`` may take: ``$OUMI_JOBS_LAUNCH_TIMEOUT`` (90s, 20m, 3h), else 3 hours.

    A value that is not a duration raises UsageError, which fails the launch with that message.
    """
    text = os.environ.get(UP_TIMEOUT_ENV)
    if not text:
        return UP_TIMEOUT_S
    return parse_duration(text).total_seconds()


def _finish_cancellation(
    paths: Paths,
    registry: Registry,
    job_id: str,
    step: str,
    detail: str,
    *,
    status: CancellationStatus = CancellationStatus.COMPLETED,
) -> None:
    """End the job's cancellation, if one is under way, with its last step: what became of the launch."""
    recorder = Recorder.for_active_cancellation(paths, registry, job_id)
    if recorder is None:
        return
    failed = status is CancellationStatus.FAILED
    with recorder.step(step) as recorded:
        recorded.detail = detail
        if failed:
            recorded.status = StepStatus.FAILED
    recorder.finish(status, detail=detail if failed else None)


def _cancel_at_once(
    paths: Paths, registry: Registry, job_id: str, launched: LaunchResult, clouds: CloudAdapter
) -> None:
    """A cancel came while ``up`` ran: cancel the new job now and verify it, as the rest of that cancellation."""
    recorder = Recorder.for_active_cancellation(paths, registry, job_id)
    if recorder is not None:
        recorder.hand_over(os.getpid())  # ours to finish, whoever requested it (see CloudFlow._during_launch)
        CloudFlow(recorder).cancel_launched()  # records its own failures and ends the cancellation
        return
    # The cancellation ended meanwhile: the flag still means that no job may be left running.
    cloud, cluster, launcher_id = launched.job.cloud, launched.cluster, launched.launcher_job_id
    try:
        clouds.cancel(cloud, cluster, launcher_id, timeout_s=DEFAULT_CLOUD_TIMEOUT_S)
    except CloudUnreachableError as exc:
        print(f"oumi-jobs: could not cancel job {launcher_id} on {cluster}: {exc}", file=sys.stderr)


def _cancelled_before_up(paths: Paths, job_id: str) -> bool:
    """A cancel came before ``up`` started: the job is ended here and ``up`` never runs."""
    with Registry.open(paths) as registry:
        record = registry.get(job_id)
        if record is None:
            return True  # removed meanwhile: nobody is left to want it launched
        if not record.cancel_requested:
            return False
        registry.end_before_start(job_id, "cancelled before launch")
        _finish_cancellation(paths, registry, job_id, "prevent_start", "cancelled before launcher.up")
    return True


def launch(paths: Paths, job_id: str) -> int:
    with Registry.open(paths) as registry:
        record = registry.get(job_id)
    if record is None:
        return 1
    if _cancelled_before_up(paths, job_id):
        return 0
    clouds = adapter.current()
    clouds.prepare()  # the launcher's import, before the launch's time limit starts
    _write_settings_schema(paths)
    if _cancelled_before_up(paths, job_id):  # the import takes 10-15 s: a cancel may have come meanwhile
        return 0

    try:
        options = read_launch_options(paths, job_id)
        launched = clouds.up(
            str(staged_config(paths, job_id)), record.cluster, timeout_s=up_timeout_s(), options=options
        )
    except Exception as exc:  # the launcher's own message is what the user needs
        _record_failed_up(paths, job_id, record.cloud, exc)
        return 0
    with Registry.open(paths) as registry:
        if registry.record_launch(job_id, launched.cluster, launched.launcher_job_id, launched.job.cost_per_hour):
            _cancel_at_once(paths, registry, job_id, launched, clouds)
    return 0


def _record_failed_up(paths: Paths, job_id: str, cloud: str, exc: Exception) -> None:
    """``up`` failed: the job ends failed with the launcher's words, and a cancel waiting on it ends too.

    An ``up`` that raised started nothing, so that cancel is done; one that did
    not answer in time may yet have started a job, so that cancel failed.
    """
    end_detail, step_detail = _launch_failure(exc)
    status = CancellationStatus.COMPLETED
    if isinstance(exc, CloudUnreachableError) and not isinstance(exc, CloudCallError):
        status = CancellationStatus.FAILED
        step_detail += f"; whether {cloud} started the job is unknown: look with `oumi-jobs list --cloud {cloud}`"
    with Registry.open(paths) as registry:
        registry.record_exit(job_id, detail=end_detail)
        _finish_cancellation(paths, registry, job_id, "launcher_up", step_detail, status=status)


def _launch_failure(exc: Exception) -> tuple[str, str]:
    """The job's end detail and the cancellation step's detail for a failed ``up``: the launcher's own words."""
    if isinstance(exc, CloudCallError):  # the launcher raised: its error, as if it had been raised here
        return f"launch failed: {exc.error_type}: {exc.error_message}", f"launch failed: {exc.error_message}"
    if isinstance(exc, CloudUnreachableError):  # no answer within the time limit
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
    forwarding.install(paths)  # up and the cancel after it run in the warm server, unless it is off
    try:
        return launch(paths, job_id)
    except Exception as exc:
        print(f"oumi-jobs launcher of {job_id} failed: {exc!r}", file=sys.stderr)
        raise
    finally:
        hand_over(
            paths, job_id, sweep_of(paths, job_id)
        )  # a sweep's next child is launched as this launch ends, whatever its outcome


if __name__ == "__main__":
    sys.exit(main())
