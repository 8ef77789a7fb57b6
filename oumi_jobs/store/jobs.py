"""Job operations: the jobs table, its dependencies and recorded processes, and the rules of a job's life.

Who writes ``end_time`` (the exit record: ``end_time``, ``end_detail``,
``exit_code``, ``exit_signal``)?  Only the operations in the "life of a job"
section below, and the first writer wins: once a job has an exit record,
nothing overwrites it.

* :meth:`JobStore.record_exit`: the job ended, or will never run.  Called by
  the supervisor (``local/supervisor.py``: the job's exit code or signal; exit
  127 when its command cannot be started), by the cloud launching process
  (``local/launching.py``: ``launcher.up`` failed), and by a local
  cancellation whose job's supervisor died before writing it
  (``cancel/local_flow.py``: no process of the job is left, so the job reads
  ``cancelled`` rather than ``lost``).  A submit whose supervisor or launching
  process cannot be started deletes the record instead
  (``submitting._taken_back_on_failure``): the job never existed.
* :meth:`JobStore.end_before_start`: the job will never start because it was
  cancelled or a dependency failed; it sets ``cancel_requested`` too, in the
  same transaction.  Called by the queue (``local/queues.wait_for_turn``) and by
  the cloud launching process (a cancel requested before ``launcher.up``).
* :meth:`JobStore.claim_start`: the supervisor's last word before it starts the
  job's process; a cancel that got in first ends the job here instead.

Who writes ``cancel_requested``?  ``CancellationTracker.claim``
(``store/cancellations.py``, every cancel) and :meth:`JobStore.end_before_start`;
:meth:`JobStore.record_exit` clears it for a job its own guard stopped (it failed).
:meth:`JobStore.record_launch` reads it in the transaction that records a
cloud job's launcher identity: the pre-launch cancel race guard.

``add``/``add_many_if_absent`` store whole records as given (the legacy import,
tests); ``update`` is for identity fields (pids, ``ready_at``) and the package
never passes it an exit record.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from oumi_jobs.errors import AmbiguousJobError, ConflictError, JobNotFoundError, UsageError
from oumi_jobs.store.db import Database
from oumi_jobs.store.records import (
    ATTEMPT_COLUMNS,
    RECORD_COLUMNS,
    SELECT_JOB_COLUMNS,
    SELECT_JOB_COLUMNS_NO_ARGV,
    AttemptRecord,
    JobRecord,
    record_to_row,
    row_to_record,
    to_column,
)
from oumi_jobs.timestamps import now_iso

# Enough candidates to report an ambiguous prefix, without reading every id.
_RESOLVE_CANDIDATES = 51


class JobStore(Database):
    """Operations on jobs; :class:`oumi_jobs.store.registry.Registry` has them all."""

    # -- the life of a job: the only writers of the exit record ----------------
    def record_exit(
        self,
        job_id: str,
        *,
        exit_code: int | None = None,
        exit_signal: int | None = None,
        detail: str | None = None,
        end_time: str | None = None,
        failure: str | None = None,
        stopped_by_guard: bool = False,
    ) -> bool:
        """Write the job's exit record, ended at ``end_time`` (default now), unless it has one (the first writer
        wins); True if written.  A supervisor that could only write it later (a full disk) gives the real end.

        ``stopped_by_guard``: one of the job's guards cancelled it, and ``failure`` says which: the job
        failed (stalled, over time, over budget, diverged) rather than being cancelled by someone, so the
        cancel flag the guard's cancellation set is cleared in the same transaction."""
        with self._transaction() as db:
            written = _write_exit(
                db, job_id, exit_code=exit_code, exit_signal=exit_signal, detail=detail, end_time=end_time,
                failure=failure,
            )  # fmt: skip
            if written and stopped_by_guard:
                db.execute("UPDATE jobs SET cancel_requested = 0 WHERE job_id = ?", (job_id,))
            return written

    def end_before_start(self, job_id: str, detail: str) -> bool:
        """The job will never start: flag it cancelled and write its exit record, in one transaction.

        True if this wrote the exit record (the job had none yet).
        """
        with self._transaction() as db:
            db.execute("UPDATE jobs SET cancel_requested = 1 WHERE job_id = ?", (job_id,))
            return _write_exit(db, job_id, detail=detail)

    def claim_start(self, job_id: str) -> bool:
        """May the supervisor start the job now?  Decided in one transaction against a concurrent cancel.

        No if the job is gone or already has an exit record; no if a cancel was
        requested, which then ends the job ("cancelled before it started").
        """
        with self._transaction() as db:
            row = db.execute("SELECT cancel_requested, end_time FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None or row["end_time"] is not None:
                return False
            if row["cancel_requested"]:
                _write_exit(db, job_id, detail="cancelled before it started")
                return False
        return True

    def record_launch(
        self, job_id: str, cluster: str, launcher_job_id: str, cost_per_hour: float | None = None
    ) -> bool:
        """Record where ``launcher.up`` put a cloud job, and its cluster's price; returns whether a cancel was
        requested meanwhile.

        One transaction writes the identity and reads the flag, so a cancel
        either lands before it (and is returned here) or finds the identity.
        """
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET cluster = ?, launcher_job_id = ?, started_at = ?, cost_per_hour = ? WHERE job_id = ?",
                (cluster, launcher_job_id, now_iso(), cost_per_hour, job_id),
            )
            row = db.execute("SELECT cancel_requested FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return row is not None and bool(row[0])  # a job pruned meanwhile has nobody left to cancel it

    # -- writing records ---------------------------------------------------------
    def add(self, record: JobRecord) -> None:
        row = record_to_row(record)
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM jobs WHERE job_id = ?", (record.job_id,)).fetchone():
                raise ConflictError(f"a job with id {record.job_id!r} already exists; choose another --name")
            db.execute(_insert_job_sql(row), row)
            db.executemany(
                "INSERT INTO job_dependencies (job_id, depends_on) VALUES (?, ?)",
                [(record.job_id, dep) for dep in record.depends_on],
            )

    def add_many_if_absent(self, records: Iterable[JobRecord]) -> list[str]:
        """Insert the records whose ids and cloud identities are not present yet; returns the ids inserted.

        A cloud job already registered under another id (cloud, cluster and
        launcher job id) is present: importing it twice would show it twice.
        """
        inserted = []
        with self._transaction() as db:
            for record in records:
                if (
                    record.launcher_job_id is not None
                    and db.execute(
                        "SELECT 1 FROM jobs WHERE cloud = ? AND cluster IS ? AND launcher_job_id = ?",
                        (record.cloud, record.cluster, record.launcher_job_id),
                    ).fetchone()
                ):
                    continue
                row = record_to_row(record)
                if db.execute(_insert_job_sql(row, or_ignore=True), row).rowcount:
                    inserted.append(record.job_id)
        return inserted

    def update(self, job_id: str, **changes: object) -> None:
        """Set identity fields of one job (never a status; exit records go through the operations above)."""
        unknown = set(changes) - set(RECORD_COLUMNS)
        if unknown:
            raise ValueError(f"not registry columns: {sorted(unknown)}")
        params = {name: to_column(name, value) for name, value in changes.items()} | {"job_id": job_id}
        assignments = ", ".join(f"{name} = :{name}" for name in changes)
        with self._transaction() as db:
            db.execute(f"UPDATE jobs SET {assignments} WHERE job_id = :job_id", params)

    def record_processes(self, job_id: str, processes: Iterable[tuple[int, float]]) -> None:
        """Remember descendants seen while the job ran, so cancel finds them after they leave its group."""
        with self._transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO job_processes (job_id, pid, start_time) VALUES (?, ?, ?)",
                [(job_id, pid, start) for pid, start in processes],
            )

    def delete(self, job_ids: Iterable[str]) -> list[str]:
        """Delete the given jobs; returns those that were present."""
        removed = []
        with self._transaction() as db:
            for job_id in job_ids:
                if db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,)).rowcount:
                    removed.append(job_id)
                    # Its notifications go with it (no foreign key: a sweep's are under the sweep's id).
                    db.execute("DELETE FROM notifications WHERE job_id = ?", (job_id,))
        return removed

    # -- reading -----------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        with self._guard():
            row = self._db.execute(f"SELECT {SELECT_JOB_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            return row_to_record(row, self._dependencies_of(job_id), self._earlier_attempts(job_id))

    def _earlier_attempts(self, job_id: str) -> list[AttemptRecord]:
        if not self._db.execute("SELECT 1 FROM jobs WHERE job_id = ? AND attempt > 1", (job_id,)).fetchone():
            return []  # the common case: one attempt, nothing to read
        rows = self._db.execute(
            f"SELECT {', '.join(ATTEMPT_COLUMNS)} FROM attempts WHERE job_id = ? ORDER BY attempt", (job_id,)
        )
        return [AttemptRecord(*row) for row in rows]

    def _dependencies_of(self, job_id: str) -> list[str]:
        rows = self._db.execute("SELECT depends_on FROM job_dependencies WHERE job_id = ? ORDER BY rowid", (job_id,))
        return [r[0] for r in rows]

    def resolve(self, ref: str) -> JobRecord:
        """The job named by a full id or a unique prefix of one.

        An empty or blank ref names no job: it would be a prefix of every id, and
        ``cancel "$UNSET"`` in a script must not cancel the only job there is.
        """
        if not ref.strip():
            raise UsageError("an empty job id names no job")
        record = self.get(ref)
        if record is not None:
            return record
        with self._guard():
            rows = self._db.execute(
                "SELECT job_id FROM jobs WHERE job_id LIKE ? ESCAPE '\\' ORDER BY submit_time LIMIT ?",
                (_escape_like(ref) + "%", _RESOLVE_CANDIDATES),
            ).fetchall()
        candidates = [r[0] for r in rows if r[0].startswith(ref)]  # LIKE ignores case; ids do not
        if not candidates:
            raise JobNotFoundError(f"no job {ref!r} in the registry {self.path}")
        if len(candidates) > 1:
            raise AmbiguousJobError(ref, candidates)
        found = self.get(candidates[0])
        assert found is not None
        return found

    def jobs(
        self,
        *,
        cloud: str | None = None,
        cluster: str | None = None,
        since: str | None = None,
        before: str | None = None,
        newest_first: bool = True,
        with_argv: bool = True,
        finished_local: bool = True,
        sweep: str | None = None,
    ) -> list[JobRecord]:
        """Records, filtered; ``with_argv=False`` leaves ``argv`` empty, for listings (faster).

        ``finished_local=False`` leaves out local jobs with an exit record: the
        lean listing (``store/listing.py``) has their documents already.
        """
        where, params = job_filter(
            cloud=cloud, cluster=cluster, since=since, before=before, finished_local=finished_local, sweep=sweep
        )
        order = "DESC" if newest_first else "ASC"
        with self._guard():
            cursor = self._db.cursor()
            cursor.row_factory = None  # plain tuples: thousands of rows for `list`
            rows = cursor.execute(
                f"SELECT {SELECT_JOB_COLUMNS if with_argv else SELECT_JOB_COLUMNS_NO_ARGV} FROM jobs {where} "
                f"ORDER BY submit_time {order}, rowid {order}",
                params,
            )
            deps: dict[str, list[str]] = {}
            for job_id, dep in self._db.execute("SELECT job_id, depends_on FROM job_dependencies ORDER BY rowid"):
                deps.setdefault(job_id, []).append(dep)
            earlier: dict[str, list[AttemptRecord]] = {}
            for row in self._db.execute(f"SELECT job_id, {', '.join(ATTEMPT_COLUMNS)} FROM attempts ORDER BY attempt"):
                earlier.setdefault(row[0], []).append(AttemptRecord(*row[1:]))
            return [row_to_record(row, deps.get(row[0], ()), earlier.get(row[0], ())) for row in rows]

    def find_by_launcher_identity(self, cloud: str, cluster: str | None, launcher_job_id: str) -> JobRecord | None:
        with self._guard():
            row = self._db.execute(
                "SELECT job_id FROM jobs WHERE cloud = ? AND cluster IS ? AND launcher_job_id = ?",
                (cloud, cluster, launcher_job_id),
            ).fetchone()
        return self.get(row[0]) if row else None

    def recorded_processes(self, job_id: str) -> list[tuple[int, float]]:
        with self._guard():
            rows = self._db.execute("SELECT pid, start_time FROM job_processes WHERE job_id = ?", (job_id,))
            return [(r[0], r[1]) for r in rows]

    def dependants_of(self, job_id: str) -> list[str]:
        with self._guard():
            rows = self._db.execute("SELECT job_id FROM job_dependencies WHERE depends_on = ?", (job_id,))
            return [r[0] for r in rows]

    def needed_by_waiting_jobs(self) -> set[str]:
        """Jobs that a job not yet ended names in ``--after``: its supervisor still has to read them."""
        with self._guard():
            rows = self._db.execute(
                "SELECT d.depends_on FROM job_dependencies d JOIN jobs j ON j.job_id = d.job_id "
                "WHERE j.end_time IS NULL"
            )
            return {row[0] for row in rows}


def _write_exit(
    db: sqlite3.Connection,
    job_id: str,
    *,
    exit_code: int | None = None,
    exit_signal: int | None = None,
    detail: str | None = None,
    end_time: str | None = None,
    failure: str | None = None,
) -> bool:
    """The exit record rule, inside the caller's transaction: written once, ended now (or at ``end_time``);
    True if written."""
    cursor = db.execute(
        "UPDATE jobs SET exit_code = ?, exit_signal = ?, end_time = ?, end_detail = ?, failure = ? "
        "WHERE job_id = ? AND end_time IS NULL",
        (exit_code, exit_signal, end_time or now_iso(), detail, failure, job_id),
    )
    return cursor.rowcount == 1


def _insert_job_sql(row: dict[str, object], *, or_ignore: bool = False) -> str:
    columns = ", ".join(row)
    placeholders = ", ".join(f":{name}" for name in row)
    return f"INSERT {'OR IGNORE ' if or_ignore else ''}INTO jobs ({columns}) VALUES ({placeholders})"


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# Local jobs with an exit record: their state and document depend on their row alone.
FINISHED_LOCAL = "(cloud = 'local' AND end_time IS NOT NULL)"


def job_filter(
    *,
    cloud: str | None = None,
    cluster: str | None = None,
    since: str | None = None,
    before: str | None = None,
    finished_local: bool = True,
    sweep: str | None = None,
) -> tuple[str, dict[str, object]]:
    """A ``WHERE`` clause over the jobs table and its named parameters (shared by the listings)."""
    clauses: list[str] = []
    params: dict[str, object] = {}
    for clause, name, value in (
        ("cloud = :cloud", "cloud", cloud), ("cluster = :cluster", "cluster", cluster),
        ("submit_time >= :since", "since", since), ("submit_time < :before", "before", before),
        ("sweep_id = :sweep", "sweep", sweep),
    ):  # fmt: skip
        if value is not None:
            clauses.append(clause)
            params[name] = value
    if not finished_local:
        clauses.append(f"NOT {FINISHED_LOCAL}")
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params
