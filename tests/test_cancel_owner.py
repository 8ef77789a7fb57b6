"""A cancellation whose owner died (kill -9, Ctrl-C, a reboot) is carried on or closed truthfully, never left
``in_progress``; and the bugs of issue 10's reading of the cancel code.  Real processes and signals: each
test ends only the processes it started, by pid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from oumi_jobs.cancel import finisher, service
from oumi_jobs.local.procs import is_alive
from oumi_jobs.status import get_status, read_status
from oumi_jobs.store.cancellations import CancellationStatus, CancellationTracker
from oumi_jobs.store.registry import Registry

from .helpers import add_record, make_record, submit_id, wait_state, wait_until

# TERM is ignored: only SIGKILL ends it, so a graceful cancel must wait and escalate.
STUBBORN = "trap '' TERM; touch '{ready}'; while true; do sleep 0.05; done"


def stubborn_job(cli, job_config, tmp_path: Path) -> str:
    ready = tmp_path / "ready"
    job_id = submit_id(cli, str(job_config(STUBBORN.format(ready=ready))))
    wait_state(cli, job_id, "running")
    wait_until(ready.exists)
    return job_id


def start_cancel(job_id: str, *args: str) -> subprocess.Popen[str]:
    """``oumi-jobs cancel JOB ARGS --json`` as a process of its own (this test's, to kill or interrupt)."""
    return subprocess.Popen(
        [sys.executable, "-m", "oumi_jobs", "cancel", job_id, "--json", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def record_of(paths, job_id: str):
    with Registry.open(paths) as registry:
        return CancellationTracker(registry).latest_for_job(job_id)


def wait_for_step(paths, job_id: str, name: str) -> None:
    """Until the job's cancellation has a step ``name`` under way (read without adopting anything)."""

    def under_way() -> bool:
        try:
            steps = record_of(paths, job_id).steps
        except Exception:
            return False  # no record yet
        return any(s.name == name and s.status.value == "in_progress" for s in steps)

    wait_until(under_way, timeout=30)


def kill_cancel(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.communicate(timeout=30)  # reaped: its pid is no longer the owner's


def test_force_after_a_killed_graceful_owner_kills_at_once(paths, cli, job_config, tmp_path):
    job_id = stubborn_job(cli, job_config, tmp_path)
    owner = start_cancel(job_id, "--timeout", "600")
    wait_for_step(paths, job_id, "wait")
    kill_cancel(owner)
    assert record_of(paths, job_id).status is CancellationStatus.IN_PROGRESS  # left behind by kill -9

    result = cli("cancel", job_id, "--force", "--json")
    doc = json.loads(result.stdout)
    assert result.exit_code == 0, result.stderr
    assert doc["status"] == "completed" and doc["force"] is True and doc["final_state"] == "cancelled"
    names = [s["name"] for s in doc["steps"]]
    assert names[-4:] == ["take_over", "signal_kill", "verify", "cleanup"], names
    take_over = next(s for s in doc["steps"] if s["name"] == "take_over")
    assert f"pid {owner.pid}" in take_over["detail"] and "SIGKILL" in take_over["detail"]
    assert doc["duration_s"] < 300  # far from the 600 s graceful wait: it did not wait it out
    assert cli.json("status", job_id)["state"] == "cancelled"


@pytest.mark.parametrize("reader", ["status", "cancel-status"])
def test_a_reader_hands_an_orphaned_cancellation_to_a_finisher(paths, cli, job_config, tmp_path, reader):
    job_id = stubborn_job(cli, job_config, tmp_path)
    owner = start_cancel(job_id, "--timeout", "2")
    wait_for_step(paths, job_id, "wait")
    kill_cancel(owner)

    assert cli(reader, job_id, "--json").exit_code == 0  # finds the dead owner, hands the record on
    adopted = record_of(paths, job_id)
    hand_over = next(s for s in adopted.steps if s.name == "hand_over")
    assert f"owner (pid {owner.pid}) died" in hand_over.detail and "detached finisher" in hand_over.detail
    final = cli.json("cancel-status", job_id, "--watch")
    assert final["status"] == "completed" and final["cancellation_id"] == adopted.cancellation_id
    assert [s["name"] for s in final["steps"]][-3:] == ["signal_kill", "verify", "cleanup"]
    assert cli.json("status", job_id)["state"] == "cancelled"
    assert len(cli.json("cancellations", "--job", job_id)) == 1  # carried on, not started again


def test_reading_a_job_adopts_nothing_only_the_status_step_does(paths, cli, job_config, tmp_path):
    """read_status is a pure read; get_status (what ``status`` calls) takes the orphan over as its own step."""
    job_id = stubborn_job(cli, job_config, tmp_path)
    owner = start_cancel(job_id, "--timeout", "2")
    wait_for_step(paths, job_id, "wait")
    kill_cancel(owner)

    assert read_status(paths, job_id).job_id == job_id
    left = record_of(paths, job_id)
    assert left.status is CancellationStatus.IN_PROGRESS and "hand_over" not in [s.name for s in left.steps]

    get_status(paths, job_id)
    adopted = record_of(paths, job_id)
    assert f"owner (pid {owner.pid}) died" in next(s for s in adopted.steps if s.name == "hand_over").detail
    final = cli.json("cancel-status", job_id, "--watch")  # the finisher ends the job
    assert final["status"] == "completed" and final["final_state"] == "cancelled"


def test_ctrl_c_on_a_graceful_cancel_hands_the_rest_to_a_finisher(paths, cli, job_config, tmp_path):
    job_id = stubborn_job(cli, job_config, tmp_path)
    owner = start_cancel(job_id, "--timeout", "3")
    wait_for_step(paths, job_id, "wait")
    owner.send_signal(signal.SIGINT)
    _, err = owner.communicate(timeout=30)
    assert owner.returncode == 130
    assert "goes on in a detached process" in err and f"cancel-status {job_id}" in err
    assert "Traceback" not in err

    final = cli.json("cancel-status", job_id, "--watch")
    assert final["status"] == "completed" and final["final_state"] == "cancelled"
    steps = {s["name"]: s for s in final["steps"]}  # the last of each name
    assert {"name": "wait", "status": "failed", "detail": "interrupted (Ctrl-C)"}.items() <= final["steps"][2].items()
    assert "interrupted (Ctrl-C)" in steps["hand_over"]["detail"]
    assert [s["name"] for s in final["steps"]][-3:] == ["signal_kill", "verify", "cleanup"]
    assert cli.json("status", job_id)["state"] == "cancelled"


def test_a_job_whose_supervisor_was_killed_ends_cancelled_not_lost(paths, cli, job_config):
    job_id = submit_id(cli, str(job_config("sleep 300")))
    wait_state(cli, job_id, "running")
    with Registry.open(paths) as registry:
        job = registry.get(job_id)
    assert job is not None and job.supervisor_pid
    os.kill(job.supervisor_pid, signal.SIGKILL)  # the supervisor this test's submit started
    wait_until(lambda: not is_alive(job.supervisor_pid, job.supervisor_start_time, job.boot_id))

    result = cli("cancel", job_id, "--json")
    doc = json.loads(result.stdout)
    assert result.exit_code == 0 and doc["status"] == "completed" and doc["final_state"] == "cancelled"
    assert "supervisor was gone" in next(s for s in doc["steps"] if s["name"] == "cleanup")["detail"]
    status = cli.json("status", job_id)
    assert status["state"] == "cancelled" and status["done"] is True
    assert "supervisor was gone" in status["status"] + (status["detail"] or "")


def test_cancel_status_and_history_report_an_ambiguous_prefix(paths, cli):
    for job_id in ("amb-1", "amb-2"):
        add_record(paths, make_record(job_id))
    status = cli("cancel-status", "amb")
    assert status.exit_code == 3 and "ambiguous" in status.stderr and "never been cancelled" not in status.stderr
    history = cli("cancellations", "--job", "amb", "--json")
    assert history.exit_code == 3 and "ambiguous" in history.stderr and history.stdout == ""


def test_the_finisher_does_nothing_unless_it_is_the_recorded_owner(paths, monkeypatch):
    job_id = add_record(paths, make_record())
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        with Registry.open(paths) as registry:
            tracker = CancellationTracker(registry)
            claim = tracker.claim(job_id, cloud="local", reason=None, force=False, timeout_s=1, signal_name="SIGTERM")
            tracker.hand_over(claim.record.cancellation_id, stranger.pid)  # owned by another live process
        monkeypatch.setattr(finisher, "HANDOVER_WAIT_S", 0.3)
        assert finisher.main([*paths.as_options(), claim.record.cancellation_id]) == finisher.EXIT_NOT_OWNER
        after = record_of(paths, job_id)
        assert after.steps == () and after.status is CancellationStatus.REQUESTED  # untouched
    finally:
        stranger.kill()
        stranger.wait()


def test_cancel_all_writes_the_metrics_once(paths, cli, job_config, monkeypatch):
    jobs = [submit_id(cli, str(job_config("sleep 300")), "--parallel", "3") for _ in range(3)]
    for job_id in jobs:
        wait_state(cli, job_id, "running")
    writes = []
    real = service.write_metrics
    monkeypatch.setattr(service, "write_metrics", lambda *a, **k: (writes.append(a), real(*a, **k))[1])
    result = cli("cancel", "--all", "--force", "--json")
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 3
    assert len(writes) == 1
    assert paths.metrics_file.exists()
