"""A job's attempts: the attempts that ended and were followed by another, and the step to the next one.

The jobs row is always the current attempt's (its start, its exit record, its
logs, its resume check): everything that reads a job reads it as before.  When
an attempt is retried, :meth:`AttemptStore.next_attempt` moves that attempt's
facts into the ``attempts`` table and clears them from the row, in one
transaction with the checks that decide whether it may (no cancel requested,
the attempt still the current one), so two processes never start the same
attempt and a cancel never races a retry.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from oumi_jobs.store.db import Database
from oumi_jobs.store.records import ATTEMPT_COLUMNS, AttemptRecord

_SELECT = f"SELECT job_id, {', '.join(ATTEMPT_COLUMNS)} FROM attempts"
# What a new attempt starts without: the last attempt's process, start, end and what was read of it.
_CLEARED = (
    "pid", "pgid", "process_start_time", "started_at", "exit_code", "exit_signal", "end_time", "end_detail",
    "failure", "containment", "cgroup", "final_progress", "resume",
)  # fmt: skip


class AttemptStore(Database):
    """Operations on attempts; :class:`oumi_jobs.store.registry.Registry` has them all."""

    def next_attempt(
        self,
        job_id: str,
        ended: AttemptRecord,
        *,
        retry_at: str,
        stdout_path: str | None,
        stderr_path: str | None,
        by_hand: bool = False,
        forget_launch: bool = False,
        claimed_by: tuple[int, float | None] | None = None,
    ) -> bool:
        """Keep ``ended`` (the current attempt, as it ended) and make the job wait for attempt ``ended.attempt
        + 1`` at ``retry_at``; True if done.  Refused when the job moved on meanwhile (another attempt) and,
        unless ``by_hand`` (``retry JOB``, which also clears a cancel), when a cancel was requested or the
        exit record was written.  ``forget_launch``: a cloud job's next attempt is a new launch.  ``claimed_by``:
        the process (pid, start time) that starts the next attempt, recorded as the job's supervisor until it
        records the one it starts, so nobody takes the attempt over meanwhile."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT attempt, cancel_requested, end_time FROM jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
            if row is None or row["attempt"] != ended.attempt:
                return False
            if not by_hand and (row["cancel_requested"] or row["end_time"] is not None):
                return False
            _insert(db, job_id, ended)
            cleared = [*_CLEARED, *(("launcher_job_id",) if forget_launch else ())]
            if claimed_by is not None:
                db.execute(
                    "UPDATE jobs SET supervisor_pid = ?, supervisor_start_time = ? WHERE job_id = ?",
                    (*claimed_by, job_id),
                )
            db.execute(
                f"UPDATE jobs SET {', '.join(f'{name} = NULL' for name in cleared)}, attempt = attempt + 1, "
                "retry_at = ?, stdout_path = ?, stderr_path = ?, cancel_requested = 0 WHERE job_id = ?",
                (retry_at, stdout_path, stderr_path, job_id),
            )
        return True

    def claim_retry(
        self, job_id: str, attempt: int, dead_pid: int | None, claimed_by: tuple[int, float | None]
    ) -> bool:
        """Take over a job waiting for ``attempt`` whose supervisor (``dead_pid``) died: True for the one
        caller whose claim lands; it is the job's supervisor (pid, start time) until it records the one it
        starts."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET supervisor_pid = ?, supervisor_start_time = ? WHERE job_id = ? AND attempt = ? "
                "AND retry_at IS NOT NULL AND end_time IS NULL AND pid IS NULL AND supervisor_pid IS ?",
                (*claimed_by, job_id, attempt, dead_pid),
            )
            return cursor.rowcount == 1

    def attempt_started(self, job_id: str, attempt: int) -> None:
        """The attempt's process is starting: the job no longer waits to retry."""
        self._execute("UPDATE jobs SET retry_at = NULL WHERE job_id = ? AND attempt = ?", (job_id, attempt))

    def attempts_of(self, job_id: str) -> list[AttemptRecord]:
        """The job's earlier attempts, oldest first."""
        rows = self._execute(f"{_SELECT} WHERE job_id = ? ORDER BY attempt", (job_id,)).fetchall()
        return [_attempt(row) for row in rows]

    def jobs_to_watch(self, *, every_cloud_job: bool = False) -> list[tuple[str, bool]]:
        """``(job id, is local)`` of the jobs the warm server watches, oldest first: cloud jobs not cancelled
        that have retries left, wait for their next attempt or have a guard; cloud jobs whose end is to be
        notified (URLs of their own, or any with ``every_cloud_job``: config.toml has default URLs) until
        that end is recorded; and local jobs waiting for their next attempt (whose supervisor may have died)."""
        rows = self._execute(
            f"SELECT job_id, cloud = 'local' FROM jobs WHERE end_time IS NULL AND ("
            f"(cancel_requested = 0 AND (retry_at IS NOT NULL OR (cloud != 'local' AND ({_RETRIES_LEFT} OR "
            f"{_GUARDED})))) OR (cloud != 'local' AND source != 'external' AND (:every OR {_NOTIFIES}) AND "
            f"NOT {_END_NOTIFIED})) ORDER BY submit_time",
            {"every": int(every_cloud_job)},
        ).fetchall()
        return [(row[0], bool(row[1])) for row in rows]

    def keep_guard_failure(self, job_id: str, attempt: int, failure: str) -> bool:
        """A cloud job's guard is about to stop it: keep the guard's failure on the job, so that once its cloud
        reports it cancelled it reads failed, with that failure (a cloud job has no exit record to hold it).
        False when someone's cancel came first or the attempt moved on: it then ends as that cancel asked."""
        cursor = self._execute(
            "UPDATE jobs SET failure = ? WHERE job_id = ? AND attempt = ? AND cancel_requested = 0 "
            "AND end_time IS NULL",
            (failure, job_id, attempt),
        )
        return cursor.rowcount == 1

    def release_guard_cancel(self, job_id: str, attempt: int) -> None:
        """A guard's ``retry`` cancelled the attempt: that cancel stands for nobody's wish to end the job, so its
        flag is cleared and the attempt is retried as a failure (the guard's, kept on the job)."""
        self._execute(
            "UPDATE jobs SET cancel_requested = 0 WHERE job_id = ? AND attempt = ? AND failure IS NOT NULL",
            (job_id, attempt),
        )


_RETRIES_LEFT = "COALESCE(json_extract(policy, '$.retries'), 0) + 1 > attempt"
# JobPolicy.guarded, read from the policy column.
_GUARDED = (
    "(json_extract(policy, '$.stall_after_s') IS NOT NULL OR COALESCE(json_extract(policy, '$.stall_auto'), 0) "
    "OR json_extract(policy, '$.max_duration_s') IS NOT NULL OR json_extract(policy, '$.max_cost') IS NOT NULL "
    "OR COALESCE(json_extract(policy, '$.nan_guard'), 0))"
)
_NOTIFIES = "COALESCE(json_array_length(policy, '$.notify'), 0) > 0"
_END_NOTIFIED = (
    "EXISTS (SELECT 1 FROM notifications n WHERE n.job_id = jobs.job_id AND n.attempt = jobs.attempt "
    "AND n.event IN ('succeeded', 'failed', 'cancelled', 'lost'))"
)


def _attempt(row: Sequence[object]) -> AttemptRecord:
    return AttemptRecord(*row[1:])  # type: ignore[arg-type]


def _insert(db: sqlite3.Connection, job_id: str, ended: AttemptRecord) -> None:
    values = {name: getattr(ended, name) for name in ATTEMPT_COLUMNS}
    columns = ", ".join(["job_id", *values])
    marks = ", ".join(["?"] * (len(values) + 1))
    db.execute(f"INSERT OR REPLACE INTO attempts ({columns}) VALUES ({marks})", (job_id, *values.values()))
