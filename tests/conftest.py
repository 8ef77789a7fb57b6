"""Shared fixtures: a private OUMI_JOBS_HOME per test, the CLI in-process, and
cleanup that ends only the processes the test's own jobs started (by pid).

Every process the tests start inherits ``OUMI_JOBS_TEST_RUN``; a SkyPilot API
server carrying it that outlives a test (SkyPilot auto-starts one in HOME
when a SkyPilot cloud is asked with no server running) fails that test, and
is ended, so no run leaves one behind on a user's machine and port.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from oumi_jobs.paths import Paths

from .helpers import TEST_RUN_MARK, TINY_BUILD, Cli, end_jobs_of, end_servers_of, left_sky_servers, slurm_unready

HERE = Path(__file__).resolve().parent

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("SKYPILOT_DISABLE_USAGE_COLLECTION", "1")
# No test reaches, or starts, a SkyPilot API server of the user's: SkyPilot is pointed at a closed loopback
# port that it does not take for "local" (only :46580 is), so it never auto-starts one in HOME.  Set for the
# whole run, not per test: a cloud call a test gave up on (its time limit passed) runs on in a daemon thread
# and may read this after the test ended (tests/test_skypilot.py gives its own server's endpoint).
os.environ["SKYPILOT_API_SERVER_ENDPOINT"] = "http://127.0.0.1:1"
os.environ[TEST_RUN_MARK] = f"{os.getpid()}-{secrets.token_hex(4)}"  # every process the tests start has it
# Cloud calls run in this process (and in the processes tests start) unless a test turns the warm server on
# (the `server_on` fixture): the in-process clouds of tests/fake_clouds.py exist only here.
os.environ["OUMI_JOBS_SERVER"] = "off"


@pytest.fixture(autouse=True)
def no_sky_server_left_behind() -> Iterator[None]:
    yield
    left = left_sky_servers()
    for pid, _ in left:
        try:  # SkyPilot starts its server in a session of its own: the group is the server and its workers
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if left:
        where = "; ".join(
            f"pid {pid} HOME={env.get(b'HOME', b'?').decode()} endpoint="
            f"{env.get(b'SKYPILOT_API_SERVER_ENDPOINT', b'(default)').decode()}"
            for pid, env in left
        )
        pytest.fail(f"a SkyPilot API server was started during this test and left running (now ended): {where}")


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Paths]:
    home = tmp_path / "home"
    monkeypatch.setenv("OUMI_JOBS_HOME", str(home))
    monkeypatch.delenv("NO_COLOR", raising=False)
    resolved = Paths.from_env()
    yield resolved
    end_jobs_of(resolved)
    end_servers_of(resolved)


@pytest.fixture
def server_on(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> Iterator[Paths]:
    """Cloud calls go to this test's own warm server (started on the first one), as for a user."""
    from oumi_jobs.cloud import adapter

    # Taken while the server is still off: a command of an earlier test leaves its forwarding adapter pending
    # (made by the first cloud call), and made now, with the server on, it would forward to that test's home.
    in_process = adapter.current()
    monkeypatch.setenv("OUMI_JOBS_SERVER", "on")
    yield paths
    adapter.use(in_process)  # the in-process CLI put a forwarding adapter in place


@pytest.fixture
def cli(paths: Paths) -> Cli:
    return Cli()


@pytest.fixture
def job_config(tmp_path: Path) -> Callable[..., Path]:
    """Write an Oumi job config running ``run`` (a bash script)."""
    counter = iter(range(10_000))

    def write(
        run: str, *, setup: str | None = None, envs: dict | None = None, name: str | None = None, **extra
    ) -> Path:
        path = tmp_path / (name or f"job{next(counter)}.yaml")
        lines = [f"run: |\n{textwrap.indent(textwrap.dedent(run).strip(), '  ')}"]
        if setup:
            lines.append(f"setup: |\n{textwrap.indent(textwrap.dedent(setup).strip(), '  ')}")
        if envs:
            lines.append("envs:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in envs.items()))
        for key, value in extra.items():
            lines.append(f"{key}: {json.dumps(value)}")
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


@pytest.fixture
def file_cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """tests/file_cloud.py: a cloud whose state is a JSON file every process sees (the launching process,
    a server), registered here and, through OUMI_EXTRA_DEPS_FILE, in every process the test starts."""
    from . import fake_clouds  # noqa: F401  (imports oumi.launcher and registers oj-file here)
    from . import file_cloud as cloud

    deps = tmp_path / "oumi-deps.txt"
    deps.write_text(f"{Path(__file__).resolve().parent / 'file_cloud.py'}\n")
    monkeypatch.setenv("OUMI_EXTRA_DEPS_FILE", str(deps))  # how the launching process loads it
    state = tmp_path / "cloud.json"
    monkeypatch.setenv("OJ_FILE_CLOUD", str(state))
    cloud.init(str(state))

    def read() -> dict:
        with cloud.state() as data:  # under its lock: a launching process may be rewriting the file
            return data

    def configure(**settings) -> None:
        cloud.init(str(state), **settings)

    cloud.read = read
    cloud.configure = configure  # anew: no clusters, no jobs
    return cloud


# The controllable clouds of tests/fake_clouds.py, registered with the real oumi.launcher (imported once per
# module that asks for them); `clouds` starts each test with no behaviour set.
@pytest.fixture(scope="module")
def fake():
    from . import fake_clouds  # imports oumi.launcher once for this module

    yield fake_clouds
    fake_clouds.BEHAVIOUR.clear()


@pytest.fixture
def clouds(fake):
    fake.BEHAVIOUR.clear()
    return fake


# The real Slurm cluster on loopback (`sudo ../shared/slurm/slurm-loopback.sh`), reached as this user@host.
SLURM_CLUSTER = "root@localhost"


@pytest.fixture(scope="module")
def slurm() -> str:
    """The loopback Slurm cluster's name; the test skips without one, and fails under CI=true."""
    problem = slurm_unready(SLURM_CLUSTER)
    if problem:
        message = f"no Slurm cluster on loopback ({problem}); start one with: sudo ../shared/slurm/slurm-loopback.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return SLURM_CLUSTER


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the tiny model (``tiny/``) and the dataset (``data.jsonl``) of real `oumi train` tests
    (tests/helpers.py ``train_config``), made once per session."""
    root = tmp_path_factory.mktemp("tiny-oumi")
    built = subprocess.run(
        [sys.executable, "-c", TINY_BUILD, str(root)], capture_output=True, text=True, timeout=240, check=False
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return root
