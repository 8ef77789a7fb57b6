"""Removing old registry entries of finished jobs (the cron job)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from oumi_jobs.cloud import adapter, facts, survey
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.durations import parse_duration
from oumi_jobs.errors import CloudUnreachableError
from oumi_jobs.events import log_event
from oumi_jobs.paths import Paths
from oumi_jobs.progress import cache as progress_cache
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.timestamps import now, to_iso
from oumi_jobs.views import view_of


@dataclass(frozen=True)
class PruneResult:
    removed: list[str]
    kept_running: int
    dry_run: bool
    older_than_s: float
    logs_removed: bool


def prune(
    paths: Paths,
    *,
    older_than: str | timedelta = "7d",
    dry_run: bool = False,
    logs: bool = False,
    cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S,
) -> PruneResult:
    """Remove entries submitted before ``older_than`` ago whose jobs are done.

    A job that is not done is never removed, and neither is a done job that a
    job still waiting names in ``--after``.  Log files stay unless ``logs``.
    Old cloud jobs are asked of their clouds (all at once, each within
    ``cloud_timeout_s``); one whose cloud does not answer is kept, one whose
    cluster the cloud confirms gone is done (it ended with its cluster).
    """
    age = parse_duration(older_than) if isinstance(older_than, str) else older_than
    cutoff = to_iso(now() - age)
    with Registry.open(paths) as registry:
        candidates, kept = [], 0
        needed = registry.needed_by_waiting_jobs()
        old = registry.jobs(before=cutoff, newest_first=False)
        done_on_clouds = _done_on_their_clouds(old, cloud_timeout_s)
        gone = _gone_clusters([r for r in old if _launched(r) and _key(r) not in done_on_clouds], cloud_timeout_s)
        for record in old:
            if _launched(record):
                done = _key(record) in done_on_clouds or (record.cloud, record.cluster) in gone
            else:
                done = view_of(record).done
            if not done or record.job_id in needed:
                kept += 1
                continue
            candidates.append(record)
        if dry_run:
            removed = [record.job_id for record in candidates]
        else:
            removed = registry.delete(record.job_id for record in candidates)
    if not dry_run:
        deleted = set(removed)
        for record in candidates:
            if record.job_id not in deleted:
                continue
            paths.supervisor_log(record.job_id).unlink(missing_ok=True)
            progress_cache.forget(paths, [record.job_id])
            if logs:
                _remove_job_logs(paths, record.job_id, record.stdout_path, record.stderr_path)
        log_event(paths, "prune", removed=len(removed), kept_running=kept, older_than_s=age.total_seconds(), logs=logs)
    return PruneResult(removed, kept, dry_run, age.total_seconds(), logs and not dry_run)


def _launched(record: JobRecord) -> bool:
    return not record.is_local and bool(record.launcher_job_id)


def _key(record: JobRecord) -> tuple[str, str | None, str | None]:
    return (record.cloud, record.cluster, record.launcher_job_id)


def _gone_clusters(records: list[JobRecord], timeout_s: float) -> set[tuple[str, str | None]]:
    """``(cloud, cluster)`` of ``records`` whose cloud answered and no longer has the cluster (see
    ``facts.missing_cluster_is_gone``): their jobs ended with it (``status`` shows them ``lost``)."""
    gone = set()
    for cloud in sorted({r.cloud for r in records if facts.missing_cluster_is_gone(r.cloud)}):
        try:
            alive = {c.name for c in adapter.current().list_clusters(cloud, timeout_s=timeout_s)}
        except CloudUnreachableError:
            continue  # no answer: nothing is confirmed gone, the jobs are kept
        gone |= {(cloud, r.cluster) for r in records if r.cloud == cloud and r.cluster not in alive}
    return gone


def _done_on_their_clouds(records: list[JobRecord], timeout_s: float) -> set[tuple[str, str | None, str | None]]:
    """Identities of the launched cloud jobs among ``records`` that their clouds report done."""
    clouds = sorted({r.cloud for r in records if not r.is_local and r.launcher_job_id})
    if not clouds:
        return set()  # nothing to ask: oumi.launcher is not even imported

    answers = survey.list_clouds(clouds, timeout_s=timeout_s)
    return {(j.cloud, j.cluster, j.launcher_job_id) for a in answers.values() for j in a.jobs if j.done}


def _remove_job_logs(paths: Paths, job_id: str, *files: str | None) -> None:
    for name in files:
        if name:
            Path(name).unlink(missing_ok=True)
    try:
        paths.job_log_dir(job_id).rmdir()
    except OSError:
        pass  # not empty (the job wrote more there) or already gone
