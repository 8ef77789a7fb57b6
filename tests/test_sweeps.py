"""Sweeps of real local jobs: the grid, --zip, --values, refusals, the --parallel limit, wait and cancel."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import pytest

from oumi_jobs.local.procs import is_alive
from oumi_jobs.store.registry import Registry
from oumi_jobs.store.sweeps import SweepRecord
from oumi_jobs.timestamps import now_iso

from .helpers import hermetic, make_record, train_config, wait_until
from .test_queues import intervals, max_overlap
from .test_server_rest import rest_server  # noqa: F401 (the fixture)

TRAIN_STEPS = 12  # each real training child's steps


def sweep_id_of(cli, *args: str) -> str:
    result = cli("sweep", *args, "-q")
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def registered(paths) -> tuple[int, int]:
    """How many jobs and sweeps the registry holds."""
    if not paths.registry_file.exists():
        return 0, 0
    with Registry.open(paths) as registry:
        return len(registry.jobs()), len(registry.sweeps())


def test_a_grid_of_a_job_config_runs_each_child_with_its_values_within_the_parallel_limit(
    cli, paths, job_config, tmp_path
):
    timeline, seen = tmp_path / "timeline", tmp_path / "seen"
    config = job_config(
        f"""
        echo "c-$LR-$SEED start $(date +%s%N)" >> "{timeline}"
        echo "$LR $SEED" >> "{seen}"
        sleep 0.3
        echo "c-$LR-$SEED end $(date +%s%N)" >> "{timeline}"
        """,
        envs={"LR": "0", "SEED": 0},
    )
    sweep_id = sweep_id_of(
        cli, str(config), "--set", "envs.LR=1e-5,3e-5,1e-4", "--set", "envs.SEED=1,2",
        "--parallel", "2", "--cluster", "sw", "--name", "grid",
    )  # fmt: skip
    assert sweep_id == "sw-grid"
    waited = cli("wait", sweep_id, "--json")
    assert waited.exit_code == 0, waited.output
    children = json.loads(waited.stdout)
    assert [c["job_id"] for c in children] == [f"grid-{i:04d}" for i in range(6)]
    assert {c["state"] for c in children} == {"succeeded"}
    assert children[0]["sweep_id"] == sweep_id and children[0]["overrides"] == {"envs.LR": 1e-05, "envs.SEED": 1}
    assert sorted(seen.read_text().splitlines()) == sorted(
        f"{lr} {seed}" for lr in ("1e-05", "3e-05", "0.0001") for seed in (1, 2)
    )
    spans = intervals(timeline)
    assert len(spans) == 6 and max_overlap(list(spans.values())) <= 2  # the children's own start and end times
    status = cli.json("status", "sw-gr")  # a unique prefix
    assert status["counts"] == {"succeeded": 6} and status["done"] is True and status["size"] == 6
    assert [c["job_id"] for c in cli.json("list", "--sweep", sweep_id)] == [f"grid-{i:04d}" for i in range(6)]
    assert cli.json("sweeps")[0]["sweep_id"] == sweep_id
    staged = Path(status["children"][0]["config_path"]).read_text()
    again = cli("sweep", str(config), "--set", "envs.LR=5", "--name", "grid")  # the name is taken: exit 4
    assert again.exit_code == 4 and "already exists" in again.stderr
    assert Path(status["children"][0]["config_path"]).read_text() == staged  # the first sweep's files kept


def test_zip_and_values_file_pair_values_and_a_task_child_gets_oumi_overrides(cli, paths, job_config, tmp_path):
    config = job_config("true", envs={"A": 1, "B": 2})
    zipped = cli.json("sweep", str(config), "--set", "envs.A=1,2,3", "--set", "envs.B=x,y,z", "--zip")
    assert [c["overrides"] for c in zipped["children"]] == [
        {"envs.A": 1, "envs.B": "x"}, {"envs.A": 2, "envs.B": "y"}, {"envs.A": 3, "envs.B": "z"},
    ]  # fmt: skip
    values = tmp_path / "values.yaml"
    values.write_text("- {envs.A: 7}\n- {envs.A: 8, envs.B: true}\n")
    from_file = cli.json("sweep", str(config), "--values", str(values))
    assert [c["overrides"] for c in from_file["children"]] == [{"envs.A": 7}, {"envs.A": 8, "envs.B": True}]
    staged = Path(from_file["children"][1]["config_path"])
    assert "A: 8" in staged.read_text() and staged != config  # a staged copy with the values written in
    task = tmp_path / "train.yaml"
    task.write_text("model: {model_name: tiny}\ntraining: {learning_rate: 0.1, output_dir: out}\n")
    with Registry.open(paths) as registry:
        registry.set_parallel("never", 1)
    hold = job_config("sleep 30")
    cli("submit", str(hold), "--cluster", "never")  # holds the only slot: the task children never start
    swept = cli.json("sweep", str(task), "--set", "training.learning_rate=1e-5,2e-5", "--cluster", "never")
    with Registry.open(paths) as registry:
        child = registry.get(swept["children"][0]["job_id"])
    assert child is not None and child.argv[-4:] == (
        "--training.learning_rate", "1e-05", "--training.output_dir", f"out/{child.job_id}",
    )  # fmt: skip
    assert swept["children"][1]["output_dir"] == f"out/{swept['children'][1]['job_id']}"
    assert cli("cancel", swept["sweep_id"]).exit_code == 0


@pytest.mark.parametrize(
    "args, words",
    [
        (["--set", "envs.LR=1,2", "--set", "nope.x=1"], "has no nope.x"),
        (["--set", "envs.LR=1,2", "--set", "envs.B=1,2,3", "--zip"], "--zip"),
        (
            [f"--set=envs.A={','.join(map(str, range(101)))}", f"--set=envs.B={','.join(map(str, range(100)))}"],
            "at most 10000",
        ),  # fmt: skip
        (["--set", "envs.LR=1,,2"], "empty value"),
        (["--set", "envs.LR"], "PATH=V1"),
        ([], "--set PATH"),
        (["--set", "envs.LR=1,2", "--autostop", "30m"], "local clusters are not stopped"),  # as submit's
    ],
)
def test_each_refusal_exits_2_with_one_line_and_registers_nothing(cli, paths, job_config, args, words):
    config = job_config("true", envs={"LR": 1})
    result = cli("sweep", str(config), *args, "--cluster", "refused")
    assert result.exit_code == 2, result.output
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert registered(paths) == (0, 0)


def test_an_empty_values_file_is_refused(cli, paths, job_config, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("[]\n")
    result = cli("sweep", str(job_config("true")), "--values", str(values))
    assert result.exit_code == 2 and "no children" in result.stderr
    assert registered(paths) == (0, 0)


def test_cancel_sweep_cancels_running_and_pending_children_and_leaves_no_process(cli, paths, job_config):
    config = job_config("sleep 60", envs={"N": 0})
    sweep_id = sweep_id_of(cli, str(config), "--set", f"envs.N={','.join(map(str, range(8)))}", "--parallel", "2",
                           "--cluster", "cancelme")  # fmt: skip

    def running() -> list[dict]:
        return [c for c in cli.json("status", sweep_id)["children"] if c["state"] == "running"]

    wait_until(lambda: len(running()) == 2)
    status = cli.json("status", sweep_id)
    assert status["counts"] == {"running": 2, "pending": 6}
    result = cli("cancel", sweep_id, "--json")
    assert result.exit_code == 0, result.output
    cancelled = json.loads(result.stdout)
    assert len(cancelled["cancelled_before_start"]) == 6 and len(cancelled["cancellations"]) == 2
    assert all(c["status"] == "completed" and c["survivors"] == [] for c in cancelled["cancellations"])
    after = cli.json("status", sweep_id)
    assert after["counts"] == {"cancelled": 8} and after["done"] is True
    with Registry.open(paths) as registry:
        records = registry.jobs(sweep=sweep_id)
    assert not any(is_alive(r.pid, r.process_start_time, r.boot_id) for r in records)
    wait_until(lambda: not any(is_alive(r.supervisor_pid, r.supervisor_start_time, r.boot_id) for r in records))
    assert cli("cancel", sweep_id).exit_code == 4  # every child is done: nothing to cancel


def test_a_sweep_never_has_more_processes_than_its_parallel_slots(cli, paths, job_config):
    config = job_config("sleep 0.2", envs={"N": 0})
    sweep_id = sweep_id_of(cli, str(config), "--set", f"envs.N={','.join(map(str, range(12)))}",
                           "--cluster", "one")  # fmt: skip
    peak = 0

    def count() -> bool:
        nonlocal peak
        with Registry.open(paths) as registry:
            records = registry.jobs(sweep=sweep_id)
        alive = sum(is_alive(r.supervisor_pid, r.supervisor_start_time, r.boot_id) for r in records
                    if r.supervisor_pid != os.getpid())  # fmt: skip
        peak = max(peak, alive)
        return all(r.end_time for r in records)

    wait_until(count, timeout=30)
    assert 1 <= peak <= 2  # one running, and at most the next one being handed its slot
    assert cli.json("status", sweep_id)["counts"] == {"succeeded": 12}


def test_a_sweep_over_rest_is_submitted_read_and_cancelled(rest_server, cli, job_config, tmp_path):  # noqa: F811
    config = job_config("sleep 60", envs={"N": 0})
    with rest_server.unix() as client:
        body = {"config": config.name, "cwd": str(tmp_path), "sets": ["envs.N=1,2,3"], "name": "rest",
                "cluster": "rest"}  # fmt: skip
        answer = client.post("/api/sweeps", json=body)
        assert answer.status_code == 201, answer.text
        assert answer.headers["location"] == "/api/sweeps/sw-rest" and answer.json()["size"] == 3
        assert client.post("/api/sweeps", json=body | {"name": "other", "sets": ["nope.x=1"]}).status_code == 400
        assert [s["sweep_id"] for s in client.get("/api/sweeps").json()] == ["sw-rest"]
        wait_until(lambda: client.get("/api/sweeps/sw-re").json()["counts"].get("running") == 1)
        by_cli = cli.json("status", "sw-rest")
        served = client.get("/api/sweeps/sw-rest").json()
        assert [c["job_id"] for c in served["children"]] == [c["job_id"] for c in by_cli["children"]]
        assert served["counts"] == by_cli["counts"] == {"running": 1, "pending": 2}
        cancelled = client.post("/api/sweeps/sw-rest/cancel", json={"timeout_s": 10})
        assert cancelled.status_code == 200 and cancelled.headers["x-oumi-jobs-exit-code"] == "0"
        assert len(cancelled.json()["cancelled_before_start"]) == 2 and len(cancelled.json()["cancellations"]) == 1
        assert client.get("/api/sweeps/sw-rest").json()["counts"] == {"cancelled": 3}
        assert client.post("/api/sweeps/sw-rest/cancel").status_code == 409
        assert client.get("/api/sweeps/sw-nope").status_code == 404


@pytest.mark.slow
def test_three_real_oumi_train_runs_of_different_learning_rates_are_compared(cli, tiny, tmp_path):
    config = train_config(
        tiny, tmp_path, TRAIN_STEPS
    )  # sets no learning rate: the `training` section is what a sweep needs
    sweep_id = sweep_id_of(
        cli, str(config), "--set", "training.learning_rate=1e-5,1e-3,3e-2", *hermetic(tmp_path), "--name", "lr"
    )
    waited = cli("wait", sweep_id, "--timeout", "900", "--json")
    assert waited.exit_code == 0, [Path(c["stderr_path"]).read_text()[-2000:] for c in json.loads(waited.stdout)]
    rows = cli.json("compare", sweep_id)
    assert sorted(r["overrides"]["training.learning_rate"] for r in rows) == [1e-5, 1e-3, 3e-2]
    for row in rows:
        assert (row["state"], row["metric"], row["step"]) == ("succeeded", "loss", TRAIN_STEPS)
        assert math.isfinite(row["best"]) and row["best"] <= row["last"]
        assert list((tmp_path / "out" / row["job_id"]).glob("*")), row  # each child trained into its own folder
    assert [r["best"] for r in rows] == sorted(r["best"] for r in rows) and len({r["last"] for r in rows}) == 3
    highest = cli.json("compare", sweep_id, "--max", "--metric", "loss")
    assert [r["best"] for r in highest] == sorted((r["best"] for r in highest), reverse=True)
    shown = cli("compare", sweep_id)
    assert shown.exit_code == 0 and "training.learning_rate=0.03" in shown.stdout
    assert cli("compare", sweep_id, "--metric", "nope", "--json").exit_code == 0  # no values: rows without them
    plotted = cli.json("plot", sweep_id)  # the children's curves overlaid
    assert sorted(s["job_id"] for s in plotted["series"]) == sorted(r["job_id"] for r in rows)
    assert all(len(s["steps"]) == TRAIN_STEPS for s in plotted["series"])


def test_a_sweep_whose_running_child_lost_its_supervisor_is_restarted_by_status(cli, paths, job_config):
    config = job_config("sleep 0.5", envs={"N": 0})
    sweep_id = sweep_id_of(cli, str(config), "--set", "envs.N=1,2,3", "--cluster", "stall")
    first = cli.json("status", sweep_id)["children"][0]["job_id"]
    with Registry.open(paths) as registry:
        record = registry.get(first)
    assert record is not None and record.supervisor_pid
    os.kill(record.supervisor_pid, signal.SIGKILL)  # it will never start the next child
    wait_until(lambda: not is_alive(record.supervisor_pid, record.supervisor_start_time, record.boot_id))
    waited = cli("wait", sweep_id, "--json", "--timeout", "60")  # reading the sweep restarts its chain
    states = [c["state"] for c in json.loads(waited.stdout)]
    assert states[1:] == ["succeeded", "succeeded"] and states[0] in ("lost", "succeeded"), states


# -- a cloud sweep takes submit's options, through submit's code (tests/file_cloud.py: a cloud in a file) ------
INFER = "model:\n  model_name: gpt2\ngeneration:\n  max_new_tokens: 8\n"


def test_a_cloud_sweep_dry_run_shows_each_child_and_changes_nothing(paths, cli, file_cloud, tmp_path):
    config = tmp_path / "infer.yaml"
    config.write_text(INFER)
    args = ("sweep", str(config), "--set", "generation.max_new_tokens=16,32", "--cloud", "oj-file", "--cluster",
            "fd", "--gpus", "A100:8", "--name", "dry", "--dry-run")  # fmt: skip
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["dry_run"] is True and doc["sweep_id"] == "sw-dry" and doc["size"] == 2 and doc["ok"] is True
    assert (doc["cloud"], doc["cluster"], doc["kind"], doc["command"], doc["preflight"]) == (
        "oj-file", "fd", "task", "infer", True,
    )  # fmt: skip
    assert [c["job_id"] for c in doc["children"]] == ["dry-0000", "dry-0001"]
    for child, tokens in zip(doc["children"], (16, 32), strict=True):
        assert child["overrides"] == {"generation.max_new_tokens": tokens}
        assert child["staged_config"]["settings"]["generation"]["max_new_tokens"] == tokens
        assert child["job_config"]["resources"] == {"cloud": "oj-file", "accelerators": "A100:8"}
        assert child["job_config"]["name"] == child["job_id"] and child["argv"] is None
    human = cli(*args)
    assert human.exit_code == 0 and "nothing was registered" in human.stderr
    assert "dry-0001  generation.max_new_tokens=32" in human.stdout and "accelerators: A100:8" in human.stdout
    unnamed = cli.json("sweep", str(config), "--set", "generation.max_new_tokens=16", "--cloud", "oj-file", "--dry-run")
    assert unnamed["cluster"] is None and unnamed["parallel"] == 4  # each child's up names its own cluster
    assert registered(paths) == (0, 0) and file_cloud.read()["clusters"] == {}
    assert not (paths.state_dir / "launch").exists() and not (paths.state_dir / "sweeps").exists()


def test_a_local_sweep_dry_run_shows_each_childs_command_line(paths, cli, job_config):
    config = job_config("echo $LR", envs={"LR": 0})
    doc = cli.json("sweep", str(config), "--set", "envs.LR=1,2", "--dry-run")
    assert [c["env"]["LR"] for c in doc["children"]] == ["1", "2"] and doc["cloud"] == "local"
    assert doc["children"][0]["argv"] == ["/bin/bash", "-c", "echo $LR\n"] and doc["parallel"] is None
    assert registered(paths) == (0, 0)


def test_a_cloud_sweep_refused_by_its_preflight_exits_2_and_registers_nothing(paths, cli, file_cloud, tmp_path):
    config = tmp_path / "infer.yaml"
    config.write_text(INFER.replace("max_new_tokens: 8", "max_new_tokens: 8\n  bogus_knob: 1"))
    result = cli("sweep", str(config), "--set", "generation.max_new_tokens=16,32", "--cloud", "oj-file")
    assert result.exit_code == 2, result.stderr
    assert (
        "generation.bogus_knob: not a setting of oumi" in result.stderr
        and "pre-flight found 1 problem" in result.stderr
    )
    assert result.stdout == "" and registered(paths) == (0, 0) and file_cloud.read()["clusters"] == {}
    assert not (paths.state_dir / "launch").exists() and not (paths.state_dir / "sweeps").exists()


def test_a_cloud_sweeps_children_are_launched_with_autostop_and_down(paths, cli, file_cloud, job_config):
    config = job_config("python train.py", envs={"N": 0})
    result = cli("sweep", "-q", str(config), "--set", "envs.N=1,2", "--cloud", "oj-file", "--cluster", "fa",
                 "--autostop", "90m", "--down", "--no-preflight")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "pre-flight checks skipped (--no-preflight)" in result.stderr
    sweep_id = result.stdout.strip()
    launched = wait_until(lambda: len(file_cloud.read()["up_kwargs"]) == 2 and file_cloud.read(), timeout=180)
    assert launched["up_kwargs"] == [{"idle_minutes_to_autostop": 90, "down": True}] * 2
    wait_until(lambda: cli.json("status", sweep_id)["counts"] == {"running": 2}, timeout=60)
    assert cli("cancel", sweep_id).exit_code == 0


@pytest.fixture
def clouds():
    from . import fake_clouds  # imports oumi.launcher (once per test process)

    fake_clouds.BEHAVIOUR.clear()
    yield fake_clouds
    fake_clouds.BEHAVIOUR.clear()


def test_a_child_its_clouds_listing_left_out_is_asked_alone_not_called_unknown(paths, cli, clouds):
    """As Slurm's queue drops a job that just ended while its accounting still has it: the child is asked of
    its cloud alone, as status asks, before it is called unknown; by status SWEEP, sweeps and list."""
    running = clouds.job("1", "RUNNING", clouds.JobState.RUNNING, "c1")
    ended = clouds.job("2", "COMPLETED", clouds.JobState.SUCCEEDED, "c1", done=True)
    clouds.BEHAVIOUR["oj-fake"] = clouds.Behaviour(clusters={"c1": [running, ended]}, unlisted={"2", "3"})
    launched = {"supervisor_pid": 999_999, "supervisor_start_time": 1.0, "cluster": "c1", "sweep_id": "sw-race"}
    children = [make_record(f"race-000{i}", cloud="oj-fake", launcher_job_id=str(i + 1), **launched) for i in range(3)]
    with Registry.open(paths) as registry:
        registry.add_sweep(SweepRecord("sw-race", "race", "/c.yaml", "oj-fake", "c1", 3, 4, now_iso()), children)
    status = cli.json("status", "sw-race")
    states = {child["job_id"]: child["state"] for child in status["children"]}
    assert states == {"race-0000": "running", "race-0001": "succeeded", "race-0002": "unknown"}  # 3: gone indeed
    assert status["counts"] == {"running": 1, "succeeded": 1, "unknown": 1}
    assert cli.json("sweeps")[0]["counts"] == status["counts"]
    listed = {doc["job_id"]: doc["state"] for doc in cli.json("list")}
    assert listed == states
