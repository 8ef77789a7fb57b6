"""The checks on the real Slurm cluster on loopback (``root@localhost``, the ``slurm`` fixture): a doomed
submit is refused with nothing registered and nothing handed to sbatch; a dry run hands nothing either."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from oumi_jobs.store.registry import Registry

# Every process that did not itself call launcher.up needs this to find the cluster.
os.environ.setdefault("OUMI_SLURM_CONNECTIONS", "root@localhost")


def registered(paths) -> list[str]:
    if not paths.registry_file.exists():
        return []
    with Registry.open(paths) as registry:
        return [record.job_id for record in registry.jobs()]


def slurm_job_names() -> set[str]:
    """Every job name Slurm knows: queued or running (squeue), and accounted today (sacct); oumi's sbatch names
    a job by our job id."""
    queued = subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True, timeout=30).stdout
    accounted = subprocess.run(["sacct", "-a", "-X", "-n", "-P", "-o", "JobName", "-S", "now-1days"],
                               capture_output=True, text=True, timeout=30).stdout  # fmt: skip
    return {line.strip() for line in (queued + accounted).splitlines() if line.strip()}


def assert_never_sent(name: str) -> None:
    time.sleep(2)  # sacct lists a new job within a second or two
    assert name not in slurm_job_names()


def test_a_slurm_submit_with_a_missing_dataset_is_refused(slurm, paths, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "train.yaml"
    config.write_text(
        "model:\n  model_name: gpt2\ntraining:\n  output_dir: out\n"
        "data:\n  train:\n    datasets:\n      - dataset_name: text_sft_jsonl\n        dataset_path: data/gone.jsonl\n"
    )
    name = f"preflight-dataset-{os.getpid()}"
    checked = cli("check", str(config), "--json")
    assert checked.exit_code == 2 and "data/gone.jsonl" in json.loads(checked.stdout)["problems"][0]["problem"]
    result = cli("submit", str(config), "--cloud", "slurm", "--cluster", slurm, "--name", name)
    assert result.exit_code == 2, result.stderr
    assert "file: data.train.datasets[0].dataset_path: data/gone.jsonl does not exist" in result.stderr
    assert "nothing was launched or registered" in result.stderr
    assert registered(paths) == []
    assert_never_sent(name)


def test_a_slurm_submit_with_a_missing_working_dir_is_refused(slurm, paths, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "job.yaml"
    config.write_text("run: echo hi\nworking_dir: not-made\nresources:\n  cloud: slurm\n")
    name = f"preflight-workdir-{os.getpid()}"
    result = cli("submit", str(config), "--cluster", slurm, "--name", name)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"oumi-jobs: error: working directory does not exist: {tmp_path / 'not-made'}"
    assert cli("submit", str(config), "--cluster", slurm, "--dry-run").exit_code == 2
    assert registered(paths) == []
    assert_never_sent(name)


def test_a_slurm_dry_run_hands_nothing_to_sbatch(slurm, paths, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "project").mkdir()
    config = tmp_path / "job.yaml"
    config.write_text("run: echo hi\nworking_dir: project\nenvs:\n  A: '1'\nresources:\n  cloud: slurm\n")
    name = f"preflight-dry-{os.getpid()}"
    assert cli("check", str(config)).exit_code == 0
    result = cli("submit", str(config), "--cluster", slurm, "--name", name, "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["problems"] == [] and doc["job_id"] == name
    job = doc["job_config"]
    assert job["working_dir"] == f"{tmp_path / 'project'}/" and job["user"] == "root"  # ssh answered: no problem
    assert job["envs"] == {"A": "1"} and job["resources"] == {"cloud": "slurm"} and job["run"] == "echo hi"
    assert not Path(paths.state_dir / "launch").exists()
    assert registered(paths) == []
    assert_never_sent(name)
