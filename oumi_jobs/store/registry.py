"""The identity registry: which job id maps to which cloud identity or process.

SQLite in WAL mode with a generous busy timeout, so a terminal, scripts, cron
and the supervisors can all write at once without losing a record.  Status is
never stored here (SPEC principle 1); only identity and the supervisor's exit
record, which *is* the local job's source of truth once its process is gone.

The schema migrates itself on open from an append-only list of migrations whose
names are recorded in the database.  A file that is not an SQLite database, is
corrupt, or was written by a newer oumi-jobs stops the command with an error
naming the file, and is never written to.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from oumi_jobs.errors import AmbiguousJobError, ConflictError, JobNotFoundError, RegistryError
from oumi_jobs.paths import Paths, ensure_private_dir
from oumi_jobs.timestamps import now_iso

SQLITE_HEADER = b"SQLite format 3\x00"
_OPEN_LOCK = threading.Lock()
_open_connections: dict[Path, int] = {}
BUSY_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job's identity, as oumi-jobs knows it.  No status: that is read live."""

    job_id: str
    cloud: str
    submit_time: str
    name: str | None = None
    command: str | None = None
    config_path: str | None = None
    cluster: str | None = None
    launcher_job_id: str | None = None
    model_name: str | None = None
    output_dir: str | None = None
    source: str = "submit"  # "submit" or "import" (a legacy registry)
    argv: tuple[str, ...] = ()
    workdir: str | None = None
    stdout_path: str | None = None
    stderr_path: str | None = None
    # The detached supervisor of a local job.
    supervisor_pid: int | None = None
    supervisor_start_time: float | None = None
    # The job's own process, recorded by the supervisor when it starts it.
    pid: int | None = None
    pgid: int | None = None
    process_start_time: float | None = None
    boot_id: str | None = None
    started_at: str | None = None
    # The exit record, written by the supervisor when the process ends.
    exit_code: int | None = None
    exit_signal: int | None = None
    end_time: str | None = None
    end_detail: str | None = None
    cancel_requested: bool = False
    # When a queued local job's dependencies were met and it joined its cluster's queue.
    ready_at: str | None = None
    depends_on: tuple[str, ...] = field(default=())

    @property
    def is_local(self) -> bool:
        return self.cloud == "local"

    @property
    def has_exit_record(self) -> bool:
        return self.end_time is not None


# Columns stored as JSON text, and booleans stored as 0/1.
_JSON_COLUMNS = {"argv"}
_BOOL_COLUMNS = {"cancel_requested"}
_RECORD_COLUMNS = [f.name for f in fields(JobRecord) if f.name != "depends_on"]

# Append-only: never edit or reorder a shipped migration, add a new one.
MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_jobs",
        """
        CREATE TABLE jobs (
            job_id TEXT PRIMARY KEY,
            cloud TEXT NOT NULL,
            submit_time TEXT NOT NULL,
            name TEXT,
            command TEXT,
            config_path TEXT,
            cluster TEXT,
            launcher_job_id TEXT,
            model_name TEXT,
            output_dir TEXT,
            source TEXT NOT NULL DEFAULT 'submit',
            argv TEXT NOT NULL DEFAULT '[]',
            workdir TEXT,
            stdout_path TEXT,
            stderr_path TEXT,
            supervisor_pid INTEGER,
            supervisor_start_time REAL,
            pid INTEGER,
            pgid INTEGER,
            process_start_time REAL,
            boot_id TEXT,
            started_at TEXT,
            exit_code INTEGER,
            exit_signal INTEGER,
            end_time TEXT,
            end_detail TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX jobs_submit_time ON jobs (submit_time);
        CREATE INDEX jobs_cloud_identity ON jobs (cloud, cluster, launcher_job_id);
        """,
    ),
    (
        "0002_dependencies",
        """
        CREATE TABLE job_dependencies (
            job_id TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
            depends_on TEXT NOT NULL,
            PRIMARY KEY (job_id, depends_on)
        );
        CREATE INDEX job_dependencies_reverse ON job_dependencies (depends_on);
        """,
    ),
    (
        "0003_cancellations",
        """
        CREATE TABLE cancellations (
            cancellation_id TEXT PRIMARY KEY,
            job_id TEXT NOT NULL,
            cloud TEXT NOT NULL,
            requested_at TEXT NOT NULL,
            reason TEXT,
            force INTEGER NOT NULL,
            timeout_s REAL NOT NULL,
            signal TEXT NOT NULL,
            status TEXT NOT NULL,
            finished_at TEXT,
            final_state TEXT,
            caused_by TEXT,
            survivors TEXT NOT NULL DEFAULT '[]',
            runners_signalled INTEGER NOT NULL DEFAULT 0,
            detail TEXT,
            owner_pid INTEGER,
            owner_start_time REAL,
            owner_boot_id TEXT
        );
        CREATE INDEX cancellations_job ON cancellations (job_id, requested_at);
        CREATE INDEX cancellations_requested ON cancellations (requested_at);
        CREATE TABLE cancellation_steps (
            cancellation_id TEXT NOT NULL REFERENCES cancellations (cancellation_id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            name TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            detail TEXT,
            PRIMARY KEY (cancellation_id, seq)
        );
        CREATE TABLE job_processes (
            job_id TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
            pid INTEGER NOT NULL,
            start_time REAL NOT NULL,
            PRIMARY KEY (job_id, pid, start_time)
        );
        """,
    ),
    (
        "0004_queues",
        """
        CREATE TABLE clusters (
            name TEXT PRIMARY KEY,
            parallel INTEGER NOT NULL DEFAULT 1
        );
        ALTER TABLE jobs ADD COLUMN ready_at TEXT;
        CREATE INDEX jobs_queue ON jobs (cloud, cluster, end_time, pid);
        """,
    ),
]


_SELECT_JOB_COLUMNS = ", ".join(_RECORD_COLUMNS)
# The same columns without the argv (a JSON array to decode per row), for
# listings that never run a job: `list` over thousands of jobs.
_SELECT_JOB_COLUMNS_NO_ARGV = ", ".join("'[]'" if name == "argv" else name for name in _RECORD_COLUMNS)
_ARGV_INDEX = _RECORD_COLUMNS.index("argv")
_CANCEL_INDEX = _RECORD_COLUMNS.index("cancel_requested")


def _row_to_record(row: Sequence[Any], depends_on: Sequence[str] = ()) -> JobRecord:
    """A row of ``SELECT {_SELECT_JOB_COLUMNS}`` as a record (hot: ``list`` builds thousands)."""
    values = list(row)
    argv = values[_ARGV_INDEX]
    values[_ARGV_INDEX] = tuple(json.loads(argv)) if argv and argv != "[]" else ()
    values[_CANCEL_INDEX] = bool(values[_CANCEL_INDEX])
    return JobRecord(*values, depends_on=tuple(depends_on))


def _to_column(name: str, value: Any) -> Any:
    if name in _JSON_COLUMNS:
        return json.dumps(list(value))
    if name in _BOOL_COLUMNS:
        return int(bool(value))
    return value


def _record_to_row(record: JobRecord) -> dict[str, Any]:
    return {name: _to_column(name, getattr(record, name)) for name in _RECORD_COLUMNS}


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Registry:
    """An open registry.  Use :meth:`open` as a context manager."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection

    # -- opening ---------------------------------------------------------
    @classmethod
    def open(cls, paths: Paths) -> Registry:
        path = paths.registry_file
        ensure_private_dir(path.parent)
        with _OPEN_LOCK:
            # Closing any descriptor of the database file drops every POSIX lock
            # this process holds on it, including those of SQLite connections
            # open in other threads, and with them WAL's guarantees (commits were
            # lost that way).  So the raw file is only touched while this process
            # has no connection to it.
            if _open_connections.get(path, 0) == 0:
                _refuse_foreign_file(path)
                if not path.exists():
                    try:
                        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
                        os.close(fd)
                    except FileExistsError:
                        pass  # another process created it first
            try:
                db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            except sqlite3.Error as exc:
                raise RegistryError(f"cannot open the registry {path}: {exc}") from exc
            _open_connections[path] = _open_connections.get(path, 0) + 1
        registry = cls(path, db)
        try:
            registry._prepare()
        except BaseException:
            registry.close()
            raise
        return registry

    def _prepare(self) -> None:
        with self._guard():
            self._db.row_factory = sqlite3.Row
            self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            self._check_is_ours()
            if self._db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()

    def _check_is_ours(self) -> None:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "_migrations" not in tables:
            raise RegistryError(
                f"{self.path} is an SQLite database but not an oumi-jobs registry; it was left untouched"
            )
        if "_migrations" in tables:
            applied = {r[0] for r in self._db.execute("SELECT name FROM _migrations")}
            unknown = sorted(applied - {name for name, _ in MIGRATIONS})
            if unknown:
                raise RegistryError(
                    f"{self.path} was written by a newer oumi-jobs (unknown schema migration "
                    f"{unknown[-1]}); upgrade oumi-jobs to use it. The file was left untouched"
                )

    def _migrate(self) -> None:
        self._db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        applied = {r[0] for r in self._db.execute("SELECT name FROM _migrations")}
        if all(name in applied for name, _ in MIGRATIONS):
            return
        with self.transaction():
            applied = {r[0] for r in self._db.execute("SELECT name FROM _migrations")}
            for name, sql in MIGRATIONS:
                if name in applied:
                    continue
                for statement in sql.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, now_iso()))

    def close(self) -> None:
        with _OPEN_LOCK:
            if self._db is not None:
                self._db.close()
                self._db = None  # type: ignore[assignment]
                _open_connections[self.path] -= 1

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------
    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise RegistryError(f"cannot use the registry {self.path}: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; taken at once (IMMEDIATE) so writers queue instead of deadlocking."""
        with self._guard():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        """Run one statement (autocommit) with registry errors mapped.  For sibling core modules."""
        with self._guard():
            return self._db.execute(sql, params)

    # -- jobs ------------------------------------------------------------
    def add(self, record: JobRecord) -> None:
        row = _record_to_row(record)
        columns = ", ".join(row)
        placeholders = ", ".join(f":{name}" for name in row)
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM jobs WHERE job_id = ?", (record.job_id,)).fetchone():
                raise ConflictError(f"a job with id {record.job_id!r} already exists; choose another --name")
            db.execute(f"INSERT INTO jobs ({columns}) VALUES ({placeholders})", row)
            db.executemany(
                "INSERT INTO job_dependencies (job_id, depends_on) VALUES (?, ?)",
                [(record.job_id, dep) for dep in record.depends_on],
            )

    def add_many_if_absent(self, records: Iterable[JobRecord]) -> list[str]:
        """Insert the records whose ids are not present yet; returns the ids inserted."""
        inserted = []
        with self.transaction() as db:
            for record in records:
                row = _record_to_row(record)
                columns = ", ".join(row)
                placeholders = ", ".join(f":{name}" for name in row)
                cursor = db.execute(f"INSERT OR IGNORE INTO jobs ({columns}) VALUES ({placeholders})", row)
                if cursor.rowcount:
                    inserted.append(record.job_id)
        return inserted

    def update(self, job_id: str, **changes: Any) -> None:
        """Set identity or exit-record fields of one job (never a status)."""
        unknown = set(changes) - set(_RECORD_COLUMNS)
        if unknown:
            raise ValueError(f"not registry columns: {sorted(unknown)}")
        params = {name: _to_column(name, value) for name, value in changes.items()} | {"job_id": job_id}
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

    def get(self, job_id: str) -> JobRecord | None:
        with self._guard():
            row = self._db.execute(f"SELECT {_SELECT_JOB_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            return _row_to_record(row, self._dependencies_of(job_id))

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
                "SELECT job_id FROM jobs WHERE job_id LIKE ? ESCAPE '\\' ORDER BY submit_time LIMIT 51",
                (_escape_like(ref) + "%",),
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
        if cloud is not None:
            clauses.append("cloud = ?")
            params.append(cloud)
        if cluster is not None:
            clauses.append("cluster = ?")
            params.append(cluster)
        if since is not None:
            clauses.append("submit_time >= ?")
            params.append(since)
        if before is not None:
            clauses.append("submit_time < ?")
            params.append(before)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        order = "DESC" if newest_first else "ASC"
        with self._guard():
            cursor = self._db.cursor()
            cursor.row_factory = None  # plain tuples: thousands of rows for `list`
            rows = cursor.execute(
                f"SELECT {_SELECT_JOB_COLUMNS if with_argv else _SELECT_JOB_COLUMNS_NO_ARGV} FROM jobs {where} "
                f"ORDER BY submit_time {order}, rowid {order}",
                params,
            )
            deps: dict[str, list[str]] = {}
            for job_id, dep in self._db.execute("SELECT job_id, depends_on FROM job_dependencies ORDER BY rowid"):
                deps.setdefault(job_id, []).append(dep)
            return [_row_to_record(row, deps.get(row[0], ())) for row in rows]

    def find_by_launcher_identity(self, cloud: str, cluster: str | None, launcher_job_id: str) -> JobRecord | None:
        with self._guard():
            row = self._db.execute(
                "SELECT job_id FROM jobs WHERE cloud = ? AND cluster IS ? AND launcher_job_id = ?",
                (cloud, cluster, launcher_job_id),
            ).fetchone()
        return self.get(row[0]) if row else None

    def record_processes(self, job_id: str, processes: Iterable[tuple[int, float]]) -> None:
        """Remember descendants seen while the job ran, so cancel finds them after they leave its group."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO job_processes (job_id, pid, start_time) VALUES (?, ?, ?)",
                [(job_id, pid, start) for pid, start in processes],
            )

    def recorded_processes(self, job_id: str) -> list[tuple[int, float]]:
        with self._guard():
            rows = self._db.execute("SELECT pid, start_time FROM job_processes WHERE job_id = ?", (job_id,))
            return [(r[0], r[1]) for r in rows]

    def dependants_of(self, job_id: str) -> list[str]:
        with self._guard():
            rows = self._db.execute("SELECT job_id FROM job_dependencies WHERE depends_on = ?", (job_id,))
            return [r[0] for r in rows]

    def delete(self, job_ids: Iterable[str]) -> list[str]:
        """Delete the given jobs; returns those that were present."""
        removed = []
        with self.transaction() as db:
            for job_id in job_ids:
                if db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,)).rowcount:
                    removed.append(job_id)
        return removed


def _refuse_foreign_file(path: Path) -> None:
    """Stop before SQLite touches a file that is not an SQLite database."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise RegistryError(f"the registry {path} is a directory, not a file") from None
    except OSError as exc:
        raise RegistryError(f"cannot read the registry {path}: {exc.strerror}") from exc
    if header and header != SQLITE_HEADER:
        raise RegistryError(f"the registry {path} is not an SQLite database (corrupt?); it was left untouched")
