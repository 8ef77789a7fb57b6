"""The JSON contract scripts rely on: keys, types and time format are pinned here."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

from oumi_jobs import submitting
from oumi_jobs.cancel.service import BulkOutcome
from oumi_jobs.cloud.model import ConfigProblem
from oumi_jobs.dashboard.launch import LoginLink
from oumi_jobs.dashboard.sessions import Sessions
from oumi_jobs.errors import JobNotFoundError
from oumi_jobs.preflight import ConfigCheck, PreflightProblem
from oumi_jobs.progress import Progress
from oumi_jobs.prune import PruneResult
from oumi_jobs.registry_repair import Recovery, RegistryCheck
from oumi_jobs.render.base import SCHEMA_VERSION, job_document
from oumi_jobs.render.cancel import bulk_document, cancellation_document
from oumi_jobs.render.jobs import check_document, dry_run_document, log_document
from oumi_jobs.render.notifications import event_document as notification_event_document
from oumi_jobs.render.notifications import notification_document
from oumi_jobs.render.registry import prune_document, recovery_document, registry_check_document
from oumi_jobs.render.server import login_code_document, ui_document
from oumi_jobs.store.cancellations import CancellationStep, StepStatus
from oumi_jobs.store.repair import TableSalvage
from oumi_jobs.views import view_of

from .helpers import make_cancellation, make_notification, make_record, submit_id, wait_done, wait_state

JOB_KEYS = {
    "schema_version", "job_id", "name", "state", "status", "done", "cloud", "cluster", "launcher_job_id",
    "command", "config_path", "model_name", "output_dir", "submit_time", "start_time", "end_time", "exit_code",
    "exit_signal", "pid", "containment", "external", "cancel_requested", "depends_on", "detail", "stdout_path", "stderr_path",
    "cost_per_hour", "cost_so_far", "sweep_id", "overrides", "as_of", "attempt", "max_attempts", "attempts",
    "failure", "progress",
}  # fmt: skip
# One entry of a job's `attempts` list.
ATTEMPT_KEYS = {
    "attempt", "state", "start_time", "end_time", "exit_code", "exit_signal", "failure", "resumed_from_step",
    "first_step", "redone_steps",
}  # fmt: skip
SWEEP_KEYS = {
    "schema_version", "sweep_id", "name", "config_path", "cloud", "cluster", "size", "parallel", "submit_time",
    "counts", "done", "children",
}  # fmt: skip
# A failed or lost job's `failure` object (null for any other job).
FAILURE_KEYS = {"class", "cause", "hint", "evidence"}
# A job's `progress` object (null when nothing tells how far along it is).
PROGRESS_KEYS = {"step", "total_steps", "fraction", "epoch", "loss", "eta_s", "rate", "source", "as_of"}
CANCELLATION_KEYS = {
    "schema_version", "cancellation_id", "job_id", "cloud", "status", "reason", "force", "signal", "timeout_s",
    "requested_at", "finished_at", "duration_s", "final_state", "caused_by", "survivors", "runners_signalled",
    "detail", "steps",
}  # fmt: skip
STEP_KEYS = {"name", "status", "started_at", "ended_at", "detail"}
PRUNE_KEYS = {"schema_version", "removed", "kept_running", "dry_run", "older_than_s", "logs_removed"}
# A notification's delivery record (`notifications --json`, GET /api/notifications): its URL redacted.
NOTIFICATION_KEYS = {
    "schema_version", "notification_id", "job_id", "attempt", "event", "url", "status", "attempts", "last_error",
    "sent_at", "created_at",
}  # fmt: skip
# What a plain http(s) webhook receives: the event, and the job document as it was seen.
NOTIFICATION_EVENT_KEYS = {"schema_version", "event", "at", "attempt", "job", "detail"}


def assert_time_with_offset(text: str | None) -> None:
    assert text is not None
    assert datetime.fromisoformat(text).utcoffset() is not None, text


def test_job_documents(cli, job_config):
    submitted = json.loads(cli("submit", "--json", str(job_config("exit 0"))).stdout)
    assert set(submitted) == JOB_KEYS | {"warnings"} and submitted["warnings"] == []
    done = wait_done(cli, submitted["job_id"])
    assert set(done) == JOB_KEYS and done["schema_version"] == 1 and done["failure"] is None
    for key in ("submit_time", "start_time", "end_time", "as_of"):
        assert_time_with_offset(done[key])
    assert isinstance(done["done"], bool) and isinstance(done["external"], bool)
    logs = cli.json("logs", submitted["job_id"])
    assert set(logs) == {"schema_version", "job_id", "stream", "path", "text"} and logs["stream"] == "stdout"
    listed = cli.json("list")
    assert isinstance(listed, list) and set(listed[0]) == JOB_KEYS
    waited = cli.json("wait", submitted["job_id"])  # an array of job objects, one per job named
    assert isinstance(waited, list) and [set(doc) for doc in waited] == [JOB_KEYS]
    assert done["sweep_id"] is None and done["overrides"] is None  # a plain job
    assert (done["attempt"], done["max_attempts"]) == (1, 1) and [set(a) for a in done["attempts"]] == [ATTEMPT_KEYS]
    assert done["attempts"][0]["state"] == "succeeded" and listed[0]["attempts"] == done["attempts"]


def test_sweep_documents(cli, job_config):
    swept = cli.json("sweep", str(job_config("exit 0", envs={"A": 1})), "--set", "envs.A=1,2", "--name", "pin")
    assert set(swept) == SWEEP_KEYS and swept["schema_version"] == 1 and swept["size"] == 2
    assert_time_with_offset(swept["submit_time"])
    assert [set(child) for child in swept["children"]] == [JOB_KEYS, JOB_KEYS]
    assert swept["children"][1]["sweep_id"] == "sw-pin" and swept["children"][1]["overrides"] == {"envs.A": 2}
    assert cli("wait", "sw-pin").exit_code == 0
    status = cli.json("status", "sw-pin")
    assert set(status) == SWEEP_KEYS and status["counts"] == {"succeeded": 2} and status["done"] is True
    listed = cli.json("sweeps")
    assert isinstance(listed, list) and set(listed[0]) == SWEEP_KEYS - {"children"}
    lean = cli.json("list", "--sweep", "sw-pin")  # finished local children: the documents SQLite builds
    assert [set(doc) for doc in lean] == [JOB_KEYS, JOB_KEYS] and lean[0]["overrides"] == {"envs.A": 1}
    assert [doc["overrides"] for doc in lean] == [child["overrides"] for child in status["children"]]


def test_cancellation_and_prune_documents(cli, job_config):
    job_id = submit_id(cli, str(job_config("sleep 300")))
    wait_state(cli, job_id, "running")
    doc = json.loads(cli("cancel", job_id, "--json").stdout)
    assert set(doc) == CANCELLATION_KEYS
    assert all(set(step) == STEP_KEYS for step in doc["steps"])
    for key in ("requested_at", "finished_at"):
        assert_time_with_offset(doc[key])
    assert set(cli.json("cancel-status", job_id)) == CANCELLATION_KEYS
    history = cli.json("cancellations")
    assert isinstance(history, list) and set(history[0]) == CANCELLATION_KEYS
    assert set(cli.json("prune", "--dry-run")) == PRUNE_KEYS


def test_the_documents_are_built_from_the_core_alone():
    """What --json prints, oumi_jobs.render builds without the CLI (a REST server serves the same)."""
    assert SCHEMA_VERSION == 1
    assert set(job_document(view_of(make_record()))) == JOB_KEYS
    assert job_document(view_of(make_record()))["progress"] is None
    progressed = dataclasses.replace(view_of(make_record()), progress=Progress(step=3, total_steps=6, source="logs"))
    document = job_document(progressed)["progress"]
    assert set(document) == PROGRESS_KEYS and (document["step"], document["source"], document["loss"]) == (
        3,
        "logs",
        None,
    )
    step = CancellationStep("check_state", StepStatus.COMPLETED, "2026-01-01T00:00:00+00:00", None, None)
    cancellation = cancellation_document(make_cancellation(steps=(step,)))
    assert set(cancellation) == CANCELLATION_KEYS and set(cancellation["steps"][0]) == STEP_KEYS
    assert set(prune_document(PruneResult([], 0, True, 60.0, False))) == PRUNE_KEYS
    notification = notification_document(make_notification())
    assert set(notification) == NOTIFICATION_KEYS and notification["url"] == "https://bob:****@example.org/hook"
    posted = notification_event_document("failed", "2026-01-01T10:00:00.000+00:00", view_of(make_record()), {})
    assert set(posted) == NOTIFICATION_EVENT_KEYS and set(posted["job"]) == JOB_KEYS
    assert set(log_document("job-1", "stdout", None, "")) == {"schema_version", "job_id", "stream", "path", "text"}
    missing = bulk_document(BulkOutcome("job-2", None, JobNotFoundError("no job 'job-2'")))
    assert missing == {"schema_version": 1, "job_id": "job-2", "status": "error", "error": "no job 'job-2'",
                       "exit_code": 3}  # fmt: skip


def test_errors_with_json_are_a_plain_line_on_stderr(cli):
    result = cli("status", "missing", "--json")
    assert result.exit_code == 3 and result.stdout == ""
    assert result.stderr.startswith("oumi-jobs: error: ") and len(result.stderr.splitlines()) == 1


def test_no_colour_when_piped_or_no_color(cli, job_config, monkeypatch):
    job_id = submit_id(cli, str(job_config("true")))
    wait_done(cli, job_id)
    monkeypatch.setenv("NO_COLOR", "1")
    for args in (["list"], ["status", job_id]):
        assert "\x1b[" not in cli(*args).stdout


REGISTRY_CHECK_KEYS = {
    "schema_version", "path", "exists", "ok", "problems", "migrations_applied", "migrations_pending", "jobs",
    "cancellations",
}  # fmt: skip
RECOVERY_KEYS = {"schema_version", "path", "moved_to", "problems", "saved_jobs", "lost_rows", "tables"}
RECOVERY_TABLE_KEYS = {"table", "saved", "lost", "errors", "lost_keys"}


def test_registry_check_and_recover_documents(tmp_path):
    check = RegistryCheck(tmp_path / "r", True, ("bad",), ("0001_jobs",), (), None, None)
    assert set(registry_check_document(check)) == REGISTRY_CHECK_KEYS and registry_check_document(check)["ok"] is False
    table = TableSalvage("jobs", 3, None, ("malformed",), ())
    recovery = recovery_document(Recovery(tmp_path / "r", (tmp_path / "r.broken",), ("bad",), (table,)))
    assert set(recovery) == RECOVERY_KEYS and set(recovery["tables"][0]) == RECOVERY_TABLE_KEYS
    assert (recovery["saved_jobs"], recovery["lost_rows"]) == (3, None)


CHECK_KEYS = {"schema_version", "config_path", "kind", "command", "cloud", "ok", "problems"}
CHECK_PROBLEM_KEYS = {"path", "problem"}
DRY_RUN_KEYS = {
    "schema_version", "dry_run", "job_id", "name", "cloud", "cluster", "kind", "command", "config_path", "workdir",
    "argv", "env", "job_config", "staged_config", "after", "preflight", "ok", "problems", "warnings",
}  # fmt: skip
DRY_RUN_PROBLEM_KEYS = {"check", "path", "problem"}


def test_check_and_dry_run_documents(paths, job_config, tmp_path):
    """Built from the core alone (the checks themselves are in tests/test_config_check.py, test_preflight.py)."""
    check = ConfigCheck("/c.yaml", "task", "train", None, (ConfigProblem("training.x", "not a setting"),))
    document = check_document(check)
    assert set(document) == CHECK_KEYS and document["schema_version"] == SCHEMA_VERSION == 1
    assert set(document["problems"][0]) == CHECK_PROBLEM_KEYS and document["ok"] is False

    dry = submitting.dry_run(
        paths, submitting.SubmitRequest(config=str(job_config("true")), cwd=tmp_path, preflight=False)
    )
    dry = dataclasses.replace(dry, problems=(PreflightProblem("file", "a.dataset_path", "gone"),))
    document = dry_run_document(dry)
    assert set(document) == DRY_RUN_KEYS and document["schema_version"] == 1 and document["dry_run"] is True
    assert set(document["problems"][0]) == DRY_RUN_PROBLEM_KEYS and document["ok"] is False
    json.dumps(document)  # plain data


SWEEP_DRY_RUN_KEYS = {
    "schema_version", "dry_run", "sweep_id", "name", "config_path", "cloud", "cluster", "kind", "command", "size",
    "parallel", "preflight", "ok", "problems", "warnings", "children",
}  # fmt: skip
SWEEP_DRY_RUN_CHILD_KEYS = {
    "job_id", "overrides", "config_path", "workdir", "argv", "env", "job_config", "staged_config", "after",
}  # fmt: skip


def test_sweep_dry_run_document(cli, job_config):
    doc = cli.json("sweep", str(job_config("true", envs={"A": 1})), "--set", "envs.A=1,2", "--dry-run")
    assert set(doc) == SWEEP_DRY_RUN_KEYS and doc["schema_version"] == SCHEMA_VERSION and doc["dry_run"] is True
    assert [set(child) for child in doc["children"]] == [SWEEP_DRY_RUN_CHILD_KEYS] * 2


UI_KEYS = {"schema_version", "url", "expires_at", "expires_in_s", "address", "pid", "restarted", "opened"}
LOGIN_CODE_KEYS = {"schema_version", "code", "expires_at", "expires_in_s"}


def test_ui_and_login_code_documents():
    """``ui --json`` and the login code it asks the server for, built from the core alone."""
    code = Sessions().new_code()
    document = login_code_document(code)
    assert set(document) == LOGIN_CODE_KEYS and document["code"] == code.code and 0 < document["expires_in_s"] <= 300
    link = LoginLink("http://127.0.0.1:1/login?code=c", document["expires_at"], 300.0, "http://127.0.0.1:1", 7, False)
    shown = ui_document(link, opened=False)
    assert set(shown) == UI_KEYS and shown["schema_version"] == 1 and shown["url"] == link.url


EVENT_KEYS = {"schema_version", "event_id", "job_id", "attempt", "at", "kind"}
# Each kind's own keys beside the common ones (what is read from the job's records).
EVENT_KIND_KEYS = {
    "submitted": {"cloud", "sweep_id"},
    "started": {"pid"},
    "ended": {"exit_code", "exit_signal", "failure", "detail"},
}


def test_event_documents(cli, job_config):
    job_id = submit_id(cli, str(job_config("exit 0")))
    wait_done(cli, job_id)
    events = cli.json("events", job_id)
    assert [e["kind"] for e in events] == list(EVENT_KIND_KEYS)
    for event in events:
        assert set(event) == EVENT_KEYS | EVENT_KIND_KEYS[event["kind"]], event
        assert event["schema_version"] == SCHEMA_VERSION
        assert_time_with_offset(event["at"])
