"""Queue operations: how many jobs a local cluster runs at once, and who waits ahead of whom.

The waiting and the slots themselves live in :mod:`oumi_jobs.local.queues`;
this module only reads and writes what the registry knows about a queue.  A
queue's order is the jobs' insertion order (``rowid``), that is submit order.
"""

from __future__ import annotations

from oumi_jobs.errors import UsageError
from oumi_jobs.local.procs import is_alive
from oumi_jobs.store.db import Database

MAX_PARALLEL = 1024


class QueueStore(Database):
    """Operations on local clusters' queues; :class:`oumi_jobs.store.registry.Registry` has them all."""

    def set_parallel(self, cluster: str, parallel: int) -> None:
        """How many jobs of ``cluster`` may run at once, from now on (for jobs already queued too)."""
        if not 1 <= parallel <= MAX_PARALLEL:
            raise UsageError(f"--parallel must be between 1 and {MAX_PARALLEL}")
        self._execute(
            "INSERT INTO clusters (name, parallel) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET parallel = excluded.parallel",
            (cluster, parallel),
        )

    def parallel_of(self, cluster: str) -> int:
        """The cluster's parallelism: 1 unless ``set_parallel`` said otherwise."""
        row = self._execute("SELECT parallel FROM clusters WHERE name = ?", (cluster,)).fetchone()
        return int(row[0]) if row else 1

    def waiting_ahead(self, job_id: str, cluster: str | None, *, enough: int | None = None) -> int:
        """Live jobs ready and waiting ahead of ``job_id`` in ``cluster``'s queue.

        A job counts only while its supervisor lives: a dead one's job will
        never start and must not hold the queue.  Counting stops at ``enough``
        (the caller only needs to know whether it is among the first few), so
        the rows further back are never read.
        """
        rows = self._execute(
            "SELECT supervisor_pid, supervisor_start_time, boot_id FROM jobs "
            "WHERE cloud = 'local' AND cluster = ? AND ready_at IS NOT NULL AND pid IS NULL AND end_time IS NULL "
            "AND rowid < (SELECT rowid FROM jobs WHERE job_id = ?) ORDER BY rowid",
            (cluster, job_id),
        )
        ahead = 0
        for sup_pid, sup_start, sup_boot in rows:
            if is_alive(sup_pid, sup_start, sup_boot):
                ahead += 1
                if enough is not None and ahead >= enough:
                    break
        return ahead

    def running_count(self, cluster: str | None) -> int:
        """Local jobs of ``cluster`` whose process was started and has no exit record yet."""
        row = self._execute(
            "SELECT COUNT(*) FROM jobs WHERE cloud = 'local' AND cluster = ? AND pid IS NOT NULL AND end_time IS NULL",
            (cluster,),
        ).fetchone()
        return int(row[0])
