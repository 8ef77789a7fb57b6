"""The warm server's life as users meet it: started by the first cloud command, used by the next, one per
environment, gone when idle, and faults (a kill mid-request, a stale socket, concurrent starters).

Every command here is a process of its own (as a user's is), with the server on; each server a test starts
is ended by the `paths` fixture, by its pid.  Clouds: tests/file_cloud.py, which every process loads.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from oumi_jobs.client import Client
from oumi_jobs.local.procs import is_alive
from oumi_jobs.server.lifecycle import STARTING_NOTE
from oumi_jobs.server.location import ServerFiles

from . import file_cloud as cloud_module
from .helpers import wait_until


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oumi_jobs", *args], env=env or dict(os.environ), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def live_servers(paths) -> list[dict]:
    found = []
    for info in (paths.state_dir / "server").glob("*/server.json"):
        record = json.loads(info.read_text())
        if is_alive(record["pid"], record["start_time"], record["boot_id"]):
            found.append(record)
    return found


def add_cloud_job(cluster: str = "fc1", status: str = "RUNNING") -> str:
    """A job on the file cloud, as if someone launched it: its launcher id."""
    with cloud_module.state(write=True) as data:
        job_id = str(data["next_id"])
        data["next_id"] += 1
        data["clusters"].setdefault(cluster, []).append(
            {"id": job_id, "name": "job", "status": status, "ends_at": None, "final_status": "COMPLETED"}
        )
    return job_id


def cloud_status(launcher_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run("status", "--cloud", "oj-file", "--cluster", "fc1", "--launcher-id", launcher_id, "--json", *extra)


def gone(record: dict, timeout: float = 30) -> bool:
    return wait_until(lambda: not is_alive(record["pid"], record["start_time"], record["boot_id"]), timeout=timeout)


def test_the_first_cloud_command_starts_the_server_and_the_next_uses_it(server_on, file_cloud):
    launcher_id = add_cloud_job()
    first = cloud_status(launcher_id)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["state"] == "running"
    assert STARTING_NOTE in first.stderr
    (server,) = live_servers(server_on)
    served = Client.unix(server["socket"]).get("/server")["requests_served"]

    second = cloud_status(launcher_id)
    assert second.returncode == 0 and STARTING_NOTE not in second.stderr, second.stderr
    # A warm command makes one request, the call itself (the other one counted: the /server just above).
    assert Client.unix(server["socket"]).get("/server")["requests_served"] == served + 2
    assert [s["pid"] for s in live_servers(server_on)] == [server["pid"]]
    status = run("server", "status", "--json")
    doc = json.loads(status.stdout)
    assert status.returncode == 0 and doc["pid"] == server["pid"] and doc["warm"] is True
    assert "oj-file" in doc["clouds_loaded"] and doc["requests_served"] >= 4
    # oumi's own INFO lines go to the server's log, never to a command's stdout
    assert first.stdout.lstrip().startswith("{") and second.stdout.lstrip().startswith("{")


def test_local_commands_never_start_a_server(server_on, cli, job_config):
    job_id = run("submit", "-q", str(job_config("echo hi"))).stdout.strip()
    for args in (("list",), ("status", job_id), ("logs", job_id), ("list", "--json"), ("cancellations",)):
        assert run(*args).returncode in (0, 4), args
    assert not (server_on.state_dir / "server").exists()
    assert run("server", "status").returncode == 1


def test_the_server_exits_when_idle(server_on):
    started = run("server", "start", "--idle-timeout", "2", "--json")
    assert started.returncode == 0, started.stderr
    (server,) = live_servers(server_on)
    assert gone(server, timeout=60)
    assert not Path(server["socket"]).exists() and live_servers(server_on) == []


def test_server_start_twice_is_a_conflict_and_stop_ends_it(server_on):
    assert run("server", "start").returncode == 0
    again = run("server", "start")
    assert again.returncode == 4 and "already runs" in again.stderr
    (server,) = live_servers(server_on)
    stopped = run("server", "stop", "--json")
    assert stopped.returncode == 0 and json.loads(stopped.stdout) == {
        "schema_version": 1, "pid": server["pid"], "outcome": "stopped"
    }  # fmt: skip
    assert gone(server, timeout=10) and run("server", "stop").returncode == 0  # nothing to stop: still fine


def test_another_environment_gets_a_server_of_its_own(server_on, file_cloud):
    launcher_id = add_cloud_job()
    assert cloud_status(launcher_id).returncode == 0
    other = dict(os.environ, OUMI_SLURM_CONNECTIONS="someone@elsewhere")
    assert (
        run("status", "--cloud", "oj-file", "--cluster", "fc1", "--launcher-id", launcher_id, env=other).returncode == 0
    )
    servers = live_servers(server_on)
    assert len(servers) == 2 and len({s["key"] for s in servers}) == 2
    # and each environment's next command finds its own
    assert cloud_status(launcher_id).returncode == 0
    assert (
        run("status", "--cloud", "oj-file", "--cluster", "fc1", "--launcher-id", launcher_id, env=other).returncode == 0
    )
    assert {s["pid"] for s in live_servers(server_on)} == {s["pid"] for s in servers}


def test_concurrent_starters_end_up_with_one_server(server_on):
    probe = (
        "from oumi_jobs.paths import Paths; from oumi_jobs.server import lifecycle; "
        "print(lifecycle.connect(Paths.from_env()).get('/server')['pid'])"
    )
    starters = [
        subprocess.Popen([sys.executable, "-c", probe], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    pids = {starter.communicate(timeout=180)[0].strip() for starter in starters}
    assert len(pids) == 1 and pids.pop().isdigit()
    assert len(live_servers(server_on)) == 1


def test_a_question_whose_server_was_killed_is_asked_again_of_a_new_one(server_on, file_cloud):
    launcher_id = add_cloud_job()
    assert cloud_status(launcher_id).returncode == 0  # the server is up and warm
    (server,) = live_servers(server_on)
    cloud_module.update(get_delay_s=20.0)  # the next status waits in the server
    asking = subprocess.Popen(
        [sys.executable, "-m", "oumi_jobs", "status", "--cloud", "oj-file", "--cluster", "fc1", "--launcher-id",
         launcher_id, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_until(lambda: _in_flight(server) >= 1, timeout=60)
    os.kill(server["pid"], signal.SIGKILL)  # the server this test's command started
    out, err = asking.communicate(timeout=240)
    assert asking.returncode == 0 and json.loads(out)["state"] == "running", (out, err)
    assert STARTING_NOTE in err and "Traceback" not in err
    (again,) = live_servers(server_on)
    assert again["pid"] != server["pid"]


def test_an_action_whose_server_was_killed_is_not_sent_twice(server_on, file_cloud, tmp_path):
    """A cancel the server dropped may have reached the cloud: the record fails, naming what happened."""
    config = tmp_path / "job.yaml"
    config.write_text("run: sleep 1000\n")
    job_id = run("submit", "-q", str(config), "--cloud", "oj-file", "--cluster", "fc1").stdout.strip()
    wait_until(lambda: json.loads(run("status", job_id, "--json").stdout)["state"] == "running", timeout=180)
    (server,) = live_servers(server_on)
    cloud_module.update(cancel_delay_s=60.0)
    cancelling = subprocess.Popen(
        [sys.executable, "-m", "oumi_jobs", "cancel", job_id, "--json"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_until(lambda: file_cloud.read().get("cancelling"), timeout=120)
    os.kill(server["pid"], signal.SIGKILL)
    out, err = cancelling.communicate(timeout=120)
    assert "Traceback" not in err, err
    assert cancelling.returncode in (1, 5), (out, err)
    assert "dropped the request" in out + err
    assert file_cloud.read()["cancelled"] == []  # sent once, and that one died with the server


def _in_flight(server: dict) -> int:
    from oumi_jobs.client import Client

    with Client.unix(server["socket"]) as client:
        return int(client.get("/server")["requests_in_flight"])


def test_a_followed_log_whose_client_went_away_ends_its_request(server_on, file_cloud):
    """A running job's log stays silent for hours: the server notices its client left, and the request (and
    the cluster's stream) ends, or the server would never be idle again."""
    from oumi_jobs.client import Client

    launcher_id = add_cloud_job()
    cloud_module.update(log_follow=True)
    assert cloud_status(launcher_id).returncode == 0  # the server is up and warm
    (server,) = live_servers(server_on)
    kwargs = {"cloud": "oj-file", "cluster": "fc1", "launcher_job_id": launcher_id, "timeout_s": 30}
    with Client.unix(server["socket"]) as client:
        lines, close = client.stream_lines("POST", "/adapter/log_stream", json={"kwargs": kwargs}, open_timeout_s=60)
        assert next(lines) == "a line of the job's log\n"
        assert _in_flight(server) == 1  # the stream, waiting for a line that does not come
        close()
    assert wait_until(lambda: _in_flight(server) == 0, timeout=30)


def test_a_stale_socket_is_replaced(server_on, file_cloud):
    launcher_id = add_cloud_job()
    assert cloud_status(launcher_id).returncode == 0
    (dead,) = live_servers(server_on)
    os.kill(dead["pid"], signal.SIGKILL)
    assert gone(dead, timeout=10) and Path(dead["socket"]).exists()  # left behind, answering nothing
    again = cloud_status(launcher_id)
    assert again.returncode == 0 and STARTING_NOTE in again.stderr, again.stderr
    (server,) = live_servers(server_on)
    assert server["pid"] != dead["pid"] and server["socket"] == dead["socket"]


def test_server_run_serves_in_the_foreground_as_its_own_pid(server_on):
    process = subprocess.Popen(
        [sys.executable, "-m", "oumi_jobs", "server", "run"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: live_servers(server_on), timeout=60)
        (server,) = live_servers(server_on)
        assert server["pid"] == process.pid and server["idle_timeout_s"] == 0
        status = run("server", "status", "--json")
        assert json.loads(status.stdout)["pid"] == process.pid
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert not Path(server["socket"]).exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--host", "0.0.0.0"), "pass --allow-remote"),
        (("--port", "8080"), "--port needs --host"),
        (("--idle-timeout", "-1"), "--idle-timeout"),
    ],
)
def test_bad_server_options_are_one_line_and_exit_2(server_on, args, message):
    result = run("server", "start", *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert live_servers(server_on) == []


def test_cancel_during_launch_holds_through_the_server(server_on, file_cloud, tmp_path):
    """The pre-launch guard: up runs in the server; the launching process cancels the job when it returns."""
    file_cloud.configure(up_delay_s=6.0)
    config = tmp_path / "job.yaml"
    config.write_text("run: sleep 1000\n")
    job_id = run("submit", "-q", str(config), "--cloud", "oj-file", "--cluster", "fs1").stdout.strip()
    wait_until(lambda: file_cloud.read().get("provisioning"), timeout=180)
    cancelled = run("cancel", job_id, "--json", "--timeout", "60")
    doc = json.loads(cancelled.stdout)
    assert doc["status"] == "completed" and doc["final_state"] == "cancelled", doc
    assert file_cloud.read()["cancelled"] == ["1"]


def test_a_server_killed_during_up_fails_the_launch_and_says_the_job_may_exist(server_on, file_cloud, tmp_path):
    file_cloud.configure(up_delay_s=100_000.0)
    config = tmp_path / "job.yaml"
    config.write_text("run: sleep 1000\n")
    job_id = run("submit", "-q", str(config), "--cloud", "oj-file", "--cluster", "fk2").stdout.strip()
    wait_until(lambda: file_cloud.read().get("provisioning"), timeout=180)
    requested = json.loads(run("cancel", job_id, "--json", "--timeout", "1").stdout)
    assert requested["status"] == "in_progress"
    (server,) = live_servers(server_on)
    os.kill(server["pid"], signal.SIGKILL)
    final = json.loads(run("cancel-status", job_id, "--watch", "--json").stdout)
    assert final["status"] == "failed" and "is unknown" in final["steps"][-1]["detail"], final
    status = json.loads(run("status", job_id, "--json").stdout)
    assert status["done"] and "dropped the request" in status["detail"]


def test_server_token_is_private_and_rotates(server_on):
    first = run("server", "token")
    assert first.returncode == 0 and len(first.stdout.strip()) >= 32
    token_file = ServerFiles.for_env(server_on).token
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert run("server", "token").stdout == first.stdout
    rotated = run("server", "token", "--rotate").stdout
    assert rotated != first.stdout and token_file.read_text() == rotated
