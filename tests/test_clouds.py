"""Cloud jobs through the real oumi.launcher, with controllable clouds registered via Oumi's own API."""

from __future__ import annotations

import json
import time

import pytest

from oumi_jobs.cloud.oumi_states import map_state
from oumi_jobs.states import State
from oumi_jobs.store.registry import Registry

from .helpers import add_record, free_loopback_port, make_record


@pytest.mark.parametrize(
    "status, enum_value, done, expected",
    [
        ("CANCELLED by 0", "pending", False, State.CANCELLED),  # oumi 0.9's Slurm mapping, corrected
        ("CANCELLED+", "pending", False, State.CANCELLED),
        ("COMPLETED", "succeeded", True, State.SUCCEEDED),
        ("RUNNING", "running", False, State.RUNNING),
        ("TIMEOUT", "failed", True, State.FAILED),
        ("SUCCEEDED", "succeeded", True, State.SUCCEEDED),
        ("something new", "running", False, State.RUNNING),  # unknown words fall back to the enum
        ("something new", None, True, State.FAILED),
        ("", None, False, State.UNKNOWN),
    ],
)
def test_launcher_states_map_from_the_status_string_first(status, enum_value, done, expected):
    assert map_state(status, enum_value, done) is expected


def register(paths, job_id: str, cloud: str, cluster: str, launcher_id: str) -> None:
    add_record(paths, make_record(job_id, cloud=cloud, cluster=cluster, launcher_job_id=launcher_id, command="train"))


def test_status_asks_the_jobs_own_cloud(paths, cli, clouds):
    JobState = clouds.JobState
    clouds.BEHAVIOUR["oj-fake"] = clouds.Behaviour(clusters={"c1": [
        clouds.job("7", "RUNNING", JobState.RUNNING, "c1"),
        clouds.job("8", "CANCELLED by 0", JobState.PENDING, "c1"),
    ]})  # fmt: skip
    clouds.BEHAVIOUR["oj-fail"] = clouds.Behaviour(error="must not be asked")
    register(paths, "train-a", "oj-fake", "c1", "7")
    register(paths, "train-b", "oj-fake", "c1", "8")
    register(paths, "train-gone", "oj-fake", "c1", "99")
    a = cli.json("status", "train-a")
    assert (a["state"], a["status"], a["external"]) == ("running", "RUNNING", False)
    assert a["as_of"]
    assert cli.json("status", "train-b")["state"] == "cancelled"
    gone = cli.json("status", "train-gone")
    assert gone["state"] == "unknown" and "no longer reports job 99" in gone["detail"]


def test_status_by_cloud_identity_reads_external_jobs(paths, cli, clouds):
    clouds.BEHAVIOUR["oj-fake"] = clouds.Behaviour(
        clusters={"c1": [clouds.job("42", "COMPLETED", clouds.JobState.SUCCEEDED, "c1", done=True)]}
    )
    doc = cli.json("status", "--cloud", "oj-fake", "--cluster", "c1", "--launcher-id", "42")
    assert doc["external"] is True and doc["job_id"] is None and doc["state"] == "succeeded"
    register(paths, "mine", "oj-fake", "c1", "42")
    doc = cli.json("status", "--cloud", "oj-fake", "--cluster", "c1", "--launcher-id", "42")
    assert doc["external"] is False and doc["job_id"] == "mine"
    missing = cli("status", "--cloud", "oj-fake", "--cluster", "c1", "--launcher-id", "404")
    assert missing.exit_code == 3
    assert cli("status", "--cloud", "oj-fake").exit_code == 2


def test_list_merges_registry_and_external_jobs_and_survives_bad_clouds(paths, cli, clouds, job_config):
    JobState = clouds.JobState
    clouds.BEHAVIOUR["oj-fake"] = clouds.Behaviour(clusters={"c1": [
        clouds.job("1", "RUNNING", JobState.RUNNING, "c1"),
        clouds.job("2", "PENDING", JobState.PENDING, "c1", name="launched-with-sky"),
    ]})  # fmt: skip
    clouds.BEHAVIOUR["oj-hang"] = clouds.Behaviour(hang=True)
    clouds.BEHAVIOUR["oj-fail"] = clouds.Behaviour(error="credentials expired")
    register(paths, "ours", "oj-fake", "c1", "1")
    register(paths, "on-hang", "oj-hang", "h", "1")
    register(paths, "on-fail", "oj-fail", "f", "1")
    local = cli("submit", "-q", str(job_config("true"))).stdout.strip()

    started = time.monotonic()
    result = cli("list", "--json", "--cloud-timeout", "1")
    took = time.monotonic() - started
    assert result.exit_code == 0, result.stderr
    docs = {(d["job_id"] or f"ext-{d['launcher_job_id']}"): d for d in json.loads(result.stdout)}
    assert docs["ours"]["state"] == "running"
    assert docs["ext-2"]["external"] is True and docs["ext-2"]["name"] == "launched-with-sky"
    assert docs["on-hang"]["state"] == "unknown" and "did not answer within 1 s" in docs["on-hang"]["detail"]
    assert docs["on-fail"]["state"] == "unknown" and "credentials expired" in docs["on-fail"]["detail"]
    assert local in docs
    assert took < 10, "a hanging cloud is abandoned at its time limit"
    assert "oj-hang" in result.stderr

    alone = cli("list", "--cloud", "oj-hang", "--cloud-timeout", "0.5")
    assert alone.exit_code == 5
    assert {d["job_id"] for d in cli.json("list", "--local-only")} == {"ours", "on-hang", "on-fail", local}


def test_slow_clouds_are_asked_in_parallel(paths, cli, clouds):
    for n in range(1, 5):
        name = f"oj-slow{n}"
        clouds.BEHAVIOUR[name] = clouds.Behaviour(
            delay_s=2.0, clusters={"k": [clouds.job("1", "RUNNING", clouds.JobState.RUNNING, "k")]}
        )
        register(paths, f"slow-{n}", name, "k", "1")
    started = time.monotonic()
    docs = cli.json("list")
    took = time.monotonic() - started
    assert {d["state"] for d in docs} == {"running"} and len(docs) == 4
    assert took < 6, f"4 clouds of 2 s each took {took:.1f} s: they were not asked in parallel"


def test_cancel_on_a_cloud_checks_calls_and_verifies(paths, cli, clouds):
    JobState = clouds.JobState
    behaviour = clouds.Behaviour(cancel_lag_s=1.5, clusters={"c1": [
        clouds.job("5", "RUNNING", JobState.RUNNING, "c1"),
        clouds.job("6", "COMPLETED", JobState.SUCCEEDED, "c1", done=True),
    ]})  # fmt: skip
    clouds.BEHAVIOUR["oj-fake"] = behaviour
    register(paths, "runs", "oj-fake", "c1", "5")
    register(paths, "ended", "oj-fake", "c1", "6")

    result = cli("cancel", "runs", "--reason", "budget", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "completed" and doc["final_state"] == "cancelled"
    assert [s["name"] for s in doc["steps"]] == ["check_state", "launcher_cancel", "verify"]
    assert "CANCELLED" in doc["steps"][-1]["detail"]
    assert behaviour.cancelled == ["5"]
    assert cli.json("status", "runs")["state"] == "cancelled"

    finished = cli("cancel", "ended", "--json")
    assert finished.exit_code == 4 and json.loads(finished.stdout)["status"] == "not_needed"
    assert behaviour.cancelled == ["5"], "a finished job is not cancelled again"


def test_cancel_on_a_cloud_that_does_not_confirm_fails(paths, cli, clouds):
    clouds.BEHAVIOUR["oj-fake"] = clouds.Behaviour(
        cancel_lag_s=30, clusters={"c1": [clouds.job("5", "RUNNING", clouds.JobState.RUNNING, "c1")]}
    )
    register(paths, "stubborn", "oj-fake", "c1", "5")
    result = cli("cancel", "stubborn", "--timeout", "1", "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["status"] == "failed" and "still reports RUNNING" in doc["detail"]
    clouds.BEHAVIOUR["oj-hang"] = clouds.Behaviour(hang=True)
    register(paths, "unreachable", "oj-hang", "h", "1")
    assert cli("cancel", "unreachable", "--cloud-timeout", "1").exit_code == 5


def test_prune_asks_clouds_about_old_cloud_jobs(paths, cli, clouds):
    from datetime import timedelta

    from oumi_jobs.timestamps import now, to_iso

    JobState = clouds.JobState
    clouds.BEHAVIOUR["oj-fake"] = clouds.Behaviour(clusters={"c1": [
        clouds.job("1", "COMPLETED", JobState.SUCCEEDED, "c1", done=True),
        clouds.job("2", "RUNNING", JobState.RUNNING, "c1"),
    ]})  # fmt: skip
    clouds.BEHAVIOUR["oj-hang"] = clouds.Behaviour(hang=True)
    register(paths, "old-done", "oj-fake", "c1", "1")
    register(paths, "old-running", "oj-fake", "c1", "2")
    register(paths, "old-unreachable", "oj-hang", "h", "1")
    with Registry.open(paths) as registry:
        for job_id in ("old-done", "old-running", "old-unreachable"):
            registry.update(job_id, submit_time=to_iso(now() - timedelta(days=30)))
    result = cli.json("prune", "--cloud-timeout", "1")
    assert result["removed"] == ["old-done"] and result["kept_running"] == 2


def test_list_asks_a_named_cloud_and_all_clouds_on_request(paths, cli, clouds, monkeypatch):
    # SkyPilot clouds are asked too: point them at a closed loopback port so no
    # API server is auto-started by this test (tests/test_skypilot.py has a real one).
    monkeypatch.setenv("SKYPILOT_API_SERVER_ENDPOINT", f"http://127.0.0.1:{free_loopback_port()}")
    clouds.BEHAVIOUR["oj-fake"] = clouds.Behaviour(clusters={"c9": [
        clouds.job("7", "RUNNING", clouds.JobState.RUNNING, "c9", name="sbatch-job"),
    ]})  # fmt: skip
    clouds.BEHAVIOUR["oj-hang"] = clouds.Behaviour(hang=True)

    named = cli.json("list", "--cloud", "oj-fake")  # no job of ours there: asked anyway, for external jobs
    assert [(d["external"], d["launcher_job_id"]) for d in named] == [(True, "7")]
    assert cli("list", "--cloud", "no-such-cloud").exit_code == 2
    assert cli("list", "--all-clouds", "--cloud", "oj-fake").exit_code == 2
    assert cli("list", "--all-clouds", "--local-only").exit_code == 2

    result = cli("list", "--all-clouds", "--cloud-timeout", "3")
    assert result.exit_code == 0, result.stderr  # some clouds failing is not the user's one cloud failing
    rows = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "reachable" in rows["oj-fake"] and rows["oj-fake"].split()[2] == "1"
    assert "did not answer within 3 s" in rows["oj-hang"]
    assert "unreachable" in rows["gcp"] and "local" not in rows
    assert "sbatch-job" in result.stdout
