"""Sweep operations: the sweeps table, a sweep's children registered in one transaction, and their hand-over.

A sweep's children are ordinary rows of the jobs table that carry
``sweep_id``.  A child whose ``supervisor_pid`` is NULL has no detached
process yet: it waits for a slot of its sweep, and the process of the child
before it (a supervisor, or a cloud launching process) claims it here when it
ends (:meth:`SweepStore.claim_unstarted`), so a sweep of thousands never has
thousands of processes at once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from oumi_jobs.errors import AmbiguousJobError, ConflictError, JobNotFoundError, UsageError
from oumi_jobs.store.db import Database
from oumi_jobs.store.records import RECORD_COLUMNS, JobRecord, record_to_row
from oumi_jobs.timestamps import now_iso

_INSERT_CHILD = (
    f"INSERT INTO jobs ({', '.join(RECORD_COLUMNS)}) VALUES ({', '.join(':' + name for name in RECORD_COLUMNS)})"
)
_SWEEP_COLUMNS = "sweep_id, name, config_path, cloud, cluster, size, parallel, submit_time"
# Enough candidates to report an ambiguous prefix.
_RESOLVE_CANDIDATES = 11


@dataclass(frozen=True)
class SweepRecord:
    sweep_id: str
    name: str
    config_path: str
    cloud: str
    cluster: str | None
    size: int
    parallel: int
    submit_time: str


class SweepStore(Database):
    """Operations on sweeps; :class:`oumi_jobs.store.registry.Registry` has them all."""

    def add_sweep(self, sweep: SweepRecord, children: Sequence[JobRecord]) -> None:
        """Register the sweep and every child in one transaction, with one prepared statement each: all or none."""
        with self._transaction() as db:
            _check_free(db, sweep.sweep_id, [child.job_id for child in children])
            db.execute(
                f"INSERT INTO sweeps ({_SWEEP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (sweep.sweep_id, sweep.name, sweep.config_path, sweep.cloud, sweep.cluster, sweep.size,
                 sweep.parallel, sweep.submit_time),
            )  # fmt: skip
            db.executemany(_INSERT_CHILD, (record_to_row(child) for child in children))
            db.executemany(
                "INSERT INTO job_dependencies (job_id, depends_on) VALUES (?, ?)",
                [(child.job_id, dep) for child in children for dep in child.depends_on],
            )

    def check_sweep_ids(self, sweep_id: str, job_ids: list[str]) -> None:
        """ConflictError if the sweep id or a child's id is taken (before a sweep writes any file)."""
        with self._guard():
            _check_free(self._db, sweep_id, job_ids)

    def sweep(self, sweep_id: str) -> SweepRecord | None:
        row = self._execute(f"SELECT {_SWEEP_COLUMNS} FROM sweeps WHERE sweep_id = ?", (sweep_id,)).fetchone()
        return SweepRecord(*row) if row else None

    def sweeps(self) -> list[SweepRecord]:
        """Every sweep, newest first."""
        rows = self._execute(f"SELECT {_SWEEP_COLUMNS} FROM sweeps ORDER BY submit_time DESC, rowid DESC")
        return [SweepRecord(*row) for row in rows]

    def resolve_sweep(self, ref: str) -> SweepRecord:
        """The sweep named by its id or a unique prefix of it; JobNotFoundError or AmbiguousJobError otherwise."""
        if not ref.strip():
            raise UsageError("an empty sweep id names no sweep")
        found = self.sweep(ref)
        if found is not None:
            return found
        escaped = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._execute(
            f"SELECT {_SWEEP_COLUMNS} FROM sweeps WHERE sweep_id LIKE ? ESCAPE '\\' ORDER BY sweep_id LIMIT ?",
            (escaped + "%", _RESOLVE_CANDIDATES),
        ).fetchall()
        if not rows:
            raise JobNotFoundError(f"no sweep matches {ref!r}")
        if len(rows) > 1:
            raise AmbiguousJobError(ref, [r[0] for r in rows])
        return SweepRecord(*rows[0])

    def sweep_child_counts(self) -> dict[str, int]:
        """How many children each sweep still has in the registry."""
        rows = self._execute("SELECT sweep_id, COUNT(*) FROM jobs WHERE sweep_id IS NOT NULL GROUP BY sweep_id")
        return {sweep_id: int(count) for sweep_id, count in rows}

    def claim_unstarted(self, sweep_id: str, pid: int, start_time: float | None, boot: str | None) -> str | None:
        """Take the sweep's first child that has no process yet, for the process ``pid`` that starts it now.

        One transaction, so two ending children never start the same next one.
        The child is marked with the claimer's identity until its own process
        is recorded: should the claimer die in between, the child reads lost.
        """
        with self._transaction() as db:
            row = db.execute(
                "SELECT job_id FROM jobs WHERE sweep_id = ? AND supervisor_pid IS NULL AND end_time IS NULL "
                "AND cancel_requested = 0 ORDER BY rowid LIMIT 1",
                (sweep_id,),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET supervisor_pid = ?, supervisor_start_time = ?, boot_id = ? WHERE job_id = ?",
                (pid, start_time, boot, row[0]),
            )
            return str(row[0])

    def end_unstarted(self, sweep_id: str, detail: str) -> list[str]:
        """Cancel, in one step, every child of the sweep that no process has taken yet; their ids."""
        with self._transaction() as db:
            ids = [
                r[0]
                for r in db.execute(
                    "SELECT job_id FROM jobs WHERE sweep_id = ? AND supervisor_pid IS NULL AND end_time IS NULL "
                    "ORDER BY rowid",
                    (sweep_id,),
                )
            ]
            db.execute(
                "UPDATE jobs SET cancel_requested = 1, end_time = ?, end_detail = ? "
                "WHERE sweep_id = ? AND supervisor_pid IS NULL AND end_time IS NULL",
                (now_iso(), detail, sweep_id),
            )
        return ids


def _check_free(db: sqlite3.Connection, sweep_id: str, job_ids: list[str]) -> None:
    if db.execute("SELECT 1 FROM sweeps WHERE sweep_id = ?", (sweep_id,)).fetchone():
        raise ConflictError(f"a sweep with id {sweep_id!r} already exists; choose another --name")
    taken = _taken_ids(db, job_ids)
    if taken:
        raise ConflictError(f"a job with id {taken[0]!r} already exists; choose another --name")


def _taken_ids(db: sqlite3.Connection, job_ids: list[str]) -> list[str]:
    """Which of ``job_ids`` are in the registry already (read in chunks: SQLite caps a statement's parameters)."""
    taken: list[str] = []
    for start in range(0, len(job_ids), 500):
        chunk = job_ids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        taken += [r[0] for r in db.execute(f"SELECT job_id FROM jobs WHERE job_id IN ({marks})", chunk)]
    return taken
