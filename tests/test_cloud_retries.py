"""Cloud jobs are retried by the warm server (server/watcher.py): a job on a registered test cloud
(tests/file_cloud.py) fails once and its next attempt is a new launch, made by a server that was started after
the first one died (the watch is taken up again from the registry)."""

from __future__ import annotations

import json

from .helpers import end_servers_of, submit_id, wait_until


def test_a_cloud_job_that_fails_once_is_retried_by_the_server(server_on, cli, file_cloud, tmp_path) -> None:
    file_cloud.configure(run_s=2.0, final_status="FAILED")
    config = tmp_path / "job.yaml"
    config.write_text("run: python train.py\n")
    submitted = cli("submit", "--json", str(config), "--cloud", "oj-file", "--cluster", "fc-retry",
                    "--retries", "1", "--retry-on", "unknown", "--retry-delay", "0.5s")  # fmt: skip
    assert submitted.exit_code == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["job_id"]

    def status() -> dict:
        return cli.json("status", job_id, "--cloud-timeout", "10")

    wait_until(lambda: status()["launcher_job_id"] == "1", timeout=120)
    assert end_servers_of(server_on), "the launch went through this test's server"  # the watch must come back
    file_cloud.update(final_status="COMPLETED")  # the next launch succeeds
    done = wait_until(lambda: (d := status())["attempt"] == 2 and d["state"] == "succeeded" and d, timeout=180)
    assert isinstance(done, dict) and done["launcher_job_id"] == "2" and done["max_attempts"] == 2
    first = done["attempts"][0]
    assert first["state"] == "failed" and first["failure"]["class"] == "unknown"
    assert len(file_cloud.read()["clusters"]["fc-retry"]) == 2  # two launches
    retrying = [e for e in cli.json("events", job_id) if e["kind"] == "retrying"]
    assert [(e["attempt"], e["next_attempt"]) for e in retrying] == [(1, 2)]


def test_a_server_watching_jobs_is_never_idle() -> None:
    from oumi_jobs.server.activity import Activity

    activity = Activity()
    activity.watching(2)
    assert activity.idle_for() == 0.0 and activity.watched == 2
    activity.watching(0)  # the idle time starts when the last watched job is done
    assert 0.0 <= activity.idle_for() < 5.0


def test_a_cloud_job_over_its_budget_is_stopped_by_the_servers_watch(server_on, cli, file_cloud, tmp_path) -> None:
    """A price of $3600 an hour is a dollar a second: past its $4 the server's watch cancels the job, which reads
    failed, over_budget; nobody runs `status` until then."""
    file_cloud.configure(cost_per_hour=3600.0)  # runs until cancelled
    config = tmp_path / "job.yaml"
    config.write_text("run: python train.py\n")
    submitted = cli("submit", "--json", str(config), "--cloud", "oj-file", "--cluster", "fc-cost", "--max-cost", "4")
    assert submitted.exit_code == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["job_id"]
    wait_until(lambda: file_cloud.read()["cancelled"] == ["1"], timeout=120)
    [event] = [e for e in cli.json("events", job_id) if e["kind"] == "guard"]
    assert (event["guard"], event["limit"], event["action"]) == ("max_cost", 4.0, "stop") and event["observed"] >= 4
    final = wait_until(lambda: (d := cli.json("status", job_id))["done"] and d, timeout=60)
    assert final["state"] == "failed" and final["failure"]["class"] == "over_budget", final
    assert final["cost_per_hour"] == 3600.0


def test_a_cloud_jobs_guard_retry_stops_the_attempt_and_the_server_launches_the_next(
    server_on, cli, file_cloud, tmp_path
) -> None:
    """Attempt 1 runs past its 3 s and its guard's `retry` cancels it; `over_time` is not in --retry-on, the
    server launches attempt 2 anyway, which succeeds."""
    file_cloud.configure()  # runs until cancelled
    config = tmp_path / "job.yaml"
    config.write_text("run: python train.py\n")
    job_id = submit_id(cli, str(config), "--cloud", "oj-file", "--cluster", "fc-guard", "--max-duration", "3s",
                       "--guard-action", "retry", "--retries", "1", "--retry-on", "unknown", "--retry-delay", "0.5s")  # fmt: skip
    wait_until(lambda: file_cloud.read()["cancelled"] == ["1"], timeout=120)
    file_cloud.update(run_s=1.0)  # the next launch ends well within its limit
    done = wait_until(lambda: (d := cli.json("status", job_id))["attempt"] == 2 and d["done"] and d, timeout=120)
    assert done["state"] == "succeeded" and done["launcher_job_id"] == "2", done
    first = done["attempts"][0]
    assert first["state"] == "failed" and first["failure"]["class"] == "over_time", first
    events = cli.json("events", job_id)
    assert [(e["guard"], e["action"]) for e in events if e["kind"] == "guard"] == [("max_duration", "retry")]
    [retrying] = [e for e in events if e["kind"] == "retrying"]
    assert (retrying["failure_class"], retrying["next_attempt"], retrying["by_guard"]) == ("over_time", 2, True)


def test_a_nan_in_a_cloud_jobs_log_stops_it_as_diverged(server_on, cli, file_cloud, tmp_path) -> None:
    """The trainer prints a NaN gradient norm (its loss logged as 0.0): the server's watch reads it in the job's
    log stream and stops the job, which reads failed, diverged."""
    log = "{'loss': 1.25, 'grad_norm': 3.5, 'epoch': 0.1}\n{'loss': 0.0, 'grad_norm': nan, 'epoch': 0.2}\n"
    file_cloud.configure(log_text=log)  # runs until cancelled
    config = tmp_path / "job.yaml"
    config.write_text("run: python train.py\n")
    job_id = submit_id(cli, str(config), "--cloud", "oj-file", "--cluster", "fc-nan", "--nan-guard")
    wait_until(lambda: file_cloud.read()["cancelled"] == ["1"], timeout=120)
    [event] = [e for e in cli.json("events", job_id) if e["kind"] == "guard"]
    assert (event["guard"], event["observed"], event["action"]) == ("nan", "grad_norm=nan in the log", "stop")
    final = wait_until(lambda: (d := cli.json("status", job_id))["done"] and d, timeout=60)
    assert final["state"] == "failed" and final["failure"]["class"] == "diverged", final
