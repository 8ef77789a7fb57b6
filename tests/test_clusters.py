"""Clusters, stop/down, autostop and cost, against the real oumi.launcher and a controllable cloud that
every process sees (tests/file_cloud.py records the launcher options of each ``up`` and each stop/down).

Jobs "on a cluster" are either launched for real (a detached launching process, ``launcher.up``) or
written into the registry with the identity of a job the cloud reports, which is all a launch leaves.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest

from oumi_jobs.store.registry import Registry
from oumi_jobs.timestamps import now, to_iso

from .helpers import add_record, make_record, wait_until

ROOT = Path(__file__).resolve().parent.parent


def _ago(**delta: float) -> str:
    return to_iso(now() - timedelta(**delta))


def _cloud_jobs(file_cloud, **clusters: list[dict]) -> None:
    """Put jobs on the file cloud's clusters: each ``{"id", "status", ...}`` (RUNNING unless said)."""
    file_cloud.update(
        clusters={
            name: [{"name": "job", "status": "RUNNING", "final_status": "COMPLETED"} | job for job in jobs]
            for name, jobs in clusters.items()
        }
    )


def _ours(paths, job_id: str, cluster: str, launcher_id: str, **fields) -> str:
    """A job of ours as a launch leaves it: its cloud identity (and the launcher's price, if given)."""
    values = {"cloud": "oj-file", "cluster": cluster, "launcher_job_id": launcher_id, "started_at": _ago(minutes=5)}
    return add_record(paths, make_record(job_id, **(values | fields)))


def _events(paths) -> list[dict]:
    if not paths.event_log_file.exists():
        return []
    return [json.loads(line) for line in paths.event_log_file.read_text().splitlines()]


def test_autostop_and_down_reach_the_launcher_of_the_detached_launch(paths, cli, file_cloud, job_config):
    file_cloud.update(cost_per_hour=3.6)
    config = str(job_config("python train.py"))
    result = cli("submit", "-q", config, "--cloud", "oj-file", "--cluster", "fa", "--autostop", "90m", "--down")
    assert result.exit_code == 0, result.stderr
    job_id = result.stdout.strip()
    plain = cli("submit", "-q", config, "--cloud", "oj-file", "--cluster", "fb").stdout.strip()

    def launched() -> list | None:
        docs = {d["job_id"]: d for d in (cli.json("status", j) for j in (job_id, plain))}
        return docs if all(d["state"] == "running" for d in docs.values()) else None

    docs = wait_until(launched, timeout=120, interval=0.5)
    kwargs = file_cloud.read()["up_kwargs"]
    assert {"idle_minutes_to_autostop": 90, "down": True} in kwargs and {} in kwargs and len(kwargs) == 2
    # The launcher's price of the launch is kept, and the job's cost counted from its launch.
    assert docs[job_id]["cost_per_hour"] == 3.6
    assert 0 <= docs[job_id]["cost_so_far"] < 3.6  # well under an hour old
    with Registry.open(paths) as registry:
        assert registry.get(job_id).cost_per_hour == 3.6
    shown = cli("status", job_id, "--cloud-timeout", "10").stdout
    assert "$3.60/h" in shown and "estimate" in shown
    listed = cli("list", "--cloud-timeout", "10").stdout
    assert "COST (EST.)" in listed


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--autostop", "30m"], "local clusters are not stopped"),
        (["--cloud", "slurm", "--cluster", "me@host", "--down"], "slurm clusters are not stopped"),
        (["--cloud", "lambda", "--autostop", "30m"], "lambda cannot stop a cluster"),
        (["--cloud", "oj-file", "--autostop", "20s"], "at least 1m"),
        (["--cloud", "oj-file", "--autostop", "soon"], "invalid duration"),
    ],
)
def test_autostop_and_down_where_the_cloud_cannot_are_usage_errors(paths, cli, file_cloud, job_config, args, said):
    result = cli("submit", str(job_config("true")), *args)
    assert result.exit_code == 2 and said in result.stderr, result.stderr
    assert cli.json("list", "--local-only") == []  # nothing registered
    assert file_cloud.read()["up_kwargs"] == []


def test_clusters_lists_each_cluster_with_our_jobs_and_its_price(paths, cli, file_cloud):
    file_cloud.update(cost_per_hour=2.5)
    _cloud_jobs(file_cloud, c1=[{"id": "1"}, {"id": "2"}], c2=[{"id": "3", "status": "COMPLETED"}])
    running = _ours(paths, "ours-running", "c1", "1")
    _ours(paths, "ours-done", "c2", "3")
    launching = add_record(paths, make_record("ours-launching", cloud="oj-file", cluster="c1", supervisor_pid=None))
    rows = {row["cluster"]: row for row in cli.json("clusters", "--cloud-timeout", "10")}
    assert set(rows) == {"c1", "c2"}
    assert rows["c1"]["running_jobs"] == [running] and rows["c1"]["queued_jobs"] == [launching]
    assert rows["c2"]["running_jobs"] == [] and rows["c2"]["queued_jobs"] == []  # done jobs are not "on" it
    assert rows["c1"]["cost_per_hour"] == 2.5 and rows["c1"]["cloud"] == "oj-file"
    assert rows["c1"]["state"] is None and rows["c1"]["autostop_minutes"] is None  # the file cloud does not say
    human = cli("clusters")
    assert human.exit_code == 0 and "c1" in human.stdout and running in human.stdout and "$2.50" in human.stdout


def test_clusters_of_a_named_cloud_without_jobs_here_and_of_a_failing_one(paths, cli, file_cloud, clouds):
    _cloud_jobs(file_cloud, c7=[{"id": "1"}])
    assert [r["cluster"] for r in cli.json("clusters", "--cloud", "oj-file")] == ["c7"]
    clouds.BEHAVIOUR["oj-fail"] = clouds.Behaviour(error="the cloud refused")
    failing = cli("clusters", "--cloud", "oj-fail", "--json")
    assert failing.exit_code == 5 and "the cloud refused" in failing.stderr and json.loads(failing.stdout) == []
    assert cli("clusters", "--cloud", "no-such-cloud").exit_code == 2


@pytest.mark.parametrize("action", ["stop", "down"])
def test_stop_and_down_refuse_while_our_jobs_run_there(paths, cli, file_cloud, action):
    _cloud_jobs(file_cloud, c1=[{"id": "1"}])
    job_id = _ours(paths, "busy-job", "c1", "1")
    result = cli(action, "c1", "--cloud", "oj-file", "--yes")
    assert result.exit_code == 4 and job_id in result.stderr and "--cancel-jobs" in result.stderr
    assert file_cloud.read()["actions"] == [] and cli.json("cancellations") == []


def test_down_with_cancel_jobs_cancels_them_first_with_records_then_tears_down(paths, cli, file_cloud):
    _cloud_jobs(file_cloud, c1=[{"id": "1"}, {"id": "2"}])
    job_id = _ours(paths, "busy-job", "c1", "1")
    doc = cli.json("down", "c1", "--cloud", "oj-file", "--yes", "--cancel-jobs")
    assert doc["acted"] is True and doc["action"] == "down" and doc["cancelled_jobs"] == [job_id]
    state = file_cloud.read()
    assert state["cancelled"] == ["1"] and state["actions"] == [["down", "c1"]] and "c1" not in state["clusters"]
    (cancellation,) = cli.json("cancellations")
    assert cancellation["job_id"] == job_id and cancellation["status"] == "completed"
    assert cancellation["reason"] == "down of cluster c1"
    (event,) = [e for e in _events(paths) if e["event"] == "cluster_down"]
    assert (event["cluster"], event["acted"], event["cancelled_jobs"]) == ("c1", True, [job_id])


def test_stop_of_an_idle_cluster_and_of_a_missing_one(paths, cli, file_cloud):
    _cloud_jobs(file_cloud, c1=[{"id": "1", "status": "COMPLETED"}])
    _ours(paths, "done-job", "c1", "1")
    result = cli("stop", "c1", "--cloud", "oj-file", "--yes")
    assert result.exit_code == 0 and "stop" in result.stdout, result.stderr
    assert file_cloud.read()["actions"] == [["stop", "c1"]]
    missing = cli("down", "nope", "--cloud", "oj-file", "--yes")
    assert missing.exit_code == 3 and "no cluster 'nope'" in missing.stderr
    assert file_cloud.read()["actions"] == [["stop", "c1"]]


def test_without_a_terminal_and_without_yes_nothing_is_done(paths, cli, file_cloud):
    _cloud_jobs(file_cloud, c1=[])
    result = cli("down", "c1", "--cloud", "oj-file")  # CliRunner's stdin is not a terminal
    assert result.exit_code == 2 and "pass --yes" in result.stderr
    assert file_cloud.read()["actions"] == []


def _type_back_on_a_terminal(argv: list[str], env: dict[str, str], answer: str) -> tuple[int, str]:
    """Run ``argv`` on a new pseudo-terminal (stdin too), answer its prompt with ``answer``; (exit, output)."""
    master, slave = os.openpty()
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT)
    os.close(slave)
    seen = b""
    answered = False
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            if not answered and b"to confirm: " in seen:
                os.write(master, answer.encode() + b"\n")
                answered = True
            if process.poll() is not None and not ready:
                break
    finally:
        os.close(master)
        code = process.wait(timeout=60)
    return code, seen.decode(errors="replace")


def test_on_a_terminal_the_cluster_name_must_be_typed_back(paths, file_cloud, monkeypatch):
    _cloud_jobs(file_cloud, c9=[])
    env = dict(os.environ) | {"PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    argv = ["oumi-jobs", "down", "c9", "--cloud", "oj-file"]  # the installed entry point, importing this copy
    code, shown = _type_back_on_a_terminal(argv, env, "c8")
    assert "Type 'c9' to confirm: " in shown
    assert code == 1 and "nothing was done" in shown, shown
    assert file_cloud.read()["actions"] == []
    code, shown = _type_back_on_a_terminal(argv, env, "c9")
    assert code == 0, shown
    assert file_cloud.read()["actions"] == [["down", "c9"]]


def test_cancel_down_tears_the_cluster_down_only_when_no_other_job_of_ours_runs_there(paths, cli, file_cloud):
    _cloud_jobs(file_cloud, c1=[{"id": "1"}, {"id": "2"}], c2=[{"id": "3"}])
    first, second = _ours(paths, "first", "c1", "1"), _ours(paths, "second", "c1", "2")
    doc = cli.json("cancel", first, "--down")
    assert doc["status"] == "completed" and doc["down"] is None and second in doc["left_up"]
    assert file_cloud.read()["actions"] == []
    doc = cli.json("cancel", second, "--down")
    assert doc["status"] == "completed" and doc["left_up"] is None
    assert doc["down"]["acted"] is True and doc["down"]["cluster"] == "c1"
    assert file_cloud.read()["actions"] == [["down", "c1"]]
    local = add_record(paths, make_record("a-local-job"))
    result = cli("cancel", local, "--down")
    assert result.exit_code == 2 and "local job" in result.stderr
    assert cli("cancel", first, second, "--down").exit_code == 2


def test_cost_sums_by_cloud_cluster_and_day_with_null_where_no_price(paths, cli, file_cloud):
    ended = time.time() - 3600
    _cloud_jobs(
        file_cloud,
        c1=[{"id": "1", "ends_at": ended, "final_status": "COMPLETED"}],
        c2=[{"id": "2"}, {"id": "3"}],
        c3=[{"id": "4"}],
    )
    # 1: ran from 3 h ago to 1 h ago at 2.0/h = 4.0.  2: runs since 30 min at 4.0/h, about 2.0.  3, 4: no price.
    _ours(paths, "two-hours", "c1", "1", started_at=to_iso(now() - timedelta(hours=3)), cost_per_hour=2.0)
    _ours(paths, "running", "c2", "2", started_at=_ago(minutes=30), cost_per_hour=4.0)
    _ours(paths, "unpriced", "c2", "3", started_at=_ago(minutes=30))
    _ours(paths, "unpriced-alone", "c3", "4", started_at=_ago(minutes=30))
    _ours(paths, "long-ago", "c1", "9", submit_time=_ago(days=40), started_at=_ago(days=40), cost_per_hour=100.0)
    add_record(paths, make_record("local-job", started_at=_ago(minutes=5), end_time=_ago(minutes=1), exit_code=0))

    by_cluster = cli.json("cost", "--by", "cluster", "--cloud-timeout", "10")
    assert by_cluster["estimate"] is True and by_cluster["by"] == "cluster"
    groups = {g["group"]: g for g in by_cluster["groups"]}
    assert set(groups) == {"oj-file:c1", "oj-file:c2", "oj-file:c3"}  # 40 days ago is before the default 30d
    assert groups["oj-file:c1"] == {"group": "oj-file:c1", "jobs": 1, "priced_jobs": 1, "cost_so_far": 4.0}
    assert (groups["oj-file:c2"]["jobs"], groups["oj-file:c2"]["priced_jobs"]) == (2, 1)
    assert groups["oj-file:c2"]["cost_so_far"] == pytest.approx(2.0, abs=0.05)
    assert groups["oj-file:c3"]["cost_so_far"] is None and groups["oj-file:c3"]["priced_jobs"] == 0
    assert (by_cluster["jobs"], by_cluster["unpriced_jobs"]) == (4, 2)
    assert by_cluster["total_cost_so_far"] == pytest.approx(6.0, abs=0.05)

    by_cloud = cli.json("cost", "--cloud-timeout", "10")
    assert [g["group"] for g in by_cloud["groups"]] == ["oj-file"]
    assert by_cloud["groups"][0]["cost_so_far"] == pytest.approx(6.0, abs=0.05)
    by_day = cli.json("cost", "--by", "day", "--since", "60d", "--cloud-timeout", "10")
    assert sum(g["jobs"] for g in by_day["groups"]) == 5 and len(by_day["groups"]) >= 2  # today, and 40 days ago
    # The cloud no longer reports the job of 40 days ago: its end is unknown, so it is not counted up to now.
    assert by_day["unpriced_jobs"] == 3 and by_day["total_cost_so_far"] == pytest.approx(6.0, abs=0.05)
    assert cli("cost", "--by", "week").exit_code == 2
    human = cli("cost", "--by", "cluster", "--cloud-timeout", "10")
    assert human.exit_code == 0 and "oj-file:c1" in human.stdout and "$4.00" in human.stdout


def test_cost_with_no_cloud_job_sums_to_null_not_zero(paths, cli):
    add_record(paths, make_record("local-job", started_at=_ago(minutes=5), end_time=_ago(minutes=1), exit_code=0))
    doc = cli.json("cost")
    assert (doc["groups"], doc["jobs"], doc["unpriced_jobs"], doc["total_cost_so_far"]) == ([], 0, 0, None)
    assert doc["since"] is not None and doc["estimate"] is True
    assert "local-job" in cli("list").stdout and "COST" not in cli("list").stdout  # no price: no cost column
