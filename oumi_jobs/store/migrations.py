"""The registry's schema, as the append-only list of migrations that builds it.

Each migration's name is recorded in the ``_migrations`` table when it is
applied (see :mod:`oumi_jobs.store.db`), so a registry written by any earlier
release is brought up to date on open, and one written by a newer release is
recognised (an unknown name) and left untouched.

Never edit, rename or reorder a shipped migration: registries in the field
have applied it as it was.  Change the schema by appending a new one
(``tests/test_migrations.py`` checks every earlier version still migrates).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

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
    (
        "0005_containment",
        """
        ALTER TABLE jobs ADD COLUMN containment TEXT;
        ALTER TABLE jobs ADD COLUMN cgroup TEXT;
        """,
    ),
    (
        "0006_cost",
        """
        ALTER TABLE jobs ADD COLUMN cost_per_hour REAL;
        """,
    ),
    (
        "0007_sweeps",
        """
        CREATE TABLE sweeps (
            sweep_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            config_path TEXT NOT NULL,
            cloud TEXT NOT NULL,
            cluster TEXT,
            size INTEGER NOT NULL,
            parallel INTEGER NOT NULL,
            submit_time TEXT NOT NULL
        );
        CREATE INDEX sweeps_submit_time ON sweeps (submit_time);
        ALTER TABLE jobs ADD COLUMN sweep_id TEXT;
        ALTER TABLE jobs ADD COLUMN overrides TEXT;
        ALTER TABLE jobs ADD COLUMN environment TEXT;
        CREATE INDEX jobs_sweep ON jobs (sweep_id, supervisor_pid, end_time);
        """,
    ),
    (
        "0008_failure",
        """
        ALTER TABLE jobs ADD COLUMN failure TEXT;
        """,
    ),
    (
        "0009_metrics_start",
        """
        ALTER TABLE jobs ADD COLUMN metrics_start TEXT;
        """,
    ),
    (
        "0010_final_progress",
        """
        ALTER TABLE jobs ADD COLUMN final_progress TEXT;
        """,
    ),
    (
        "0011_policy_events",
        """
        ALTER TABLE jobs ADD COLUMN policy TEXT;
        CREATE TABLE job_events (
            event_id INTEGER PRIMARY KEY,
            job_id TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
            attempt INTEGER NOT NULL,
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX job_events_job ON job_events (job_id, event_id);
        """,
    ),
    # A job's attempts.  The jobs row stays the current attempt's; each attempt that ended and was
    # retried is kept here, and the current attempt's resume check is the jobs row's `resume`.
    (
        "0012_attempts",
        """
        ALTER TABLE jobs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE jobs ADD COLUMN retry_at TEXT;
        ALTER TABLE jobs ADD COLUMN resume TEXT;
        CREATE TABLE attempts (
            job_id TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
            attempt INTEGER NOT NULL,
            state TEXT NOT NULL,
            start_time TEXT,
            end_time TEXT,
            exit_code INTEGER,
            exit_signal INTEGER,
            end_detail TEXT,
            failure TEXT,
            resume TEXT,
            stdout_path TEXT,
            stderr_path TEXT,
            cluster TEXT,
            launcher_job_id TEXT,
            PRIMARY KEY (job_id, attempt)
        );
        """,
    ),
    # One row per (job, attempt, event, URL), claimed by the process that sends it.
    (
        "0013_notifications",
        """
        CREATE TABLE notifications (
            notification_id INTEGER PRIMARY KEY,
            job_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            event TEXT NOT NULL,
            url TEXT NOT NULL,
            shown_url TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            sent_at TEXT,
            created_at TEXT NOT NULL,
            next_try_at TEXT NOT NULL,
            document TEXT NOT NULL DEFAULT '{}',
            owner_pid INTEGER,
            owner_start_time REAL,
            owner_boot_id TEXT,
            UNIQUE (job_id, attempt, event, url)
        );
        CREATE INDEX notifications_created ON notifications (created_at);
        CREATE INDEX notifications_pending ON notifications (status, job_id);
        """,
    ),
    # Each finished local job's JSON document, kept for the listing (store/listing.py), "as_of" left out.
    # A cache: the triggers drop a job's document whenever anything it is built from changes, so no
    # code that writes a job has to remember it; a registry recovered from damage starts without one.
    (
        "0014_job_documents",
        """
        CREATE TABLE job_documents (
            job_rowid INTEGER PRIMARY KEY,
            for_job_id TEXT NOT NULL,
            shape TEXT NOT NULL,
            state TEXT NOT NULL,
            head TEXT NOT NULL,
            tail TEXT NOT NULL,
            progress TEXT NOT NULL
        );
        CREATE TRIGGER job_documents_job_updated AFTER UPDATE ON jobs BEGIN
            DELETE FROM job_documents WHERE job_rowid = OLD.rowid;
        END;
        CREATE TRIGGER job_documents_job_deleted AFTER DELETE ON jobs BEGIN
            DELETE FROM job_documents WHERE job_rowid = OLD.rowid;
        END;
        CREATE TRIGGER job_documents_attempt_added AFTER INSERT ON attempts BEGIN
            DELETE FROM job_documents WHERE job_rowid IN (SELECT rowid FROM jobs WHERE job_id = NEW.job_id);
        END;
        CREATE TRIGGER job_documents_attempt_changed AFTER UPDATE ON attempts BEGIN
            DELETE FROM job_documents WHERE job_rowid IN (SELECT rowid FROM jobs WHERE job_id IN (OLD.job_id, NEW.job_id));
        END;
        CREATE TRIGGER job_documents_attempt_deleted AFTER DELETE ON attempts BEGIN
            DELETE FROM job_documents WHERE job_rowid IN (SELECT rowid FROM jobs WHERE job_id = OLD.job_id);
        END;
        CREATE TRIGGER job_documents_dependency_added AFTER INSERT ON job_dependencies BEGIN
            DELETE FROM job_documents WHERE job_rowid IN (SELECT rowid FROM jobs WHERE job_id = NEW.job_id);
        END;
        CREATE TRIGGER job_documents_dependency_changed AFTER UPDATE ON job_dependencies BEGIN
            DELETE FROM job_documents WHERE job_rowid IN (SELECT rowid FROM jobs WHERE job_id IN (OLD.job_id, NEW.job_id));
        END;
        CREATE TRIGGER job_documents_dependency_deleted AFTER DELETE ON job_dependencies BEGIN
            DELETE FROM job_documents WHERE job_rowid IN (SELECT rowid FROM jobs WHERE job_id = OLD.job_id);
        END;
        """,
    ),
]

# Tables derived from the others, which a recovery does not copy (it rebuilds them as they are used).
DERIVED_TABLES = frozenset({"job_documents"})


def statements(sql: str) -> Iterator[str]:
    """The statements of a migration, one by one: split at each ``;`` that ends one (a trigger's body has
    several), as SQLite itself tells."""
    pending = ""
    for piece in sql.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""
    if pending.strip(" \n;"):
        yield pending
