"""A cloud job whose cluster is gone ends ``lost`` (cancel says so, prune removes it), and ``cancel
--cloud-timeout`` bounds the cancellation's calls to its cloud: the real oumi.launcher, controllable clouds."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from oumi_jobs.cloud import facts
from oumi_jobs.store.registry import Registry
from oumi_jobs.timestamps import now, to_iso

from .helpers import add_record, make_record


@pytest.fixture
def clouds():
    from . import fake_clouds  # imports oumi.launcher (once per test process)

    fake_clouds.BEHAVIOUR.clear()
    yield fake_clouds
    fake_clouds.BEHAVIOUR.clear()


def register(paths, job_id: str, cluster: str, launcher_id: str, *, days_old: int = 0) -> None:
    add_record(paths, make_record(job_id, cloud="oj-fake", cluster=cluster, launcher_job_id=launcher_id))
    if days_old:
        with Registry.open(paths) as registry:
            registry.update(job_id, submit_time=to_iso(now() - timedelta(days=days_old)))


def test_a_job_whose_cluster_is_gone_is_lost_not_unknown_forever(paths, cli, clouds):
    running = clouds.job("2", "RUNNING", clouds.JobState.RUNNING, "alive")
    clouds.BEHAVIOUR["oj-fake"] = clouds.Behaviour(clusters={"alive": [running]})  # "torn-down" is no more
    register(paths, "gone", "torn-down", "1", days_old=30)
    register(paths, "forgotten", "alive", "99", days_old=30)  # its cluster lives but does not report it

    status = cli.json("status", "gone")
    assert status["state"] == "lost" and status["done"] is True
    assert "cluster torn-down of oj-fake no longer exists" in status["detail"]
    forgotten = cli.json("status", "forgotten")
    assert forgotten["state"] == "unknown"  # not confirmed gone: kept as unknown

    cancel = cli("cancel", "gone", "--json")
    assert cancel.exit_code == 4  # nothing to cancel, every time: not a cloud error (5)
    doc = json.loads(cancel.stdout)
    assert doc["status"] == "not_needed" and doc["final_state"] == "lost"

    pruned = cli.json("prune", "--cloud-timeout", "5")
    assert pruned["removed"] == ["gone"] and pruned["kept_running"] == 1


def test_a_missing_cluster_of_a_slurm_like_cloud_is_not_taken_for_gone():
    # Slurm clusters are found through this process's connection settings: missing is not gone.
    assert not facts.missing_cluster_is_gone("slurm") and not facts.missing_cluster_is_gone("local")
    assert facts.missing_cluster_is_gone("gcp") and facts.missing_cluster_is_gone("oj-fake")


def test_cancel_cloud_timeout_bounds_the_launcher_cancel(paths, cli, clouds):
    running = clouds.job("5", "RUNNING", clouds.JobState.RUNNING, "c1")
    clouds.BEHAVIOUR["oj-fake"] = clouds.Behaviour(cancel_hangs=True, clusters={"c1": [running]})
    register(paths, "hangs", "c1", "5")
    result = cli("cancel", "hangs", "--cloud-timeout", "1", "--timeout", "300", "--json")
    doc = json.loads(result.stdout)
    assert result.exit_code == 1 and doc["status"] == "failed"
    step = next(s for s in doc["steps"] if s["name"] == "launcher_cancel")
    assert step["status"] == "failed" and "within 1 s" in step["detail"]
    assert doc["duration_s"] < 120  # bounded by --cloud-timeout, far below the 300 s --timeout
