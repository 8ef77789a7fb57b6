"""``list --all-clouds`` against a real SkyPilot API server on loopback.

The server is SkyPilot's own (``python -m sky.server.server``), started by this
module fully apart from any SkyPilot of the user's: a private HOME, and every
port it opens a free one (its request queue's too, which SkyPilot fixes at
50011: tests/sky_queue_port.py moves it).  It is ended by the process group
it was started in.  Without SkyPilot installed these tests skip, except under
``CI=true`` where they fail: the README's install brings SkyPilot.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import INTENDED_SKY_SERVER, free_loopback_port, left_sky_servers

HERE = Path(__file__).resolve().parent
# The clouds oumi.launcher 0.9 reaches through SkyPilot.
SKY_CLOUDS = ("aws", "azure", "gcp", "k8s", "lambda", "nebius", "runpod", "sky-slurm")
# SkyPilot's fixed ports: its API server's default, and its request queue's.
SKY_DEFAULT_PORTS = {46580, 50011}


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports, none of SkyPilot's defaults."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_loopback_port()
        if port not in ports and port not in SKY_DEFAULT_PORTS:
            ports.append(port)
    return ports


def _listening_ports(group: int) -> set[int]:
    """The TCP ports the processes of process group ``group`` listen on (from /proc)."""
    inodes: set[str] = set()
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) != group:
                continue
            for fd in (entry / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
        except OSError:  # ended meanwhile
            continue
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _healthy(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/api/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def sky_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if importlib.util.find_spec("sky") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("SkyPilot is not installed; the README's install brings it")
        pytest.skip("SkyPilot is not installed")
    home = tmp_path_factory.mktemp("sky-home")
    port, metrics_port, queue_port = _free_ports(3)
    endpoint = f"http://127.0.0.1:{port}"
    plugin_dir = home / "plugins"
    plugin_dir.mkdir()
    shutil.copy(HERE / "sky_queue_port.py", plugin_dir)  # importable by the server, and nothing else of tests/
    (home / ".sky").mkdir()
    (home / ".sky" / "plugins.yaml").write_text(
        f"plugins:\n  - class: sky_queue_port.QueueOnPort\n    parameters:\n      port: {queue_port}\n"
    )
    path = os.pathsep.join(p for p in (str(plugin_dir), os.environ.get("PYTHONPATH")) if p)
    # OUMI_JOBS_TEST_SKY_SERVER: this server is meant to run past a test (see conftest.py); this module ends it.
    env = dict(
        os.environ,
        HOME=str(home),
        DO_NOT_TRACK="1",
        SKYPILOT_DISABLE_USAGE_COLLECTION="1",
        PYTHONPATH=path,
        **{INTENDED_SKY_SERVER: "1"},
    )
    env.pop("SKYPILOT_API_SERVER_ENDPOINT", None)
    log = (home / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "sky.server.server", "--host", "127.0.0.1", "--port", str(port),
         "--metrics-port", str(metrics_port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,  # its own group: ours to end
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not _healthy(endpoint):
            if server.poll() is not None or time.monotonic() > deadline:
                tail = (home / "server.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"the SkyPilot API server did not start (exit {server.returncode}):\n{tail}")
            time.sleep(0.5)
        # Apart from a user's SkyPilot: only the ports given to it (the metrics one if it serves metrics).
        listening = _listening_ports(server.pid)
        assert {port, queue_port} <= listening <= {port, metrics_port, queue_port}, listening
        yield endpoint, home
    finally:
        for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(server.pid, sig)
            except ProcessLookupError:
                break
            try:
                server.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()


def test_list_all_clouds_shows_skypilot_clouds_reachable_with_no_jobs(sky_server, tmp_path):
    endpoint, home = sky_server
    env = {k: v for k, v in os.environ.items() if k != "OUMI_SLURM_CONNECTIONS"}  # this test is about SkyPilot
    env |= {"HOME": str(home), "SKYPILOT_API_SERVER_ENDPOINT": endpoint, "OUMI_JOBS_HOME": str(tmp_path / "oj"),
            "COLUMNS": "200"}  # fmt: skip
    executable = shutil.which("oumi-jobs")
    assert executable, "the oumi-jobs entry point is not installed"
    result = subprocess.run(
        [executable, "list", "--all-clouds", "--cloud-timeout", "120"],
        env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if line.strip()}
    for cloud in SKY_CLOUDS:
        assert rows.get(cloud, [None])[:2] == ["reachable", "0"], (cloud, result.stdout, result.stderr)
    assert "local" not in rows  # oumi's in-memory local cloud is never asked
    assert "note:" not in result.stderr  # a server answers: nothing is started


# What the adapter says before SkyPilot's clouds are asked, and whether SkyPilot got imported for it.
NOTE_PROBE = """
import sys
from oumi_jobs.cloud.oumi_adapter import OumiAdapter
note = OumiAdapter().server_start_note(sys.argv[1:], timeout_s=120)
print(repr(note), "sky" in sys.modules)
"""


def _note(env: dict[str, str], *clouds: str) -> tuple[str, str]:
    result = subprocess.run(
        [sys.executable, "-c", NOTE_PROBE, *clouds], env=env, capture_output=True, text=True, timeout=300
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    note, imported = result.stdout.strip().splitlines()[-1].rsplit(" ", 1)
    return note, imported


def test_the_note_before_skypilot_starts_a_server_comes_exactly_when_it_would(sky_server, tmp_path):
    endpoint, _ = sky_server
    env = dict(os.environ, HOME=str(tmp_path))  # no SkyPilot settings of the user's
    assert _note(env | {"SKYPILOT_API_SERVER_ENDPOINT": endpoint}, "gcp") == ("None", "True")  # one answers
    # conftest.py's closed endpoint is not SkyPilot's local one: SkyPilot fails there rather than start a server.
    assert _note(env, "gcp", "aws")[0] == "None"
    assert _note(env, "slurm", "oj-custom") == ("None", "False")  # no SkyPilot cloud: SkyPilot is not imported
    default = {k: v for k, v in env.items() if k != "SKYPILOT_API_SERVER_ENDPOINT"}
    note, _ = _note(default, "gcp")  # only looks: nothing is started
    if _healthy("http://127.0.0.1:46580"):  # someone's server answers at SkyPilot's default: SkyPilot uses it
        assert note == "None"
    else:
        assert "SkyPilot starts one now" in note and "127.0.0.1:46580" in note, note


def test_the_guard_sees_a_skypilot_server_the_tests_started_and_left():
    """conftest.py fails a test after which such a server still runs: its finder, on stand-ins (no SkyPilot)."""
    stand_in = [sys.executable, "-c", "import time; time.sleep(60)", "sky.server.server"]
    stray = subprocess.Popen(stand_in, start_new_session=True)  # inherits this run's mark, as SkyPilot's would
    meant = subprocess.Popen(stand_in, start_new_session=True, env=dict(os.environ, **{INTENDED_SKY_SERVER: "1"}))
    try:
        found = {pid for pid, _ in left_sky_servers()}
        assert stray.pid in found and meant.pid not in found
    finally:
        for process in (stray, meant):
            process.kill()
            process.wait(10)
    assert stray.pid not in {pid for pid, _ in left_sky_servers()}


def test_the_preflight_asks_skypilot_whether_the_clouds_credentials_are_set_up(sky_server, tmp_path):
    """SkyPilot's own check, through its server: this private HOME has no AWS credentials, so a launch is refused."""
    endpoint, home = sky_server
    env = {k: v for k, v in os.environ.items() if k != "OUMI_SLURM_CONNECTIONS"}
    env |= {"HOME": str(home), "SKYPILOT_API_SERVER_ENDPOINT": endpoint, "OUMI_JOBS_HOME": str(tmp_path / "oj")}
    config = tmp_path / "job.yaml"
    config.write_text("run: echo hi\n")
    executable = shutil.which("oumi-jobs")
    assert executable, "the oumi-jobs entry point is not installed"
    result = subprocess.run(
        [executable, "submit", str(config), "--cloud", "aws", "--cluster", "c1", "--dry-run", "--json"],
        env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    problems = json.loads(result.stdout)["problems"]
    assert [(p["check"], p["path"]) for p in problems] == [("credentials", "resources.cloud")], problems
    assert "credentials of aws are not set up" in problems[0]["problem"]
    assert "credentials: resources.cloud: credentials of aws are not set up" in result.stderr
