"""Reading notification records: ``notifications`` and ``GET /api/notifications``."""

from __future__ import annotations

from oumi_jobs.errors import JobNotFoundError
from oumi_jobs.paths import Paths
from oumi_jobs.store.notifications import NotificationRecord
from oumi_jobs.store.registry import Registry


def notification_history(
    paths: Paths, *, job: str | None = None, status: str | None = None, limit: int = 20, offset: int = 0
) -> list[NotificationRecord]:
    """Records newest first; ``job``: a job id or unique prefix, or a sweep (whose ``sweep_done`` it names)."""
    with Registry.open(paths) as registry:
        job_id = None if job is None else _owner_id(registry, job)
        return registry.notifications(job_id=job_id, status=status, limit=limit, offset=offset)


def _owner_id(registry: Registry, ref: str) -> str:
    try:
        return registry.resolve(ref).job_id
    except JobNotFoundError:
        try:
            return registry.resolve_sweep(ref).sweep_id
        except JobNotFoundError:
            raise JobNotFoundError(f"no job or sweep {ref!r}") from None
