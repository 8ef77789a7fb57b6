"""Job operations: the jobs table, its dependencies and the processes recorded for cancel."""

from __future__ import annotations

from collections.abc import Iterable

from oumi_jobs.errors import AmbiguousJobError, ConflictError, JobNotFoundError
from oumi_jobs.store.db import Database
from oumi_jobs.store.records import (
    RECORD_COLUMNS,
    SELECT_JOB_COLUMNS,
    SELECT_JOB_COLUMNS_NO_ARGV,
    JobRecord,
    record_to_row,
    row_to_record,
    to_column,
)

# Enough candidates to report an ambiguous prefix, without reading every id.
_RESOLVE_CANDIDATES = 51


class JobStore(Database):
    """Operations on jobs; :class:`oumi_jobs.store.registry.Registry` has them all."""

    # -- writing records ---------------------------------------------------------
    def add(self, record: JobRecord) -> None:
        row = record_to_row(record)
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM jobs WHERE job_id = ?", (record.job_id,)).fetchone():
                raise ConflictError(f"a job with id {record.job_id!r} already exists; choose another --name")
            db.execute(_insert_job_sql(row), row)
            db.executemany(
                "INSERT INTO job_dependencies (job_id, depends_on) VALUES (?, ?)",
                [(record.job_id, dep) for dep in record.depends_on],
            )

    def add_many_if_absent(self, records: Iterable[JobRecord]) -> list[str]:
        """Insert the records whose ids are not present yet; returns the ids inserted."""
        inserted = []
        with self.transaction() as db:
            for record in records:
                row = record_to_row(record)
                if db.execute(_insert_job_sql(row, or_ignore=True), row).rowcount:
                    inserted.append(record.job_id)
        return inserted

    def update(self, job_id: str, **changes: object) -> None:
        """Set identity or exit-record fields of one job (never a status)."""
        unknown = set(changes) - set(RECORD_COLUMNS)
        if unknown:
            raise ValueError(f"not registry columns: {sorted(unknown)}")
        params = {name: to_column(name, value) for name, value in changes.items()} | {"job_id": job_id}
        assignments = ", ".join(f"{name} = :{name}" for name in changes)
        with self.transaction() as db:
            db.execute(f"UPDATE jobs SET {assignments} WHERE job_id = :job_id", params)

    def record_exit_if_absent(
        self, job_id: str, *, exit_code: int | None, exit_signal: int | None, end_time: str, end_detail: str | None
    ) -> bool:
        """Write the exit record unless one exists already (the first writer wins)."""
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET exit_code = ?, exit_signal = ?, end_time = ?, end_detail = ? "
                "WHERE job_id = ? AND end_time IS NULL",
                (exit_code, exit_signal, end_time, end_detail, job_id),
            )
            return cursor.rowcount == 1

    def record_processes(self, job_id: str, processes: Iterable[tuple[int, float]]) -> None:
        """Remember descendants seen while the job ran, so cancel finds them after they leave its group."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO job_processes (job_id, pid, start_time) VALUES (?, ?, ?)",
                [(job_id, pid, start) for pid, start in processes],
            )

    def delete(self, job_ids: Iterable[str]) -> list[str]:
        """Delete the given jobs; returns those that were present."""
        removed = []
        with self.transaction() as db:
            for job_id in job_ids:
                if db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,)).rowcount:
                    removed.append(job_id)
        return removed

    # -- reading -----------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        with self._guard():
            row = self._db.execute(f"SELECT {SELECT_JOB_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            return row_to_record(row, self._dependencies_of(job_id))

    def _dependencies_of(self, job_id: str) -> list[str]:
        rows = self._db.execute("SELECT depends_on FROM job_dependencies WHERE job_id = ? ORDER BY rowid", (job_id,))
        return [r[0] for r in rows]

    def resolve(self, ref: str) -> JobRecord:
        """The job named by a full id or a unique prefix of one."""
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
    ) -> list[JobRecord]:
        """Records, filtered; ``with_argv=False`` leaves ``argv`` empty, for listings (faster)."""
        clauses, params = [], []
        for clause, value in (
            ("cloud = ?", cloud), ("cluster = ?", cluster), ("submit_time >= ?", since), ("submit_time < ?", before),
        ):  # fmt: skip
            if value is not None:
                clauses.append(clause)
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
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
            return [row_to_record(row, deps.get(row[0], ())) for row in rows]

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


def _insert_job_sql(row: dict[str, object], *, or_ignore: bool = False) -> str:
    columns = ", ".join(row)
    placeholders = ", ".join(f":{name}" for name in row)
    return f"INSERT {'OR IGNORE ' if or_ignore else ''}INTO jobs ({columns}) VALUES ({placeholders})"


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
