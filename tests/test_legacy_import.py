"""Importing oumi.mcp's registry (``~/.oumi/mcp/oumi-jobs.json``), written by oumi's own ``JobRegistry``.

oumi.mcp is the predecessor that ships in oumi 0.9: its cloud jobs are known by
the launcher's id (numbered per cluster), it has no ``oumi_job_id``, and it
records a local job's ``log_dir``.  Importing ``oumi.mcp`` and the controllable
clouds (``oumi.launcher``) takes a while: these tests are slow.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from oumi_jobs.legacy import cloud_job_id
from oumi_jobs.store.registry import Registry
from oumi_jobs.timestamps import now, to_iso

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mcp():
    from oumi.mcp import job_registry  # oumi's own registry class: the files are byte for byte what oumi writes

    return job_registry


def _record(mcp, job_id: str, cloud: str, cluster: str = "", **extra):
    fields = {"command": "train", "config_path": "/c/train.yaml", "model_name": "SmolLM2-135M",
              "submit_time": to_iso(now() - timedelta(hours=1)), "output_dir": "./output"} | extra  # fmt: skip
    return mcp.JobRecord(job_id=job_id, cloud=cloud, cluster_name=cluster, **fields)


def _local_logs(folder: Path, job_id: str, out: str, err: str) -> None:
    """Log files named as oumi.mcp's start_local_job() names them: ``{timestamp}_{job_id}.stdout``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"2026_01_01_09_00_00_{job_id}.stdout").write_text("an older run\n")
    (folder / f"2026_01_02_10_00_00_{job_id}.stdout").write_text(out)
    (folder / f"2026_01_02_10_00_00_{job_id}.stderr").write_text(err)


def test_oumi_mcp_registry_imports_cloud_jobs_by_launcher_id_and_local_logs(paths, cli, tmp_path, mcp, clouds):
    mcp_home = tmp_path / ".oumi" / "mcp"
    file = mcp_home / "oumi-jobs.json"
    registry = mcp.JobRegistry(file)
    # A cloud job: after launcher.up oumi.mcp re-keys the record by the launcher's id.
    registry.add(_record(mcp, "7", "oj-fake", "c1"))
    # A local job that ended: oumi.mcp recorded its log_dir.
    finished_logs = tmp_path / "elsewhere" / "logs"
    registry.add(_record(mcp, "train_20260102_100000_abc123", "local", log_dir=str(finished_logs)))
    _local_logs(finished_logs, "train_20260102_100000_abc123", "loss 0.5\n", "warning: slow\n")
    # A local job still running when its registry was copied: no log_dir yet, its logs where oumi.mcp puts them.
    registry.add(_record(mcp, "eval_20260102_110000_def456", "local", command="evaluate"))
    _local_logs(mcp_home / "job-logs" / "eval_20260102_110000_def456", "eval_20260102_110000_def456", "acc 0.9\n", "")
    # A cloud launch that never returned a launcher id keeps the MCP's own id.
    registry.add(_record(mcp, "train_20260102_120000_0f0f0f", "oj-fake", "c1"))
    assert "oumi_job_id" not in json.loads(file.read_text())[0]  # the shape under test, as oumi wrote it

    clouds.BEHAVIOUR["oj-fake"] = clouds.Behaviour(
        clusters={"c1": [clouds.job("7", "RUNNING", clouds.JobState.RUNNING, "c1")]}
    )
    doc = cli.json("import-registry", str(file))
    cloud_id = cloud_job_id("oj-fake", "c1", "7")
    assert doc["imported"] == [
        cloud_id, "train_20260102_100000_abc123", "eval_20260102_110000_def456", "train_20260102_120000_0f0f0f",
    ]  # fmt: skip
    assert doc["skipped"] == []

    cloud = cli.json("status", cloud_id)
    assert (cloud["state"], cloud["launcher_job_id"], cloud["cluster"]) == ("running", "7", "c1")
    assert cli("logs", "train_20260102_100000_abc123").stdout == "loss 0.5\n"  # the newest run's, not the older
    assert cli("logs", "--stderr", "train_20260102_100000_abc123").stdout == "warning: slow\n"
    assert cli("logs", "eval_20260102_110000_def456").stdout == "acc 0.9\n"
    never_launched = cli.json("status", "train_20260102_120000_0f0f0f")
    assert never_launched["state"] == "unknown" and never_launched["launcher_job_id"] is None
    assert "without a launcher job id" in never_launched["detail"]

    again = cli.json("import-registry", str(file))
    assert again["imported"] == [] and len(again["already_present"]) == 4


def test_job_1_of_two_clusters_stays_two_jobs(paths, cli, tmp_path, mcp, clouds):
    """oumi.mcp keys its records by job_id, so cluster c2's job 1 replaces c1's in its file; we keep both."""
    file = tmp_path / "oumi-jobs.json"
    mcp.JobRegistry(file).add(_record(mcp, "1", "oj-fake", "c1"))
    first = cli.json("import-registry", str(file))
    mcp.JobRegistry(file).add(_record(mcp, "1", "oj-fake", "c2"))
    assert [e["cluster_name"] for e in json.loads(file.read_text())] == ["c2"]  # c1's job 1 is gone from it
    second = cli.json("import-registry", str(file))
    assert first["imported"] != second["imported"]

    # A file listing both (oumi's own format allows it) imports both too, and nothing twice.
    both = json.loads(file.read_text())
    both.insert(0, both[0] | {"cluster_name": "c1"})
    file.write_text(json.dumps(both))
    third = cli.json("import-registry", str(file))
    assert third["imported"] == [] and sorted(third["already_present"]) == sorted(
        first["imported"] + second["imported"]
    )

    clouds.BEHAVIOUR["oj-fake"] = clouds.Behaviour(clusters={
        "c1": [clouds.job("1", "SUCCEEDED", clouds.JobState.SUCCEEDED, "c1", done=True)],
        "c2": [clouds.job("1", "RUNNING", clouds.JobState.RUNNING, "c2")],
    })  # fmt: skip
    with Registry.open(paths) as registry:
        jobs = {(r.cluster, r.launcher_job_id): r.job_id for r in registry.jobs()}
    assert set(jobs) == {("c1", "1"), ("c2", "1")}
    assert cli.json("status", jobs[("c1", "1")])["state"] == "succeeded"
    assert cli.json("status", jobs[("c2", "1")])["state"] == "running"


def test_a_cloud_job_imported_from_the_job_server_is_not_imported_again_from_oumi_mcp(paths, cli, tmp_path, mcp):
    """The same launcher job in both predecessors' files is one job (matched by cloud, cluster and launcher id)."""
    server_file = tmp_path / "server.json"
    server_file.write_text(json.dumps([{
        "job_id": "train_server_1", "command": "train", "config_path": "/c/t.yaml", "cloud": "gcp",
        "cluster_name": "sky-1", "oumi_job_id": "3", "model_name": "m", "submit_time": to_iso(now()),
        "output_dir": "",
    }]))  # fmt: skip
    assert cli.json("import-registry", str(server_file))["imported"] == ["train_server_1"]
    mcp_file = tmp_path / "oumi-jobs.json"
    mcp.JobRegistry(mcp_file).add(_record(mcp, "3", "gcp", "sky-1"))
    doc = cli.json("import-registry", str(mcp_file))
    assert doc["imported"] == []
    with Registry.open(paths) as registry:
        assert [r.job_id for r in registry.jobs()] == ["train_server_1"]


@pytest.mark.parametrize(
    ("cloud", "cluster", "launcher_id"),
    [("slurm", "me@login.hpc", "4242"), ("gcp", None, "1")],
)
def test_cloud_job_ids_are_safe_and_distinct(cloud, cluster, launcher_id):
    job_id = cloud_job_id(cloud, cluster, launcher_id)
    assert "/" not in job_id and "@" not in job_id and launcher_id in job_id
    assert cloud_job_id(cloud, cluster, launcher_id) == job_id  # the same identity, the same id: idempotent
    assert cloud_job_id(cloud, "me-login.hpc", launcher_id) != cloud_job_id(cloud, "me@login.hpc", launcher_id)
