"""The pre-flight of a cloud submit, ``--no-preflight`` and ``submit --dry-run``, on the controllable clouds
(tests/file_cloud.py: what was launched is in a file every process reads) and on clouds no test reaches.

A refused launch registers nothing, stages nothing and reaches no cloud.  The config checks use oumi's real
config classes (imported once for this module).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from oumi_jobs.cloud import adapter
from oumi_jobs.cloud.model import CredentialCheck
from oumi_jobs.preflight import ssh_problem
from oumi_jobs.store.registry import Registry

from .helpers import wait_until

DATASET = "data:\n  train:\n    datasets:\n      - dataset_name: text_sft_jsonl\n        dataset_path: {path}\n"
TRAIN = "model:\n  model_name: gpt2\ntraining:\n  output_dir: out\n" + DATASET


def registered(paths) -> list[str]:
    if not paths.registry_file.exists():
        return []
    with Registry.open(paths) as registry:
        return [record.job_id for record in registry.jobs()]


def write(tmp_path: Path, text: str, name: str = "train.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def errors(stderr: str) -> list[str]:
    return [line.removeprefix("oumi-jobs: error: ") for line in stderr.splitlines() if "error:" in line]


def test_a_doomed_cloud_launch_is_refused_before_anything_is_registered(paths, cli, file_cloud, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = write(tmp_path, TRAIN.format(path="data/missing.jsonl").replace("out\n", "out\n  bogus_knob: 1\n"))
    result = cli("submit", config, "--cloud", "oj-file", "--cluster", "fc1", "--name", "doomed")
    assert result.exit_code == 2, result.stderr
    lines = errors(result.stderr)
    assert lines[0] == "config: training.bogus_knob: not a setting of oumi 0.9"
    assert lines[1].startswith("file: data.train.datasets[0].dataset_path: data/missing.jsonl does not exist")
    assert str(tmp_path / "data" / "missing.jsonl") in lines[1]  # resolved against the caller's cwd
    assert lines[2].startswith("pre-flight found 2 problems") and "--no-preflight" in lines[2] and len(lines) == 3
    assert result.stdout == ""
    assert registered(paths) == [] and file_cloud.read()["clusters"] == {}
    assert not (paths.state_dir / "launch").exists()  # nothing staged


def test_no_preflight_launches_unchecked_and_says_so(paths, cli, file_cloud, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = write(tmp_path, TRAIN.format(path="data/missing.jsonl"))
    result = cli("submit", "--json", config, "--cloud", "oj-file", "--cluster", "fc2", "--no-preflight")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert "pre-flight checks skipped (--no-preflight)" in result.stderr
    assert any("pre-flight checks skipped" in warning for warning in doc["warnings"])
    wait_until(lambda: file_cloud.read()["clusters"].get("fc2"), timeout=120)
    assert registered(paths) == [doc["job_id"]]


def test_a_clean_config_launches_with_its_warnings(paths, cli, file_cloud, tmp_path, monkeypatch):
    """Warnings stay warnings: a config that shards over GPUs, sent with one, is launched and warned about."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("{}\n")
    config = write(tmp_path, TRAIN.format(path="data/train.jsonl") + "fsdp:\n  enable_fsdp: true\n")
    result = cli("submit", "--json", config, "--cloud", "oj-file", "--cluster", "fc3")
    assert result.exit_code == 0, result.stderr
    assert any("enables fsdp" in warning for warning in json.loads(result.stdout)["warnings"])
    wait_until(lambda: file_cloud.read()["clusters"].get("fc3"), timeout=120)


def test_dry_run_of_a_cloud_task_prints_the_job_config_and_changes_nothing(paths, cli, file_cloud, tmp_path):
    config = write(tmp_path, "model:\n  model_name: gpt2\ngeneration:\n  max_new_tokens: 8\n", "infer.yaml")
    args = ("submit", config, "--cloud", "oj-file", "--cluster", "fc4", "--env", "B=2", "--gpus", "A100:8", "--dry-run",
            "--name", "dry-one")  # fmt: skip
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    job = doc["job_config"]
    staged = Path(doc["staged_config"]["path"])
    assert doc["dry_run"] is True and doc["ok"] is True and doc["problems"] == [] and doc["preflight"] is True
    assert (doc["cloud"], doc["cluster"], doc["kind"], doc["command"]) == ("oj-file", "fc4", "task", "infer")
    assert job["run"] == "oumi infer -c infer.yaml" and job["working_dir"] == f"{staged.parent}/"
    assert job["resources"] == {"cloud": "oj-file", "accelerators": "A100:8"} and job["envs"] == {"B": "2"}
    assert "command -v oumi" in job["setup"] and job["name"] == doc["job_id"] == "dry-one"
    assert doc["staged_config"]["settings"] == yaml.safe_load(Path(config).read_text())
    assert doc["argv"] is None and doc["env"] is None and doc["workdir"] is None
    # A person gets the same as YAML: the job config, then the staged task config.
    human = cli(*args)
    assert human.exit_code == 0 and "nothing was registered" in human.stderr
    shown, settings = yaml.safe_load_all(human.stdout)
    assert shown == job and settings == doc["staged_config"]["settings"]
    assert registered(paths) == [] and file_cloud.read()["clusters"] == {}
    assert not staged.parent.exists() and not (paths.state_dir / "launch").exists()


def test_dry_run_of_a_local_job_shows_its_command_line_and_environment(paths, cli, job_config, tmp_path):
    config = job_config("echo hi", envs={"A": 1}, working_dir=str(tmp_path))
    doc = json.loads(cli("submit", str(config), "--env", "B=2", "--dry-run", "--json").stdout)
    assert doc["argv"] == ["/bin/bash", "-c", "echo hi\n"] and doc["env"] == {"A": "1", "B": "2"}
    assert doc["workdir"] == str(tmp_path) and doc["cloud"] == "local" and doc["job_config"] is None
    human = cli("submit", str(config), "--env", "B=2", "--dry-run")
    assert human.exit_code == 0 and "argv: /bin/bash -c 'echo hi" in human.stdout and "env: B=2" in human.stdout
    assert registered(paths) == []


def test_dry_run_runs_the_checks_and_exits_2_on_a_problem(paths, cli, tmp_path):
    """Also for a local job, where an absolute path must exist (a cloud job only gets a warning for one)."""
    missing = tmp_path / "nowhere" / "train.jsonl"
    config = write(tmp_path, TRAIN.format(path=str(missing)))
    local = cli("submit", config, "--dry-run", "--json")
    assert local.exit_code == 2
    problems = json.loads(local.stdout)["problems"]
    assert [(p["check"], p["path"]) for p in problems] == [("file", "data.train.datasets[0].dataset_path")]
    assert str(missing) in problems[0]["problem"]
    assert any(str(missing) in line for line in errors(local.stderr))
    skipped = cli("submit", config, "--dry-run", "--json", "--no-preflight")
    assert skipped.exit_code == 0 and json.loads(skipped.stdout)["preflight"] is False
    assert "pre-flight checks skipped" in skipped.stderr
    assert cli("submit", config, "--dry-run", "--wait").exit_code == 2
    assert registered(paths) == []


def test_an_absolute_input_missing_here_is_a_warning_for_a_cluster(paths, cli, file_cloud, tmp_path):
    config = write(tmp_path, TRAIN.format(path="/scratch/shared/train.jsonl"))
    result = cli("submit", config, "--cloud", "oj-file", "--cluster", "fc5", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["problems"] == [] and any("/scratch/shared/train.jsonl" in w for w in doc["warnings"])


def test_a_missing_file_mount_source_is_refused(paths, cli, file_cloud, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "present.txt").write_text("x")
    config = write(tmp_path, "run: cat /data/a /data/b\nfile_mounts:\n  /data/a: present.txt\n  /data/b: gone.txt\n"
                             "  /data/c: gs://bucket/c\n", "job.yaml")  # fmt: skip
    result = cli("submit", config, "--cloud", "oj-file", "--cluster", "fc6")
    assert result.exit_code == 2
    assert (
        errors(result.stderr)[0]
        == f"file_mounts: file_mounts./data/b: source gone.txt does not exist ({tmp_path}/gone.txt)"
    )
    assert registered(paths) == [] and file_cloud.read()["clusters"] == {}


def test_an_unanswerable_credentials_check_is_a_warning(paths, cli, tmp_path):
    """The suite points SkyPilot at a closed port: the check cannot be answered, and starts no server."""
    config = write(tmp_path, "run: echo hi\n", "job.yaml")
    result = cli("submit", config, "--cloud", "gcp", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    warnings = json.loads(result.stdout)["warnings"]
    assert any(w.startswith("credentials of gcp not checked") and "launching anyway" in w for w in warnings)
    assert "credentials of gcp not checked" in result.stderr


class _NoCredentials:
    """The real adapter, except that every cloud's credentials check says they are missing."""

    def __init__(self, real) -> None:
        self.real = real

    def __getattr__(self, name: str):
        return getattr(self.real, name)

    def check_credentials(self, cloud: str, *, timeout_s: float) -> CredentialCheck:
        return CredentialCheck(cloud, False, f"credentials of {cloud} are not set up (SkyPilot's check)")


@pytest.fixture
def no_credentials():
    previous = adapter.use(_NoCredentials(adapter.current()))
    yield
    adapter.use(previous)


def test_missing_credentials_refuse_the_launch(paths, cli, tmp_path, no_credentials):
    config = write(tmp_path, "run: echo hi\n", "job.yaml")
    result = cli("submit", config, "--cloud", "aws", "--cluster", "c1")
    assert result.exit_code == 2
    assert (
        errors(result.stderr)[0] == "credentials: resources.cloud: credentials of aws are not set up (SkyPilot's check)"
    )
    assert registered(paths) == []


def test_a_slurm_host_that_does_not_answer_over_ssh_is_refused(paths, cli, tmp_path):
    config = write(tmp_path, "run: echo hi\nresources:\n  cloud: slurm\n", "job.yaml")
    result = cli("submit", config, "--cluster", "root@no-such-host.invalid")
    assert result.exit_code == 2
    line = errors(result.stderr)[0]
    assert line.startswith("ssh: --cluster: root@no-such-host.invalid does not answer over ssh"), line
    assert registered(paths) == []


def test_ssh_check_of_a_closed_port_and_of_a_bogus_host():
    assert "does not answer over ssh" in ssh_problem("ssh://root@127.0.0.1:1", timeout_s=10)
    assert "does not answer over ssh" in ssh_problem("root@no-such-host.invalid", timeout_s=10)
