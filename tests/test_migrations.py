"""Migrations, on real SQLite files: an empty file gets the whole schema, and a registry written at
every earlier schema version opens with its rows intact and a schema equal to a fresh one.

The old files are built as the release at that version built them: its migrations applied and
recorded in ``_migrations``, then rows written in that version's shape.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from oumi_jobs.paths import Paths
from oumi_jobs.store.cancellations import CancellationStatus, CancellationTracker
from oumi_jobs.store.records import ATTEMPT_COLUMNS, RECORD_COLUMNS
from oumi_jobs.store.registry import MIGRATIONS, Registry

TABLES = {
    "_migrations": ["name", "applied_at"],
    "jobs": RECORD_COLUMNS,  # the record and its table agree, column for column
    "job_dependencies": ["job_id", "depends_on"],
    "cancellations": [
        "cancellation_id", "job_id", "cloud", "requested_at", "reason", "force", "timeout_s", "signal", "status",
        "finished_at", "final_state", "caused_by", "survivors", "runners_signalled", "detail", "owner_pid",
        "owner_start_time", "owner_boot_id",
    ],
    "cancellation_steps": ["cancellation_id", "seq", "name", "status", "started_at", "ended_at", "detail"],
    "job_processes": ["job_id", "pid", "start_time"],
    "clusters": ["name", "parallel"],
    "sweeps": ["sweep_id", "name", "config_path", "cloud", "cluster", "size", "parallel", "submit_time"],
    "job_events": ["event_id", "job_id", "attempt", "at", "kind", "detail"],
    "notifications": [
        "notification_id", "job_id", "attempt", "event", "url", "shown_url", "status", "attempts", "last_error",
        "sent_at", "created_at", "next_try_at", "document", "owner_pid", "owner_start_time", "owner_boot_id",
    ],
    "attempts": ["job_id", *ATTEMPT_COLUMNS],
    "job_documents": ["job_rowid", "for_job_id", "shape", "state", "head", "tail", "progress"],
}  # fmt: skip
# The triggers that drop a kept job document when what it is built from changes.
TRIGGERS = {
    f"job_documents_{what}"
    for what in (
        "job_updated", "job_deleted", "attempt_added", "attempt_changed", "attempt_deleted",
        "dependency_added", "dependency_changed", "dependency_deleted",
    )
}  # fmt: skip
# Named indexes -> (table, columns); SQLite's own indexes of primary keys aside.
INDEXES = {
    "jobs_submit_time": ("jobs", ["submit_time"]),
    "jobs_cloud_identity": ("jobs", ["cloud", "cluster", "launcher_job_id"]),
    "jobs_queue": ("jobs", ["cloud", "cluster", "end_time", "pid"]),
    "jobs_sweep": ("jobs", ["sweep_id", "supervisor_pid", "end_time"]),
    "job_events_job": ("job_events", ["job_id", "event_id"]),
    "notifications_created": ("notifications", ["created_at"]),
    "notifications_pending": ("notifications", ["status", "job_id"]),
    "sweeps_submit_time": ("sweeps", ["submit_time"]),
    "job_dependencies_reverse": ("job_dependencies", ["depends_on"]),
    "cancellations_job": ("cancellations", ["job_id", "requested_at"]),
    "cancellations_requested": ("cancellations", ["requested_at"]),
}

T0 = "2026-01-01T10:00:00.000+00:00"
T1 = "2026-01-01T10:05:00.000+00:00"
# Rows a release wrote, each with the migration that made its table: a version k has those of MIGRATIONS[:k].
ROWS: list[tuple[str, str, dict[str, Any]]] = [
    ("0001_jobs", "jobs", {
        "job_id": "done-job", "cloud": "local", "submit_time": T0, "command": "train", "cluster": "local",
        "argv": '["python", "-c", "pass"]', "supervisor_pid": 4241, "pid": 4242, "pgid": 4242, "boot_id": "b",
        "started_at": T0, "exit_code": 0, "end_time": T1,
    }),
    ("0001_jobs", "jobs", {
        "job_id": "cloud-job", "cloud": "gcp", "submit_time": T1, "cluster": "sky-1", "launcher_job_id": "7",
        "cancel_requested": 1, "source": "import",
    }),
    ("0002_dependencies", "job_dependencies", {"job_id": "cloud-job", "depends_on": "done-job"}),
    ("0003_cancellations", "cancellations", {
        "cancellation_id": "cx-1", "job_id": "cloud-job", "cloud": "gcp", "requested_at": T1, "reason": "oops",
        "force": 0, "timeout_s": 30.0, "signal": "SIGTERM", "status": "completed", "finished_at": T1,
        "final_state": "cancelled", "survivors": "[]", "runners_signalled": 2,
    }),
    ("0003_cancellations", "cancellation_steps", {
        "cancellation_id": "cx-1", "seq": 1, "name": "launcher_cancel", "status": "completed", "started_at": T1,
        "ended_at": T1,
    }),
    ("0003_cancellations", "job_processes", {"job_id": "done-job", "pid": 4243, "start_time": 1.5}),
    ("0004_queues", "clusters", {"name": "gpu", "parallel": 3}),
    ("0004_queues", "jobs", {
        "job_id": "queued-job", "cloud": "local", "submit_time": T1, "cluster": "gpu", "ready_at": T1,
    }),
    ("0005_containment", "jobs", {
        "job_id": "contained-job", "cloud": "local", "submit_time": T1, "pid": 4244, "containment": "cgroup",
        "cgroup": "/sys/fs/cgroup/oumi-jobs-contained-job",
    }),
    ("0006_cost", "jobs", {
        "job_id": "priced-job", "cloud": "gcp", "submit_time": T1, "cluster": "sky-2", "launcher_job_id": "3",
        "started_at": T1, "cost_per_hour": 12.5,
    }),
    ("0009_metrics_start", "jobs", {
        "job_id": "measured-job", "cloud": "local", "submit_time": T1, "pid": 4245,
        "metrics_start": '{"1":{"metrics_rank0000.jsonl":[7,120,1]}}',
    }),
    ("0014_job_documents", "job_documents", {
        "job_rowid": 1, "for_job_id": "done-job", "shape": "1:0", "state": "succeeded", "head": '{"a":1',
        "tail": '"b":2', "progress": "null",
    }),
]  # fmt: skip


def _paths(root: Path) -> Paths:
    return Paths(root / "data", root / "state", root / "cache")


def _connect(file: Path) -> sqlite3.Connection:
    """A raw connection, for building and reading files; only while no Registry of the file is open."""
    db = sqlite3.connect(file)
    db.row_factory = sqlite3.Row
    return db


def _write_version(file: Path, k: int) -> None:
    """A registry as the release with schema MIGRATIONS[:k] left it, with its rows."""
    file.parent.mkdir(parents=True)
    db = _connect(file)
    try:
        db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        for name, sql in MIGRATIONS[:k]:
            db.executescript(sql)
            db.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, T0))
        applied = {name for name, _ in MIGRATIONS[:k]}
        for migration, table, row in ROWS:
            if migration in applied:
                placeholders = ", ".join(f":{column}" for column in row)
                db.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({placeholders})", row)
        db.commit()
    finally:
        db.close()


def _schema(file: Path) -> dict[str, Any]:
    """Every table's columns (with type, NOT NULL, default, key), foreign keys and indexes."""
    db = _connect(file)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        schema: dict[str, Any] = {}
        for table in tables:
            indexes = {}
            for index in db.execute('SELECT name, "unique" FROM pragma_index_list(?)', (table,)):
                columns = [
                    r["name"] for r in db.execute("SELECT name FROM pragma_index_info(?) ORDER BY seqno", (index[0],))
                ]
                indexes[index[0]] = (bool(index[1]), columns)
            schema[table] = {
                "columns": [tuple(r) for r in db.execute("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?) ORDER BY cid", (table,))],
                "foreign_keys": sorted(tuple(r) for r in db.execute("SELECT \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list(?)", (table,))),
                "indexes": indexes,
            }  # fmt: skip
        return schema
    finally:
        db.close()


def _contents(file: Path) -> dict[str, list[dict[str, Any]]]:
    db = _connect(file)
    try:
        tables = [
            r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name != '_migrations'")
        ]
        return {table: [dict(r) for r in db.execute(f"SELECT * FROM {table} ORDER BY rowid")] for table in tables}
    finally:
        db.close()


@pytest.fixture
def fresh_schema(tmp_path: Path) -> dict[str, Any]:
    paths = _paths(tmp_path / "fresh")
    Registry.open(paths).close()
    return _schema(paths.registry_file)


def test_an_empty_file_gets_the_whole_schema(tmp_path: Path, fresh_schema: dict[str, Any]) -> None:
    paths = _paths(tmp_path / "empty")
    with Registry.open(paths) as registry:
        assert registry.applied_migrations() == [name for name, _ in MIGRATIONS]
        assert {table: registry.columns(table) for table in TABLES} == TABLES
        assert registry.journal_mode() == "wal"
        assert registry.integrity_check() == ["ok"]
        assert registry.jobs() == []
    schema = _schema(paths.registry_file)
    assert set(schema) == set(TABLES)
    named = {
        name: (table, columns)
        for table, info in schema.items()
        for name, (_unique, columns) in info["indexes"].items()
        if not name.startswith("sqlite_autoindex_")
    }
    assert named == INDEXES
    assert schema["job_dependencies"]["foreign_keys"] == [("jobs", "job_id", "job_id", "CASCADE")]
    assert schema == fresh_schema  # opening twice builds the same thing
    db = _connect(paths.registry_file)
    try:
        assert {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")} == TRIGGERS
    finally:
        db.close()


@pytest.mark.parametrize("k", range(1, len(MIGRATIONS) + 1), ids=lambda k: f"at-{MIGRATIONS[k - 1][0]}")
def test_every_earlier_version_migrates_with_its_data(tmp_path: Path, fresh_schema: dict[str, Any], k: int) -> None:
    paths = _paths(tmp_path / "old")
    _write_version(paths.registry_file, k)
    before = _contents(paths.registry_file)

    had = {name for name, _ in MIGRATIONS[:k]}  # the migrations of the release that wrote the file
    with Registry.open(paths) as registry:
        assert registry.applied_migrations() == [name for name, _ in MIGRATIONS]
        assert registry.integrity_check() == ["ok"]
        done, cloud, queued = (registry.get(job_id) for job_id in ("done-job", "cloud-job", "queued-job"))
        assert done is not None and cloud is not None
        assert (done.argv, done.exit_code, done.end_time, done.pid) == (("python", "-c", "pass"), 0, T1, 4242)
        assert (cloud.cluster, cloud.launcher_job_id, cloud.source) == ("sky-1", "7", "import")
        assert cloud.cancel_requested is True
        assert done.ready_at is None  # a column added later reads as unset
        assert cloud.depends_on == (("done-job",) if "0002_dependencies" in had else ())
        assert registry.recorded_processes("done-job") == ([(4243, 1.5)] if "0003_cancellations" in had else [])
        cancellation = CancellationTracker(registry).get("cx-1")
        if "0003_cancellations" in had:
            assert cancellation is not None and cancellation.status is CancellationStatus.COMPLETED
            assert [step.name for step in cancellation.steps] == ["launcher_cancel"]
        else:
            assert cancellation is None
        assert registry.parallel_of("gpu") == (3 if "0004_queues" in had else 1)
        assert (queued.ready_at if queued else None) == (T1 if "0004_queues" in had else None)
        assert done.containment is None and done.cgroup is None  # started before jobs had a containment
        contained = registry.get("contained-job")
        assert (contained.containment if contained else None) == ("cgroup" if "0005_containment" in had else None)
        assert cloud.cost_per_hour is None  # launched before launches kept their price
        priced = registry.get("priced-job")
        assert (priced.cost_per_hour if priced else None) == (12.5 if "0006_cost" in had else None)

    after = _contents(paths.registry_file)
    for table, rows in before.items():  # every row kept, every value kept; later columns only added
        assert len(after[table]) == len(rows)
        assert [{column: row[column] for column in old} for row, old in zip(after[table], rows, strict=True)] == rows
    assert _schema(paths.registry_file) == fresh_schema
