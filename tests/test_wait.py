"""`oumi-jobs wait JOB...` on real local jobs: real supervisors, processes and signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oumi_jobs import api
from oumi_jobs.errors import ExitCode
from oumi_jobs.exits import wait_exit_code
from oumi_jobs.states import State
from oumi_jobs.views import JobView
from oumi_jobs.waiting import WaitResult, parse_timeout

from .helpers import make_record, on_a_terminal, submit_id, wait_state, wait_until


def _submit(cli, job_config, run: str, cluster: str) -> str:
    # Each job gets a cluster of its own: jobs of one local cluster run one at a time.
    return submit_id(cli, str(job_config(run)), "--cluster", cluster)


def _wait_process(*args: str) -> subprocess.Popen:
    """`oumi-jobs wait ARGS` through the module's entry point, in a process of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "oumi_jobs", "wait", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_wait_for_a_job_that_succeeds(cli, job_config):
    job_id = _submit(cli, job_config, "sleep 1; echo done", "w-ok")
    result = cli("wait", job_id)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()  # not a terminal: plain lines, one each time a job's line changes
    assert lines[-1].startswith(f"{job_id} succeeded") and len(lines) == len(set(lines))
    assert cli.json("status", job_id)["state"] == "succeeded"


def test_wait_for_a_job_that_fails_exits_1(cli, job_config):
    job_id = _submit(cli, job_config, "exit 3", "w-fail")
    result = cli("wait", job_id, "--json")
    assert result.exit_code == 1, result.stderr
    [doc] = json.loads(result.stdout)
    assert (doc["job_id"], doc["state"], doc["exit_code"], doc["done"]) == (job_id, "failed", 3, True)


def test_wait_for_a_job_cancelled_meanwhile_exits_4(cli, job_config):
    job_id = _submit(cli, job_config, "sleep 300", "w-cancel")
    wait_state(cli, job_id, "running")
    waiter = _wait_process(job_id, "--json")
    try:
        time.sleep(1)  # the waiter is waiting (it reads the job every half second)
        assert waiter.poll() is None
        assert cli("cancel", job_id, "--timeout", "5").exit_code == 0
        out, err = waiter.communicate(timeout=60)
    finally:
        if waiter.poll() is None:
            waiter.kill()
    assert waiter.returncode == 4, err
    assert [d["state"] for d in json.loads(out)] == ["cancelled"]


def test_timeout_exits_7_and_leaves_the_job_running(cli, job_config):
    job_id = _submit(cli, job_config, "sleep 300", "w-timeout")
    started = time.monotonic()
    result = cli("wait", job_id, "--timeout", "1s", "--json")
    assert result.exit_code == ExitCode.TIMEOUT == 7, result.stderr
    assert time.monotonic() - started < 30
    [doc] = json.loads(result.stdout)
    assert doc["done"] is False and doc["state"] in ("pending", "running")
    assert "timed out after 1s" in result.stderr and job_id in result.stderr
    wait_state(cli, job_id, "running")  # untouched by the wait (it may have been still starting)


def test_several_jobs_json_in_the_order_named_and_the_worst_outcome(cli, job_config):
    good = _submit(cli, job_config, "sleep 1", "w-a")
    bad = _submit(cli, job_config, "sleep 2; exit 5", "w-b")
    result = cli("wait", bad, good, good, "--json")  # named twice: waited for once
    assert result.exit_code == 1, result.stderr
    docs = json.loads(result.stdout)
    assert [(d["job_id"], d["state"]) for d in docs] == [(bad, "failed"), (good, "succeeded")]

    both_fine = _submit(cli, job_config, "true", "w-c")
    assert cli("wait", good, both_fine).exit_code == 0


def test_a_failure_wins_over_a_timeout(cli, job_config):
    bad = _submit(cli, job_config, "exit 2", "w-d")
    slow = _submit(cli, job_config, "sleep 300", "w-e")
    wait_state(cli, bad, "failed")  # known before the timeout, however slowly this machine starts jobs
    result = cli("wait", slow, bad, "--timeout", "2")
    assert result.exit_code == 1, result.stderr
    assert f"not done: {slow}" in result.stderr


def test_unknown_or_ambiguous_job_exits_3_before_waiting(cli, job_config):
    job_id = _submit(cli, job_config, "sleep 300", "w-f")
    started = time.monotonic()
    result = cli("wait", job_id, "no-such-job")
    assert result.exit_code == 3 and "no-such-job" in result.stderr
    other = _submit(cli, job_config, "sleep 300", "w-g")
    assert job_id.startswith("job-") and other.startswith("job-")
    ambiguous = cli("wait", "job-")
    assert ambiguous.exit_code == 3 and "ambiguous" in ambiguous.stderr
    assert time.monotonic() - started < 30  # nothing was waited for


@pytest.mark.parametrize("bad", ["soon", "-1", "nan", "1y", "99999999w"])
def test_bad_timeout_is_a_usage_error(cli, bad):
    result = cli("wait", "some-job", "--timeout", bad)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr


def test_wait_needs_a_job(cli):
    assert cli("wait").exit_code == 2


def test_ctrl_c_exits_130_and_the_job_goes_on(cli, job_config):
    job_id = _submit(cli, job_config, "sleep 300", "w-int")
    wait_state(cli, job_id, "running")
    waiter = _wait_process(job_id)
    try:
        wait_until(lambda: job_id.encode() in _peek(waiter), timeout=30)  # its first line: it is waiting
        waiter.send_signal(signal.SIGINT)
        _, err = waiter.communicate(timeout=30)
    finally:
        if waiter.poll() is None:
            waiter.kill()
    assert waiter.returncode == 130
    assert "stopped waiting" in err and "Traceback" not in err
    assert cli.json("status", job_id)["state"] == "running"


def _peek(process: subprocess.Popen) -> bytes:
    """What the process wrote on stdout so far (its first line, read without blocking for more)."""
    import select

    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 0)
    return process.stdout.readline().encode() if ready else b""


@pytest.mark.parametrize("no_color", [True, False], ids=["NO_COLOR", "colour"])
def test_on_a_terminal_a_live_line_per_job_unless_no_color(paths, cli, job_config, no_color):
    jobs = [_submit(cli, job_config, "sleep 1.5", "w-tty-a"), _submit(cli, job_config, "exit 1", "w-tty-b")]
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | {"PYTHONPATH": str(root), "COLUMNS": "100"}
    shown = on_a_terminal(["oumi-jobs", "wait", *jobs], env | ({"NO_COLOR": "1"} if no_color else {}), root)
    if no_color:
        assert b"\x1b" not in shown, shown[:400]  # no colour, no cursor moves, no spinner frames
        lines = shown.decode().splitlines()
        assert f"{jobs[0]} succeeded exited 0" in lines and f"{jobs[1]} failed exited 1" in lines
    else:
        assert b"\x1b[" in shown and all(job.encode() in shown for job in jobs)  # drawn in place, in colour
        assert "✓".encode() in shown and "✗".encode() in shown


def test_the_library_waits_too(paths, cli, job_config):
    job_id = _submit(cli, job_config, "sleep 1", "w-lib")
    result = api.wait_for_jobs(paths, [job_id], timeout_s=60)
    assert isinstance(result, api.WaitResult) and result.done and not result.timed_out
    assert [v.state for v in result.views] == [State.SUCCEEDED] and api.wait_exit_code(result) == 0
    with pytest.raises(api.JobNotFoundError):
        api.wait_for_jobs(paths, ["nope"])


def _view(state: State) -> JobView:
    return JobView(make_record(), state, None, None, "2026-01-01T00:00:00+00:00")


@pytest.mark.parametrize(
    ("states", "timed_out", "code"),
    [
        ([State.SUCCEEDED, State.SUCCEEDED], False, 0),
        ([State.SUCCEEDED, State.LOST], False, 1),
        ([State.CANCELLED, State.FAILED], False, 1),
        ([State.CANCELLED, State.SUCCEEDED], False, 4),
        ([State.CANCELLED, State.RUNNING], True, 4),
        ([State.SUCCEEDED, State.UNKNOWN], True, 7),
        ([State.FAILED, State.RUNNING], True, 1),
    ],
)
def test_which_exit_code_wins(states, timed_out, code):
    assert wait_exit_code(WaitResult(tuple(_view(s) for s in states), timed_out)) == code


def test_timeouts_are_read_as_seconds_or_durations():
    assert (parse_timeout("90"), parse_timeout("1.5"), parse_timeout("2h"), parse_timeout("30m")) == (
        90.0, 1.5, 7200.0, 1800.0,
    )  # fmt: skip
