"""Jobs launched elsewhere, named by their cloud identity: ``--cloud C --cluster K --launcher-id N``.

Reading one (``status``, ``logs``) writes nothing: a job the registry does not
know is read through a record made for the occasion, so those commands still
work on a read-only registry.  Acting on one (``cancel``) adopts it first: it
is registered as an external cloud job under an id made from its identity (as
an imported oumi.mcp job is, :func:`~oumi_jobs.legacy.cloud_job_id`), so its
cancellation belongs to a job like any other's, with the same records, steps
and metrics.  A job already registered (launched here, imported, adopted
before) is that record: one identity is never two jobs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from oumi_jobs import bounds
from oumi_jobs.cloud import adapter
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.errors import ClusterNotFoundError, ConflictError, JobNotFoundError, UsageError
from oumi_jobs.events import log_event
from oumi_jobs.legacy import cloud_job_id
from oumi_jobs.paths import Paths
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.timestamps import now_iso
from oumi_jobs.views import external_record

IDENTITY_USAGE = "name a JOB, or give all of --cloud, --cluster and --launcher-id"


@dataclass(frozen=True)
class CloudIdentity:
    """Where a cloud job is: its cloud, its cluster and the launcher's id for it there."""

    cloud: str
    cluster: str
    launcher_job_id: str

    @classmethod
    def from_options(
        cls, jobs: Sequence[str], cloud: str | None, cluster: str | None, launcher_job_id: str | None
    ) -> CloudIdentity | None:
        """The identity the options give, or None where they give none; JOBs with an identity, or part of one,
        is a usage error (exit 2)."""
        parts = (cloud, cluster, launcher_job_id)
        if all(part is None for part in parts):
            return None
        if jobs or any(part is None or not part.strip() for part in parts):
            raise UsageError(IDENTITY_USAGE)
        return cls(cloud, cluster, launcher_job_id)  # type: ignore[arg-type]  # none is None, checked above


def job_or_identity(
    job: str | None, cloud: str | None, cluster: str | None, launcher_job_id: str | None
) -> str | CloudIdentity:
    """The one job a command names: its JOB, or its whole identity (else a usage error, exit 2)."""
    identity = CloudIdentity.from_options([job] if job is not None else [], cloud, cluster, launcher_job_id)
    if identity is not None:
        return identity
    if job is None:
        raise UsageError(IDENTITY_USAGE)
    return job


def registered(paths: Paths, identity: CloudIdentity) -> JobRecord | None:
    """The registered job with this identity, if any (the registry only: no cloud is asked)."""
    with Registry.open(paths) as registry:
        return registry.find_by_launcher_identity(identity.cloud, identity.cluster, identity.launcher_job_id)


def find_by_identity(
    paths: Paths, identity: CloudIdentity, *, cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S
) -> JobRecord:
    """The registered job with this identity, else the job its cloud reports (``job_id`` empty); nothing written.

    A cluster or job the cloud does not know raises :class:`JobNotFoundError`
    (exit 3); a cloud that cannot be asked, :class:`CloudUnreachableError` (5).
    """
    bounds.check_cloud_timeout(cloud_timeout_s)
    record = registered(paths, identity)
    if record is not None:
        return record
    where = f"cluster {identity.cluster} of {identity.cloud}"
    try:
        job = adapter.current().get_job(
            identity.cloud, identity.cluster, identity.launcher_job_id, timeout_s=cloud_timeout_s
        )
    except ClusterNotFoundError:
        raise JobNotFoundError(f"{where} does not exist: no job {identity.launcher_job_id} there") from None
    if job is None:
        raise JobNotFoundError(f"{where} reports no job {identity.launcher_job_id}")
    return external_record(job)


def adopt_by_identity(
    paths: Paths, identity: CloudIdentity, *, cloud_timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S
) -> JobRecord:
    """The registered job with this identity, registering the job its cloud reports first where none is."""
    found = find_by_identity(paths, identity, cloud_timeout_s=cloud_timeout_s)
    if found.job_id:
        return found
    job_id = cloud_job_id(identity.cloud, identity.cluster, identity.launcher_job_id)
    # Identity only, as for every job: its state (and so when it ended) is read live from its cloud.
    record = dataclasses.replace(found, job_id=job_id, submit_time=found.submit_time or now_iso(), end_time=None)
    with Registry.open(paths) as registry:
        inserted = registry.add_many_if_absent([record])  # a concurrent adoption registers it once
        stored = registry.find_by_launcher_identity(identity.cloud, identity.cluster, identity.launcher_job_id)
    if stored is None:
        raise ConflictError(f"cannot register job {identity.launcher_job_id} of {identity.cluster}: "
                            f"another job has the id {job_id}")  # fmt: skip
    if inserted:
        log_event(paths, "adopt", job_id=job_id, cloud=identity.cloud, cluster=identity.cluster,
                  launcher_job_id=identity.launcher_job_id)  # fmt: skip
    return stored
