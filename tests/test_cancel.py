"""Cancellation of local jobs: real process trees, real signals, verified ends."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from oumi_jobs.cancel.service import cancel_job
from oumi_jobs.local import detach
from oumi_jobs.local.procs import boot_id, identify
from oumi_jobs.local.terminator import find_job_processes
from oumi_jobs.store.registry import Registry

from .helpers import add_record, make_record, submit_id, wait_done, wait_state, wait_until


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def started_job(cli, job_config, run: str, ready_file: Path | None = None) -> str:
    job_id = submit_id(cli, str(job_config(run)))
    wait_state(cli, job_id, "running")
    if ready_file is not None:
        wait_until(ready_file.exists)
    return job_id


def cancel_json(cli, *args: str) -> tuple[int, dict | list]:
    result = cli("cancel", "--json", *args)
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else {}


def test_graceful_cancel_of_a_job_that_traps_term(cli, job_config, tmp_path):
    ready = tmp_path / "ready"
    job_id = started_job(
        cli, job_config, f"trap 'echo cleaned up; exit 0' TERM; touch '{ready}'; while true; do sleep 0.05; done", ready
    )
    code, doc = cancel_json(cli, job_id, "--reason", "runaway")
    assert code == 0
    assert doc["status"] == "completed" and doc["final_state"] == "cancelled"
    assert doc["reason"] == "runaway" and doc["force"] is False and doc["survivors"] == []
    assert [s["name"] for s in doc["steps"]] == ["check_state", "signal_term", "wait", "verify", "cleanup"]
    assert all(s["status"] == "completed" and s["ended_at"] for s in doc["steps"])
    status = cli.json("status", job_id)
    assert status["state"] == "cancelled" and status["exit_code"] == 0  # cancelled, not succeeded
    assert "cleaned up" in cli("logs", job_id).stdout


def test_term_ignored_escalates_to_kill_at_the_timeout(cli, job_config, tmp_path):
    ready = tmp_path / "ready"
    job_id = started_job(cli, job_config, f"trap '' TERM; touch '{ready}'; while true; do sleep 0.05; done", ready)
    started = time.monotonic()
    code, doc = cancel_json(cli, job_id, "--timeout", "1.5")
    took = time.monotonic() - started
    assert code == 0 and doc["status"] == "completed"
    names = [s["name"] for s in doc["steps"]]
    assert names == ["check_state", "signal_term", "wait", "signal_kill", "verify", "cleanup"]
    wait_step = doc["steps"][2]
    assert "still running after 1.5 s" in wait_step["detail"]
    assert 1.5 <= took < 15
    status = cli.json("status", job_id)
    assert status["state"] == "cancelled" and status["exit_signal"] == 9


TREE = """
sleep 300 &
echo $! >> "{pids}"
sleep 301 &
echo $! >> "{pids}"
( setsid bash -c 'echo $$ >> "{pids}"; sleep 302 & echo $! >> "{pids}"; wait' & wait ) &
# A worker that leaves the session and whose parent exits: re-parented, found by its marker.
( setsid bash -c 'sleep 303 & echo $! >> "{pids}"; exit 0' ) &
echo $$ >> "{pids}"
touch "{ready}"
wait
"""


def test_force_kills_the_whole_tree_including_setsid_grandchildren(cli, job_config, tmp_path):
    pids_file, ready = tmp_path / "pids", tmp_path / "ready"
    job_id = started_job(cli, job_config, TREE.format(pids=pids_file, ready=ready), ready)
    wait_until(lambda: len(pids_file.read_text().split()) == 6)
    pids = [int(p) for p in pids_file.read_text().split()]
    assert all(alive(pid) for pid in pids)
    code, doc = cancel_json(cli, job_id, "--force")
    assert code == 0, doc
    assert [s["name"] for s in doc["steps"]] == ["check_state", "signal_kill", "verify", "cleanup"]
    assert doc["runners_signalled"] >= 6
    assert not [pid for pid in pids if alive(pid)]
    assert cli.json("status", job_id)["state"] == "cancelled"


def test_signal_reaches_the_real_process_behind_a_shell_wrapper(cli, job_config, tmp_path):
    got = tmp_path / "got-usr1"
    ready = tmp_path / "ready"
    handler = tmp_path / "handler.py"
    handler.write_text(
        "import pathlib, signal, sys, time\n"
        f"signal.signal(signal.SIGUSR1, lambda *a: (pathlib.Path({str(got)!r}).touch(), sys.exit(0)))\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "while True: time.sleep(0.05)\n"
    )
    run = f'sh -c \'trap "" USR1; "{os.sys.executable}" "{handler}"; echo wrapper-after\''
    job_id = started_job(cli, job_config, run, ready)
    code, doc = cancel_json(cli, job_id, "--signal", "USR1", "--timeout", "10")
    assert code == 0 and doc["signal"] == "SIGUSR1"
    assert [s["name"] for s in doc["steps"]][:3] == ["check_state", "signal_usr1", "wait"]
    assert got.exists(), "the python process behind `sh -c` got the signal and checkpointed"
    assert "wrapper-after" in cli("logs", job_id).stdout


def test_cancel_of_a_finished_job_is_not_needed(cli, job_config):
    job_id = submit_id(cli, str(job_config("exit 2")))
    wait_done(cli, job_id)
    result = cli("cancel", job_id, "--json")
    assert result.exit_code == 4
    doc = json.loads(result.stdout)
    assert doc["status"] == "not_needed" and doc["final_state"] == "failed"
    assert "already failed" in result.stderr
    assert cli.json("status", job_id)["state"] == "failed"  # not turned into "cancelled"


def test_cancel_of_a_job_not_yet_started_prevents_the_start(paths, cli, tmp_path):
    marker = tmp_path / "must-not-exist"
    job_id = "not-started"
    add_record(
        paths,
        make_record(job_id, boot_id=boot_id(), argv=("/bin/bash", "-c", f"touch '{marker}'"), workdir=str(tmp_path),
                    stdout_path=str(tmp_path / "o.log"), stderr_path=str(tmp_path / "e.log")),
    )  # fmt: skip
    assert cli.json("status", job_id)["state"] == "pending"
    outcome: dict = {}
    # The library in the thread: CliRunner swaps sys.stdout and is not for two threads at once.
    canceller = threading.Thread(target=lambda: outcome.setdefault("record", cancel_job(paths, job_id)))
    canceller.start()

    def flagged() -> bool:
        with Registry.open(paths) as registry:
            return registry.get(job_id).cancel_requested  # type: ignore[union-attr]

    wait_until(flagged)
    supervisor_pid = detach.spawn_daemon(
        paths, detach.SUPERVISOR, job_id, dict(os.environ)
    )  # its supervisor starts late
    canceller.join(timeout=30)
    record = outcome["record"]
    assert record.status.value == "completed"
    assert "prevent_start" in [s.name for s in record.steps]
    status = cli.json("status", job_id)
    assert status["state"] == "cancelled" and status["pid"] is None
    wait_until(lambda: not alive(supervisor_pid))
    assert not marker.exists()


def test_two_concurrent_cancels_share_one_termination(cli, job_config, tmp_path):
    ready = tmp_path / "ready"
    job_id = started_job(cli, job_config, f"trap '' TERM; touch '{ready}'; while true; do sleep 0.05; done", ready)
    env = dict(os.environ)
    procs = [
        subprocess.Popen(
            [os.sys.executable, "-m", "oumi_jobs", "cancel", job_id, "--timeout", "1", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    docs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        docs.append(json.loads(out))
    assert docs[0]["cancellation_id"] == docs[1]["cancellation_id"]
    assert docs[0]["status"] == docs[1]["status"] == "completed"
    history = cli.json("cancellations", "--job", job_id)
    assert len(history) == 1
    assert sum(s["name"] == "signal_term" for s in history[0]["steps"]) == 1


def test_reused_pid_is_never_signalled(paths, cli):
    stranger = subprocess.Popen(["sleep", "30"], start_new_session=True)  # leads its own group and session
    try:
        identity = identify(stranger.pid)
        assert identity
        record = make_record(
            "reused", command=None, pid=stranger.pid, pgid=stranger.pid, process_start_time=identity.start_time - 100,
            boot_id=boot_id(), supervisor_pid=stranger.pid, supervisor_start_time=identity.start_time - 100,
        )  # fmt: skip
        add_record(paths, record)
        assert find_job_processes(record, []) == []
        result = cli("cancel", "reused", "--force")
        assert result.exit_code == 4  # the job is lost: nothing of it to cancel
        time.sleep(0.2)
        assert stranger.poll() is None, "the unrelated process holding the pid survived"
    finally:
        stranger.kill()
        stranger.wait()


def test_no_wait_returns_at_once_and_cancel_status_shows_the_wait(cli, job_config, tmp_path):
    ready = tmp_path / "ready"
    job_id = started_job(cli, job_config, f"trap '' TERM; touch '{ready}'; while true; do sleep 0.05; done", ready)
    code, doc = cancel_json(cli, job_id, "--no-wait", "--timeout", "3")
    assert code == 0 and doc["status"] == "in_progress"
    during = cli.json("cancel-status", job_id)
    assert during["status"] == "in_progress"
    assert cli.json("status", job_id)["state"] == "cancelling"
    wait_until(lambda: any(s["name"] == "wait" for s in cli.json("cancel-status", job_id)["steps"]))
    waiting = cli.json("cancel-status", job_id)
    assert next(s for s in waiting["steps"] if s["name"] == "wait")["status"] in {"in_progress", "completed"}
    final = cli.json("cancel-status", job_id, "--watch")
    assert final["status"] == "completed" and final["cancellation_id"] == doc["cancellation_id"]
    assert [s["name"] for s in final["steps"]][-3:] == ["signal_kill", "verify", "cleanup"]
    assert cli.json("status", job_id)["state"] == "cancelled"


def test_bulk_cancel_reports_each_and_fails_if_one_fails(cli, job_config):
    running = [submit_id(cli, str(job_config("sleep 300")), "--cluster", f"c{i}") for i in range(2)]
    finished = submit_id(cli, str(job_config("true")))
    wait_done(cli, finished)
    for job_id in running:
        wait_state(cli, job_id, "running")
    result = cli("cancel", *running, finished, "--json")
    docs = json.loads(result.stdout)
    assert result.exit_code == 4  # one of them had already finished
    by_job = {d["job_id"]: d["status"] for d in docs}
    assert by_job == {running[0]: "completed", running[1]: "completed", finished: "not_needed"}
    assert cli("cancel", running[0], "no-such-job").exit_code == 3


def test_cancel_all_by_state(cli, job_config):
    running = [submit_id(cli, str(job_config("sleep 300")), "--parallel", "3") for _ in range(3)]
    for job_id in running:
        wait_state(cli, job_id, "running")
    result = cli("cancel", "--all", "--state", "running", "--force", "--json")
    assert result.exit_code == 0
    assert sorted(d["job_id"] for d in json.loads(result.stdout)) == sorted(running)
    states = [cli.json("status", j) for j in running]
    assert {s["state"] for s in states} == {"cancelled"}, states


def test_cancellations_history_paging_filters_metrics_and_logs(paths, cli, job_config):
    jobs = [submit_id(cli, str(job_config("sleep 300")), "--cluster", f"c{i}") for i in range(3)]
    for job_id in jobs:
        wait_state(cli, job_id, "running")
    for job_id in jobs:
        assert cli("cancel", job_id, "--force", "--reason", f"r-{job_id}").exit_code == 0
    assert cli("cancel", jobs[0]).exit_code == 4  # already cancelled: not_needed

    history = cli.json("cancellations")
    assert len(history) == 4 and history[0]["status"] == "not_needed"
    assert [d["job_id"] for d in cli.json("cancellations", "--limit", "2", "--offset", "1")] == [jobs[2], jobs[1]]
    assert [d["reason"] for d in cli.json("cancellations", "--job", jobs[1])] == [f"r-{jobs[1]}"]
    assert len(cli.json("cancellations", "--status", "completed")) == 3
    assert cli("cancellations", "--status", "bogus").exit_code == 2
    assert jobs[0] in cli("cancellations").stdout

    families = {f.name: f for f in text_string_to_metric_families(paths.metrics_file.read_text())}
    requests = {tuple(sorted(s.labels.items())): s.value for s in families["oumi_jobs_cancellation_requests"].samples}
    assert requests[(("cloud", "local"), ("mode", "force"))] == 3
    assert requests[(("cloud", "local"), ("mode", "graceful"))] == 1
    terminated = sum(s.value for s in families["oumi_jobs_runners_terminated"].samples)
    assert terminated >= 3
    histogram = families["oumi_jobs_cancellation_duration_seconds"]
    counts = [s.value for s in histogram.samples if s.name.endswith("_count")]
    assert sum(counts) == 4
    jobs_gauge = {s.labels["state"]: s.value for s in families["oumi_jobs_jobs"].samples}
    assert jobs_gauge["cancelled"] == 3

    lines = [json.loads(line) for line in paths.event_log_file.read_text().splitlines()]
    steps = [line for line in lines if line["event"] == "cancel_step"]
    assert {"ts", "job_id", "cancellation_id", "step", "outcome", "duration_s"} <= set(steps[0])
    assert {line["step"] for line in steps} >= {"check_state", "signal_kill", "verify", "cleanup"}
    assert sum(line["event"] == "submit" for line in lines) == 3


def test_metrics_file_option_writes_a_second_copy(cli, job_config, tmp_path):
    job_id = started_job(cli, job_config, "sleep 300")
    target = tmp_path / "textfile" / "oumi_jobs.prom"
    assert cli("cancel", job_id, "--force", "--metrics-file", str(target)).exit_code == 0
    names = {f.name for f in text_string_to_metric_families(target.read_text())}
    assert {"oumi_jobs_cancellation_requests", "oumi_jobs_cancellation_failures"} <= names


@pytest.mark.parametrize(
    "args, message",
    [(["--signal", "NOPE"], "unknown signal"), (["--timeout", "-1"], "--timeout"), ([], "name the jobs")],
)
def test_bad_cancel_options_exit_2(cli, args, message):
    target = [] if not args else ["whatever"]
    result = cli("cancel", *target, *args)
    assert result.exit_code == 2
    assert message in (result.stderr + result.stdout)


def test_cancel_status_of_a_job_never_cancelled(cli, job_config):
    job_id = submit_id(cli, str(job_config("true")))
    result = cli("cancel-status", job_id)
    assert result.exit_code == 3 and "never been cancelled" in result.stderr
