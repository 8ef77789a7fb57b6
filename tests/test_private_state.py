"""Disk and permission faults lose nothing, and the state folder is private and cannot be redirected.

Faults are real: a small tmpfs filled to the last byte or remounted read-only,
folders of another user, commands run as another user (``setpriv`` to uid
65534), symbolic links planted where oumi-jobs writes.  Those that need root
skip without it, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from oumi_jobs.local import detach
from oumi_jobs.paths import Paths
from oumi_jobs.timestamps import from_iso

from .helpers import add_record, make_record, submit_id, wait_done, wait_state, wait_until

NOBODY = 65534


@pytest.fixture
def root() -> None:
    if os.geteuid() != 0:
        why = "needs root to mount a tmpfs and to act as another user: run pytest as root"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why} (CI=true: these tests must run)")
        pytest.skip(why)


@pytest.fixture
def small_disk(root: None, tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs at the test's OUMI_JOBS_HOME; unmounted after ``paths`` ended the test's jobs."""
    home = tmp_path / "home"
    home.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(home)], check=True)
    yield home
    subprocess.run(["mount", "-o", "remount,rw", str(home)], check=False)
    if subprocess.run(["umount", str(home)], check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(home)], check=True)  # a process of ours still had a file open


@pytest.fixture
def disk(small_disk: Path, paths: Paths) -> Paths:
    """``paths`` on the small tmpfs (set up in this order, so the jobs end before it is unmounted)."""
    assert paths.data_dir.parent == small_disk
    return paths


def fill(folder: Path) -> Path:
    """Write a file in ``folder`` until the disk is full; returns it (unlink it to free the space)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    try:
        while True:
            os.write(fd, b"\0")
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    """``oumi-jobs ARGS`` (this checkout) as uid/gid 65534, with no supplementary groups."""
    command = [
        "setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups",
        # The interpreter may sit under a folder only root may enter (/root/.pyenv): reading and
        # searching are granted, writing is not, and writing is what these tests are about.
        "--inh-caps", "+dac_read_search", "--ambient-caps", "+dac_read_search",
        sys.executable, "-m", "oumi_jobs", *args,
    ]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# -- 6. disk and permission faults lose nothing ----------------------------------------------------------------
def test_exit_record_survives_a_full_disk(disk, cli, job_config, tmp_path):
    go = tmp_path / "go"
    job_id = submit_id(cli, str(job_config(f"while [ ! -e {go} ]; do sleep 0.05; done; exit 3")))
    wait_state(cli, job_id, "running")
    filler = fill(disk.data_dir.parent)
    go.touch()
    # The job ended; its supervisor cannot write the record and keeps it (without that, `lost` within 0.2 s).
    exiting = wait_until(lambda: (doc := cli.json("status", job_id))["status"] == "exiting" and doc)
    assert exiting["state"] == "running" and exiting["end_time"] is None
    time.sleep(2)
    assert cli.json("status", job_id)["status"] == "exiting"
    freed_at = time.time()
    filler.unlink()
    doc = wait_done(cli, job_id, timeout=30)
    assert (doc["state"], doc["exit_code"]) == ("failed", 3)
    assert from_iso(doc["end_time"]).timestamp() < freed_at  # when the job ended, not when the disk had room


def test_read_only_commands_on_a_full_disk(disk, cli, job_config):
    job_id = submit_id(cli, str(job_config("echo kept")))
    wait_done(cli, job_id)
    filler = fill(disk.data_dir.parent)
    assert [d["job_id"] for d in cli.json("list", "--local-only")] == [job_id]
    assert cli.json("status", job_id)["state"] == "succeeded"
    assert cli("logs", job_id).stdout == "kept\n"
    refused = cli("submit", str(job_config("true")))
    assert refused.exit_code == 1
    assert str(disk.registry_file) in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    filler.unlink()
    assert wait_done(cli, submit_id(cli, str(job_config("true"))))["state"] == "succeeded"
    assert len(cli.json("list", "--local-only")) == 2


def test_read_only_commands_on_a_read_only_mount(disk, cli, job_config):
    job_id = submit_id(cli, str(job_config("echo kept")))
    wait_done(cli, job_id)
    # Busy while the job's supervisor, about to exit, still has its log open for writing.
    wait_until(lambda: subprocess.run(["mount", "-o", "remount,ro", str(disk.data_dir.parent)]).returncode == 0)
    assert [d["job_id"] for d in cli.json("list", "--local-only")] == [job_id]
    assert cli.json("status", job_id)["exit_code"] == 0
    assert cli("logs", job_id).stdout == "kept\n"
    refused = cli("submit", str(job_config("true")))
    assert refused.exit_code == 1 and "read-only" in refused.stderr, refused.stderr
    subprocess.run(["mount", "-o", "remount,rw", str(disk.data_dir.parent)], check=True)
    assert wait_done(cli, submit_id(cli, str(job_config("true"))))["state"] == "succeeded"


@pytest.fixture
def nobody_home(root: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Paths]:
    """An OUMI_JOBS_HOME of uid 65534 in a folder it can reach without capabilities (click checks a config's
    readability with access(), which ignores them; pytest's own tmp folders are root's alone)."""
    top = Path(tempfile.mkdtemp(prefix="oumi-jobs-test-", dir="/tmp"))
    top.chmod(0o755)
    home = top / "home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    monkeypatch.setenv("OUMI_JOBS_HOME", str(home))
    yield Paths.from_env()
    shutil.rmtree(top)


def test_a_read_only_spell_leaves_no_read_only_sidecar_behind(nobody_home):
    paths = nobody_home
    config = paths.data_dir.parent / "job.yaml"
    config.write_text("run: 'true'\n")
    os.chown(config, NOBODY, NOBODY)
    first = as_nobody("submit", "-q", "--wait", str(config))
    assert first.returncode == 0, first.stderr
    paths.registry_file.chmod(0o400)  # the spell: SQLite would make -wal and -shm 0400 now
    listed = as_nobody("list", "--local-only", "--json")
    assert listed.returncode == 0 and first.stdout.strip() in listed.stdout, listed.stderr
    refused = as_nobody("submit", "-q", str(config))
    assert refused.returncode == 1 and str(paths.registry_file) in refused.stderr
    for sidecar in paths.data_dir.glob("registry.sqlite3-*"):
        assert mode(sidecar) == 0o600, sidecar
    paths.registry_file.chmod(0o600)
    again = as_nobody("submit", "-q", "--wait", str(config))
    assert again.returncode == 0, again.stderr


# -- 7. the state folder is private and cannot be redirected ---------------------------------------------------
def test_every_folder_0700_every_file_0600_whatever_the_umask(paths, cli, job_config):
    old = os.umask(0)  # the widest: every mode is ours alone to set (supervisors inherit it)
    try:
        done = submit_id(cli, "--wait", str(job_config("echo out; echo err >&2")))
        running = submit_id(cli, "--cluster", "other", str(job_config("sleep 60")))
        wait_state(cli, running, "running")
        assert cli("cancel", running, "--force").exit_code == 0
    finally:
        os.umask(old)
    home = paths.data_dir.parent
    found = [home, *home.rglob("*")]
    names = {p.name for p in found}
    assert {"metrics.prom", "events.jsonl", "slot-0.lock", f"{done}.log", "stdout.log", "clusters"} <= names
    for path in found:
        expected = 0o700 if path.is_dir() else 0o600
        assert mode(path) == expected, f"{path}: {oct(mode(path))}"


def test_wider_folders_and_files_of_older_versions_are_tightened(paths, cli, job_config):
    for folder in (paths.data_dir, paths.logs_dir, paths.supervisors_dir, paths.clusters_dir, paths.cache_dir):
        folder.mkdir(parents=True, mode=0o755)
        folder.chmod(0o755)
    paths.metrics_file.write_text("# old\n")
    paths.metrics_file.chmod(0o644)
    assert cli("list", "--local-only").exit_code == 0
    for folder in (paths.data_dir, paths.state_dir, paths.logs_dir, paths.clusters_dir, paths.cache_dir):
        assert mode(folder) == 0o700, folder
    job_id = submit_id(cli, str(job_config("sleep 60")))
    wait_state(cli, job_id, "running")
    assert cli("cancel", job_id, "--force").exit_code == 0
    assert mode(paths.metrics_file) == 0o600 and "oumi_jobs_jobs" in paths.metrics_file.read_text()


@pytest.mark.parametrize("folder", ["data", "state", "logs"])
def test_a_folder_of_another_user_is_refused(root, paths, cli, job_config, folder):
    wait_done(cli, submit_id(cli, str(job_config("true"))))
    target = {"data": paths.data_dir, "state": paths.state_dir, "logs": paths.logs_dir}[folder]
    os.chown(target, NOBODY, NOBODY)
    try:
        for args in (["list", "--local-only"], ["submit", str(job_config("true"))]):
            result = cli(*args)
            assert result.exit_code == 1, (args, result.stderr)
            assert str(target) in result.stderr and "another user" in result.stderr
            assert len(result.stderr.strip().splitlines()) == 1
    finally:
        os.chown(target, 0, 0)  # the fixture's clean-up reads the registry


def test_another_user_is_refused_our_folders(root, paths, cli, job_config):
    wait_done(cli, submit_id(cli, str(job_config("true"))))
    result = as_nobody("list", "--local-only")
    assert result.returncode == 1
    assert str(paths.data_dir) in result.stderr and "another user" in result.stderr
    assert "Traceback" not in result.stderr


def test_planted_job_log_symlinks_are_not_written_through(paths, cli, job_config, tmp_path):
    go = tmp_path / "go"
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    first = submit_id(cli, str(job_config(f"while [ ! -e {go} ]; do sleep 0.05; done")))
    second = submit_id(cli, "--after", first, str(job_config("echo through-the-link")))
    log_dir = paths.job_log_dir(second)
    (log_dir / "stdout.log").symlink_to(victim)
    go.touch()
    doc = wait_done(cli, second)
    assert doc["state"] == "failed" and "symbolic link" in doc["detail"], doc
    assert victim.read_text() == "untouched\n"


def test_a_planted_log_symlink_is_not_read(paths, cli, job_config, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("secret\n")
    job_id = submit_id(cli, "--wait", str(job_config("echo mine")))
    stdout_log = paths.job_log_dir(job_id) / "stdout.log"
    stdout_log.unlink()
    stdout_log.symlink_to(secret)
    result = cli("logs", job_id)
    assert result.exit_code == 1 and "symbolic link" in result.stderr
    assert "secret" not in result.stdout


def test_a_planted_event_log_symlink_is_not_written_through(paths, cli, job_config, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    paths.state_dir.mkdir(parents=True)
    paths.event_log_file.symlink_to(victim)
    job_id = submit_id(cli, "--wait", str(job_config("true")))  # submitting logs an event
    assert cli.json("status", job_id)["state"] == "succeeded"  # a log that cannot be written fails nothing
    assert victim.read_text() == "untouched\n"


def test_a_dangling_supervisor_log_symlink_is_refused(paths, job_config, tmp_path):
    victim = tmp_path / "created-through-the-link"
    job_id = add_record(paths, make_record(argv=("true",), workdir=str(tmp_path), cluster="local"))
    paths.supervisors_dir.mkdir(parents=True, exist_ok=True)
    paths.supervisor_log(job_id).symlink_to(victim)
    with pytest.raises(RuntimeError, match="symbolic link"):
        detach.spawn_daemon(paths, detach.SUPERVISOR, job_id, os.environ)
    assert not victim.exists()
