"""``registry check`` and ``registry recover``: the way out of a damaged registry, on real damaged files.

The damage is real: a page of the SQLite file overwritten, a file that is not
SQLite at all.  The fault cases that need root (a full disk on a small tmpfs,
another user) skip without it, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from oumi_jobs.paths import Paths
from oumi_jobs.store.registry import Registry

from .helpers import make_record, submit_id, wait_done, wait_state, wait_until

FILLER_JOBS = 2000
PAGE = 4096


def _needs_root() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        why = "needs root (to mount a tmpfs and to act as another user) and setpriv: run pytest as root"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


def _fill(paths: Paths, count: int = FILLER_JOBS) -> None:
    with Registry.open(paths) as registry:
        for i in range(count):
            registry.add(make_record(f"filler-{i:05d}", command="train " + "x" * 200))


def _damage_the_page_holding(paths: Paths, job_id: str) -> None:
    """Overwrite the table page that holds ``job_id``'s row (not its index entry): that row becomes unreadable."""
    db = sqlite3.connect(paths.registry_file)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the file itself, as after any last close
    db.close()
    data = paths.registry_file.read_bytes()
    for start in range(0, len(data), PAGE):
        page = data[start : start + PAGE]
        if job_id.encode() in page and b"x" * 200 in page:  # the row's own page: the index holds no command
            with open(paths.registry_file, "r+b") as handle:
                handle.seek(start + 100)  # keep the page type byte... and garble the cells
                handle.write(b"\xde\xad\xbe\xef" * ((PAGE - 100) // 4))
            return
    raise AssertionError(f"no table page holds {job_id}")


def test_check_passes_a_healthy_registry_and_a_missing_one(paths, cli):
    missing = cli.json("registry", "check")
    assert (missing["exists"], missing["ok"]) == (False, True)
    assert not paths.registry_file.exists()  # checking made nothing
    _fill(paths, 3)
    doc = cli.json("registry", "check")
    assert (doc["ok"], doc["problems"], doc["jobs"], doc["cancellations"]) == (True, [], 3, 0)
    assert doc["migrations_pending"] == [] and doc["migrations_applied"][0] == "0001_jobs"
    assert cli("registry", "recover").exit_code == 4  # nothing to recover: a healthy registry is never touched


@pytest.mark.parametrize(
    "content",
    [b"this is not a database\n" * 10, b"SQLite format 3\x00" + b"\xff" * 4000],
    ids=["text", "sqlite-header-garbage-body"],
)
def test_a_broken_file_fails_the_check_and_every_command_names_the_way_out(paths, cli, content):
    paths.data_dir.mkdir(parents=True)
    paths.registry_file.write_bytes(content)
    listed = cli("list")
    assert listed.exit_code == 1 and "oumi-jobs registry recover" in listed.stderr
    check = cli("registry", "check", "--json")
    assert check.exit_code == 1
    doc = json.loads(check.stdout)
    assert doc["ok"] is False and doc["problems"]
    assert "oumi-jobs registry recover" in check.stderr and len(check.stderr.strip().splitlines()) == 1
    assert paths.registry_file.read_bytes() == content  # checking wrote nothing

    recovered = cli.json("registry", "recover")
    aside = Path(recovered["moved_to"][0])
    assert aside.read_bytes() == content and ".broken-" in aside.name  # kept, never deleted
    assert recovered["saved_jobs"] == 0 and recovered["lost_rows"] is None  # a file that cannot say what it held
    assert cli.json("registry", "check")["ok"] is True
    assert cli("list", "--local-only").exit_code == 0


def test_recover_salvages_every_readable_row_and_names_what_was_lost(paths, cli, job_config):
    first = submit_id(cli, "--name", "first", str(job_config("sleep 300")))
    wait_state(cli, first, "running")
    assert cli("cancel", first, "--force").exit_code == 0
    after = submit_id(cli, "--name", "after", "--after", first, str(job_config("true")))
    wait_done(cli, after)
    _wait_for_supervisors(paths, first, after)  # none may write the file between its damage and its recovery
    _fill(paths)
    listed = cli.json("list", "--local-only")  # keeps each finished job's document: derived, not recovered
    with Registry.open(paths) as registry:
        before = {r.job_id: r for r in registry.jobs()}
    _damage_the_page_holding(paths, "filler-01000")
    damaged = paths.registry_file.read_bytes()
    assert cli("status", "filler-01000").exit_code == 1
    check = cli("registry", "check", "--json")
    assert check.exit_code == 1 and json.loads(check.stdout)["problems"]

    result = cli("registry", "recover", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    aside = Path(doc["moved_to"][0])
    assert aside.read_bytes() == damaged and aside.parent == paths.data_dir
    assert not Path(f"{paths.registry_file}-wal").exists() or Path(f"{paths.registry_file}-wal").stat().st_size == 0
    jobs = next(t for t in doc["tables"] if t["table"] == "jobs")
    assert "filler-01000" in jobs["lost_keys"]  # its row was unreadable, its id survived in the index
    assert jobs["saved"] + jobs["lost"] == len(before) and jobs["lost"] == len(jobs["lost_keys"]) > 0
    assert doc["saved_jobs"] == jobs["saved"]

    with Registry.open(paths) as registry:
        after_recovery = {r.job_id: r for r in registry.jobs()}
        assert registry.integrity_check() == ["ok"]
    assert set(after_recovery) | set(jobs["lost_keys"]) == set(before)
    assert all(after_recovery[job_id] == before[job_id] for job_id in after_recovery)  # saved rows are whole
    assert cli.json("cancel-status", first)["status"] == "completed"  # cancellations and their steps too
    assert after_recovery[after].depends_on == (first,)
    assert cli("status", "filler-01000").exit_code == 3
    assert "job_documents" not in {t["table"] for t in doc["tables"]}
    relisted = {d["job_id"]: d | {"as_of": None} for d in cli.json("list", "--local-only")}
    assert [d | {"as_of": None} for d in listed if d["job_id"] in relisted] == list(relisted.values())
    assert cli.json("registry", "check")["ok"] is True
    assert (paths.registry_file.stat().st_mode & 0o777) == 0o600


def _wait_for_supervisors(paths: Paths, *job_ids: str) -> None:
    with Registry.open(paths) as registry:
        pids = [r.supervisor_pid for job_id in job_ids if (r := registry.get(job_id)) and r.supervisor_pid]

    def gone() -> bool:
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    return False
            except psutil.NoSuchProcess:
                pass
        return True

    wait_until(gone, timeout=20)


def test_recover_refuses_a_registry_from_a_newer_oumi_jobs(paths, cli):
    _fill(paths, 1)
    db = sqlite3.connect(paths.registry_file)
    db.execute("INSERT INTO _migrations VALUES ('9999_future', '2030-01-01')")
    db.commit()
    db.close()
    before = paths.registry_file.read_bytes()
    check = cli("registry", "check")
    assert check.exit_code == 1 and "newer oumi-jobs" in check.stdout
    recover = cli("registry", "recover")
    assert recover.exit_code == 4 and "upgrade" in recover.stderr
    assert paths.registry_file.read_bytes() == before
    assert sorted(p.name for p in paths.data_dir.iterdir() if ".broken-" in p.name) == []


@pytest.fixture
def small_disk(tmp_path):
    _needs_root()
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_recover_on_a_full_disk_moves_nothing_and_leaves_no_half_written_file(small_disk, cli, monkeypatch):
    monkeypatch.setenv("OUMI_JOBS_HOME", str(small_disk))
    paths = Paths.from_env()
    _fill(paths, 1500)  # about 0.6 MB
    _damage_the_page_holding(paths, "filler-00700")
    damaged = paths.registry_file.read_bytes()
    free = shutil.disk_usage(small_disk).free
    (small_disk / "ballast").write_bytes(b"\0" * (free - 64 * 1024))  # room for a start, not for the copy

    result = cli("registry", "recover")
    assert result.exit_code == 1, result.stdout
    assert "cannot write the recovered registry" in result.stderr and "nothing was moved" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert paths.registry_file.read_bytes() == damaged
    assert not [p.name for p in paths.data_dir.iterdir() if ".broken-" in p.name or ".recovering-" in p.name]

    (small_disk / "ballast").unlink()
    assert cli("registry", "recover").exit_code == 0  # with room, the same file recovers


def _as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    """``oumi-jobs ARGS`` (this checkout) as uid/gid 65534, with no supplementary groups.

    The interpreter may sit under a folder only root may enter (/root/.pyenv):
    reading and searching are granted, writing is not, and writing is what
    this is about.
    """
    command = [
        "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
        "--inh-caps", "+dac_read_search", "--ambient-caps", "+dac_read_search",
        sys.executable, "-m", "oumi_jobs", *args,
    ]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)


def test_a_user_who_cannot_write_the_folder_checks_but_cannot_recover_and_nothing_moves(paths):
    """Another user reads the damaged registry (its check works) but cannot write beside it: one line, nothing moved."""
    _needs_root()
    paths.data_dir.mkdir(parents=True)
    paths.registry_file.write_bytes(b"not a database\n" * 100)
    check = _as_nobody("registry", "check")
    assert check.returncode == 1 and "not an SQLite database" in check.stdout, check.stdout + check.stderr
    recover = _as_nobody("registry", "recover")
    assert recover.returncode == 1 and "Permission denied" in recover.stderr, recover.stdout + recover.stderr
    assert len(recover.stderr.strip().splitlines()) == 1 and "Traceback" not in recover.stderr
    assert paths.registry_file.read_bytes() == b"not a database\n" * 100
    assert [p.name for p in paths.data_dir.iterdir()] == ["registry.sqlite3"]


def test_a_registry_that_cannot_be_read_is_not_damage(paths, cli):
    """An I/O or permission error is reported by the check, and recover refuses it: nothing to mend by moving it."""
    paths.registry_file.mkdir(parents=True)  # a folder where the registry should be: reading it fails
    check = cli("registry", "check")
    assert check.exit_code == 1 and "cannot read it" in check.stdout
    recover = cli("registry", "recover")
    assert recover.exit_code == 4 and "not damaged" in recover.stderr
    assert paths.registry_file.is_dir() and list(paths.data_dir.iterdir()) == [paths.registry_file]
