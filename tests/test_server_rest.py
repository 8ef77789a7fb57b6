"""The REST API against a real server process: its unix socket and its TCP port, with httpx.

The server is started as a user would run it (the ``rest_server`` fixture:
one process per test, its own ``OUMI_JOBS_HOME``), jobs are real process
trees, and another user is a real uid (``setpriv`` to 65534, as root; those
tests skip elsewhere and fail under ``CI=true``).  The OpenAPI schema is
pinned like the JSON contract: the documents it describes must be the ones
``oumi_jobs.render`` builds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from oumi_jobs import bounds
from oumi_jobs.client import Client
from oumi_jobs.errors import AmbiguousJobError, CloudTimeoutError, JobNotFoundError, UsageError
from oumi_jobs.paths import Paths
from oumi_jobs.render.base import job_document
from oumi_jobs.render.cancel import cancellation_document
from oumi_jobs.render.notifications import notification_document
from oumi_jobs.server.activity import Activity, ServerSettings
from oumi_jobs.server.app import MAX_BODY_BYTES, create_app
from oumi_jobs.server.location import ServerFiles, read_or_create_token
from oumi_jobs.store.notifications import NewNotification
from oumi_jobs.store.registry import Registry
from oumi_jobs.views import view_of

from .helpers import add_record, make_cancellation, make_notification, make_record, wait_until

REPO = Path(__file__).resolve().parents[1]
NOBODY = 65534


@dataclass
class Server:
    pid: int
    socket: str
    base_url: str
    token: str
    log: Path

    def unix(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(transport=httpx.HTTPTransport(uds=self.socket), base_url="http://oumi-jobs",
                            timeout=timeout)  # fmt: skip

    def tcp(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60)


def _healthy(socket_path: str) -> bool:
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=socket_path), base_url="http://x", timeout=5) as client:
            return client.get("/healthz").json().get("ok") is True
    except (httpx.HTTPError, ValueError):
        return False


@pytest.fixture
def rest_server(paths: Paths, tmp_path: Path) -> Iterator[Server]:
    """A real server process for ``paths`` (unix socket and loopback TCP), ended by its pid at the end."""
    log = tmp_path / "server.out"
    # `server run`: the command a service manager runs; it becomes the server (same pid).
    argv = [sys.executable, "-m", "oumi_jobs", "server", "run", "--host", "127.0.0.1", "--port", "0"]
    env = os.environ | {"OUMI_JOBS_HOME": os.environ["OUMI_JOBS_HOME"], "OUMI_JOBS_SERVER": "off",
                        "PYTHONPATH": str(REPO)}  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    try:

        def ready() -> dict | None:
            assert process.poll() is None, f"the server exited {process.returncode}: {log.read_text()}"
            for info_file in (paths.state_dir / "server").glob("*/server.json"):
                info = json.loads(info_file.read_text())
                if info["pid"] == process.pid and _healthy(info["socket"]):
                    return info
            return None

        info: dict = wait_until(ready, timeout=60, interval=0.1)  # type: ignore[assignment]
        token = (paths.state_dir / "server" / "token").read_text().strip()
        yield Server(process.pid, info["socket"], info["address"], token, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- who may ask ---------------------------------------------------------------------------------------------------
def test_tcp_answers_only_the_token_of_this_home(rest_server, tmp_path):
    other_home = Paths(tmp_path / "other" / "data", tmp_path / "other" / "state", tmp_path / "other" / "cache")
    others_token = read_or_create_token(ServerFiles.for_env(other_home))
    assert others_token != rest_server.token
    for token in (None, "wrong", others_token, rest_server.token[:-1]):
        with rest_server.tcp(token) as client:
            for path in ("/api/jobs", "/openapi.json", "/metrics", "/docs"):
                answer = client.get(path)
                assert answer.status_code == 401, (token, path, answer.text)
                assert answer.json()["exit_code"] == 2
    with rest_server.tcp(rest_server.token) as client:
        assert client.get("/api/jobs").json() == []
        docs = client.get("/docs")
        assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
        assert "/api/jobs" in client.get("/openapi.json").json()["paths"]
    with rest_server.unix() as client:  # the socket checks the peer's uid instead: no token
        assert client.get("/api/jobs").json() == []
    with Client.tcp(rest_server.base_url, rest_server.token) as client:
        assert client.jobs(local_only=True) == []


@pytest.fixture
def root() -> None:
    if os.geteuid() != 0:
        why = "needs root to connect as another user (setpriv to uid 65534)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why} (CI=true: these tests must run)")
        pytest.skip(why)


# What uid 65534 runs: a raw connection (what the server says before any request), then an HTTP request.
AS_ANOTHER_USER = """
import json, socket, sys, httpx
found = {}
try:
    with socket.socket(socket.AF_UNIX) as raw:
        raw.settimeout(10)
        raw.connect(sys.argv[1])
        data = b""
        while chunk := raw.recv(65536):
            data += chunk
    found["raw"] = data.decode(errors="replace")
except OSError as exc:
    found["raw_errno"] = exc.errno
try:
    with httpx.Client(transport=httpx.HTTPTransport(uds=sys.argv[1]), base_url="http://x", timeout=10) as client:
        found["status"] = client.get("/api/jobs").status_code
except httpx.HTTPError as exc:
    found["http_error"] = type(exc).__name__
print(json.dumps(found))
"""


def as_another_user(socket_path: str) -> dict:
    command = [
        "setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups",
        # The interpreter may sit under a folder only root may enter (/root/.pyenv), and so may the socket's
        # folder: reading and searching are granted; connecting to the socket needs write, which is not.
        "--inh-caps", "+dac_read_search", "--ambient-caps", "+dac_read_search",
        sys.executable, "-c", AS_ANOTHER_USER, socket_path,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_another_user_is_refused_on_the_socket(root, rest_server):
    socket_path = rest_server.socket
    assert os.stat(socket_path).st_mode & 0o777 == 0o600
    refused = as_another_user(socket_path)
    assert refused["raw_errno"] == 13, refused  # EACCES: the socket is the server user's alone
    assert "status" not in refused
    os.chmod(socket_path, 0o666)  # as if the mode were wider: the peer's uid is still checked
    try:
        answered = as_another_user(socket_path)
    finally:
        os.chmod(socket_path, 0o600)
    assert answered["raw"].startswith("HTTP/1.1 403 "), answered
    assert json.loads(answered["raw"].split("\r\n\r\n", 1)[1])["error"] == "this server answers only its own user"
    assert answered.get("status", 403) == 403, answered  # never served: 403, or the connection already closed
    with rest_server.unix() as client:
        assert client.get("/api/jobs").status_code == 200  # its own user still is


# -- a job over HTTP ---------------------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _tree_job(job_config, pids: Path) -> Path:
    """A job whose shell starts a child, and a grandchild under another shell; each writes its pid."""
    return job_config(
        f"""
        sleep 300 & echo $! >> {pids}
        bash -c 'sleep 300 & echo $! >> {pids}; wait' & echo $! >> {pids}
        echo $$ >> {pids}
        wait
        """
    )


def test_a_local_job_submitted_watched_and_cancelled_over_http(rest_server, cli, job_config, tmp_path):
    pids = tmp_path / "pids"
    config = _tree_job(job_config, pids)
    with rest_server.unix() as client:
        answer = client.post("/api/jobs", json={"config": config.name, "cwd": str(tmp_path), "name": "tree"})
        assert answer.status_code == 201, answer.text
        submitted = answer.json()
        job_id = submitted["job_id"]
        assert answer.headers["location"] == f"/api/jobs/{job_id}"
        assert set(submitted) == set(job_document(view_of(make_record()))) | {"warnings"}
        assert (job_id, submitted["config_path"], submitted["warnings"]) == ("tree", str(config), [])

        wait_until(lambda: client.get(f"/api/jobs/{job_id}").json()["state"] == "running", 60)
        wait_until(lambda: pids.exists() and len(pids.read_text().split()) == 4, 60)
        tree = [int(pid) for pid in pids.read_text().split()]
        assert all(_alive(pid) for pid in tree)

        status = client.get(f"/api/jobs/{job_id[:3]}").json()  # a unique prefix
        by_cli = cli.json("status", job_id)
        assert {k: v for k, v in status.items() if k != "as_of"} == {k: v for k, v in by_cli.items() if k != "as_of"}
        assert [d["job_id"] for d in client.get("/api/jobs", params={"state": "running"}).json()] == [job_id]
        assert client.get("/api/jobs", params={"state": ["succeeded", "failed"]}).json() == []
        assert client.get("/api/jobs", params={"limit": 0}).json() == []

        answer = client.post(f"/api/jobs/{job_id}/cancel", json={"reason": "over http", "timeout_s": 10})
        assert answer.status_code == 200, answer.text
        cancelled = answer.json()
        assert answer.headers["x-oumi-jobs-exit-code"] == "0"
        assert (cancelled["status"], cancelled["reason"], cancelled["survivors"]) == ("completed", "over http", [])
        assert set(cancelled) == set(cancellation_document(make_cancellation()))
        assert not any(_alive(pid) for pid in tree), [pid for pid in tree if _alive(pid)]
        assert client.get(f"/api/jobs/{job_id}").json()["state"] == "cancelled"

        latest = client.get(f"/api/jobs/{job_id}/cancellation-status").json()
        assert latest["cancellation_id"] == cancelled["cancellation_id"]
        assert [step["name"] for step in latest["steps"]] == [step["name"] for step in cancelled["steps"]]
        history = client.get("/api/cancellations", params={"job_id": job_id}).json()
        assert [c["cancellation_id"] for c in history] == [cancelled["cancellation_id"]]
        assert client.get("/api/cancellations", params={"status": "failed"}).json() == []

        again = client.post(f"/api/jobs/{job_id}/cancel")  # no body: the defaults
        assert (again.status_code, again.json()["status"], again.headers["x-oumi-jobs-exit-code"]) == (
            200, "not_needed", "4",
        )  # fmt: skip

        events = client.get(f"/api/jobs/{job_id}/events").json()
        assert events == cli.json("events", job_id)
        assert [e["kind"] for e in events][:2] == ["submitted", "started"]
        first_cancel = next(e for e in events if e["kind"] == "cancel")
        assert (first_cancel["cancellation_id"], first_cancel["status"]) == (cancelled["cancellation_id"], "completed")


def test_a_cancel_that_does_not_wait_answers_202_and_finishes(rest_server, job_config, tmp_path):
    pids = tmp_path / "pids"
    config = _tree_job(job_config, pids)
    with Client.unix(rest_server.socket) as client:  # the library's client: the same documents
        job_id = client.submit(str(config))["job_id"]
        wait_until(
            lambda: client.job(job_id)["state"] == "running" and pids.exists() and len(pids.read_text().split()) == 4
        )
        tree = [int(pid) for pid in pids.read_text().split()]
    with rest_server.unix() as http:
        answer = http.post(f"/api/jobs/{job_id}/cancel", json={"wait": False, "signal": "INT", "timeout_s": 5})
        assert answer.status_code == 202, answer.text
        assert answer.json()["signal"] == "SIGINT"
    with Client.unix(rest_server.socket) as client:
        done = wait_until(lambda: (c := client.cancellation_status(job_id))["status"] == "completed" and c, 60)
        assert done["job_id"] == job_id  # type: ignore[index]
        assert [c["job_id"] for c in client.cancellations(limit=5)] == [job_id]
        assert client.job(job_id)["state"] == "cancelled"
    assert not any(_alive(pid) for pid in tree)


def test_logs_are_streamed_and_followed_to_the_end(rest_server, job_config, tmp_path):
    go = tmp_path / "go"
    config = job_config(
        f"""
        echo "line 1"; echo "err 1" >&2
        while [ ! -e {go} ]; do sleep 0.05; done
        for i in 2 3 4 5; do echo "line $i"; echo "err $i" >&2; sleep 0.2; done
        printf 'caf\\xc3\\xa9 no newline'
        """
    )
    with rest_server.unix() as client:
        job_id = client.post("/api/jobs", json={"config": str(config)}).json()["job_id"]
        started = time.monotonic()
        chunks: list[str] = []
        with client.stream("GET", f"/api/jobs/{job_id}/logs", params={"follow": "true"}) as answer:
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
            assert answer.headers["x-oumi-jobs-job-id"] == job_id
            for chunk in answer.iter_text():
                chunks.append(chunk)
                go.touch()  # the rest is written once the first line came: streamed, not read at the end
        assert time.monotonic() - started < 60
        assert chunks[0] == "line 1\n" and len(chunks) > 1
        assert "".join(chunks) == "".join(f"line {i}\n" for i in range(1, 6)) + "café no newline"
        assert client.get(f"/api/jobs/{job_id}").json()["done"] is True
        tail = client.get(f"/api/jobs/{job_id}/logs", params={"tail": 2, "stream": "stderr"})
        assert tail.text == "err 4\nerr 5\n"
    with Client.unix(rest_server.socket) as library:
        assert list(library.logs(job_id, stderr=True)) == [f"err {i}\n" for i in range(1, 6)]


def test_a_job_is_retried_over_http_and_each_attempt_has_its_log(rest_server, job_config, tmp_path):
    count = tmp_path / "count"
    config = job_config(f'n=$(( $(cat {count} 2>/dev/null || echo 0) + 1 )); echo $n > {count}; echo "run $n"; exit 3')
    with rest_server.unix() as client:
        job_id = client.post("/api/jobs", json={"config": str(config)}).json()["job_id"]
        wait_until(lambda: client.get(f"/api/jobs/{job_id}").json()["done"], 30)
        retried = client.post(f"/api/jobs/{job_id}/retry")
        assert retried.status_code == 202 and retried.json()["attempt"] == 2
        done = wait_until(lambda: (d := client.get(f"/api/jobs/{job_id}").json())["done"] and d, 30)
        assert [a["state"] for a in done["attempts"]] == ["failed", "failed"]
        assert client.get(f"/api/jobs/{job_id}/logs", params={"attempt": 1}).text == "run 1\n"
        assert client.get(f"/api/jobs/{job_id}/logs").text == "run 2\n"
        assert client.get(f"/api/jobs/{job_id}/logs", params={"attempt": 3}).status_code == 404
        running = client.post("/api/jobs", json={"config": str(job_config("sleep 30"))}).json()["job_id"]
        refused = client.post(f"/api/jobs/{running}/retry")
        assert refused.status_code == 409 and refused.json()["exit_code"] == 4
        assert client.post(f"/api/jobs/{running}/cancel").status_code == 200


def test_a_followed_log_of_a_client_gone_away_stops_being_served(rest_server, job_config):
    """Closing a followed stream ends the server's request, so the server can become idle again."""
    config = job_config("sleep 300")
    with rest_server.unix() as client:
        job_id = client.post("/api/jobs", json={"config": str(config)}).json()["job_id"]
        with client.stream("GET", f"/api/jobs/{job_id}/logs", params={"follow": "true"}) as answer:
            assert answer.status_code == 200
            in_flight = client.get("/server").json()["requests_in_flight"]
            assert in_flight == 1  # the followed log
        assert wait_until(lambda: client.get("/server").json()["requests_in_flight"] == 0, 20)
        client.post(f"/api/jobs/{job_id}/cancel", json={"force": True})


# -- a cloud, asked by the server ----------------------------------------------------------------------------------
@pytest.fixture
def file_cloud_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tests/file_cloud.py's cloud ``oj-file`` for a server started after this fixture: one cluster, two jobs."""
    deps = tmp_path / "oumi-deps.txt"
    deps.write_text(f"{REPO / 'tests' / 'file_cloud.py'}\n")
    monkeypatch.setenv("OUMI_EXTRA_DEPS_FILE", str(deps))  # how oumi in the server process loads it
    state = tmp_path / "cloud.json"
    monkeypatch.setenv("OJ_FILE_CLOUD", str(state))
    jobs = [{"id": "7", "name": "ours", "status": "RUNNING"}, {"id": "8", "name": "theirs", "status": "COMPLETED"}]
    state.write_text(json.dumps({"up_delay_s": 0.0, "up_error": None, "next_id": 9, "clusters": {"c1": jobs},
                                 "cancelled": [], "run_s": None, "final_status": "COMPLETED",
                                 "cancel_error": None}))  # fmt: skip
    return state


def test_cloud_jobs_through_the_server(file_cloud_state, rest_server, paths):  # the cloud first: the server sees it
    job_id = add_record(paths, make_record("job-cloudy", cloud="oj-file", cluster="c1", launcher_job_id="7"))
    slow = {"cloud_timeout_s": 120}  # the server may still be importing oumi.launcher (10-15 s, more when busy)
    with rest_server.unix(timeout=180) as client:
        ours = client.get(f"/api/jobs/{job_id}", params=slow).json()
        assert (ours["state"], ours["launcher_job_id"], ours["external"]) == ("running", "7", False), ours
        theirs = client.get("/api/jobs/8", params={"cloud": "oj-file", "cluster": "c1"} | slow)
        assert theirs.status_code == 200, theirs.text
        assert (theirs.json()["job_id"], theirs.json()["state"], theirs.json()["external"]) == (None, "succeeded", True)
        by_identity = client.get("/api/jobs/7", params={"cloud": "oj-file", "cluster": "c1"} | slow).json()
        assert by_identity["job_id"] == job_id  # a registered job found by its cloud identity is ours
        missing = client.get("/api/jobs/99", params={"cloud": "oj-file", "cluster": "c1"} | slow)
        _error(missing, 404, exit_code=3, says="99")
        listed = client.get("/api/jobs", params={"cloud": "oj-file"} | slow)
        assert [(d["job_id"], d["launcher_job_id"]) for d in listed.json()] == [(job_id, "7"), (None, "8")]
        assert "x-oumi-jobs-unreachable" not in listed.headers
        assert client.get(f"/api/jobs/{job_id}/logs").text == "a line of the job's log\n"  # the cluster's stream
        _error(client.get(f"/api/jobs/{job_id}/logs", params={"stream": "stderr"}), 400, exit_code=2, says="stderr")
        cancelled = client.post(f"/api/jobs/{job_id}/cancel", json={"timeout_s": 30})
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "completed", cancelled.text
    assert json.loads(file_cloud_state.read_text())["cancelled"] == ["7"]


def test_all_clouds_answers_within_its_cloud_timeout_from_the_first_request(rest_server):
    """A server still loading the launcher (10-20 s) is asked every cloud: it answers within the request's
    cloud_timeout_s, the import included, or says it could not (504)."""
    with rest_server.tcp(rest_server.token) as client:
        started = time.monotonic()
        answer = client.get("/api/jobs", params={"all_clouds": "true", "cloud_timeout_s": 1})
        elapsed = time.monotonic() - started
        assert answer.status_code in (200, 504), answer.text
        if answer.status_code == 504:
            body = _error(answer, 504, exit_code=5, says="within 1 s")
            assert body["type"] == "CloudTimeoutError"
        assert client.get("/api/jobs", params={"local_only": "true"}).json() == []  # the server goes on answering
    assert elapsed < 12, elapsed  # 1 s, and the registry's grace: far below the launcher's import


# -- error answers -------------------------------------------------------------------------------------------------
def _error(answer: httpx.Response, status: int, *, exit_code: int, says: str) -> dict:
    assert answer.status_code == status, (answer.status_code, answer.text)
    body = answer.json()
    assert body["exit_code"] == exit_code and says in body["error"], body
    return body


def test_error_answers(rest_server, paths, tmp_path):
    add_record(paths, make_record("job-twin-a"))
    add_record(paths, make_record("job-twin-b"))
    with rest_server.unix() as client:
        body = _error(client.get("/api/jobs/job-none"), 404, exit_code=3, says="job-none")
        assert body["type"] == "JobNotFoundError"
        _error(client.get("/api/jobs/job-none/logs"), 404, exit_code=3, says="job-none")
        for path in ("/api/jobs/job-twin", "/api/jobs/job-twin/cancellation-status", "/api/jobs/job-twin/logs"):
            body = _error(client.get(path), 409, exit_code=3, says="ambiguous")
            assert body["candidates"] == ["job-twin-a", "job-twin-b"]
        _error(client.post("/api/jobs/job-twin/cancel"), 409, exit_code=3, says="ambiguous")

        _error(client.get("/api/jobs", params={"limit": -1}), 422, exit_code=2, says="limit")
        _error(client.get("/api/jobs", params={"state": "sleepy"}), 422, exit_code=2, says="state")  # the schema says
        _error(client.get("/api/jobs/job-twin-a/logs", params={"stream": "both"}), 422, exit_code=2, says="stream")
        for bad, field in (({"parallel": 0}, "parallel"), ({"bogus": 1}, "bogus"), ({"nodes": "two"}, "nodes")):
            _error(client.post("/api/jobs", json={"config": "/x.yaml"} | bad), 422, exit_code=2, says=field)
        _error(client.post("/api/jobs", json={}), 422, exit_code=2, says="config")
        _error(client.get("/api/nothing-here"), 404, exit_code=2, says="Not Found")  # the same body as any error
        not_allowed = client.delete("/api/jobs")
        _error(not_allowed, 405, exit_code=2, says="Method Not Allowed")
        assert not_allowed.headers["allow"] == "GET, POST"  # every route of the path, not the first one's
        # FastAPI's routes serve only the methods declared (no implicit HEAD); OPTIONS is no CORS preflight.
        for method, path, allow in (("OPTIONS", "/api/jobs/job-twin-a/cancel", "POST"),
                                    ("HEAD", "/api/jobs/job-twin-a", "GET"), ("PUT", "/metrics", "GET")):  # fmt: skip
            answer = client.request(method, path)
            assert (answer.status_code, answer.headers["allow"]) == (405, allow), (method, path)
        cancel = client.post("/api/jobs/job-twin-a/cancel", json={"timeout_s": "soon"})
        _error(cancel, 422, exit_code=2, says="timeout_s")

        config = tmp_path / "job.yaml"
        config.write_text("run: echo hi\n")
        _error(client.post("/api/jobs", json={"config": "job.yaml"}), 400, exit_code=2, says="give cwd")
        _error(client.post("/api/jobs", json={"config": "job.yaml", "cwd": "tmp"}), 400, exit_code=2, says="absolute")
        gone = str(tmp_path / "gone")
        _error(client.post("/api/jobs", json={"config": "job.yaml", "cwd": gone}), 400, exit_code=2, says=gone)
        _error(client.post("/api/jobs", json={"config": "/a\0b.yaml"}), 400, exit_code=2, says="NUL")
        _error(client.post("/api/jobs", json={"config": "job.yaml", "cwd": "/\0"}), 400, exit_code=2, says="cwd")
        missing = str(tmp_path / "missing.yaml")
        _error(client.post("/api/jobs", json={"config": missing}), 400, exit_code=2, says="missing.yaml")
        _error(client.get("/api/jobs/4242", params={"cloud": "slurm"}), 400, exit_code=2, says="cluster")

        too_big = b'{"config": "' + b"x" * MAX_BODY_BYTES + b'"}'
        headers = {"content-type": "application/json"}
        _error(client.post("/api/jobs", content=too_big, headers=headers), 413, exit_code=2, says="bytes")
        chunked = client.post("/api/jobs", content=iter([too_big[:1000], too_big[1000:]]), headers=headers)
        _error(chunked, 413, exit_code=2, says="bytes")

        # Nothing was submitted by any of them.
        assert sorted(d["job_id"] for d in client.get("/api/jobs").json()) == ["job-twin-a", "job-twin-b"]
    with Client.unix(rest_server.socket) as library:  # the same answers, raised as the library's exceptions
        with pytest.raises(AmbiguousJobError) as ambiguous:
            library.job("job-twin")
        assert ambiguous.value.candidates == ["job-twin-a", "job-twin-b"]
        with pytest.raises(JobNotFoundError):
            library.cancel("job-none")
        with pytest.raises(UsageError):
            library.submit("job.yaml", cwd="relative")


def test_metrics_are_the_prometheus_text(rest_server, paths):
    add_record(
        paths, make_record("job-lost", supervisor_pid=999_999_999, supervisor_start_time=1.0, boot_id="another-boot")
    )
    with rest_server.unix() as client:
        answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    lines = answer.text.splitlines()
    assert "# TYPE oumi_jobs_jobs gauge" in lines
    assert 'oumi_jobs_jobs{state="lost"} 1.0' in lines and 'oumi_jobs_jobs{state="running"} 0.0' in lines


def test_notifications_are_listed_newest_first_with_urls_redacted(rest_server, paths):
    job_id = add_record(paths, make_record("job-noted"))
    with Registry.open(paths) as registry:
        for event, at in (("started", "2026-01-01T10:00:00.000+00:00"), ("failed", "2026-01-01T10:05:00.000+00:00")):
            new = NewNotification("https://bob:pw@example.org/hook", "https://bob:****@example.org/hook")
            registry.add_notifications(job_id, 1, event, [new], at, {})
    with rest_server.unix() as client:
        listed = client.get("/api/notifications", params={"job_id": "job-no"}).json()
        pending = client.get("/api/notifications", params={"status": "pending", "limit": 1}).json()
        sent = client.get("/api/notifications", params={"status": "sent"}).json()
        bad, unknown = (
            client.get("/api/notifications", params={"status": "lost"}),
            client.get("/api/notifications", params={"job_id": "nope"}),
        )
    assert [(n["event"], n["url"], n["status"]) for n in listed] == [
        ("failed", "https://bob:****@example.org/hook", "pending"),
        ("started", "https://bob:****@example.org/hook", "pending"),
    ]
    assert [n["event"] for n in pending] == ["failed"] and sent == []
    assert (bad.status_code, unknown.status_code) == (422, 404)
    with Client.unix(rest_server.socket) as api_client:
        assert api_client.notifications(job_id=job_id) == listed


def test_concurrent_clients_are_all_answered(rest_server, paths):
    job_id = add_record(paths, make_record("job-busy"))
    answers: list[int] = []

    def ask() -> None:
        with rest_server.unix() as client:
            for _ in range(10):
                answers.append(client.get(f"/api/jobs/{job_id}").status_code)

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert answers == [200] * 200


# -- the OpenAPI contract -----------------------------------------------------------------------------------------
REST_OPERATIONS = {
    ("/api/jobs", "get"): ({"cloud", "cluster", "state", "since", "limit", "local_only", "all_clouds",
                            "cloud_timeout_s"}, {"200", "400", "401", "422", "503", "504"}),
    ("/api/jobs", "post"): (set(), {"201", "400", "401", "404", "409", "413", "422", "503"}),
    ("/api/jobs/{job}", "get"): ({"job", "cloud", "cluster", "cloud_timeout_s"},
                                 {"200", "400", "401", "404", "409", "422", "503", "504"}),
    ("/api/jobs/{job}/logs", "get"): ({"job", "stream", "tail", "follow", "attempt"},
                                      {"200", "400", "401", "404", "409", "422", "503"}),
    ("/api/jobs/{job}/cancel", "post"): ({"job"}, {"200", "202", "400", "401", "404", "409", "413", "422", "503"}),
    ("/api/jobs/{job}/cancellation-status", "get"): ({"job"}, {"200", "401", "404", "409", "422"}),
    ("/api/cancellations", "get"): ({"limit", "offset", "job_id", "status"}, {"200", "400", "401", "409", "422"}),
    ("/api/jobs/{job}/events", "get"): ({"job"}, {"200", "401", "404", "409", "422"}),
    ("/api/plot", "get"): ({"job", "metric"}, {"200", "400", "401", "404", "409", "422"}),
    ("/api/ui/login-codes", "post"): (set(), {"201", "401"}),
    ("/api/notifications", "get"): ({"limit", "offset", "job_id", "status"}, {"200", "400", "401", "404", "409", "422"}),
    ("/api/jobs/{job}/retry", "post"): ({"job"}, {"202", "401", "404", "409", "422", "503"}),
    ("/metrics", "get"): (set(), {"200", "401"}),
    ("/api/sweeps", "get"): (set(), {"200", "401", "409"}),
    ("/api/sweeps", "post"): (set(), {"201", "400", "401", "404", "409", "413", "422", "503"}),
    ("/api/sweeps/{sweep}", "get"): ({"sweep"}, {"200", "400", "401", "404", "409", "422", "503", "504"}),
    ("/api/sweeps/{sweep}/cancel", "post"): ({"sweep"}, {"200", "400", "401", "404", "409", "413", "422", "503"}),
}  # fmt: skip
SUBMIT_FIELDS = {"config", "cwd", "cloud", "cluster", "name", "command", "env", "workdir", "after", "parallel",
                 "gpus", "nodes", "retries", "retry_on", "retry_delay", "stall_after", "max_duration", "max_cost",
                 "nan_guard", "guard_action", "notify"}  # fmt: skip
CANCEL_FIELDS = {"reason", "force", "signal", "timeout_s", "cascade", "wait", "cloud_timeout_s"}
ERROR_FIELDS = {"error", "exit_code", "type", "fields", "candidates", "detail"}


@pytest.fixture
def openapi(tmp_path) -> dict:
    paths = Paths(tmp_path / "data", tmp_path / "state", tmp_path / "cache")
    settings = ServerSettings("test", "unix", "unix", 0, None, time.time())
    guard = create_app(paths, settings, Activity(), warm=threading.Event(), shutdown=lambda drain: None)
    return guard.app.openapi()  # type: ignore[attr-defined]


def _ref(schema: dict) -> str:
    """The component a response or body names (through a list, or an optional body)."""
    if "items" in schema:
        return _ref(schema["items"])
    if "anyOf" in schema:
        return next(_ref(s) for s in schema["anyOf"] if s.get("type") != "null")
    return schema["$ref"].rsplit("/", 1)[1]


def test_the_openapi_schema_is_pinned(openapi):
    served = {(path, method) for path, item in openapi["paths"].items() for method in item
              if path.startswith("/api/") or path == "/metrics"}  # fmt: skip
    assert served == set(REST_OPERATIONS)
    operation_ids = []
    for (path, method), (parameters, statuses) in REST_OPERATIONS.items():
        operation = openapi["paths"][path][method]
        assert {p["name"] for p in operation.get("parameters", [])} == parameters, (path, method)
        assert set(operation["responses"]) == statuses, (path, method)
        assert operation["summary"] and operation["description"] and operation["tags"], (path, method)
        operation_ids.append(operation["operationId"])
        for status, response in operation["responses"].items():
            if status >= "400":
                assert _ref(response["content"]["application/json"]["schema"]) == "ErrorDocument", (path, status)
    assert len(set(operation_ids)) == len(operation_ids)

    def documented(path: str, method: str, status: str = "200") -> str:
        return _ref(openapi["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"])

    assert documented("/api/jobs", "get") == documented("/api/jobs/{job}", "get") == "JobDocument"
    assert documented("/api/jobs", "post", "201") == "SubmitDocument"
    assert documented("/api/jobs/{job}/cancel", "post") == documented("/api/jobs/{job}/cancel", "post", "202")
    assert documented("/api/cancellations", "get") == "CancellationDocument"
    assert documented("/api/jobs/{job}/cancellation-status", "get") == "CancellationDocument"
    assert documented("/api/jobs/{job}/events", "get") == "EventDocument"
    assert documented("/api/plot", "get") == "PlotDocument"
    assert documented("/api/ui/login-codes", "post", "201") == "LoginCodeDocument"
    assert documented("/api/notifications", "get") == "NotificationDocument"
    assert documented("/api/jobs/{job}/retry", "post", "202") == "JobDocument"
    assert "text/plain" in openapi["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert "text/plain" in openapi["paths"]["/api/jobs/{job}/logs"]["get"]["responses"]["200"]["content"]

    def body(path: str) -> str:
        return _ref(openapi["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"])

    assert (body("/api/jobs"), body("/api/jobs/{job}/cancel")) == ("SubmitBody", "CancelBody")
    assert (body("/api/sweeps"), body("/api/sweeps/{sweep}/cancel")) == ("SweepBody", "CancelBody")
    assert documented("/api/sweeps", "post", "201") == documented("/api/sweeps/{sweep}", "get") == "SweepDocument"
    assert documented("/api/sweeps", "get") == "SweepSummaryDocument"
    assert documented("/api/sweeps/{sweep}/cancel", "post") == "SweepCancelDocument"
    assert openapi["paths"]["/api/jobs"]["post"]["requestBody"]["required"] is True


def test_the_openapi_schema_states_what_the_server_enforces(openapi):
    """Bounds, enums and patterns are in the schema (Schemathesis generates from them), and links join calls."""
    import re

    def parameter(path: str, method: str, name: str) -> dict:
        operation = openapi["paths"][path][method]
        return next(p["schema"] for p in operation["parameters"] if p["name"] == name)

    def plain(schema: dict) -> dict:  # an optional parameter: the non-null branch
        return next((s for s in schema.get("anyOf", []) if s.get("type") != "null"), schema)

    assert plain(parameter("/api/cancellations", "get", "job_id"))["pattern"] == r"[^\s\x1c-\x1f]"
    assert plain(parameter("/api/jobs", "get", "cloud"))["pattern"] == r"[^\s\x1c-\x1f]"
    assert plain(parameter("/api/jobs/{job}", "get", "cluster"))["pattern"] == r"[^\s\x1c-\x1f]"
    assert parameter("/api/jobs/{job}", "get", "job")["pattern"] == r"[^\s\x1c-\x1f]"
    # A request's line and headers fit in uvicorn's 16 KiB, whatever characters a client sends.
    assert parameter("/api/jobs/{job}", "get", "job")["maxLength"] == 128
    assert plain(parameter("/api/jobs", "get", "since"))["maxLength"] == 128
    assert parameter("/api/jobs", "get", "state")["maxItems"] == 9
    assert set(plain(parameter("/api/cancellations", "get", "status"))["enum"]) == {
        "requested", "in_progress", "completed", "failed", "not_needed"}  # fmt: skip
    assert set(parameter("/api/jobs/{job}/logs", "get", "stream")["enum"]) == {"stdout", "stderr"}
    assert parameter("/api/jobs", "get", "limit")["anyOf"][0] == {"type": "integer", "minimum": 0,
                                                                     "maximum": bounds.MAX_COUNT}  # fmt: skip
    states = parameter("/api/jobs", "get", "state")["items"]["pattern"]
    assert all(re.search(states, ok) for ok in ("running", "Failed, cancelled", "lost,"))
    assert not any(re.search(states, bad) for bad in ("sleepy", "running;failed"))
    signal_pattern = openapi["components"]["schemas"]["CancelBody"]["properties"]["signal"]["pattern"]
    assert all(re.search(signal_pattern, ok) for ok in ("TERM", "sigusr1", "SIGINT", "15"))
    assert not any(re.search(signal_pattern, bad) for bad in ("0", "NOPE", "SIG", " TERM"))

    def links(path: str, method: str, status: str) -> set[str]:
        return set(openapi["paths"][path][method]["responses"][status]["links"])

    assert links("/api/jobs", "post", "201") == {"JobStatus", "JobLogs", "CancelJob", "CancellationHistory"}
    assert links("/api/jobs", "get", "200") == {"JobStatus", "JobLogs", "CancelJob", "CancellationHistory"}
    assert links("/api/jobs/{job}/cancel", "post", "200") == {"CancellationStatus", "CancellationHistory"}
    assert links("/api/jobs/{job}/cancel", "post", "202") == {"CancellationStatus", "CancellationHistory"}
    cancel = openapi["paths"]["/api/jobs"]["post"]["responses"]["201"]["links"]["CancelJob"]
    assert cancel == {"operationRef": "#/paths/~1api~1jobs~1{job}~1cancel/post",
                      "parameters": {"job": "$response.body#/job_id"}}  # fmt: skip


def test_the_openapi_documents_are_the_json_contract(openapi):
    schemas = openapi["components"]["schemas"]

    def keys(name: str) -> set[str]:
        return set(schemas[name]["properties"])

    job = set(job_document(view_of(make_record())))
    cancellation = cancellation_document(make_cancellation(steps=()))
    assert keys("JobDocument") == job and set(schemas["JobDocument"]["required"]) == job
    assert keys("SubmitDocument") == job | {"warnings"}
    assert keys("CancellationDocument") == set(cancellation)
    assert keys("NotificationDocument") == set(notification_document(make_notification()))
    assert keys("CancellationStepDocument") == {"name", "status", "started_at", "ended_at", "detail"}
    assert (
        keys("FailureDocument") == set(schemas["FailureDocument"]["required"]) == {"class", "cause", "hint", "evidence"}
    )
    assert keys("ErrorDocument") == ERROR_FIELDS
    assert keys("SubmitBody") == SUBMIT_FIELDS and schemas["SubmitBody"]["required"] == ["config"]
    assert keys("CancelBody") == CANCEL_FIELDS and "required" not in schemas["CancelBody"]
    assert schemas["SubmitBody"]["additionalProperties"] is False  # a misspelt option is refused
    assert keys("SweepBody") == SUBMIT_FIELDS | {"sets", "zip", "values"} and schemas["SweepBody"]["required"] == [
        "config"
    ]
    sweep = {"schema_version", "sweep_id", "name", "config_path", "cloud", "cluster", "size", "parallel",
             "submit_time", "counts", "done"}  # fmt: skip
    assert keys("SweepSummaryDocument") == sweep and keys("SweepDocument") == sweep | {"children"}
    assert keys("SweepCancelDocument") == {"schema_version", "sweep_id", "cancelled_before_start", "cancellations"}
    assert openapi["info"]["title"] == "oumi-jobs"


def test_the_client_never_waits_without_a_limit(tmp_path, monkeypatch):
    """A server that accepts and never answers: the client's own default limit ends the wait."""
    from oumi_jobs import client as client_module

    monkeypatch.setattr(client_module, "DEFAULT_TIMEOUT_S", 0.5)
    path = str(tmp_path / "silent.sock")
    with socket.socket(socket.AF_UNIX) as silent:
        silent.bind(path)
        silent.listen(1)
        started = time.monotonic()
        with Client.unix(path) as client, pytest.raises(CloudTimeoutError, match=r"did not answer within 0\.5 s"):
            client.jobs()
    assert time.monotonic() - started < 30
