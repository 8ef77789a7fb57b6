"""Cancellation records and their tracker.

One record per cancel request, persisted in the registry database and written
as each step happens, so ``cancel-status`` shows a graceful cancel while it is
still waiting.  The record knows which process owns it (pid, start time, boot
id): a second ``cancel`` joins a live owner's record instead of starting a
second termination, and takes over one whose owner died.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from oumi_jobs.errors import JobNotFoundError, UsageError
from oumi_jobs.local.procs import boot_id, identify, is_alive
from oumi_jobs.store.registry import Registry
from oumi_jobs.timestamps import from_iso, now, now_iso


class CancellationStatus(str, Enum):
    REQUESTED = "requested"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    NOT_NEEDED = "not_needed"

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        return self not in (CancellationStatus.REQUESTED, CancellationStatus.IN_PROGRESS)


class StepStatus(str, Enum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CancellationStep:
    name: str
    status: StepStatus
    started_at: str
    ended_at: str | None
    detail: str | None


@dataclass(frozen=True)
class CancellationRecord:
    cancellation_id: str
    job_id: str
    cloud: str
    requested_at: str
    reason: str | None
    force: bool
    timeout_s: float
    signal: str
    status: CancellationStatus
    finished_at: str | None
    final_state: str | None
    caused_by: str | None
    survivors: tuple[int, ...]
    runners_signalled: int
    detail: str | None
    steps: tuple[CancellationStep, ...]
    # Not stored: what this process could not do beside the cancel (a metrics file it could not write).
    warnings: tuple[str, ...] = ()

    @property
    def mode(self) -> str:
        return "force" if self.force else "graceful"

    @property
    def duration_s(self) -> float | None:
        if self.finished_at is None:
            return None

        return (from_iso(self.finished_at) - from_iso(self.requested_at)).total_seconds()


def new_cancellation_id() -> str:
    return f"cx-{now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def _record_from_row(row: sqlite3.Row, steps: Sequence[CancellationStep]) -> CancellationRecord:
    return CancellationRecord(
        cancellation_id=row["cancellation_id"],
        job_id=row["job_id"],
        cloud=row["cloud"],
        requested_at=row["requested_at"],
        reason=row["reason"],
        force=bool(row["force"]),
        timeout_s=row["timeout_s"],
        signal=row["signal"],
        status=CancellationStatus(row["status"]),
        finished_at=row["finished_at"],
        final_state=row["final_state"],
        caused_by=row["caused_by"],
        survivors=tuple(json.loads(row["survivors"])),
        runners_signalled=row["runners_signalled"],
        detail=row["detail"],
        steps=tuple(steps),
    )


class CancellationSummary(NamedTuple):
    """What the metrics count of one cancellation (no steps: cheap to read for every record)."""

    cloud: str
    force: bool
    status: str
    requested_at: str
    finished_at: str | None
    runners_signalled: int


class AlertFacts(NamedTuple):
    """What the alerting rules watch of one cancellation."""

    cloud: str
    force: bool
    survived: bool  # processes were left alive
    killed: bool  # SIGKILL was sent (--force, or a graceful cancel that escalated)
    cleanup_failed: bool


@dataclass(frozen=True)
class Claim:
    """The outcome of asking to cancel: our own new record, or one we join or take over."""

    record: CancellationRecord
    owner: bool  # True: this process runs the cancellation; False: it only waits for it
    dead_owner: int | None = None  # the pid of the owner that died, where this claim took its record over


class CancellationTracker:
    """Reads and writes cancellation records in an open registry."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    # -- writing ---------------------------------------------------------------
    def claim(
        self,
        job_id: str,
        *,
        cloud: str,
        reason: str | None,
        force: bool,
        timeout_s: float,
        signal_name: str,
        caused_by: str | None = None,
        set_flag: bool = True,
    ) -> Claim:
        """Start a cancellation of ``job_id``, or join the one already running.

        One transaction sets the job's persisted ``cancel_requested`` flag and
        either finds an unfinished record (joined if its owner lives, taken over
        if not) or creates ours; two concurrent cancels therefore produce one
        termination and report one record.  A ``force`` that takes over a
        graceful record makes it a forced one: the record says what was done.
        """
        me = identify_self()
        with self.registry._transaction() as db:
            if set_flag:
                db.execute("UPDATE jobs SET cancel_requested = 1 WHERE job_id = ?", (job_id,))
            row = _active_row(db, job_id)
            if row is not None:
                cancellation_id = row["cancellation_id"]
                if _owner_alive(row):
                    return self._claimed(cancellation_id, owner=False)
                _take_ownership(db, cancellation_id, me, force=force)
                return self._claimed(cancellation_id, owner=True, dead_owner=row["owner_pid"])
            cancellation_id = new_cancellation_id()
            db.execute(
                "INSERT INTO cancellations (cancellation_id, job_id, cloud, requested_at, reason, force, "
                "timeout_s, signal, status, caused_by, owner_pid, owner_start_time, owner_boot_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'requested', ?, ?, ?, ?)",
                (cancellation_id, job_id, cloud, now_iso(), reason, int(force), timeout_s, signal_name,
                 caused_by, *me),
            )  # fmt: skip
        return self._claimed(cancellation_id, owner=True)

    def adopt_orphan(self, job_id: str) -> Claim | None:
        """Take over the job's unfinished cancellation if its owner died (killed, Ctrl-C, a reboot); else None.

        What ``status`` and ``cancel-status`` call: one transaction, so of
        several readers that find the same dead owner only one adopts it.
        """
        with self.registry._transaction() as db:
            row = _active_row(db, job_id)
            if row is None or _owner_alive(row):
                return None
            _take_ownership(db, row["cancellation_id"], identify_self(), force=False)
        return self._claimed(row["cancellation_id"], owner=True, dead_owner=row["owner_pid"])

    def _claimed(self, cancellation_id: str, *, owner: bool, dead_owner: int | None = None) -> Claim:
        record = self.get(cancellation_id)
        assert record is not None  # read after the transaction that found or made it
        return Claim(record, owner, dead_owner)

    def hand_over(self, cancellation_id: str, pid: int) -> None:
        """Make another process (the detached finisher of ``--no-wait``) the owner."""
        identity = identify(pid)
        with self.registry._transaction() as db:
            db.execute(
                "UPDATE cancellations SET owner_pid = ?, owner_start_time = ?, owner_boot_id = ? "
                "WHERE cancellation_id = ?",
                (pid, identity.start_time if identity else None, boot_id(), cancellation_id),
            )

    def set_status(self, cancellation_id: str, status: CancellationStatus) -> None:
        self.registry._execute(
            "UPDATE cancellations SET status = ? WHERE cancellation_id = ?", (status.value, cancellation_id)
        )

    def begin_step(self, cancellation_id: str, name: str, detail: str | None = None) -> int:
        with self.registry._transaction() as db:
            seq = db.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM cancellation_steps WHERE cancellation_id = ?",
                (cancellation_id,),
            ).fetchone()[0]
            db.execute(
                "INSERT INTO cancellation_steps (cancellation_id, seq, name, status, started_at, detail) "
                "VALUES (?, ?, ?, 'in_progress', ?, ?)",
                (cancellation_id, seq, name, now_iso(), detail),
            )
        return int(seq)

    def end_step(self, cancellation_id: str, seq: int, status: StepStatus, detail: str | None = None) -> None:
        self.registry._execute(
            "UPDATE cancellation_steps SET status = ?, ended_at = ?, detail = COALESCE(?, detail) "
            "WHERE cancellation_id = ? AND seq = ?",
            (status.value, now_iso(), detail, cancellation_id, seq),
        )

    def add_signalled(self, cancellation_id: str, count: int) -> None:
        self.registry._execute(
            "UPDATE cancellations SET runners_signalled = runners_signalled + ? WHERE cancellation_id = ?",
            (count, cancellation_id),
        )

    def finish(
        self,
        cancellation_id: str,
        status: CancellationStatus,
        *,
        final_state: str | None,
        survivors: Sequence[int] = (),
        detail: str | None = None,
    ) -> CancellationRecord:
        self.registry._execute(
            "UPDATE cancellations SET status = ?, finished_at = ?, final_state = ?, survivors = ?, detail = ? "
            "WHERE cancellation_id = ?",
            (status.value, now_iso(), final_state, json.dumps(list(survivors)), detail, cancellation_id),
        )
        record = self.get(cancellation_id)
        assert record is not None
        return record

    # -- reading ---------------------------------------------------------------
    def get(self, cancellation_id: str) -> CancellationRecord | None:
        row = self.registry._execute(
            "SELECT * FROM cancellations WHERE cancellation_id = ?", (cancellation_id,)
        ).fetchone()
        return None if row is None else _record_from_row(row, self._steps(cancellation_id))

    def _steps(self, cancellation_id: str) -> list[CancellationStep]:
        rows = self.registry._execute(
            "SELECT * FROM cancellation_steps WHERE cancellation_id = ? ORDER BY seq", (cancellation_id,)
        )
        return [
            CancellationStep(r["name"], StepStatus(r["status"]), r["started_at"], r["ended_at"], r["detail"])
            for r in rows
        ]

    def latest_for_job(self, job_id: str) -> CancellationRecord:
        row = self.registry._execute(
            "SELECT cancellation_id FROM cancellations WHERE job_id = ? ORDER BY requested_at DESC, rowid DESC LIMIT 1",
            (job_id,),
        ).fetchone()
        if row is None:
            raise JobNotFoundError(f"job {job_id} has never been cancelled")
        record = self.get(row[0])
        assert record is not None
        return record

    def history(
        self,
        *,
        limit: int = 20,
        offset: int = 0,
        job_id: str | None = None,
        status: str | None = None,
    ) -> list[CancellationRecord]:
        if limit < 0 or offset < 0:
            raise UsageError("--limit and --offset must not be negative")
        clauses, params = [], []
        if job_id is not None:
            clauses.append("job_id = ?")
            params.append(job_id)
        if status is not None:
            try:
                params.append(CancellationStatus(status).value)
            except ValueError:
                choices = ", ".join(s.value for s in CancellationStatus)
                raise UsageError(f"unknown cancellation status {status!r}; statuses: {choices}") from None
            clauses.append("status = ?")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.registry._execute(
            f"SELECT cancellation_id FROM cancellations {where} ORDER BY requested_at DESC, rowid DESC "
            "LIMIT ? OFFSET ?",
            (*params, limit, offset),
        ).fetchall()
        return [record for r in rows if (record := self.get(r[0])) is not None]

    def active_for_job(self, job_id: str) -> bool:
        row = self.registry._execute(
            "SELECT 1 FROM cancellations WHERE job_id = ? AND status IN ('requested', 'in_progress')", (job_id,)
        ).fetchone()
        return row is not None

    def summaries(self) -> list[CancellationSummary]:
        """Every cancellation, in brief, for the metrics (which are derived from all of them each time)."""
        rows = self.registry._execute(
            "SELECT cloud, force, status, requested_at, finished_at, runners_signalled FROM cancellations"
        ).fetchall()
        return [CancellationSummary(r[0], bool(r[1]), r[2], r[3], r[4], r[5]) for r in rows]

    def alert_facts(self) -> list[AlertFacts]:
        """Per cancellation, what the alerting rules watch (contrib/prometheus): survivors, SIGKILL, failed cleanup."""
        rows = self.registry._execute(
            "SELECT c.cloud, c.force, c.survivors != '[]', "
            "EXISTS (SELECT 1 FROM cancellation_steps s WHERE s.cancellation_id = c.cancellation_id "
            "AND s.name = 'signal_kill'), "
            "EXISTS (SELECT 1 FROM cancellation_steps s WHERE s.cancellation_id = c.cancellation_id "
            "AND s.name = 'cleanup' AND s.status = 'failed') "
            "FROM cancellations c"
        ).fetchall()
        return [AlertFacts(r[0], bool(r[1]), bool(r[2]), bool(r[3]), bool(r[4])) for r in rows]

    def is_owner(self, cancellation_id: str) -> bool:
        """Whether this very process (pid and start time, not a reused pid) owns the cancellation."""
        row = self.registry._execute(
            "SELECT owner_pid, owner_start_time, owner_boot_id FROM cancellations WHERE cancellation_id = ?",
            (cancellation_id,),
        ).fetchone()
        return row is not None and tuple(row) == identify_self()


def identify_self() -> tuple[int, float | None, str]:
    identity = identify(os.getpid())
    return os.getpid(), identity.start_time if identity else None, boot_id()


def _active_row(db: sqlite3.Connection, job_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = db.execute(
        "SELECT * FROM cancellations WHERE job_id = ? AND status IN ('requested', 'in_progress') "
        "ORDER BY requested_at DESC LIMIT 1",
        (job_id,),
    ).fetchone()
    return row


def _owner_alive(row: sqlite3.Row) -> bool:
    """Whether the recorded owner is still that very process (pid, start time and boot id, as for jobs)."""
    return is_alive(row["owner_pid"], row["owner_start_time"], row["owner_boot_id"])


def _take_ownership(
    db: sqlite3.Connection, cancellation_id: str, me: tuple[int, float | None, str], *, force: bool
) -> None:
    db.execute(
        "UPDATE cancellations SET owner_pid = ?, owner_start_time = ?, owner_boot_id = ?, "
        "force = MAX(force, ?) WHERE cancellation_id = ?",
        (*me, int(force), cancellation_id),
    )
