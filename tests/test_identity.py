"""Jobs launched elsewhere, named by their cloud identity: `cancel` and `logs` (and `wait` on what cancel
adopted), through the real oumi.launcher with the controllable clouds of tests/fake_clouds.py."""

from __future__ import annotations

import json

import pytest

from oumi_jobs import api
from oumi_jobs.legacy import cloud_job_id
from oumi_jobs.store.registry import Registry

from .helpers import add_record, make_record

IDENTITY = ("--cloud", "oj-fake", "--cluster", "c1", "--launcher-id")


def _registered(paths) -> list:
    if not paths.registry_file.exists():
        return []
    with Registry.open(paths) as registry:
        return registry.jobs()


@pytest.mark.parametrize(
    "args",
    [
        ["cancel", "some-job", *IDENTITY, "5"],  # a JOB and an identity
        ["cancel", "--cloud", "oj-fake", "--launcher-id", "5"],  # part of an identity
        ["cancel", "--all", *IDENTITY, "5"],
        ["cancel", *IDENTITY, " "],  # a blank part
        ["logs", "some-job", *IDENTITY, "5"],
        ["logs", "--cluster", "c1"],
        ["logs"],
        ["status", "some-job", "--cloud", "oj-fake", "--cluster", "c1", "--launcher-id", "5"],
    ],
)
def test_bad_combinations_are_one_line_and_exit_2(cli, paths, args):
    result = cli(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert _registered(paths) == []


def test_cancel_by_identity_adopts_the_job_and_cancels_it_as_any_cloud_job(paths, cli, clouds):
    JobState = clouds.JobState
    behaviour = clouds.Behaviour(
        cancel_lag_s=1.0, clusters={"c1": [clouds.job("5", "RUNNING", JobState.RUNNING, "c1")]}
    )
    clouds.BEHAVIOUR["oj-fake"] = behaviour
    result = cli("cancel", *IDENTITY, "5", "--reason", "found it", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    job_id = cloud_job_id("oj-fake", "c1", "5")
    assert (doc["job_id"], doc["status"], doc["final_state"], doc["reason"]) == (
        job_id, "completed", "cancelled", "found it",
    )  # fmt: skip
    assert [s["name"] for s in doc["steps"]] == ["check_state", "launcher_cancel", "verify"]
    assert behaviour.cancelled == ["5"]

    status = cli.json("status", job_id)
    assert (status["state"], status["external"], status["launcher_job_id"]) == ("cancelled", True, "5")
    listed = [d for d in cli.json("list") if d["launcher_job_id"] == "5"]
    assert [d["job_id"] for d in listed] == [job_id], "one identity is one job, not also an unregistered one"
    assert cli.json("status", *IDENTITY, "5")["job_id"] == job_id

    again = cli("cancel", *IDENTITY, "5", "--json")  # done now: the normal "not needed" path, the same job
    assert again.exit_code == 4 and json.loads(again.stdout)["status"] == "not_needed"
    assert "nothing to cancel" in again.stderr
    assert behaviour.cancelled == ["5"]
    assert [c["job_id"] for c in cli.json("cancellations")] == [job_id, job_id]
    assert cli("wait", job_id).exit_code == 4  # adopted, it is a job like any other
    assert [r.source for r in _registered(paths)] == ["external"]


def test_an_identity_registered_already_is_that_job(paths, cli, clouds):
    JobState = clouds.JobState
    clouds.BEHAVIOUR["oj-fake"] = clouds.Behaviour(
        clusters={"c1": [clouds.job("6", "RUNNING", JobState.RUNNING, "c1")]}
    )
    add_record(paths, make_record("mine", cloud="oj-fake", cluster="c1", launcher_job_id="6"))
    doc = cli.json("cancel", *IDENTITY, "6")
    assert doc["job_id"] == "mine" and doc["status"] == "completed"
    assert [r.job_id for r in _registered(paths)] == ["mine"]


def test_a_finished_external_job_is_not_needed(paths, cli, clouds):
    JobState = clouds.JobState
    clouds.BEHAVIOUR["oj-fake"] = clouds.Behaviour(
        clusters={"c1": [clouds.job("7", "COMPLETED", JobState.SUCCEEDED, "c1", done=True)]}
    )
    result = cli("cancel", *IDENTITY, "7", "--json")
    assert result.exit_code == 4
    doc = json.loads(result.stdout)
    assert (doc["status"], doc["final_state"]) == ("not_needed", "succeeded")
    assert clouds.BEHAVIOUR["oj-fake"].cancelled == []


def test_unknown_identity_exits_3_and_registers_nothing(paths, cli, clouds):
    JobState = clouds.JobState
    clouds.BEHAVIOUR["oj-fake"] = clouds.Behaviour(
        clusters={"c1": [clouds.job("5", "RUNNING", JobState.RUNNING, "c1")]}
    )
    for args in ([*IDENTITY, "404"], ["--cloud", "oj-fake", "--cluster", "nowhere", "--launcher-id", "5"]):
        for command in ("cancel", "logs"):
            result = cli(command, *args)
            assert result.exit_code == 3, (command, args, result.stderr)
            assert result.stderr.count("\n") == 1
    assert _registered(paths) == []
    assert clouds.BEHAVIOUR["oj-fake"].cancelled == []


def test_an_unreachable_cloud_exits_5_and_registers_nothing(paths, cli, clouds):
    clouds.BEHAVIOUR["oj-fail"] = clouds.Behaviour(error="the cloud is down")
    result = cli("cancel", "--cloud", "oj-fail", "--cluster", "c1", "--launcher-id", "5")
    assert result.exit_code == 5 and "the cloud is down" in result.stderr
    assert _registered(paths) == []


def test_logs_by_identity_read_without_registering(paths, cli, clouds):
    JobState = clouds.JobState
    clouds.BEHAVIOUR["oj-fake"] = clouds.Behaviour(
        clusters={"c1": [clouds.job("5", "RUNNING", JobState.RUNNING, "c1")]}
    )
    result = cli("logs", *IDENTITY, "5")
    assert result.exit_code == 1 and "does not stream job logs" in result.stderr  # the fake cloud has no logs
    assert cli("logs", *IDENTITY, "5", "--stderr").exit_code == 2  # a cloud job's log is one stream
    assert _registered(paths) == []


def test_the_library_cancels_by_identity(paths, clouds):
    JobState = clouds.JobState
    clouds.BEHAVIOUR["oj-fake"] = clouds.Behaviour(
        clusters={"c1": [clouds.job("8", "RUNNING", JobState.RUNNING, "c1")]}
    )
    identity = api.CloudIdentity("oj-fake", "c1", "8")
    assert api.find_by_identity(paths, identity).job_id == ""  # seen, not registered
    record = api.cancel_job(paths, identity, api.CancelOptions(timeout_s=10))
    assert record.status is api.CancellationStatus.COMPLETED
    assert api.cancellation_status(paths, identity).cancellation_id == record.cancellation_id
    assert api.adopt_by_identity(paths, identity).job_id == record.job_id
