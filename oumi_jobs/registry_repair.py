"""``registry check`` and ``registry recover``: the way out of a damaged registry, never taken automatically.

A registry that cannot be read stops every command (SPEC principle 2), and
its error names these.  ``check`` says what is wrong and writes nothing.
``recover`` copies every readable row into a new registry, then moves the
damaged file aside under a timestamped name (it is never deleted: it stays for
a closer look, ``sqlite3 FILE .recover`` included) and puts the new one in its
place in one rename, so no moment is without a registry.  It is meant for a
registry that stops commands: run it while no other oumi-jobs command runs,
since what they write meanwhile goes to the file moved aside.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from oumi_jobs.errors import ConflictError, RegistryError
from oumi_jobs.events import log_event
from oumi_jobs.paths import Paths
from oumi_jobs.store.db import raw_file_access
from oumi_jobs.store.repair import FileCheck, TableSalvage, check_file, create_registry_file, salvage, writing
from oumi_jobs.timestamps import now

# SQLite's companions of a database file: a WAL left beside the new file would be replayed into it.
COMPANIONS = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class RegistryCheck:
    path: Path
    exists: bool
    problems: tuple[str, ...]
    migrations_applied: tuple[str, ...]
    migrations_pending: tuple[str, ...]
    jobs: int | None
    cancellations: int | None

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Recovery:
    path: Path
    moved_to: tuple[Path, ...]  # the damaged file, and its companions, under their new names
    problems: tuple[str, ...]  # what the check found before
    tables: tuple[TableSalvage, ...]

    @property
    def saved_jobs(self) -> int:
        return sum(t.saved for t in self.tables if t.table == "jobs")

    @property
    def lost_rows(self) -> int | None:
        """Rows lost over every table; None when the damaged file cannot say how many it had."""
        counts = [t.lost for t in self.tables]
        return None if any(c is None for c in counts) else sum(c for c in counts if c is not None)


def _as_check(path: Path, found: FileCheck) -> RegistryCheck:
    return RegistryCheck(
        path, found.exists, found.problems, found.applied, found.pending, found.jobs, found.cancellations
    )


def check_registry(paths: Paths) -> RegistryCheck:
    """Integrity and schema of the registry; writes nothing (a missing registry is fine: it is made on first use)."""
    return _as_check(paths.registry_file, check_file(paths.registry_file))


def _aside_name(path: Path) -> Path:
    stamp = now().strftime("%Y%m%dT%H%M%SZ")
    candidate, n = path.with_name(f"{path.name}.broken-{stamp}"), 1
    while candidate.exists() or any(Path(f"{candidate}{c}").exists() for c in COMPANIONS):
        candidate, n = path.with_name(f"{path.name}.broken-{stamp}-{n}"), n + 1
    return candidate


def _move_aside(path: Path, aside: Path) -> list[Path]:
    """Give the file and its companions their aside names, by hard links, so the data never lacks a name.

    Every link is made before any old name goes: a link that fails leaves the
    registry exactly as it was.  Then the companions' old names are removed
    (a WAL left beside the new file would be replayed into it).
    """
    pairs = [(path, aside)] + [
        (Path(f"{path}{suffix}"), Path(f"{aside}{suffix}")) for suffix in COMPANIONS if Path(f"{path}{suffix}").exists()
    ]
    linked: list[Path] = []
    try:
        for old, new in pairs:
            os.link(old, new)
            linked.append(new)
    except OSError as exc:
        for new in linked:
            new.unlink()
        raise RegistryError(f"cannot move the registry {path} aside: {exc.strerror}; nothing was moved") from exc
    for old, _ in pairs[1:]:
        old.unlink()
    return linked


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _refuse_unless_damaged(path: Path, found: FileCheck) -> None:
    if not found.exists:
        raise ConflictError(f"there is no registry at {path}; nothing to recover")
    if found.unreadable:
        raise ConflictError(f"the registry {path} is not damaged but cannot be read ({found.problems[0]}); fix that")
    if found.newer:
        raise ConflictError(f"the registry {path} was written by a newer oumi-jobs; upgrade oumi-jobs instead")
    if not found.problems:
        raise ConflictError(f"the registry {path} passed its check; nothing to recover")


def recover_registry(paths: Paths) -> Recovery:
    """Salvage every readable row of a damaged registry into a new one; the damaged file is moved aside."""
    path = paths.registry_file
    _refuse_unless_damaged(path, check_file(path))  # first, so that refusing needs no write (another user...)
    try:
        lock = os.open(path.with_name(f"{path.name}.recover-lock"), os.O_CREAT | os.O_WRONLY, 0o600)
    except OSError as exc:
        raise RegistryError(f"cannot lock the registry {path} for recovery: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConflictError(f"another `oumi-jobs registry recover` is running on {path}") from None
        found = check_file(path)  # again, under the lock: a recover that just ended may have mended it
        _refuse_unless_damaged(path, found)
        target = path.with_name(f"{path.name}.recovering-{os.getpid()}")
        target.unlink(missing_ok=True)  # left by a recover of ours that died (this pid's own name)
        try:
            with writing(target):
                db = create_registry_file(target)
                try:
                    tables = salvage(path, db)
                finally:
                    db.close()
            with raw_file_access(path):
                moved = _move_aside(path, _aside_name(path))
                os.replace(target, path)
            _fsync_dir(path.parent)
        finally:
            target.unlink(missing_ok=True)
    finally:
        os.close(lock)  # and with it the lock
    recovery = Recovery(path, tuple(moved), found.problems, tables)
    log_event(
        paths, "registry_recover", moved_to=[str(p) for p in moved], problems=list(found.problems),
        saved={t.table: t.saved for t in tables}, lost={t.table: t.lost for t in tables},
    )  # fmt: skip
    return recovery
