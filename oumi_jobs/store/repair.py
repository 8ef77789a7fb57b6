"""Checking a registry file that may be damaged, and salvaging its readable rows into a new one.

These work on the file itself, never through :class:`~oumi_jobs.store.db.Database`
(which refuses a damaged file): the file is opened read-only, so checking it
writes nothing, and salvaging copies what can be read into another file.
Moving files and the policy around them are :mod:`oumi_jobs.registry_repair`'s.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oumi_jobs.errors import RegistryError
from oumi_jobs.store.db import SQLITE_HEADER, raw_file_access
from oumi_jobs.store.migrations import DERIVED_TABLES, MIGRATIONS, statements
from oumi_jobs.timestamps import now_iso

# A scan that fails skips ahead over the damaged rowids, by doubling steps, at most this many times.
_MAX_SKIPS = 40


@dataclass(frozen=True)
class FileCheck:
    """What is wrong with a registry file (``problems`` empty: nothing)."""

    exists: bool
    problems: tuple[str, ...]
    unreadable: bool  # a permission or I/O error: not damage, and nothing a recover could mend
    applied: tuple[str, ...]  # migrations the file has applied
    pending: tuple[str, ...]  # migrations it lacks (applied on the next open: not a problem)
    newer: bool  # written by a newer oumi-jobs: upgrade, do not recover
    jobs: int | None
    cancellations: int | None


@dataclass(frozen=True)
class TableSalvage:
    """One table's rows: how many were copied, how many were lost (None: the file cannot say), and why."""

    table: str
    saved: int
    lost: int | None
    errors: tuple[str, ...]
    lost_keys: tuple[str, ...]  # the first column (a job id...) of rows read but refused by the new registry


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """``path`` opened so that reading it writes nothing: with no WAL beside it, the file alone is all there is
    (immutable: SQLite makes no -shm); with one, read-only through it."""
    wal = Path(f"{path}-wal").exists()
    db = sqlite3.connect(
        f"{path.absolute().as_uri()}?{'mode=ro' if wal else 'immutable=1'}", uri=True, isolation_level=None
    )
    try:
        yield db
    finally:
        db.close()


def _header(path: Path) -> bytes:
    with raw_file_access(path), open(path, "rb") as handle:
        return handle.read(len(SQLITE_HEADER))


def _count(db: sqlite3.Connection, table: str, tables: set[str]) -> int | None:
    if table not in tables:
        return None
    try:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.DatabaseError:
        return None


def _expected_columns(applied: set[str]) -> dict[str, list[str]]:
    """Each table's columns as the migrations ``applied`` make them (built in memory)."""
    with closing(sqlite3.connect(":memory:")) as db:
        for name, sql in MIGRATIONS:
            if name in applied:
                db.executescript(sql)
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: [r[1] for r in db.execute(f"PRAGMA table_info({t})")] for t in tables}


def _schema_problems(db: sqlite3.Connection, applied: set[str]) -> list[str]:
    problems = []
    for table, columns in _expected_columns(applied).items():
        present = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        if not present:
            problems.append(f"table {table} is missing")
        elif missing := [c for c in columns if c not in present]:
            problems.append(f"table {table} lacks column(s) {', '.join(missing)}")
    problems += [f"{r[0]} row {r[1]} refers to a missing {r[2]} row" for r in db.execute("PRAGMA foreign_key_check")]
    return problems


def check_file(path: Path) -> FileCheck:
    """SQLite's integrity check and the schema the file's migrations promise; writes nothing."""
    try:
        header = _header(path)
    except FileNotFoundError:
        return FileCheck(False, (), False, (), (), False, None, None)
    except OSError as exc:
        return FileCheck(True, (f"cannot read it: {exc.strerror or exc}",), True, (), (), False, None, None)
    if header != SQLITE_HEADER:
        problem = "it is empty" if not header else "it is not an SQLite database"
        return FileCheck(True, (problem,), False, (), (), False, None, None)
    try:
        with _read_only(path) as db:
            return _check_database(db)
    except sqlite3.OperationalError as exc:  # cannot open it (permissions of its folder or -shm), not damage
        return FileCheck(True, (f"SQLite cannot open it: {exc}",), True, (), (), False, None, None)
    except sqlite3.DatabaseError as exc:
        return FileCheck(True, (f"SQLite cannot read it: {exc}",), False, (), (), False, None, None)


def _check_database(db: sqlite3.Connection) -> FileCheck:
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    problems = [str(r[0]) for r in db.execute("PRAGMA integrity_check(20)") if r[0] != "ok"]
    applied: list[str] = []
    if "_migrations" not in tables:
        if tables:
            problems.append(
                f"it is an SQLite database but not an oumi-jobs registry (tables: {', '.join(sorted(tables))})"
            )
    else:
        try:
            applied = [r[0] for r in db.execute("SELECT name FROM _migrations ORDER BY name")]
        except sqlite3.DatabaseError as exc:
            problems.append(f"its list of applied migrations cannot be read: {exc}")
    known = [name for name, _ in MIGRATIONS]
    newer = sorted(set(applied) - set(known))
    if newer:
        problems.append(
            f"it was written by a newer oumi-jobs (unknown schema migration {newer[-1]}); upgrade oumi-jobs"
        )
    elif not problems:
        try:
            problems += _schema_problems(db, set(applied))
        except sqlite3.DatabaseError as exc:
            problems.append(f"its schema cannot be read: {exc}")
    pending = tuple(name for name in known if name not in applied)
    jobs, cancellations = _count(db, "jobs", tables), _count(db, "cancellations", tables)
    return FileCheck(True, tuple(problems), False, tuple(applied), pending, bool(newer), jobs, cancellations)


# -- salvage -------------------------------------------------------------------
@contextmanager
def writing(target: Path) -> Iterator[None]:
    """Errors while the new registry is written (a full disk...) as one line; the damaged one is left as it was."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RegistryError(f"cannot write the recovered registry {target}: {why}; nothing was moved") from exc


def create_registry_file(target: Path) -> sqlite3.Connection:
    """A new, empty registry at ``target`` (private to its owner, which must not exist), every migration applied."""
    os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    db = sqlite3.connect(target, isolation_level=None)
    try:
        db.execute("PRAGMA foreign_keys = ON")  # rows whose parent was lost are refused, and counted as lost
        db.execute("PRAGMA synchronous = FULL")
        db.execute("BEGIN IMMEDIATE")
        db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        for name, sql in MIGRATIONS:  # as Database._migrate applies them, all at once
            for statement in statements(sql):
                db.execute(statement)
            db.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, now_iso()))
        db.execute("COMMIT")
    except BaseException:
        db.close()  # a full disk: the caller removes the file, which must not stay open (its mount could not go)
        raise
    return db


def _scan(old: sqlite3.Connection, table: str, columns: list[str]) -> tuple[list[tuple[Any, ...]], list[str]]:
    """Every row of ``table`` that can be read, in rowid order; a damaged stretch is skipped over."""
    rows: list[tuple[Any, ...]] = []
    errors: list[str] = []
    select = f"SELECT rowid, {', '.join(columns)} FROM {table} WHERE rowid > ? ORDER BY rowid"
    after, step = 0, 1
    for _ in range(_MAX_SKIPS):
        try:
            for row in old.execute(select, (after,)):
                rows.append(tuple(row[1:]))
                after, step = row[0], 1
            return rows, errors
        except sqlite3.DatabaseError as exc:
            if str(exc) not in errors:
                errors.append(str(exc))
            after, step = after + step, step * 2
    errors.append(f"gave up after {_MAX_SKIPS} damaged stretches")
    return rows, errors


def _salvage_table(old: sqlite3.Connection, new: sqlite3.Connection, table: str) -> TableSalvage:
    try:
        old_columns = {r[1] for r in old.execute(f"PRAGMA table_info({table})")}
    except sqlite3.DatabaseError as exc:
        return TableSalvage(table, 0, None, (f"its columns cannot be read: {exc}",), ())
    if not old_columns:
        return TableSalvage(table, 0, 0, (), ())  # an older registry that never had this table
    columns = [r[1] for r in new.execute(f"PRAGMA table_info({table})") if r[1] in old_columns]
    total = _count(old, table, {table})
    rows, errors = _scan(old, table, columns)
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    saved, refused, reasons = [], [], set()
    for row in rows:
        try:
            new.execute(insert, row)
            saved.append(str(row[0]))
        except sqlite3.DatabaseError as exc:  # a constraint: a duplicate, a missing parent, a damaged value
            refused.append(str(row[0]))
            reasons.add(f"refused: {exc}")
    # Rows in damaged pages cannot be read, but their ids may still be in the primary key's index.
    unread = sorted(_indexed_keys(old, table, columns[0]) - set(saved) - set(refused)) if errors else []
    lost_keys = tuple(refused + unread)
    lost = max(total - len(saved), len(lost_keys)) if total is not None else (len(lost_keys) if not errors else None)
    return TableSalvage(table, len(saved), lost, tuple(errors) + tuple(sorted(reasons)), lost_keys)


def _indexed_keys(old: sqlite3.Connection, table: str, key: str) -> set[str]:
    """The keys a TEXT primary key's own index holds (an index has pages of its own: it may have survived)."""
    keys: set[str] = set()
    try:
        for (value,) in old.execute(f"SELECT {key} FROM {table} INDEXED BY sqlite_autoindex_{table}_1 ORDER BY {key}"):
            keys.add(str(value))
    except sqlite3.DatabaseError:
        pass  # no such index (an INTEGER key), or the index is damaged too: keep what was read
    return keys


def salvage(source: Path, new: sqlite3.Connection) -> tuple[TableSalvage, ...]:
    """Copy every readable row of ``source`` into ``new`` (a registry from :func:`create_registry_file`).

    Tables are copied parents first (their order of creation), in one
    transaction; columns an older ``source`` lacks get their defaults.
    """
    tables = [r[0] for r in new.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")]
    tables = [t for t in tables if t != "_migrations" and t not in DERIVED_TABLES]
    try:
        header = _header(source)
    except OSError as exc:
        header, unreadable = b"", f"cannot read it: {exc.strerror or exc}"
    else:
        unreadable = "it is not an SQLite database"
    if header != SQLITE_HEADER:
        return tuple(TableSalvage(t, 0, None, (unreadable,), ()) for t in tables)
    results = []
    with _read_only(source) as old:
        new.execute("BEGIN IMMEDIATE")
        try:
            for table in tables:
                results.append(_salvage_table(old, new, table))
        except BaseException:
            new.execute("ROLLBACK")
            raise
        new.execute("COMMIT")
    return tuple(results)
