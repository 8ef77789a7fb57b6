"""The REST contract under a fuzzer: Schemathesis, every check, against a real server over TCP with its token.

One ``oumi-jobs server run`` for the module, with a fresh ``OUMI_JOBS_HOME``
and its own working directory.  Every operation of ``/openapi.json`` is
fuzzed (examples, coverage and random data, valid and invalid), then
Schemathesis's state machine follows the schema's ``links``: a submit's
``job_id`` feeds status, logs, cancel and cancellation-status, a listing's
and a cancel's feed theirs.  ``schemathesis.toml`` (repository root) says
which refusals are rules OpenAPI cannot state.

Left out: ``POST /server/stop``.  It ends the server under test, so every
request after it would fail to connect.  tests/test_server.py covers it.

Why no fuzzed submit runs anything harmful: a submit runs the config file
it names, so just before each submit is sent its ``config`` is rewritten
to one of two paths.  Most submits name a path under a directory that does
not exist, so the server refuses them (400) before any job is registered.
The others name this module's own config, which only sleeps for a few
seconds, on the local cloud: their ``cloud``, ``cluster``, ``command``,
``gpus``, ``nodes``, ``after`` and ``cwd`` are dropped, so nothing reaches a
real cluster.  Those submits feed the stateful links.  What the other fields can
still do (an environment variable, a work directory, a name, a local queue's
``parallel``) only changes how that sleep runs, or makes the server refuse it.  The jobs left at the end
are ended by their pids.

The budget is small enough for CI: ``OUMI_JOBS_FUZZ_EXAMPLES`` (default 12)
examples per operation and phase, and as many stateful runs; the seed is
fixed when ``CI=true`` (``OUMI_JOBS_FUZZ_SEED`` sets it anywhere).  Run it
longer with, for example, ``OUMI_JOBS_FUZZ_EXAMPLES=200``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis import Case, GenerationMode
from schemathesis.generation.stateful.state_machine import APIStateMachine

from oumi_jobs.paths import Paths

from .helpers import end_jobs_of, wait_until

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("OUMI_JOBS_FUZZ_EXAMPLES", "12"))
SEED = os.environ.get("OUMI_JOBS_FUZZ_SEED") or ("22" if os.environ.get("CI") == "true" else None)
# The directory every refused submit's config is under: never made.
MISSING = "/nonexistent-oumi-jobs-fuzz"
# Fields of a submit that would take the harmless config off this machine or change what it runs, and those
# that would almost always have it refused, so that no link is followed: `after` (a fuzzed job id names no
# job) and `cwd` (a fuzzed directory does not exist; the config's own folder is used instead).
DROPPED = ("cloud", "cluster", "command", "gpus", "nodes", "after", "cwd")


@dataclass
class FuzzServer:
    pid: int
    base_url: str
    token: str
    paths: Paths
    config: Path
    requests: list[str] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzServer]:
    """A real server process with a home of its own; its jobs and it are ended by pid at the end."""
    root = tmp_path_factory.mktemp("fuzz")
    home, cwd = root / "home", root / "cwd"
    cwd.mkdir()
    config = root / "sleep.yaml"
    config.write_text("run: sleep 3\n")
    paths = Paths(home / "data", home / "state", home / "cache")
    argv = [sys.executable, "-m", "oumi_jobs", "server", "run", "--host", "127.0.0.1", "--port", "0"]
    env = os.environ | {"OUMI_JOBS_HOME": str(home), "OUMI_JOBS_SERVER": "off", "PYTHONPATH": str(REPO)}
    with open(root / "server.out", "wb") as out:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        info = wait_until(lambda: _server_info(paths, process), timeout=60, interval=0.1)
        token = (paths.state_dir / "server" / "token").read_text().strip()
        yield FuzzServer(process.pid, info["address"], token, paths, config)
    finally:
        end_jobs_of(paths)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _server_info(paths: Paths, process: subprocess.Popen[bytes]) -> dict[str, Any] | None:
    assert process.poll() is None, f"the server exited {process.returncode}"
    for info_file in (paths.state_dir / "server").glob("*/server.json"):
        info: dict[str, Any] = json.loads(info_file.read_text())
        if info["pid"] == process.pid:
            try:
                if httpx.get(f"{info['address']}/healthz", timeout=5).status_code == 401:  # up, and guarded
                    return info
            except httpx.HTTPError:
                return None
    return None


@pytest.fixture
def fuzzed_api(fuzz_server: FuzzServer) -> schemathesis.BaseSchema:
    """The served schema, with this repository's Schemathesis settings and the budget above."""
    config = schemathesis.Config.from_path(REPO / "schemathesis.toml")
    if SEED is not None:
        config.update(seed=int(SEED), max_failures=None)
    config.projects.default.update(headers=fuzz_server.auth, request_timeout=60)
    config.projects.default.generation.update(max_examples=EXAMPLES, modes=list(GenerationMode))
    schema = schemathesis.openapi.from_url(f"{fuzz_server.base_url}/openapi.json", headers=fuzz_server.auth,
                                           config=config)  # fmt: skip
    return schema.exclude(path="/server/stop")


schema = schemathesis.pytest.from_fixture("fuzzed_api").exclude(path="/server/stop")


def made_harmless(case: Case, server: FuzzServer) -> None:
    """A submit's config, rewritten as the module docstring says: missing, or the sleep of this module."""
    if case.method != "POST" or case.path != "/api/jobs" or not isinstance(case.body, dict):
        return
    config = case.body.get("config")
    if not isinstance(config, str):
        return
    if case.meta is not None and case.meta.generation.mode is GenerationMode.POSITIVE and len(config) % 2 == 0:
        case.body = {k: v for k, v in case.body.items() if k not in DROPPED} | {"config": str(server.config)}
    else:
        case.body["config"] = f"{MISSING}/{config.lstrip('/')}"[:4096]


@schema.parametrize()
def test_every_operation_keeps_the_contract(case: Case, fuzz_server: FuzzServer) -> None:
    made_harmless(case, fuzz_server)
    fuzz_server.requests.append(f"{case.method} {case.path}")
    case.call_and_validate()


def test_linked_calls_keep_the_contract(fuzzed_api: schemathesis.BaseSchema, fuzz_server: FuzzServer) -> None:
    """Submit, then what its answer leads to (status, logs, cancel, cancellation-status), by the links."""
    machine = fuzzed_api.as_state_machine()

    class Workflow(machine):  # type: ignore[misc,valid-type]
        def before_call(self, case: Case) -> None:
            made_harmless(case, fuzz_server)
            fuzz_server.requests.append(f"{case.method} {case.path}")

    derandomize = SEED is not None
    Workflow.run(settings=hypothesis.settings(max_examples=EXAMPLES, stateful_step_count=6, deadline=None,
                                              derandomize=derandomize, database=None))  # fmt: skip
    assert issubclass(Workflow, APIStateMachine)


def test_the_fuzzer_reached_every_operation(fuzz_server: FuzzServer, capsys: pytest.CaptureFixture[str]) -> None:
    """The run was not empty: every operation was asked, and a submit was accepted (the links were followed)."""
    asked = set(fuzz_server.requests)
    with httpx.Client(base_url=fuzz_server.base_url, headers=fuzz_server.auth, timeout=60) as client:
        operations = {
            f"{method.upper()} {path}"
            for path, item in client.get("/openapi.json").json()["paths"].items()
            for method in item
            if path != "/server/stop"
        }
        served = client.get("/server").json()["requests_served"]
        jobs = client.get("/api/jobs", params={"local_only": True}).json()
    assert operations <= asked, operations - asked
    assert jobs, "no fuzzed submit was accepted: the stateful links were never followed"
    with capsys.disabled():  # the figure, in every run's output
        print(f"\nschemathesis: {len(fuzz_server.requests)} requests, the server served {served}, {len(jobs)} jobs "
              f"submitted (OUMI_JOBS_FUZZ_EXAMPLES={EXAMPLES}, seed {SEED})")  # fmt: skip
