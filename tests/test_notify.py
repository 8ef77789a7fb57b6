"""Notifications: real local jobs, a real HTTP receiver on loopback, real sender processes.

Each test waits for its notifications to be recorded ``sent`` or ``failed``:
the sender has then nothing left to do and ends on its own (a short backoff,
``OUMI_JOBS_NOTIFY_BACKOFF``, keeps the failing cases to a fraction of a second).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psutil
import pytest

from oumi_jobs import timeline
from oumi_jobs.notify import emission, points
from oumi_jobs.notify.redact import shown
from oumi_jobs.paths import Paths
from oumi_jobs.policy import JobPolicy
from oumi_jobs.states import State
from oumi_jobs.store.registry import Registry
from oumi_jobs.timestamps import now_iso
from oumi_jobs.views import JobView

from .helpers import add_record, free_loopback_port, make_record, submit_id, wait_done, wait_until

SECRET = "it-is-a-secret"


@dataclass
class Posted:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    port: int
    posts: list[Posted] = field(default_factory=list)
    hold_s: float = 0.0  # how long each POST waits for its answer (a slow receiver)

    def url(self, path: str = "/hook", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def events(self, path: str = "/hook") -> list[str]:
        return [p.headers.get("X-Oumi-Jobs-Event", "") for p in self.posts if p.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """An HTTP server on loopback, in a thread of this process, that keeps every POST it gets."""
    posts: list[Posted] = []
    settings = Receiver(0, posts)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            posts.append(Posted(self.path, dict(self.headers.items()), body))
            time.sleep(settings.hold_s)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.port = server.server_address[1]
    try:
        yield settings
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def notify_env(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """No secret or config of the user's; a backoff of a few tenths of a second in all."""
    monkeypatch.delenv("OUMI_JOBS_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv("OUMI_JOBS_NOTIFY_BACKOFF", "0.05,0.1")
    return paths


def settled(cli, job_id: str, count: int) -> list[dict]:
    """The job's notification records once ``count`` of them are sent or failed (none pending)."""

    def done() -> list[dict] | None:
        records = cli.json("notifications", "--job", job_id)
        finished = [r for r in records if r["status"] != "pending"]
        return records if len(records) == count and len(finished) == count else None

    return wait_until(done)  # type: ignore[return-value]


def test_a_job_notifies_its_end_once_signed_and_not_its_start(cli, notify_env, job_config, receiver, monkeypatch):
    monkeypatch.setenv("OUMI_JOBS_WEBHOOK_SECRET", SECRET)
    job_id = submit_id(cli, str(job_config("echo hi")), "--notify", receiver.url())
    assert wait_done(cli, job_id)["state"] == "succeeded"
    [record] = settled(cli, job_id, 1)
    assert (record["event"], record["status"], record["attempts"], record["url"]) == (
        "succeeded", "sent", 1, receiver.url(),
    )  # fmt: skip
    [posted] = receiver.posts
    expected = "sha256=" + hmac.new(SECRET.encode(), posted.body, hashlib.sha256).hexdigest()
    assert posted.headers["X-Oumi-Jobs-Signature"] == expected
    assert (posted.headers["X-Oumi-Jobs-Event"], posted.headers["Content-Type"]) == ("succeeded", "application/json")
    document = posted.json()
    assert (document["event"], document["job"]["job_id"], document["job"]["state"]) == (
        "succeeded",
        job_id,
        "succeeded",
    )
    assert document["schema_version"] == 1 and document["detail"]["exit_code"] == 0
    events = cli.json("events", job_id)
    [note] = [e for e in events if e["kind"] == "notification"]
    assert (note["event"], note["status"], note["url"]) == ("succeeded", "sent", receiver.url())


def test_a_receiver_that_is_down_never_delays_the_job_and_is_recorded_failed(cli, notify_env, job_config):
    closed = f"http://127.0.0.1:{free_loopback_port()}/hook"
    job_id = submit_id(cli, str(job_config("exit 3")), "--notify", closed)
    done = wait_done(cli, job_id)
    assert (done["state"], done["exit_code"]) == ("failed", 3)
    [record] = settled(cli, job_id, 1)
    assert (record["event"], record["status"], record["attempts"]) == ("failed", "failed", 3)  # 1 + 2 retries
    assert "refused" in record["last_error"].lower() and record["sent_at"] is None
    assert cli.json("notifications", "--status", "failed")[0]["notification_id"] == record["notification_id"]


def test_two_processes_that_see_the_same_event_send_it_once(cli, notify_env, job_config, receiver):
    job_id = submit_id(cli, str(job_config("echo hi")), "--notify", receiver.url("/retry"))
    wait_done(cli, job_id)
    settled(cli, job_id, 1)  # its end, sent
    emitter = (
        "import sys; from oumi_jobs.notify import emission; from oumi_jobs.paths import Paths\n"
        "emission.emit(Paths.from_env(), sys.argv[1], 'retrying', attempt=2, detail={'delay_s': 1})\n"
        "print(' '.join(map(str, emission.SPAWNED)))"
    )
    emitters = [subprocess.Popen([sys.executable, "-c", emitter, job_id], stdout=subprocess.PIPE, text=True)
                for _ in range(2)]  # fmt: skip
    senders = [int(pid) for process in emitters for pid in process.communicate(timeout=60)[0].split()]
    assert all(process.returncode == 0 for process in emitters) and senders  # at least one sender started
    wait_until(lambda: not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in senders))
    retrying = [r for r in settled(cli, job_id, 2) if r["event"] == "retrying"]
    assert [(r["attempt"], r["status"], r["attempts"]) for r in retrying] == [(2, "sent", 1)]
    assert receiver.events("/retry") == ["succeeded", "retrying"]


def test_a_url_with_a_password_is_never_shown_in_clear(cli, notify_env, job_config, receiver):
    secret_url = f"http://bob:hunter2@127.0.0.1:{receiver.port}/hook"
    job_id = submit_id(cli, str(job_config("echo hi")), "--notify", secret_url)
    wait_done(cli, job_id)
    [record] = settled(cli, job_id, 1)
    assert record["url"] == f"http://bob:****@127.0.0.1:{receiver.port}/hook" and record["status"] == "sent"
    assert receiver.posts[0].headers["Authorization"] == "Basic Ym9iOmh1bnRlcjI="  # bob:hunter2, as basic auth
    for args in (("notifications", "--json"), ("notifications",), ("events", job_id, "--json"), ("events", job_id)):
        output = cli(*args)
        assert output.exit_code == 0 and "hunter2" not in output.stdout + output.stderr, args
    assert "hunter2" not in cli("notify", "test", secret_url.replace(str(receiver.port), "1")).stderr


def test_redaction_masks_passwords_tokens_and_secret_query_values():
    assert shown("https://bob:pw@example.org/hook?token=abc&x=1") == "https://bob:****@example.org/hook?token=****&x=1"
    assert shown("slack://T0000000A/B00000000/XXXXXXXX1XXXXXXX") == "slack://T0****/B0****/XX****"
    assert shown("mailto://me:pw@example.org") == "mailto://me:****@example.org"
    assert shown("json://127.0.0.1:9000/path") == "json://127.0.0.1:9000/path"  # nothing secret in it


def test_config_toml_gives_default_urls_and_which_events(cli, notify_env, job_config, receiver):
    assert notify_env.config_file is not None
    notify_env.config_file.parent.mkdir(parents=True)
    notify_env.config_file.write_text(f'[notify]\nurls = ["{receiver.url()}"]\nevents = ["failed", "started"]\n')
    ok = submit_id(cli, str(job_config("echo hi")))
    bad = submit_id(cli, str(job_config("exit 2")))
    wait_done(cli, ok)
    wait_done(cli, bad)
    assert sorted(r["event"] for r in settled(cli, bad, 2)) == ["failed", "started"]
    assert sorted(r["event"] for r in settled(cli, ok, 1)) == ["started"]  # `succeeded` is not in the list
    assert sorted(receiver.events()) == ["failed", "started", "started"]


def test_an_apprise_url_is_delivered_by_apprise(cli, notify_env, job_config, receiver):
    job_id = submit_id(cli, str(job_config("exit 1")), "--notify", receiver.url("/apprise", scheme="json"))
    wait_done(cli, job_id)
    [record] = settled(cli, job_id, 1)
    assert (record["status"], record["event"]) == ("sent", "failed")
    [posted] = [p for p in receiver.posts if p.path == "/apprise"]
    message = posted.json()  # Apprise's own JSON format
    assert job_id in message["title"] and "failed" in message["message"] and message["type"] == "failure"


def test_notify_test_exits_0_when_delivered_and_1_with_the_reason_when_not(cli, notify_env, receiver):
    delivered = cli("notify", "test", receiver.url("/test"), "--json")
    assert delivered.exit_code == 0, delivered.stderr
    assert json.loads(delivered.stdout)["status"] == "sent"
    [posted] = receiver.posts
    assert (posted.json()["event"], posted.json()["job"]) == ("test", None)
    refused = cli("notify", "test", f"http://127.0.0.1:{free_loopback_port()}/hook")
    assert refused.exit_code == 1 and "refused" in refused.stderr.lower()
    assert len(refused.stderr.strip().splitlines()) == 1


def test_emit_is_cheap_without_urls_and_records_guards_and_retries(cli, notify_env, job_config, receiver):
    job_id = submit_id(cli, str(job_config("echo hi")))
    wait_done(cli, job_id)
    emission.SPAWNED.clear()
    assert emission.emit(notify_env, job_id, "failed") == 0 and not emission.SPAWNED  # no URL: no sender
    assert cli.json("notifications") == []
    noted = submit_id(cli, str(job_config("echo hi")), "--notify", receiver.url("/guard"))
    wait_done(cli, noted)
    with Registry.open(notify_env) as registry:
        timeline.record(registry, noted, "guard", guard="max_duration", observed=5.0, limit=1.0, action="alert")
    records = settled(cli, noted, 2)
    assert sorted(r["event"] for r in records) == ["guard", "succeeded"]
    guard = next(p.json() for p in receiver.posts if p.headers["X-Oumi-Jobs-Event"] == "guard")
    assert (guard["detail"]["guard"], guard["job"]["job_id"]) == ("max_duration", noted)
    assert cli("notifications", "--status", "bogus").exit_code == 2
    assert cli("notifications", "--job", "no-such-job").exit_code == 3
    with Registry.open(notify_env) as registry:
        assert registry.delete([noted]) == [noted]  # as prune does
        assert registry.notifications(job_id=noted) == []  # its notifications went with it


def test_a_local_job_found_lost_by_a_read_is_notified_lost(cli, notify_env, receiver):
    policy = JobPolicy(notify=(receiver.url("/lost"),)).encode()
    job_id = add_record(notify_env, make_record(supervisor_pid=999_999_999, supervisor_start_time=1.0,
                                                boot_id="another-boot", policy=policy))  # fmt: skip
    assert cli.json("status", job_id)["state"] == "lost"
    assert cli.json("status", job_id)["state"] == "lost"  # read again: still one notification
    [record] = settled(cli, job_id, 1)
    assert (record["event"], record["status"]) == ("lost", "sent")
    assert receiver.events("/lost") == ["lost"]


def test_a_sweep_notifies_once_when_its_last_child_ends(cli, notify_env, job_config, receiver):
    swept = cli.json("sweep", str(job_config("echo $X")), "--set", "envs.X=1,2", "--notify", receiver.url("/sweep"))
    children = [child["job_id"] for child in swept["children"]]
    for child in children:
        wait_done(cli, child)
    [done] = settled(cli, swept["sweep_id"], 1)
    assert (done["event"], done["status"], done["job_id"]) == ("sweep_done", "sent", swept["sweep_id"])
    for child in children:
        settled(cli, child, 1)
    [posted] = [p.json() for p in receiver.posts if p.headers["X-Oumi-Jobs-Event"] == "sweep_done"]
    assert posted["detail"] == {"sweep_id": swept["sweep_id"], "children": 2, "succeeded": 2, "not_succeeded": 0}
    assert posted["job"] is None
    assert sorted(receiver.events("/sweep")) == ["succeeded", "succeeded", "sweep_done"]


def test_a_cloud_jobs_end_seen_by_a_read_is_notified_once_as_it_was_seen(cli, notify_env, receiver):
    policy = JobPolicy(notify=(receiver.url("/cloud"),)).encode()
    record = make_record(cloud="gcp", cluster="c1", launcher_job_id="7", policy=policy)
    add_record(notify_env, record)
    view = JobView(record, State.SUCCEEDED, "SUCCEEDED", None, now_iso())
    points.seen_ended(notify_env, view)
    points.seen_ended(notify_env, view)  # a second reader: nothing new
    points.seen_ended(notify_env, JobView(record, State.RUNNING, "RUNNING", None, now_iso()))  # not an end
    [note] = settled(cli, record.job_id, 1)
    assert (note["event"], note["status"]) == ("succeeded", "sent")
    [posted] = receiver.posts
    # The job document is the job as the read saw it: the registry alone cannot tell a cloud job's state.
    assert (posted.json()["job"]["state"], posted.json()["job"]["status"]) == ("succeeded", "SUCCEEDED")


def test_a_sender_started_while_the_job_runs_is_not_taken_for_one_of_its_processes(cli, notify_env, job_config,
                                                                                   receiver):  # fmt: skip
    """The supervisor records its job's descendants for cancel; the sender of `started` is its child, not the job's."""
    assert notify_env.config_file is not None
    notify_env.config_file.parent.mkdir(parents=True)
    notify_env.config_file.write_text(f'[notify]\nurls = ["{receiver.url()}"]\nevents = ["started"]\n')
    receiver.hold_s = 3.0  # longer than the supervisor's widest gap between two looks at its descendants (2 s)
    job_id = submit_id(cli, str(job_config("sleep 60")))
    wait_until(lambda: receiver.posts)
    home = str(notify_env.data_dir.parent)

    def sender() -> int | None:
        for process in psutil.process_iter(["cmdline", "environ"]):
            cmdline, environ = process.info["cmdline"] or [], process.info["environ"] or {}
            if any("oumi_jobs.notify.sender" in part for part in cmdline) and environ.get("OUMI_JOBS_HOME") == home:
                return process.pid
        return None

    sender_pid = wait_until(sender)
    [record] = settled(cli, job_id, 1)
    assert record["status"] == "sent"
    with Registry.open(notify_env) as registry:
        recorded = {pid for pid, _ in registry.recorded_processes(job_id)}
    assert recorded and sender_pid not in recorded  # the job's own processes were recorded meanwhile
    cancelled = cli.json("cancel", job_id, "--timeout", "5")
    assert (cancelled["status"], cancelled["survivors"]) == ("completed", [])


def test_a_broken_config_toml_never_fails_the_job_and_is_told_in_its_supervisors_log(cli, notify_env, job_config,
                                                                                      receiver):  # fmt: skip
    assert notify_env.config_file is not None
    notify_env.config_file.parent.mkdir(parents=True)
    notify_env.config_file.write_text("[notify\nurls = 3\n")
    job_id = submit_id(cli, str(job_config("echo hi")), "--notify", receiver.url())
    assert wait_done(cli, job_id)["state"] == "succeeded"
    log = notify_env.supervisor_log(job_id)
    wait_until(lambda: "cannot notify succeeded" in log.read_text())
    assert str(notify_env.config_file) in log.read_text()
    assert cli.json("notifications") == [] and receiver.posts == []


def test_a_cancelled_job_is_notified_cancelled(cli, notify_env, job_config, receiver):
    job_id = submit_id(cli, str(job_config("sleep 60")), "--notify", receiver.url("/cancel"))
    wait_until(lambda: cli.json("status", job_id)["state"] == "running")
    assert cli.json("cancel", job_id, "--timeout", "5")["status"] == "completed"
    [record] = settled(cli, job_id, 1)
    assert (record["event"], record["status"]) == ("cancelled", "sent")
    assert receiver.events("/cancel") == ["cancelled"]


def test_a_cloud_jobs_end_is_notified_by_the_servers_watch_without_any_status(
    server_on, cli, notify_env, file_cloud, receiver, tmp_path
):
    """Nobody reads the job: the warm server watches it because it has a URL, and notifies its end."""
    file_cloud.configure(run_s=1.0, final_status="FAILED")
    config = tmp_path / "job.yaml"
    config.write_text("run: python train.py\n")
    job_id = submit_id(cli, str(config), "--cloud", "oj-file", "--cluster", "fc-notify",
                       "--notify", receiver.url("/cloud"))  # fmt: skip
    wait_until(lambda: receiver.events("/cloud") == ["failed"], timeout=120)
    [posted] = receiver.posts
    body = posted.json()
    assert body["job"]["job_id"] == job_id and body["job"]["state"] == "failed" and body["event"] == "failed"
    [note] = settled(cli, job_id, 1)
    assert (note["event"], note["status"]) == ("failed", "sent")
