"""Cloud jobs end to end on a real Slurm cluster reached over ``ssh root@localhost``.

The ``slurm`` fixture (conftest.py) gives the cluster.  Start it with
``sudo ../shared/slurm/slurm-loopback.sh`` (``.ci/run`` does); without it
these tests skip, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import json
import os
import subprocess

from .helpers import submit_id, wait_until

CLUSTER = "root@localhost"
# Every process that did not itself call launcher.up needs this to find the cluster.
os.environ.setdefault("OUMI_SLURM_CONNECTIONS", CLUSTER)


def submit(cli, tmp_path, run: str) -> str:
    config = tmp_path / "slurm-job.yaml"
    config.write_text("run: |\n" + "".join(f"  {line}\n" for line in run.splitlines()) + "resources:\n  cloud: slurm\n")
    return submit_id(cli, str(config), "--cluster", CLUSTER)


def status(cli, job_id: str) -> dict:
    return cli.json("status", job_id, "--cloud-timeout", "60")


def test_submit_run_cancel_on_slurm(slurm, paths, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job_id = submit(cli, tmp_path, "echo started\nsleep 600")
    running = wait_until(lambda: (d := status(cli, job_id))["state"] == "running" and d, timeout=180, interval=1)
    assert running["cloud"] == "slurm" and running["cluster"] == CLUSTER and running["launcher_job_id"]

    result = cli("cancel", job_id, "--reason", "end to end", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "completed" and doc["final_state"] == "cancelled"
    assert [s["name"] for s in doc["steps"]] == ["check_state", "launcher_cancel", "verify"]
    # oumi 0.9 reads Slurm's "CANCELLED by 0" as PENDING; we read the status string.
    after = status(cli, job_id)
    assert after["state"] == "cancelled" and after["status"].startswith("CANCELLED")
    assert [c["job_id"] for c in cli.json("cancellations")] == [job_id]


def test_short_job_succeeds_and_its_log_is_read(slurm, paths, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job_id = submit(cli, tmp_path, "echo the-slurm-job-ran")
    done = wait_until(lambda: (d := status(cli, job_id))["done"] and d, timeout=180, interval=1)
    assert done["state"] == "succeeded", done
    logs = cli("logs", job_id)
    assert logs.exit_code == 0 and "the-slurm-job-ran" in logs.stdout


def test_list_shows_a_plain_sbatch_job_as_external(slurm, paths, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mine = submit(cli, tmp_path, "sleep 600")
    wait_until(lambda: status(cli, mine)["launcher_job_id"], timeout=180, interval=1)
    sbatch = subprocess.run(["sbatch", "--parsable", "--wrap", "sleep 600", "-o", "/dev/null"],
                            capture_output=True, text=True, check=True)  # fmt: skip
    outside = sbatch.stdout.strip().split(";")[0]
    try:

        def listed() -> dict | None:
            docs = cli.json("list", "--cloud-timeout", "60")
            return next((d for d in docs if d["launcher_job_id"] == outside), None)

        external = wait_until(listed, timeout=60, interval=1)  # sacct lists a new job after a few seconds
        assert external["external"] is True and external["job_id"] is None and external["cloud"] == "slurm"
        assert any(d["job_id"] == mine for d in cli.json("list", "--cloud-timeout", "60"))
    finally:
        subprocess.run(["scancel", outside], check=False)
        assert cli("cancel", mine, "--force").exit_code in (0, 4)


def test_stop_and_down_say_that_slurm_does_nothing_for_them(slurm):
    """oumi's Slurm cluster has no stop or down: the adapter says so rather than report a stopped cluster."""
    from oumi_jobs.cloud.oumi_adapter import OumiAdapter

    seam = OumiAdapter()
    for outcome in (seam.stop("slurm", CLUSTER, timeout_s=60), seam.down("slurm", CLUSTER, timeout_s=60)):
        assert (outcome.cluster, outcome.acted) == (CLUSTER, False) and "does nothing" in outcome.detail
    assert CLUSTER in [c.name for c in seam.list_clusters("slurm", timeout_s=60)]
