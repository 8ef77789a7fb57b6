"""The registry: unreadable files left untouched, migrations, concurrent writers, legacy import."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest

from oumi_jobs.paths import Paths
from oumi_jobs.store.registry import MIGRATIONS, JobRecord, Registry
from oumi_jobs.timestamps import now, to_iso


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize(
    "content",
    [b"this is not a database\n" * 10, b"SQLite format 3\x00" + b"\xff" * 4000, b"\x00\x01"],
    ids=["text", "sqlite-header-garbage-body", "short"],
)
def test_corrupt_registry_is_left_byte_for_byte(paths, cli, job_config, content):
    paths.data_dir.mkdir(parents=True)
    paths.registry_file.write_bytes(content)
    before = _snapshot(paths.data_dir)
    for args in (["list"], ["status", "x"], ["submit", str(job_config("true"))], ["prune"]):
        result = cli(*args)
        assert result.exit_code == 1, (args, result.stdout, result.stderr)
        assert str(paths.registry_file) in result.stderr
        assert "oumi-jobs registry recover" in result.stderr  # the way out, never taken automatically
        assert len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr
    assert _snapshot(paths.data_dir) == before


def test_foreign_sqlite_database_is_refused(paths, cli):
    paths.data_dir.mkdir(parents=True)
    db = sqlite3.connect(paths.registry_file)
    db.execute("CREATE TABLE photos (id INTEGER)")
    db.commit()
    db.close()
    before = paths.registry_file.read_bytes()
    result = cli("list")
    assert result.exit_code == 1 and "not an oumi-jobs registry" in result.stderr
    assert paths.registry_file.read_bytes() == before


def test_registry_from_a_newer_version_is_refused(paths, cli):
    Registry.open(paths).close()
    db = sqlite3.connect(paths.registry_file)
    db.execute("INSERT INTO _migrations VALUES ('9999_future', '2030-01-01')")
    db.commit()
    db.close()
    before = paths.registry_file.read_bytes()
    result = cli("list")
    assert result.exit_code == 1 and "newer oumi-jobs" in result.stderr
    assert paths.registry_file.read_bytes() == before


def test_migrations_are_recorded_and_status_is_never_a_column(paths):
    with Registry.open(paths) as registry:
        applied = registry.applied_migrations()
        columns = set(registry.columns("jobs"))
        journal = registry.journal_mode()
    assert applied == [name for name, _ in MIGRATIONS]
    assert "status" not in columns and "state" not in columns
    assert journal == "wal"


def test_old_schema_is_migrated_on_open(paths):
    """A registry made by the first release (only migration 0001) gains the later tables."""
    paths.data_dir.mkdir(parents=True)
    db = sqlite3.connect(paths.registry_file)
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    db.executescript(MIGRATIONS[0][1])
    db.execute("INSERT INTO _migrations VALUES (?, '2026-01-01')", (MIGRATIONS[0][0],))
    db.execute("INSERT INTO jobs (job_id, cloud, submit_time) VALUES ('old-job', 'local', '2026-01-01T00:00:00+00:00')")
    db.commit()
    db.close()
    with Registry.open(paths) as registry:
        assert registry.get("old-job") is not None
        assert set(registry.applied_migrations()) == {n for n, _ in MIGRATIONS}


LEGACY = [
    {"job_id": "train_20260201_aaa", "command": "train", "config_path": "/c/train.yaml", "cloud": "gcp",
     "cluster_name": "sky-123", "oumi_job_id": "4", "model_name": "llama", "submit_time": "2026-02-01T10:00:00",
     "output_dir": "gs://out", "status": "RUNNING"},
    {"job_id": "eval_local", "command": "evaluate", "config_path": "/c/eval.yaml", "cloud": "local",
     "cluster_name": "", "oumi_job_id": "", "model_name": "", "submit_time": "2026-02-02T11:00:00Z",
     "output_dir": "", "status": "completed"},
    {"job_id": "", "cloud": "gcp", "submit_time": "2026-02-01T10:00:00"},
    {"job_id": "no_time", "cloud": "gcp"},
    "not an object",
    {"job_id": "bad_time", "cloud": "aws", "submit_time": "yesterday"},
]  # fmt: skip


def test_legacy_import_drops_status_and_is_idempotent(paths, cli, tmp_path):
    file = tmp_path / "jobs.json"
    file.write_text(json.dumps(LEGACY))
    first = cli("import-registry", str(file), "--json")
    assert first.exit_code == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["imported"] == ["train_20260201_aaa", "eval_local"]
    assert [s["index"] for s in doc["skipped"]] == [2, 3, 4, 5]
    assert "submit_time" in doc["skipped"][1]["reason"]

    second = json.loads(cli("import-registry", str(file), "--json").stdout)
    assert second["imported"] == [] and second["already_present"] == ["train_20260201_aaa", "eval_local"]

    with Registry.open(paths) as registry:
        record = registry.get("train_20260201_aaa")
        assert len(registry.jobs()) == 2
    assert record is not None
    assert (record.cloud, record.cluster, record.launcher_job_id) == ("gcp", "sky-123", "4")
    assert record.submit_time == "2026-02-01T10:00:00.000+00:00"
    local = cli.json("status", "eval_local")
    assert local["state"] == "lost" and "legacy" in local["detail"]
    assert local["status"] == "imported"  # never the file's stale "completed"


@pytest.mark.parametrize(
    "content, message",
    [("{not json", "not valid JSON"), ('{"a": 1}', "expected a JSON list")],
)
def test_legacy_import_rejects_unusable_files(paths, cli, tmp_path, content, message):
    file = tmp_path / "jobs.json"
    file.write_text(content)
    result = cli("import-registry", str(file))
    assert result.exit_code == 2 and message in result.stderr
    assert cli("import-registry", str(tmp_path / "absent.json")).exit_code == 2


SUBMITTER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from oumi_jobs.submitting import SubmitRequest, submit
    from oumi_jobs.paths import Paths

    paths, config, worker = Paths.from_env(), sys.argv[1], sys.argv[2]
    ids = [submit(paths, SubmitRequest(config=config, name=f"w{worker}-{i}", cluster=f"w{worker}", parallel=100)).job_id for i in range(100)]
    print("\\n".join(ids))
    """
)

PRUNER = textwrap.dedent(
    """
    import sys, time
    from oumi_jobs.prune import prune
    from oumi_jobs.paths import Paths

    removed, deadline = [], time.monotonic() + float(sys.argv[1])
    while time.monotonic() < deadline:
        removed += prune(Paths.from_env()).removed
        time.sleep(0.05)
    print(len(removed))
    """
)


@pytest.mark.slow
def test_eight_processes_submit_800_jobs_while_prune_runs(paths, job_config, tmp_path):
    """Concurrent writers lose nothing; prune removes exactly the old finished jobs meanwhile."""
    old = to_iso(now() - timedelta(days=30))
    with Registry.open(paths) as registry:
        registry.add_many_if_absent(
            JobRecord(job_id=f"old-{i}", cloud="local", submit_time=old, exit_code=0, end_time=old, supervisor_pid=1)
            for i in range(300)
        )
    config = job_config("true")
    env_home = str(paths.data_dir.parent)
    import os

    env = dict(os.environ, OUMI_JOBS_HOME=env_home)
    pruner = subprocess.Popen([sys.executable, "-c", PRUNER, "20"], env=env, stdout=subprocess.PIPE, text=True)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", SUBMITTER, str(config), str(n)], env=env, stdout=subprocess.PIPE, text=True
        )
        for n in range(8)
    ]
    submitted = []
    for worker in workers:
        out, _ = worker.communicate(timeout=400)
        assert worker.returncode == 0
        submitted += out.split()
    out, _ = pruner.communicate(timeout=60)
    assert pruner.returncode == 0
    assert int(out) == 300

    assert len(submitted) == 800 == len(set(submitted))
    with Registry.open(paths) as registry:
        present = {r.job_id for r in registry.jobs()}
        assert registry.integrity_check()[0] == "ok"
    assert present == set(submitted)


def test_registry_lives_in_xdg_dirs_without_override(tmp_path, monkeypatch):
    monkeypatch.delenv("OUMI_JOBS_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    paths = Paths.from_env()
    assert paths.registry_file == tmp_path / "xdg-data" / "oumi-jobs" / "registry.sqlite3"
    assert paths.logs_dir == tmp_path / "xdg-state" / "oumi-jobs" / "logs"
    assert paths.cache_dir == tmp_path / "xdg-cache" / "oumi-jobs"


def test_opening_registries_in_threads_loses_no_commit(paths):
    """Regression: a raw open/close of the database file in one thread dropped the POSIX locks of
    SQLite connections in other threads, and a supervisor's committed exit record was lost."""
    import threading

    with Registry.open(paths) as registry:
        registry.add_many_if_absent(
            JobRecord(job_id=f"t{i}", cloud="local", submit_time=to_iso(now())) for i in range(40)
        )
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            for round_ in range(5):
                with Registry.open(paths) as registry:
                    registry.update(f"t{index}", end_detail=f"round {round_}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with Registry.open(paths) as registry:
        assert {r.end_detail for r in registry.jobs()} == {"round 4"}
