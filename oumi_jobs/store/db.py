"""Opening the registry database: the one connection every store operation uses.

SQLite in WAL mode with a generous busy timeout, so a terminal, scripts, cron
and the supervisors can all write at once without losing a record.  The
schema migrates itself on open (:mod:`oumi_jobs.store.migrations`).  A file
that is not an SQLite database, is corrupt, or was written by a newer
oumi-jobs stops the command with an error naming the file, and is never
written to.

The registry is the user's alone (0600, its folder 0700, and so are SQLite's
``-wal`` and ``-shm`` files, whatever mode the registry had when SQLite made
them), and reading needs no write: ``list``, ``status`` and ``logs`` run on a
read-only registry or a full disk wherever SQLite can read it.

:class:`Database` owns the connection and its plumbing (``_transaction``,
``_execute``), which only the store's own modules use; the operations on jobs,
queues and cancellations are built on it in the sibling modules.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from oumi_jobs.errors import RegistryError
from oumi_jobs.paths import FILE_MODE, Paths
from oumi_jobs.store.migrations import MIGRATIONS, statements
from oumi_jobs.timestamps import now_iso

SQLITE_HEADER = b"SQLite format 3\x00"
# The way out of a damaged registry, named in the error that stops every command (never done automatically).
RECOVER_HINT = "; `oumi-jobs registry check` says what is wrong, `oumi-jobs registry recover` salvages what can be read"
BUSY_TIMEOUT_S = 60.0
WAL_HEADER_BYTES = 32
# SQLite's primary result codes that mean "cannot write here": READONLY, IOERR, FULL, CANTOPEN.
_UNWRITABLE = frozenset({8, 10, 13, 14})
# Connections this process has open, per database file, and the lock that
# guards the count together with every raw touch of the file (see Database.open).
_OPEN_LOCK = threading.Lock()
_open_connections: dict[Path, int] = {}

_DB = TypeVar("_DB", bound="Database")


class Database:
    """An open registry database.  Use :meth:`open` as a context manager."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection
        self._read_only_because: str | None = None  # why it was opened read-only, if it was
        # The paths it was opened with: what is done on a write (a notification) may need the rest of them.
        self.paths: Paths | None = None

    # -- opening and closing ---------------------------------------------------
    @classmethod
    def open(cls: type[_DB], paths: Paths) -> _DB:
        path = paths.registry_file
        paths.check_folders()
        paths.private_dir(path.parent)
        with _OPEN_LOCK:
            # Closing any descriptor of the database file drops every POSIX lock
            # this process holds on it, including those of SQLite connections
            # open in other threads, and with them WAL's guarantees (commits were
            # lost that way).  So the raw file is only touched while this process
            # has no connection to it.
            if _open_connections.get(path, 0) == 0:
                _refuse_foreign_file(path)
                _create_private_file(path)
                _private_sidecars(path)
        try:
            opened = cls._connect(path, str(path), read_only=False)
            opened.paths = paths
            return opened
        except RegistryError as exc:
            if not _cannot_write(exc) or _wal_has_frames(path):
                raise
            why = str(exc.__cause__)
        # A read-only mount, or a full disk where SQLite cannot make its -shm
        # file: with no write-ahead log to miss, the file alone is the whole
        # registry, read as it is (immutable: no lock, no -shm).  Writes then
        # fail with SQLite's "readonly database", one line, exit 1.
        database = cls._connect(path, f"{path.as_uri()}?mode=ro&immutable=1", read_only=True)
        database._read_only_because = why
        database.paths = paths
        return database

    @classmethod
    def _connect(cls: type[_DB], path: Path, target: str, *, read_only: bool) -> _DB:
        with _OPEN_LOCK:
            try:
                db = sqlite3.connect(target, timeout=BUSY_TIMEOUT_S, isolation_level=None, uri=read_only)
            except sqlite3.Error as exc:
                raise RegistryError(f"cannot open the registry {path}: {exc}") from exc
            _open_connections[path] = _open_connections.get(path, 0) + 1
        database = cls(path, db)
        try:
            database._prepare(read_only)
        except BaseException:
            database.close()
            raise
        return database

    def _prepare(self, read_only: bool) -> None:
        with self._guard():
            self._db.row_factory = sqlite3.Row
            self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            # Before anything is written (the journal mode included): a foreign or newer file stays as it is.
            tables = self._check_is_ours()
            if read_only:
                if not self._is_current(tables):
                    raise RegistryError(f"the registry {self.path} needs an upgrade, but it cannot be written")
                return
            _private_sidecars(self.path)  # the read above made them, with the registry's mode
            if self._db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate(tables)

    def _check_is_ours(self) -> set[str]:
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
        return tables

    def _is_current(self, tables: set[str]) -> bool:
        if "_migrations" not in tables:
            return False
        applied = {r[0] for r in self._db.execute("SELECT name FROM _migrations")}
        return all(name in applied for name, _ in MIGRATIONS)

    def _migrate(self, tables: set[str]) -> None:
        """Apply the migrations this file lacks, in order, each recorded by name, all in one transaction."""
        if self._is_current(tables):
            return  # the common case: no write at all, so a read-only registry opens
        self._db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        with self._transaction():
            # Read again under the lock: another process may have migrated meanwhile.
            applied = {r[0] for r in self._db.execute("SELECT name FROM _migrations")}
            for name, sql in MIGRATIONS:
                if name in applied:
                    continue
                for statement in statements(sql):
                    self._db.execute(statement)
                self._db.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, now_iso()))

    def close(self) -> None:
        with _OPEN_LOCK:
            if self._db is not None:
                self._db.close()
                self._db = None  # type: ignore[assignment]
                _open_connections[self.path] -= 1

    def __enter__(self: _DB) -> _DB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing, for the store's own modules only ------------------------------
    @contextmanager
    def _guard(self) -> Iterator[None]:
        """SQLite's errors as the one-line RegistryError that names the file."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if self._read_only_because is not None:
                raise RegistryError(
                    f"cannot write to the registry {self.path}: it is read-only or its disk is full "
                    f"({self._read_only_because})"
                ) from exc
            # Plain DatabaseError is SQLite's "malformed"/"not a database"; its
            # subclasses (locked, read-only, constraint...) are no damage to the file.
            damaged = type(exc) is sqlite3.DatabaseError
            raise RegistryError(f"cannot use the registry {self.path}: {exc}{RECOVER_HINT if damaged else ''}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; taken at once (IMMEDIATE) so writers queue instead of deadlocking."""
        with self._guard():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        """Run one statement (autocommit) with registry errors mapped."""
        with self._guard():
            return self._db.execute(sql, params)

    # -- the database itself (tests, and a future `registry check`) --------------
    def applied_migrations(self) -> list[str]:
        """Names of the migrations this file has applied, sorted (they sort in the order of MIGRATIONS)."""
        return [r[0] for r in self._execute("SELECT name FROM _migrations ORDER BY name")]

    def columns(self, table: str) -> list[str]:
        """The columns of ``table``, in order."""
        return [r[0] for r in self._execute("SELECT name FROM pragma_table_info(?) ORDER BY cid", (table,))]

    def journal_mode(self) -> str:
        return str(self._execute("PRAGMA journal_mode").fetchone()[0])

    def integrity_check(self) -> list[str]:
        """SQLite's integrity check: ``["ok"]``, or the problems it found."""
        return [str(r[0]) for r in self._execute("PRAGMA integrity_check")]


def _cannot_write(exc: RegistryError) -> bool:
    """Did SQLite fail for want of writing (read-only file or mount, full disk), not for a broken file?"""
    cause = exc.__cause__
    if not isinstance(cause, sqlite3.OperationalError):
        return False
    code = getattr(cause, "sqlite_errorcode", None)  # Python 3.11+
    if code is None:
        return True
    return code & 0xFF in _UNWRITABLE


def _wal_has_frames(path: Path) -> bool:
    """Might the write-ahead log hold commits not yet in the file?  (Its 32-byte header alone holds none.)"""
    try:
        return os.stat(f"{path}-wal").st_size > WAL_HEADER_BYTES
    except FileNotFoundError:
        return False
    except OSError:
        return True


def _create_private_file(path: Path) -> None:
    """Create the database file readable by its owner only (SQLite would make it 0644)."""
    if path.exists():
        return
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, FILE_MODE)
        os.fchmod(fd, FILE_MODE)  # whatever the umask
        os.close(fd)
    except FileExistsError:
        pass  # another process created it first
    except OSError as exc:
        raise RegistryError(f"cannot create the registry {path}: {exc.strerror}") from exc


def _private_sidecars(path: Path) -> None:
    """The registry 0600 where it is wider, and SQLite's ``-wal`` and ``-shm`` files 0600 whatever it is.

    SQLite gives those two the registry's mode of the moment: made during a
    read-only spell (a 0400 registry) they would stay read-only and refuse
    every write once the registry is writable again.  Called before a
    connection opens them (one left that way) and after it made them.  What
    cannot be changed (a read-only mount) is left to SQLite to report.
    """
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            info = os.lstat(file)
        except OSError:
            continue
        mode = stat.S_IMODE(info.st_mode)
        # The registry itself keeps a narrower mode: that is the read-only spell, the user's choice.
        wrong = mode & 0o077 if file == path else mode != FILE_MODE
        if wrong and stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid():
            try:
                os.chmod(file, FILE_MODE)
            except OSError:
                pass


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
        raise RegistryError(
            f"the registry {path} is not an SQLite database (corrupt?); it was left untouched{RECOVER_HINT}"
        )


@contextmanager
def raw_file_access(path: Path) -> Iterator[None]:
    """Touch the database file itself (read its header, move it): only while this process has no connection to it.

    See :meth:`Database.open`: closing any descriptor of the file would drop
    the POSIX locks of this process's SQLite connections to it.
    """
    with _OPEN_LOCK:
        if _open_connections.get(path, 0):
            raise RegistryError(f"the registry {path} is open in this process; close it first")
        yield
