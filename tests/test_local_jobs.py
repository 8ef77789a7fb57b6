"""Local jobs end to end: real supervisors, real processes, real signals."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oumi_jobs.local.procs import boot_id, identify, is_alive
from oumi_jobs.paths import Paths
from oumi_jobs.store.registry import Registry

from .helpers import add_record, make_record, submit_id, wait_done, wait_state, wait_until


def test_job_that_succeeds_runs_setup_then_run_with_envs(cli, job_config):
    config = job_config("echo run says $GREETING", setup="echo setup ran", envs={"GREETING": "hello"})
    job_id = submit_id(cli, str(config))
    doc = wait_done(cli, job_id)
    assert doc["state"] == "succeeded"
    assert doc["exit_code"] == 0 and doc["exit_signal"] is None
    assert doc["end_time"] and doc["pid"]
    out = cli("logs", job_id)
    assert out.stdout.splitlines() == ["setup ran", "run says hello"]


def test_failing_setup_skips_run(cli, job_config):
    job_id = submit_id(cli, str(job_config("echo should-not-run", setup="exit 7")))
    doc = wait_done(cli, job_id)
    assert (doc["state"], doc["exit_code"]) == ("failed", 7)
    assert "should-not-run" not in cli("logs", job_id).stdout


def test_job_that_fails_with_a_code(cli, job_config):
    job_id = submit_id(cli, str(job_config("echo oops >&2; exit 3")))
    doc = wait_done(cli, job_id)
    assert doc["state"] == "failed"
    assert doc["exit_code"] == 3
    assert doc["status"] == "exited 3"
    assert cli("logs", job_id, "--stderr").stdout == "oops\n"


def test_job_killed_by_a_signal(cli, job_config):
    job_id = submit_id(cli, str(job_config("sleep 0.2; kill -KILL $$")))
    doc = wait_done(cli, job_id)
    assert doc["state"] == "failed"
    assert doc["exit_code"] is None
    assert doc["exit_signal"] == signal.SIGKILL
    assert doc["status"] == "killed by SIGKILL"


def test_environment_layers_and_workdir(cli, job_config, tmp_path, monkeypatch):
    workdir = tmp_path / "work dir"
    workdir.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FROM_CALLER", "caller")
    config = job_config(
        'echo "$FROM_CALLER $FROM_CONFIG $OVERRIDDEN"; pwd',
        envs={"FROM_CONFIG": "config", "OVERRIDDEN": "config"},
        working_dir="work dir",
    )
    job_id = submit_id(cli, str(config), "--env", "OVERRIDDEN=cli")
    assert wait_done(cli, job_id)["state"] == "succeeded"
    assert cli("logs", job_id).stdout.splitlines() == ["caller config cli", str(workdir)]


def test_job_outlives_the_terminal_that_submitted_it(paths, cli, job_config, tmp_path):
    """The submitting shell's whole session gets SIGHUP then SIGKILL; the job carries on."""
    config = job_config("sleep 2; echo survived")
    exe = shutil.which("oumi-jobs")
    assert exe, "the oumi-jobs entry point is installed"
    id_file = tmp_path / "id"
    terminal = subprocess.Popen(
        ["bash", "-c", f'"{exe}" submit -q "$1" > "$2"; sleep 60', "terminal", str(config), str(id_file)],
        start_new_session=True,
    )
    try:
        wait_until(lambda: id_file.exists() and id_file.read_text().strip(), timeout=30)
        job_id = id_file.read_text().strip()
        os.killpg(terminal.pid, signal.SIGHUP)
        time.sleep(0.2)
        os.killpg(terminal.pid, signal.SIGKILL)
    finally:
        terminal.wait(timeout=10)
    assert cli.json("status", job_id)["state"] in {"pending", "running"}
    doc = wait_done(cli, job_id)
    assert doc["state"] == "succeeded"
    assert cli("logs", job_id).stdout == "survived\n"


def test_lost_when_job_and_supervisor_are_killed(paths, cli, job_config):
    job_id = submit_id(cli, str(job_config("sleep 60")))
    wait_state(cli, job_id, "running")
    with Registry.open(paths) as registry:
        record = registry.get(job_id)
    assert record and record.pgid and record.supervisor_pid
    os.kill(record.supervisor_pid, signal.SIGKILL)
    os.killpg(record.pgid, signal.SIGKILL)
    wait_until(lambda: not is_alive(record.pid, record.process_start_time, record.boot_id))
    doc = wait_state(cli, job_id, "lost")
    assert doc["done"] is True
    assert doc["exit_code"] is None and doc["end_time"] is None
    assert "no exit record" in doc["detail"]


def _register(paths: Paths, **fields) -> str:
    return add_record(paths, make_record(**fields))


def test_reused_pid_is_not_mistaken_for_the_job(paths, cli):
    """A live, unrelated process holding the job's recorded pid is not the job."""
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        identity = identify(stranger.pid)
        assert identity is not None
        common = dict(pid=stranger.pid, pgid=stranger.pid, boot_id=boot_id(), supervisor_pid=stranger.pid)
        other_start = _register(
            paths, process_start_time=identity.start_time - 50, supervisor_start_time=identity.start_time - 50, **common
        )
        other_boot = dict(common, boot_id="another-boot")
        after_reboot = _register(
            paths, process_start_time=identity.start_time, supervisor_start_time=identity.start_time, **other_boot
        )
        for job_id in (other_start, after_reboot):
            doc = cli.json("status", job_id)
            assert doc["state"] == "lost", doc
        assert stranger.poll() is None, "the unrelated process was left alone"
    finally:
        stranger.kill()
        stranger.wait()


def test_submit_wait_exits_with_the_job_outcome(cli, job_config):
    ok = cli("submit", "--wait", "-q", str(job_config("echo fine")))
    assert ok.exit_code == 0
    bad = cli("submit", "--wait", "--json", str(job_config("exit 5")))
    assert bad.exit_code == 1
    import json

    assert json.loads(bad.stdout)["exit_code"] == 5


def test_status_watch_without_a_terminal_prints_state_changes(cli, job_config):
    job_id = submit_id(cli, str(job_config("sleep 1")))
    result = cli("status", "--watch", job_id)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[-1] == f"{job_id} succeeded exited 0"
    assert "\x1b[" not in result.stdout  # no colour codes when not a terminal


def test_logs_tail_and_follow(cli, job_config):
    job_id = submit_id(cli, str(job_config("for i in 1 2 3 4 5; do echo line$i; sleep 0.1; done")))
    followed = cli("logs", "--follow", job_id)
    assert followed.exit_code == 0
    assert followed.stdout.splitlines() == [f"line{i}" for i in range(1, 6)]
    assert cli("logs", "--tail", "2", job_id).stdout.splitlines() == ["line4", "line5"]
    assert cli("logs", "-n", "0", job_id).stdout == ""


def test_list_filters_and_json(cli, job_config):
    ok = submit_id(cli, str(job_config("true")))
    bad = submit_id(cli, str(job_config("exit 1")))
    wait_done(cli, ok)
    wait_done(cli, bad)
    docs = cli.json("list")
    assert [d["job_id"] for d in docs] == [bad, ok]  # newest first
    assert all(d["schema_version"] == 1 for d in docs)
    assert [d["job_id"] for d in cli.json("list", "--state", "failed")] == [bad]
    assert [d["job_id"] for d in cli.json("list", "--limit", "1")] == [bad]
    assert cli.json("list", "--since", "1h") == docs[:2] or len(cli.json("list", "--since", "1h")) == 2
    assert cli.json("list", "--since", "2000-01-01") and cli.json("list", "--since", "2999-01-01") == []
    human = cli("list")
    assert ok in human.stdout and "succeeded" in human.stdout


def test_prune_removes_only_old_finished_jobs(paths, cli, job_config):
    done = submit_id(cli, str(job_config("echo bye")))
    running = submit_id(cli, str(job_config("sleep 60")))
    wait_done(cli, done)
    wait_state(cli, running, "running")
    log_file = Path(cli.json("status", done)["stdout_path"])
    assert log_file.exists()

    assert cli.json("prune")["removed"] == []  # both are younger than 7 days
    time.sleep(1.1)
    dry = cli.json("prune", "--older-than", "1s", "--dry-run")
    assert dry == {"schema_version": 1, "removed": [done], "kept_running": 1, "dry_run": True,
                   "older_than_s": 1.0, "logs_removed": False}  # fmt: skip
    assert cli.json("status", done)["state"] == "succeeded"

    result = cli.json("prune", "--older-than", "1s")
    assert result["removed"] == [done] and result["kept_running"] == 1
    assert cli("status", done).exit_code == 3
    assert cli.json("status", running)["state"] == "running"
    assert log_file.exists(), "logs are kept without --logs"
    assert not paths.supervisor_log(done).exists()


def test_prune_logs_removes_log_files(cli, job_config):
    job_id = submit_id(cli, str(job_config("echo x")))
    log_file = Path(wait_done(cli, job_id)["stdout_path"])
    time.sleep(1.1)
    assert cli.json("prune", "--older-than", "1s", "--logs")["removed"] == [job_id]
    assert not log_file.exists() and not log_file.parent.exists()


@pytest.mark.parametrize("bad", ["7", "7y", "-1d", "d", ""])
def test_prune_rejects_bad_ages(cli, bad):
    result = cli("prune", "--older-than", bad)
    assert result.exit_code == 2
    assert "invalid duration" in result.stderr and len(result.stderr.splitlines()) == 1


def test_prefixes_and_missing_jobs(paths, cli):
    a = _register(paths, job_id="train-20260101-000000-aaaaaa")
    _register(paths, job_id="train-20260101-000000-aaaabb")
    assert cli.json("status", "train-20260101-000000-aaaaa")["job_id"] == a
    ambiguous = cli("status", "train-2026")
    assert ambiguous.exit_code == 3
    assert "ambiguous" in ambiguous.stderr and "aaaabb" in ambiguous.stderr
    missing = cli("status", "nope")
    assert missing.exit_code == 3 and "no job 'nope'" in missing.stderr
    assert cli("logs", "nope").exit_code == 3
    # LIKE wildcards in a prefix are taken literally.
    assert cli("status", "train_").exit_code == 3


def test_name_becomes_the_id_and_must_be_unique(cli, job_config):
    config = str(job_config("true"))
    assert submit_id(cli, config, "--name", "nightly eval/v2") == "nightly-eval-v2"
    again = cli("submit", config, "--name", "nightly eval/v2")
    assert again.exit_code == 4 and "already exists" in again.stderr
    for bad in ["../..", "/", "x" * 65]:
        result = cli("submit", config, "--name", bad)
        assert result.exit_code == 2, bad


def test_shell_metacharacters_are_data(cli, tmp_path, monkeypatch):
    """Paths and names with spaces, quotes and $(...) reach the job as data, never as shell code."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / 'it\'s a "dir" $(touch pwned-dir)'
    folder.mkdir()
    config = folder / "job $(touch pwned-file).yaml"
    config.write_text('run: echo "$JOB_NOTE"\nenvs:\n  JOB_NOTE: "$(touch pwned-env)"\n')
    name = "run `touch pwned-name` $(touch pwned-name2); echo"
    result = cli("submit", "--json", str(config), "--name", name)
    assert result.exit_code == 0, result.stderr
    import json

    doc = json.loads(result.stdout)
    assert doc["name"] == name
    assert doc["config_path"] == str(config)
    assert wait_done(cli, doc["job_id"])["state"] == "succeeded"
    assert cli("logs", doc["job_id"]).stdout == "$(touch pwned-env)\n"
    assert not list(tmp_path.rglob("pwned*"))
    assert not list(Path("/").glob("pwned*"))


def test_permissions_are_private(paths, cli, job_config):
    job_id = submit_id(cli, str(job_config("echo secret")))
    doc = wait_done(cli, job_id)
    assert paths.registry_file.stat().st_mode & 0o777 == 0o600
    for folder in (paths.data_dir, paths.state_dir, Path(doc["stdout_path"]).parent):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    assert Path(doc["stdout_path"]).stat().st_mode & 0o777 == 0o600


def test_job_that_cannot_start_fails_with_a_reason(cli, tmp_path):
    config = tmp_path / "task.yaml"
    config.write_text("model:\n  model_name: gpt2\ntraining:\n  output_dir: out\n")
    missing_workdir = cli("submit", str(config), "--workdir", str(tmp_path / "absent"))
    assert missing_workdir.exit_code == 2 and "does not exist" in missing_workdir.stderr


def test_installed_entry_point_and_module_run(paths, job_config, tmp_path):
    env = dict(os.environ, OUMI_JOBS_HOME=str(paths.data_dir.parent))
    exe = shutil.which("oumi-jobs")
    assert exe
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, env=env, check=True)
    assert version.stdout.startswith("oumi-jobs ")
    job_id = subprocess.run(
        [sys.executable, "-m", "oumi_jobs", "submit", "-q", str(job_config("echo via-module"))],
        capture_output=True, text=True, env=env, check=True,
    ).stdout.strip()  # fmt: skip
    import json

    wait_until(
        lambda: json.loads(
            subprocess.run([exe, "status", job_id, "--json"], capture_output=True, text=True, env=env).stdout
        )["done"]
    )
    logs = subprocess.run([exe, "logs", job_id], capture_output=True, text=True, env=env)
    assert logs.stdout == "via-module\n"


def test_a_submit_interrupted_before_its_supervisor_started_is_lost_not_pending(paths, cli):
    from datetime import timedelta

    from oumi_jobs.timestamps import now, to_iso

    job_id = _register(paths, boot_id=boot_id())
    assert cli.json("status", job_id)["state"] == "pending"  # a submit may still be starting it
    with Registry.open(paths) as registry:
        registry.update(job_id, submit_time=to_iso(now() - timedelta(minutes=10)))
    doc = cli.json("status", job_id)
    assert doc["state"] == "lost" and "never started" in doc["detail"]
    assert cli.json("prune", "--older-than", "5m")["removed"] == [job_id]
