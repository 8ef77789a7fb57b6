"""Retries of real local jobs: the supervisor's attempt loop, a cancel between attempts, a job that fails the
same way twice, ``retry JOB`` by hand, a supervisor killed between attempts, and each attempt's own logs."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from oumi_jobs.local.procs import is_alive

from .helpers import Cli, submit_id, wait_done, wait_until

# Each attempt counts itself in a file and exits with the count (1, 2, ...), 0 from the third on: three
# attempts, the first two failing with different exit codes (evidence that differs: no early stop).
COUNTING = """
n=$(( $(cat {count} 2>/dev/null || echo 0) + 1 ))
echo $n > {count}
echo "attempt $n"
if [ $n -ge 3 ]; then exit 0; fi
exit $n
"""


def _counting(job_config, tmp_path: Path) -> Path:
    return job_config(COUNTING.format(count=tmp_path / "count"))


def test_a_job_that_fails_twice_then_succeeds_on_its_third_attempt(cli: Cli, job_config, tmp_path: Path) -> None:
    job_id = submit_id(cli, str(_counting(job_config, tmp_path)), "--retries", "2", "--retry-on", "exit_code",
                       "--retry-delay", "0.2s")  # fmt: skip
    done = wait_done(cli, job_id, timeout=60)
    assert done["state"] == "succeeded", done
    assert (done["attempt"], done["max_attempts"]) == (3, 3)
    attempts = done["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["state"] for a in attempts] == ["failed", "failed", "succeeded"]
    assert [a["exit_code"] for a in attempts] == [1, 2, 0]
    assert [a["failure"]["class"] for a in attempts[:2]] == ["exit_code", "exit_code"] and attempts[2][
        "failure"
    ] is None
    assert all(a["start_time"] and a["end_time"] for a in attempts)
    # Each attempt's output apart: the latest by default, another with --attempt.
    assert cli("logs", job_id).stdout == "attempt 3\n"
    assert cli("logs", job_id, "--attempt", "1").stdout == "attempt 1\n"
    assert cli("logs", job_id, "--attempt", "4").exit_code == 3  # no such attempt
    events = cli.json("events", job_id)
    retrying = [e for e in events if e["kind"] == "retrying"]
    assert [(e["attempt"], e["next_attempt"], e["failure_class"]) for e in retrying] == [
        (1, 2, "exit_code"), (2, 3, "exit_code")]  # fmt: skip
    assert [e["attempt"] for e in events if e["kind"] == "started"] == [1, 2, 3]
    assert [e["attempt"] for e in events if e["kind"] == "ended"] == [1, 2, 3]
    listed = next(doc for doc in cli.json("list") if doc["job_id"] == job_id)
    assert listed["attempts"] == attempts and listed["attempt"] == 3


def test_without_retry_on_its_class_a_failed_attempt_is_not_retried(cli: Cli, job_config, tmp_path: Path) -> None:
    job_id = submit_id(cli, str(_counting(job_config, tmp_path)), "--retries", "2", "--retry-delay", "0.2s")
    done = wait_done(cli, job_id, timeout=30)
    assert done["state"] == "failed" and done["attempt"] == 1 and done["max_attempts"] == 3
    assert done["failure"]["class"] == "exit_code" and len(done["attempts"]) == 1
    assert (tmp_path / "count").read_text().strip() == "1"


def test_a_job_failing_the_same_way_twice_stops_early(cli: Cli, job_config, tmp_path: Path) -> None:
    config = job_config(f"echo run >> {tmp_path / 'runs'}\nexit 3")
    job_id = submit_id(cli, str(config), "--retries", "5", "--retry-on", "exit_code", "--retry-delay", "0.2s")
    done = wait_done(cli, job_id, timeout=60)
    assert done["state"] == "failed" and done["attempt"] == 2 and done["max_attempts"] == 6
    assert (tmp_path / "runs").read_text().count("run") == 2
    ended = [e for e in cli.json("events", job_id) if e["kind"] == "ended"]
    assert "same way twice" in ended[-1]["detail"]


def _wait_retrying(cli: Cli, job_id: str, attempt: int) -> dict:
    def waiting() -> dict | None:
        doc = cli.json("status", job_id)
        return doc if doc["status"] == "retrying" and doc["attempt"] == attempt else None

    found = wait_until(waiting, 30)
    assert isinstance(found, dict)
    return found


def test_a_cancel_during_the_retry_delay_ends_the_job_with_no_further_attempt(
    cli: Cli, job_config, tmp_path: Path
) -> None:
    job_id = submit_id(cli, str(_counting(job_config, tmp_path)), "--retries", "2", "--retry-on", "exit_code",
                       "--retry-delay", "30s")  # fmt: skip
    waiting = _wait_retrying(cli, job_id, 2)
    assert waiting["state"] == "pending" and "attempt 2/3" in waiting["detail"]
    result = cli("cancel", job_id)
    assert result.exit_code == 0, result.stderr
    done = wait_done(cli, job_id)
    assert done["state"] == "cancelled" and done["attempt"] == 2
    assert (tmp_path / "count").read_text().strip() == "1"  # attempt 2 never ran


def test_retry_by_hand_starts_the_next_attempt_of_an_ended_job_only(cli: Cli, job_config, tmp_path: Path) -> None:
    failing = submit_id(cli, str(_counting(job_config, tmp_path)))
    assert wait_done(cli, failing)["state"] == "failed"
    retried = cli.json("retry", failing)
    assert retried["attempt"] == 2 and not retried["done"]
    done = wait_done(cli, failing)
    assert done["state"] == "failed" and done["exit_code"] == 2 and len(done["attempts"]) == 2
    running = submit_id(cli, str(job_config("sleep 30")))
    refused = cli("retry", running)
    assert refused.exit_code == 4 and "only an ended job" in refused.stderr
    assert cli("cancel", running).exit_code == 0


def test_a_supervisor_killed_between_attempts_is_taken_over(cli: Cli, job_config, tmp_path: Path, paths) -> None:
    job_id = submit_id(cli, str(_counting(job_config, tmp_path)), "--retries", "1", "--retry-on", "exit_code",
                       "--retry-delay", "2s")  # fmt: skip
    _wait_retrying(cli, job_id, 2)
    from oumi_jobs.store.registry import Registry

    with Registry.open(paths) as registry:
        record = registry.get(job_id)
    assert record is not None and record.supervisor_pid is not None
    os.kill(record.supervisor_pid, signal.SIGKILL)  # the supervisor this test's submit started
    wait_until(lambda: not is_alive(record.supervisor_pid, record.supervisor_start_time, record.boot_id), 10)
    done = wait_done(cli, job_id, timeout=30)  # its reads take the attempt over
    assert done["attempt"] == 2 and done["exit_code"] == 2
    assert (tmp_path / "count").read_text().strip() == "2"
