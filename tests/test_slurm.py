"""Cloud jobs end to end on a real Slurm cluster reached over ``ssh root@localhost``.

The ``slurm`` fixture (conftest.py) gives the cluster.  Start it with
``sudo ../shared/slurm/slurm-loopback.sh`` (``.ci/run`` does); without it
these tests skip, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from oumi_jobs import api

from .helpers import add_record, make_record, submit_id, wait_until

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


def test_wait_exits_0_for_a_job_that_succeeds_and_4_for_one_cancelled(slurm, paths, cli):
    # Jobs registered as import-registry registers them: wait reads Slurm, with no launching process to wait for.
    short, long = _sbatch("echo short"), _sbatch("sleep 600")
    for launcher_id in (short, long):
        add_record(paths, make_record(f"sb-{launcher_id}", cloud="slurm", cluster=CLUSTER, launcher_job_id=launcher_id))
    try:
        result = cli("wait", f"sb-{short}", "--timeout", "3m", "--json")
        assert result.exit_code == 0, result.stderr
        [doc] = json.loads(result.stdout)
        assert (doc["state"], doc["launcher_job_id"], doc["cloud"]) == ("succeeded", short, "slurm")

        wait_until(lambda: status(cli, f"sb-{long}")["state"] == "running", timeout=60, interval=1)
        with ThreadPoolExecutor(1) as pool:  # the library's wait, while the command line cancels the job
            waiting = pool.submit(api.wait_for_jobs, paths, [f"sb-{long}"], 120)
            time.sleep(2)
            assert not waiting.done(), "it waits for the running job"
            assert cli("cancel", f"sb-{long}").exit_code == 0
            waited = waiting.result(timeout=150)
        assert [v.state.value for v in waited.views] == ["cancelled"] and api.wait_exit_code(waited) == 4
        assert cli("wait", f"sb-{short}", f"sb-{long}").exit_code == 4  # one succeeded, one cancelled: 4
    finally:
        subprocess.run(["scancel", long], check=False)


def _sbatch(command: str) -> str:
    """A job submitted with plain sbatch, not through oumi-jobs; its Slurm id.  Its output goes where oumi's
    Slurm client reads a job's log (``~/oumi_slurm_logs/<id>.out`` on the cluster, here this machine)."""
    logs = os.path.expanduser("~/oumi_slurm_logs")
    os.makedirs(logs, exist_ok=True)
    done = subprocess.run(["sbatch", "--parsable", "-o", f"{logs}/%j.out", "--wrap", command],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout.strip().split(";")[0]


def _by_identity(launcher_id: str) -> list[str]:
    return ["--cloud", "slurm", "--cluster", CLUSTER, "--launcher-id", launcher_id, "--cloud-timeout", "60"]


def test_cancel_and_logs_of_a_plain_sbatch_job_by_its_identity(slurm, paths, cli):
    outside = _sbatch("echo the-sbatch-job-ran; sleep 600")
    try:
        # sacct lists a new job after a few seconds: until then its identity is unknown (exit 3)
        wait_until(lambda: cli("status", *_by_identity(outside)).exit_code == 0, timeout=60, interval=1)
        result = cli("cancel", *_by_identity(outside), "--reason", "launched elsewhere", "--json")
        assert result.exit_code == 0, result.stderr
        doc = json.loads(result.stdout)
        assert doc["status"] == "completed" and doc["final_state"] == "cancelled" and doc["job_id"]
        assert [s["name"] for s in doc["steps"]] == ["check_state", "launcher_cancel", "verify"]
        adopted = status(cli, doc["job_id"])
        assert (adopted["external"], adopted["launcher_job_id"], adopted["state"]) == (True, outside, "cancelled")
        again = cli("cancel", *_by_identity(outside), "--json")
        assert again.exit_code == 4 and json.loads(again.stdout)["status"] == "not_needed"
        assert [c["job_id"] for c in cli.json("cancellations")] == [doc["job_id"]] * 2
    finally:
        subprocess.run(["scancel", outside], check=False)

    short = _sbatch("echo the-short-sbatch-job-ran")
    try:
        wait_until(lambda: cli.json("status", *_by_identity(short))["done"], timeout=120, interval=1)
        logs = cli("logs", *_by_identity(short), "--json")
        assert logs.exit_code == 0, logs.stderr
        log = json.loads(logs.stdout)
        assert "the-short-sbatch-job-ran" in log["text"] and log["job_id"] is None  # read, not registered
    finally:
        subprocess.run(["scancel", short], check=False)
    unknown = cli("cancel", "--cloud", "slurm", "--cluster", CLUSTER, "--launcher-id", "987654321")
    assert unknown.exit_code == 3, unknown.stderr


def test_status_cancel_and_list_of_slurm_jobs_through_the_server(slurm, server_on, tmp_path):
    """The warm path on a real cluster: each command a new process, the launcher imported once, in the server."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "oumi_jobs", *args], capture_output=True, text=True,
                              timeout=300, cwd=tmp_path)  # fmt: skip

    config = tmp_path / "slurm-job.yaml"
    config.write_text("run: sleep 600\nresources:\n  cloud: slurm\n")
    job_id = run("submit", "-q", str(config), "--cluster", CLUSTER).stdout.strip()
    outside = _sbatch("sleep 600")
    try:
        running = wait_until(
            lambda: (d := json.loads(run("status", job_id, "--json").stdout))["state"] == "running" and d,
            timeout=180, interval=1,
        )  # fmt: skip
        assert running["launcher_job_id"]

        def external() -> dict | None:
            docs = json.loads(run("list", "--all-clouds", "--json", "--cloud-timeout", "60").stdout)
            return next((d for d in docs if d["launcher_job_id"] == outside), None)

        found = wait_until(external, timeout=90, interval=1)  # sacct lists a new job after a few seconds
        assert found["external"] is True and found["cloud"] == "slurm"
        cancelled = run("cancel", job_id, "--json")
        doc = json.loads(cancelled.stdout)
        assert cancelled.returncode == 0 and doc["status"] == "completed" and doc["final_state"] == "cancelled"
        server = json.loads(run("server", "status", "--json").stdout)
        assert "slurm" in server["clouds_loaded"] and server["requests_served"] >= 5
    finally:
        subprocess.run(["scancel", outside], check=False)


def test_clusters_lists_the_slurm_cluster_with_our_job_and_down_is_a_no_op(slurm, paths, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job_id = submit(cli, tmp_path, "sleep 600")
    try:
        wait_until(lambda: status(cli, job_id)["state"] == "running", timeout=180, interval=1)

        def listed() -> dict | None:  # Slurm's accounting lists a new job a few seconds after it runs
            rows = [r for r in cli.json("clusters", "--cloud-timeout", "60") if r["cluster"] == CLUSTER]
            return rows[0] if len(rows) == 1 and rows[0]["running_jobs"] else None

        row = wait_until(listed, timeout=60, interval=1)
        assert row["cloud"] == "slurm" and row["running_jobs"] == [job_id] and row["queued_jobs"] == []

        refused = cli("down", CLUSTER, "--cloud", "slurm", "--yes", "--cloud-timeout", "60")
        assert refused.exit_code == 4 and job_id in refused.stderr  # our job runs there
    finally:
        assert cli("cancel", job_id, "--force").exit_code in (0, 4)
    doc = cli.json("down", CLUSTER, "--cloud", "slurm", "--yes", "--cloud-timeout", "60")
    assert doc["acted"] is False and "does nothing" in doc["detail"]  # never reported as torn down
    human = cli("down", CLUSTER, "--cloud", "slurm", "--yes", "--cloud-timeout", "60")
    assert human.exit_code == 0 and "did nothing" in human.stdout
    assert status(cli, job_id)["state"] == "cancelled"


def _sweep(cli, tmp_path, run: str, *options: str) -> dict:
    config = tmp_path / "slurm-sweep.yaml"
    config.write_text(
        "run: |\n" + "".join(f"  {line}\n" for line in run.splitlines())
        + "envs:\n  N: 0\nresources:\n  cloud: slurm\n"
    )  # fmt: skip
    result = cli("sweep", str(config), "--cluster", CLUSTER, "--set", "envs.N=1,2,3", *options, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_a_sweep_runs_its_children_as_slurm_jobs_and_a_cancelled_one_leaves_none(
    slurm, paths, cli, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    swept = _sweep(cli, tmp_path, "echo value-$N", "--parallel", "2", "--name", "slurm-ok")
    waited = cli("wait", swept["sweep_id"], "--cloud-timeout", "60", "--timeout", "600")
    if waited.exit_code != 0:  # name each child's state, status and detail
        children = cli.json("status", swept["sweep_id"], "--cloud-timeout", "60")["children"]
        read = [(c["job_id"], c["state"], c["status"], c["detail"], c["failure"]) for c in children]
        raise AssertionError(f"wait exited {waited.exit_code}: {waited.stdout} {waited.stderr} {read}")
    # A sweep's status lists its cluster's jobs: a job that has just ended may be missing from that listing,
    # and is then asked of the cluster alone, as `wait` asked it, instead of being read `unknown`.
    done = cli.json("status", swept["sweep_id"], "--cloud-timeout", "60")
    assert done["counts"] == {"succeeded": 3}, [(c["state"], c["detail"]) for c in done["children"]]
    assert cli.json("sweeps")[0]["counts"] == {"succeeded": 3}
    assert {c["cloud"] for c in done["children"]} == {"slurm"}
    assert len({c["launcher_job_id"] for c in done["children"]}) == 3  # three Slurm jobs
    for child, n in zip(done["children"], (1, 2, 3), strict=True):
        assert f"value-{n}" in cli("logs", child["job_id"]).stdout  # each saw its own value

    held = _sweep(cli, tmp_path, "sleep 600", "--name", "slurm-cancel", "--parallel", "3")

    def launched() -> dict | None:
        d = cli.json("status", held["sweep_id"], "--cloud-timeout", "60")
        return d if all(c["launcher_job_id"] or c["done"] for c in d["children"]) else None

    try:
        found = wait_until(launched, timeout=300, interval=1)
    finally:  # never leave a Slurm job behind, whatever failed
        result = cli("cancel", held["sweep_id"], "--json")
    assert result.exit_code == 0, result.stderr
    ids = [c["launcher_job_id"] for c in found["children"] if c["launcher_job_id"]]
    assert len(ids) == 3, found["children"]
    assert {c["final_state"] for c in json.loads(result.stdout)["cancellations"]} == {"cancelled"}
    queued = subprocess.run(["squeue", "-h", "-j", ",".join(ids), "-o", "%i %T"], capture_output=True, text=True)
    assert not [line for line in queued.stdout.splitlines() if "RUNNING" in line or "PENDING" in line], queued.stdout


def test_a_slurm_job_past_its_max_duration_is_stopped_by_the_servers_watch(
    slurm, server_on, cli, tmp_path, monkeypatch
):
    """Nobody runs `status` while it runs: the warm server watches the job, cancels it past its 10 s and it reads
    failed, over_time, with the guard's event; Slurm has no job of it left."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "slurm-job.yaml"
    config.write_text("run: sleep 300\nresources:\n  cloud: slurm\n")
    job_id = submit_id(cli, str(config), "--cluster", CLUSTER, "--max-duration", "10s")

    def guarded() -> list[dict]:
        return [e for e in cli.json("events", job_id) if e["kind"] == "guard"]

    [event] = wait_until(guarded, timeout=240, interval=2)  # the events are the registry's: no cloud is asked
    assert (event["guard"], event["limit"], event["action"], event["attempt"]) == ("max_duration", 10.0, "stop", 1)
    final = wait_until(lambda: (d := status(cli, job_id))["done"] and d, timeout=120, interval=1)
    assert final["state"] == "failed" and final["failure"]["class"] == "over_time", final
    assert final["status"].startswith("CANCELLED")  # what Slurm says; the guard's failure says why

    def cancelled() -> dict | None:
        [cancel] = [c for c in cli.json("cancellations") if c["job_id"] == job_id]
        return cancel if cancel["status"] != "in_progress" else None  # verified in the server's thread

    cancel = wait_until(cancelled, timeout=60, interval=1)
    assert cancel["reason"].startswith("guard: over_time:") and cancel["status"] == "completed", cancel
    queued = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True).stdout.split()
    assert final["launcher_job_id"] not in queued
    listed = next(d for d in cli.json("list", "--cloud-timeout", "60") if d["job_id"] == job_id)
    assert (listed["state"], listed["failure"]["class"]) == ("failed", "over_time")  # the listing agrees
