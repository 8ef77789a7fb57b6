"""Submitting to a cloud: a detached launching process runs the real oumi.launcher.up
against a controllable cloud that every process sees (tests/file_cloud.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

from oumi_jobs.local.procs import is_alive
from oumi_jobs.store.registry import Registry

from .helpers import wait_until


def state_of(cli, job_id: str) -> dict:
    return cli.json("status", job_id, "--cloud-timeout", "10")


def test_submit_launches_through_the_launcher_and_records_its_identity(paths, cli, file_cloud, tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "job.yaml"
    config.write_text("run: python train.py\nworking_dir: project\nenvs:\n  A: '1'\n")
    result = cli("submit", "--json", str(config), "--cloud", "oj-file", "--cluster", "root@fc1", "--env", "B=2")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["state"] == "launching" and doc["launcher_job_id"] is None
    running = wait_until(lambda: (d := state_of(cli, doc["job_id"]))["state"] == "running" and d, timeout=120)
    assert running["launcher_job_id"] == "1" and running["cluster"] == "root@fc1"
    launched = file_cloud.read()["clusters"]["root@fc1"][0]
    assert launched["working_dir"] == str(project) + "/"  # resolved against the caller's cwd, rsync-safe
    assert launched["envs"] == {"A": "1", "B": "2"} and launched["run"] == "python train.py"


def test_task_config_is_staged_and_wrapped(paths, cli, file_cloud, tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text(
        "model:\n  model_name: gpt2\ntraining:\n  output_dir: out\ndata:\n  train:\n    datasets:\n      - dataset_name: yahma/alpaca-cleaned\n"
    )
    job_id = cli("submit", "-q", str(config), "--cloud", "oj-file", "--cluster", "fc2").stdout.strip()
    wait_until(lambda: state_of(cli, job_id)["state"] == "running", timeout=120)
    launched = file_cloud.read()["clusters"]["fc2"][0]
    assert launched["run"] == "oumi train -c train.yaml"
    assert "command -v oumi" in launched["setup"] and f"oumi[gpu]=={version('oumi')}" in launched["setup"]
    staged = Path(launched["working_dir"]) / "train.yaml"
    assert staged.read_text() == config.read_text()


def test_settings_the_installed_oumi_lacks_are_named_at_submit(paths, cli, file_cloud, tmp_path):
    """The launching process leaves oumi's settings schema in the cache; later submits check against it
    (with --no-preflight: the pre-flight refuses such a config, tests/test_preflight.py)."""
    from oumi_jobs.cloud import schema as oumi_schema

    config = tmp_path / "train.yaml"
    config.write_text("model:\n  model_name: gpt2\ntraining:\n  output_dir: out\n  bogus_knob: 3\n")
    first = cli.json("submit", str(config), "--cloud", "oj-file", "--cluster", "fc8", "--no-preflight")
    assert not any("bogus_knob" in w for w in first["warnings"])  # no schema yet: no check, and no wait for one
    wait_until(lambda: state_of(cli, first["job_id"])["state"] == "running", timeout=120)
    assert oumi_schema.schema_file(paths, version("oumi")).exists()

    second = cli.json("submit", str(config), "--cloud", "oj-file", "--cluster", "fc8", "--no-preflight")
    named = [w for w in second["warnings"] if "training.bogus_knob" in w]
    assert len(named) == 1 and f"oumi {version('oumi')}" in named[0]
    config.write_text("model:\n  model_name: gpt2\ndata:\n  train:\n    datasets:\n      - dataset_name: x\n")
    clean = cli.json("submit", str(config), "--cloud", "oj-file", "--cluster", "fc8", "--command", "train")
    assert not any("not a setting" in w for w in clean["warnings"])  # nested lists of settings are walked


def test_setup_that_installs_an_unpinned_oumi_is_named(paths, cli, file_cloud, job_config):
    unpinned = job_config("oumi train -c t.yaml", setup="pip install uv && uv pip install 'oumi[gpu]'")
    doc = cli.json("submit", str(unpinned), "--cloud", "oj-file", "--cluster", "fc9")
    assert any("installs the newest oumi" in w and f"oumi=={version('oumi')}" in w for w in doc["warnings"])
    pinned = job_config("oumi train -c t.yaml", setup=f"pip install oumi=={version('oumi')}")
    doc = cli.json("submit", str(pinned), "--cloud", "oj-file", "--cluster", "fc9")
    assert not any("oumi" in w and "install" in w for w in doc["warnings"])


def test_task_config_asking_for_several_gpus_runs_under_torchrun(paths, cli, file_cloud, tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text(
        "model:\n  model_name: gpt2\ntraining:\n  output_dir: out\nfsdp:\n  enable_fsdp: true\ndata:\n  train:\n    datasets:\n      - dataset_name: yahma/alpaca-cleaned\n"
    )
    one_gpu = cli("submit", "--json", str(config), "--cloud", "oj-file", "--cluster", "fc7", "--gpus", "A100")
    assert any("enables fsdp" in w and "--gpus" in w for w in json.loads(one_gpu.stdout)["warnings"])
    several = cli("submit", "--json", str(config), "--cloud", "oj-file", "--cluster", "fc7", "--gpus", "A100:8",
                  "--nodes", "2")  # fmt: skip
    assert several.exit_code == 0, several.stderr
    assert not any("enables fsdp" in w for w in json.loads(several.stdout)["warnings"])
    wait_until(lambda: len(file_cloud.read()["clusters"].get("fc7", [])) == 2, timeout=120)
    plain, distributed = sorted(file_cloud.read()["clusters"]["fc7"], key=lambda j: j["accelerators"])
    assert plain["run"] == "oumi train -c train.yaml" and plain["num_nodes"] == 1
    assert distributed["run"] == "oumi distributed torchrun -m oumi train -c train.yaml"
    assert distributed["accelerators"] == "A100:8" and distributed["num_nodes"] == 2
    for bad in (["--gpus", "A100:x"], ["--gpus", "A100", "--cloud", "local"], ["--nodes", "0"]):
        assert cli("submit", str(config), "--cloud", "oj-file", *bad).exit_code == 2, bad


def test_failed_launch_ends_failed_with_the_launchers_message(paths, cli, file_cloud, tmp_path):
    file_cloud.configure(up_error="quota exceeded for H100")
    config = tmp_path / "job.yaml"
    config.write_text("run: echo hi\n")
    job_id = cli("submit", "-q", str(config), "--cloud", "oj-file", "--cluster", "fc3").stdout.strip()
    doc = wait_until(lambda: (d := state_of(cli, job_id))["done"] and d, timeout=120)
    assert doc["state"] == "failed" and "quota exceeded for H100" in doc["detail"]


def test_cancel_during_launch_cancels_the_job_when_up_returns(paths, cli, file_cloud, tmp_path):
    """The race guard, across processes: no job is left running on the cloud."""
    file_cloud.configure(up_delay_s=4.0)
    config = tmp_path / "job.yaml"
    config.write_text("run: sleep 1000\n")
    job_id = cli("submit", "-q", str(config), "--cloud", "oj-file", "--cluster", "fc4").stdout.strip()
    wait_until(lambda: file_cloud.read().get("provisioning"), timeout=120)  # launcher.up is under way
    assert state_of(cli, job_id)["state"] == "launching"
    canceller = subprocess.run(
        [sys.executable, "-m", "oumi_jobs", "cancel", job_id, "--json", "--reason", "wrong cluster"],
        env=dict(os.environ), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert canceller.returncode == 0, canceller.stderr
    doc = json.loads(canceller.stdout)
    assert doc["status"] == "completed" and doc["final_state"] == "cancelled"  # up returned within its timeout
    assert [s["name"] for s in doc["steps"]] == ["check_state", "request", "launcher_cancel", "verify"]
    cloud = file_cloud.read()
    assert cloud["cancelled"] == ["1"] and cloud["clusters"]["fc4"][0]["status"] == "CANCELLED"
    assert state_of(cli, job_id)["state"] == "cancelled"


def cancel_in_a_new_process(job_id: str, *args: str) -> tuple[dict, float]:
    """``cancel JOB --json ARGS`` as a command of its own (which ends, as a user's does): its document and time."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "oumi_jobs", "cancel", job_id, "--json", *args],
        env=dict(os.environ), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), time.monotonic() - started


def launching(cli, file_cloud, tmp_path, cluster: str) -> str:
    """A job submitted to oj-file whose launcher.up is under way."""
    config = tmp_path / "job.yaml"
    config.write_text("run: sleep 1000\n")
    job_id = cli("submit", "-q", str(config), "--cloud", "oj-file", "--cluster", cluster).stdout.strip()
    wait_until(lambda: file_cloud.read().get("provisioning"), timeout=120)
    return job_id


def test_cancel_during_a_slow_launch_returns_within_its_timeout(paths, cli, file_cloud, tmp_path):
    """The request is persisted and recorded at once; the launching process cancels the job when up returns."""
    file_cloud.configure(up_delay_s=25.0)
    job_id = launching(cli, file_cloud, tmp_path, "fs1")
    first, took = cancel_in_a_new_process(job_id, "--timeout", "1", "--reason", "wrong cluster")
    assert took < 15, took  # up still has most of its 25 s to go
    assert first["status"] == "in_progress" and first["reason"] == "wrong cluster"
    assert [s["name"] for s in first["steps"]] == ["check_state", "request"]
    assert "launching process" in first["steps"][1]["detail"]
    assert state_of(cli, job_id)["state"] == "launching" and state_of(cli, job_id)["cancel_requested"]
    # Another cancel meanwhile joins the same cancellation (the launching process owns it now) and returns too.
    second, took = cancel_in_a_new_process(job_id, "--timeout", "1")
    assert took < 15 and second["cancellation_id"] == first["cancellation_id"] and second["status"] == "in_progress"
    assert [s["name"] for s in second["steps"]].count("request") == 1
    # The cancels that asked have ended, but the record is not an orphan: a reader adopting it would start a
    # finisher that cancels and verifies beside the launching process (and could end the record failed).
    meanwhile = cli.json("cancel-status", job_id)
    assert meanwhile["status"] == "in_progress"
    assert not {"hand_over", "take_over"} & {s["name"] for s in meanwhile["steps"]}, meanwhile["steps"]

    final = cli.json("cancel-status", job_id, "--watch")  # followed to the end the launching process makes
    assert final["status"] == "completed" and final["final_state"] == "cancelled", final
    assert [s["name"] for s in final["steps"]][-2:] == ["launcher_cancel", "verify"]
    assert "the moment launcher.up returned" in final["steps"][-2]["detail"]
    assert file_cloud.read()["cancelled"] == ["1"]
    assert state_of(cli, job_id)["state"] == "cancelled"


def test_a_launching_process_killed_during_up_leaves_no_cancel_waiting_forever(paths, cli, file_cloud, tmp_path):
    """It owned the cancellation: once it is dead, a reader adopts the record and a finisher ends it."""
    file_cloud.configure(up_delay_s=100_000.0)
    job_id = launching(cli, file_cloud, tmp_path, "fk1")
    requested, _ = cancel_in_a_new_process(job_id, "--timeout", "1")
    assert requested["status"] == "in_progress"
    with Registry.open(paths) as registry:
        launcher = registry.get(job_id)
    os.kill(launcher.supervisor_pid, signal.SIGKILL)  # the launching process this test's submit started
    wait_until(lambda: not is_alive(launcher.supervisor_pid, launcher.supervisor_start_time, launcher.boot_id))
    watched = subprocess.run(
        [sys.executable, "-m", "oumi_jobs", "cancel-status", job_id, "--watch", "--json"],
        env=dict(os.environ), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    final = json.loads(watched.stdout)
    assert final["status"] == "completed" and final["detail"] == "the launching process ended without launching the job"
    adopted = next(step for step in final["steps"] if step["name"] == "hand_over")
    assert f"its owner (pid {launcher.supervisor_pid}) died" in adopted["detail"]  # the launching process owned it
    assert file_cloud.read()["clusters"] == {}  # up never returned: nothing to cancel on the cloud


def test_a_launch_that_hangs_ends_at_its_time_limit_with_the_cancel_recorded(
    paths, cli, file_cloud, tmp_path, monkeypatch
):
    monkeypatch.setenv("OUMI_JOBS_LAUNCH_TIMEOUT", "3s")  # the launching process inherits it
    file_cloud.configure(up_delay_s=100_000.0)  # a cloud that never answers up
    job_id = launching(cli, file_cloud, tmp_path, "fh1")
    requested, took = cancel_in_a_new_process(job_id, "--timeout", "1")
    assert requested["status"] == "in_progress" and took < 15, (requested, took)
    final = cli.json("cancel-status", job_id, "--watch")
    assert final["status"] == "failed"  # up may yet have started a job: nobody can say it is gone
    last = final["steps"][-1]
    assert (last["name"], last["status"]) == ("launcher_up", "failed")
    assert "did not answer within 3 s" in last["detail"] and "oumi-jobs list --cloud oj-file" in last["detail"]
    doc = state_of(cli, job_id)
    assert doc["done"] and "launch failed: launcher.up did not answer within 3 s" in doc["detail"]
    with Registry.open(paths) as registry:
        launcher = registry.get(job_id)
    assert launcher is not None  # the launching process ended, leaving the hung call behind
    wait_until(
        lambda: not is_alive(launcher.supervisor_pid, launcher.supervisor_start_time, launcher.boot_id), timeout=30
    )


def test_a_cancel_the_cloud_refuses_after_up_is_recorded_and_can_be_made_again(paths, cli, file_cloud, tmp_path):
    file_cloud.configure(up_delay_s=3.0, cancel_error="the cloud refused")
    job_id = launching(cli, file_cloud, tmp_path, "fr1")
    cancel_in_a_new_process(job_id, "--timeout", "0")
    final = cli.json("cancel-status", job_id, "--watch")
    assert final["status"] == "failed" and "may still run" in final["detail"], final
    step = final["steps"][-1]
    assert (step["name"], step["status"]) == ("launcher_cancel", "failed") and "the cloud refused" in step["detail"]
    assert state_of(cli, job_id)["state"] == "running"  # recorded as launched, and it does run

    file_cloud.update(cancel_error=None)
    again = cli.json("cancel", job_id, "--timeout", "10")
    assert again["status"] == "completed" and again["final_state"] == "cancelled"
    assert file_cloud.read()["cancelled"] == ["1"]


def test_logs_of_a_cloud_job_come_from_its_log_stream(paths, cli, file_cloud, tmp_path):
    config = tmp_path / "job.yaml"
    config.write_text("run: echo hi\n")
    job_id = cli("submit", "-q", str(config), "--cloud", "oj-file", "--cluster", "fc5").stdout.strip()
    wait_until(lambda: state_of(cli, job_id)["state"] == "running", timeout=120)
    assert cli("logs", job_id).stdout == "a line of the job's log\n"
    assert cli.json("logs", job_id)["path"] is None
    assert cli("logs", job_id, "--stderr").exit_code == 2


def test_submit_warns_about_local_paths_that_the_cluster_will_not_have(paths, cli, file_cloud, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("{}\n")
    config = tmp_path / "train.yaml"
    config.write_text(
        "model:\n  model_name: gpt2\ntraining:\n  output_dir: out\n"
        "data:\n  train:\n    datasets:\n      - dataset_name: text_sft\n        dataset_path: data/train.jsonl\n"
    )
    result = cli("submit", "--json", str(config), "--cloud", "oj-file", "--cluster", "fc6")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert len(doc["warnings"]) == 1 and "dataset_path: data/train.jsonl" in doc["warnings"][0]
    assert str(tmp_path / "data" / "train.jsonl") in doc["warnings"][0]  # resolved against the caller's cwd
    assert "oumi-jobs: warning:" in result.stderr

    synced = tmp_path / "job.yaml"  # the same path inside a job config's synced working dir: fine
    synced.write_text("run: python train.py data/train.jsonl\nworking_dir: .\nenvs:\n  train_path: data/train.jsonl\n")
    quiet = json.loads(cli("submit", "--json", str(synced), "--cloud", "oj-file", "--cluster", "fc6").stdout)
    assert quiet["warnings"] == []
    wait_until(lambda: state_of(cli, quiet["job_id"])["state"] == "running", timeout=120)
    wait_until(lambda: state_of(cli, doc["job_id"])["state"] == "running", timeout=120)


def test_submit_wait_follows_a_cloud_job_to_its_end_and_exits_with_its_outcome(paths, cli, file_cloud, tmp_path):
    file_cloud.configure(up_delay_s=1.0, run_s=7.0, final_status="COMPLETED")  # > a 3 s poll
    config = tmp_path / "job.yaml"
    config.write_text("run: echo hi\n")
    done = cli("submit", str(config), "--cloud", "oj-file", "--cluster", "fw1", "--wait")
    assert done.exit_code == 0, done.stderr
    states = [line.split()[1] for line in done.stdout.splitlines()[1:]]  # the first line is the job id
    assert states[0] == "launching" and "running" in states and states[-1] == "succeeded", done.stdout

    file_cloud.configure(run_s=1.0, final_status="FAILED")
    failed = cli("submit", "--json", str(config), "--cloud", "oj-file", "--cluster", "fw2", "--wait")
    assert failed.exit_code == 1
    doc = json.loads(failed.stdout)
    assert doc["state"] == "failed" and doc["status"] == "FAILED" and doc["launcher_job_id"] == "1"
    assert "warnings" in doc  # the same submit document as without --wait, at the job's end


def test_cancel_no_wait_of_a_cloud_job_returns_after_the_request_and_a_finisher_verifies(
    paths, cli, file_cloud, tmp_path
):
    config = tmp_path / "job.yaml"
    config.write_text("run: sleep 1000\n")
    job_id = cli("submit", "-q", str(config), "--cloud", "oj-file", "--cluster", "fn1").stdout.strip()
    wait_until(lambda: state_of(cli, job_id)["state"] == "running", timeout=120)
    requested = cli.json("cancel", job_id, "--no-wait", "--reason", "done with it")
    assert requested["status"] == "in_progress"
    assert [s["name"] for s in requested["steps"]] == ["check_state", "launcher_cancel"]
    assert file_cloud.read()["cancelled"] == ["1"]  # the request itself is made before returning
    final = cli.json("cancel-status", job_id, "--watch")  # the detached finisher verifies by status
    assert final["status"] == "completed" and final["final_state"] == "cancelled"
    assert [s["name"] for s in final["steps"]][-1] == "verify"


def test_the_in_process_adapter_answers_in_our_own_types(paths, file_cloud, tmp_path):
    """up takes a job config's path or its settings; what comes back is oumi-jobs' data, never oumi's."""
    from oumi_jobs.cloud.model import CloudJob, ClusterInfo, LaunchResult
    from oumi_jobs.cloud.oumi_adapter import OumiAdapter
    from oumi_jobs.states import State

    seam = OumiAdapter()
    settings = {"name": "from-a-dict", "run": "echo ${HOME}", "resources": {"cloud": "oj-file"}}
    launched = seam.up(settings, "fcd", timeout_s=60)
    assert isinstance(launched, LaunchResult) and (launched.cluster, launched.launcher_job_id) == ("fcd", "1")
    assert file_cloud.read()["clusters"]["fcd"][0]["run"] == "echo ${HOME}"  # read as its YAML file would be
    config = tmp_path / "job.yaml"
    config.write_text("name: from-a-file\nrun: echo hi\nresources:\n  cloud: oj-file\n")
    assert seam.up(str(config), "fcd", timeout_s=60).job.name == "from-a-file"

    job = seam.get_job("oj-file", "fcd", "1", timeout_s=30)
    assert type(job) is CloudJob and job.state is State.RUNNING and job.cloud == "oj-file"
    assert seam.list_clusters("oj-file", timeout_s=30) == [ClusterInfo("oj-file", "fcd")]
    assert [j.launcher_job_id for j in seam.list_jobs("oj-file", timeout_s=30)] == ["1", "2"]
    assert seam.cancel("oj-file", "fcd", "1", timeout_s=30).state is State.CANCELLED
    with seam.log_stream("oj-file", "fcd", "2", timeout_s=30) as lines:
        assert list(lines) == ["a line of the job's log\n"]
    stopped = seam.stop("oj-file", "fcd", timeout_s=30)
    assert (stopped.action, stopped.acted) == ("stop", True)
    assert "oj-file" in seam.known_clouds(timeout_s=30)
    assert "output_dir" in seam.settings_schema(timeout_s=60)["train"]["training"]


def test_stdout_carries_only_our_output_when_oumi_logs(paths, cli, file_cloud, tmp_path):
    """A custom cloud through OUMI_EXTRA_DEPS_FILE makes oumi log at INFO: those lines go to stderr."""
    config = tmp_path / "job.yaml"
    config.write_text("run: echo hi\n")
    executable = shutil.which("oumi-jobs")
    assert executable, "the oumi-jobs entry point is not installed"

    def run(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([executable, *args], env=dict(os.environ), capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result

    quiet = run("submit", "-q", str(config), "--cloud", "oj-file", "--cluster", "fq1")
    assert re.fullmatch(r"[\w.-]+-[0-9]{8}-[0-9]{6}-[0-9a-f]{6}\n", quiet.stdout), quiet.stdout
    assert "Loading user-defined registry" in quiet.stderr  # oumi did log: on stderr
    job_id = quiet.stdout.strip()
    as_json = run("submit", "--json", str(config), "--cloud", "oj-file", "--cluster", "fq1")
    assert json.loads(as_json.stdout)["cloud"] == "oj-file"
    wait_until(lambda: state_of(cli, job_id)["state"] == "running", timeout=300)  # in this process: quicker
    status = run("status", job_id, "--json")  # a new process that asks the cloud, loading it again
    assert json.loads(status.stdout)["state"] == "running" and "Loading user-defined registry" in status.stderr
    listed = json.loads(run("list", "--json", "--cloud", "oj-file").stdout)
    assert job_id in {d["job_id"] for d in listed}
