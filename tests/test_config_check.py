"""``oumi-jobs check``: configs of every kind against oumi's real config classes (imported once here, 8-15 s).

Clean configs exit 0; each problem is one ``{path, problem}`` with the setting's dotted path; bad input is
one line on stderr, exit 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from oumi_jobs import api
from oumi_jobs.cloud import schema

MODEL = {"model_name": "gpt2"}
DATASETS = {"train": {"datasets": [{"dataset_name": "yahma/alpaca-cleaned"}]}}
# A clean config of each task command configs.py knows.
GOOD = {
    "train": {"model": MODEL, "data": DATASETS, "training": {"output_dir": "out", "max_steps": 10}},
    "evaluate": {"model": MODEL, "tasks": [{"evaluation_backend": "lm_harness", "task_name": "mmlu"}]},
    "infer": {"model": MODEL, "generation": {"max_new_tokens": 8}},
    "tune": {"model": MODEL, "data": DATASETS, "tuning": {"n_trials": 2}},
    "synth": {"strategy_params": {}, "num_samples": 2, "inference_config": {"model": MODEL}},
    "judge": {"judge_params": {"prompt_template": "Is {x} good?"}, "inference_config": {"model": MODEL}},
    "quantize": {"model": MODEL, "method": "awq_q4_0", "output_path": "q.gguf"},
    "analyze": {"dataset_name": "yahma/alpaca-cleaned", "analyzers": [{"id": "length"}]},
}
# (command, a change that breaks it, the path named, words of the problem)
BAD = [
    ("train", {"training": {"output_dir": "out", "max_stepz": 10}}, "training.max_stepz", "did you mean 'max_steps'"),
    ("train", {"training": {"max_steps": "many"}}, "training.max_steps", "could not be converted to Integer"),
    ("train", {"training": {"trainer_type": "NOPE"}}, "training.trainer_type", "Invalid value 'NOPE'"),
    ("train", {"data": {"train": {"datasets": []}}}, "data", "At least one training dataset is required"),
    (
        "evaluate",
        {"tasks": [{"evaluation_backend": "lm_harness", "task_nam": "x"}]},
        "tasks[0].task_nam",
        "not a setting",
    ),
    ("infer", {"generation": {"max_new_tokens": "lots"}}, "generation.max_new_tokens", "could not be converted"),
    ("infer", {"engine": "NOPE"}, "engine", "Invalid value 'NOPE'"),
    ("tune", {"tuning": {"n_trials": "x"}}, "tuning.n_trials", "could not be converted"),
    ("synth", {"num_samples": "x"}, "num_samples", "could not be converted"),
    ("judge", {"judge_params": {"prompt_template": "x", "bogus": 1}}, "judge_params.bogus", "not a setting"),
    ("quantize", {"model": {}}, "model.model_name", "missing mandatory value"),
    ("analyze", {"analyzers": [{"id": "length", "knob": 1}]}, "analyzers[0].knob", "not a setting"),
    (
        "train",
        {"data": {"train": {"datasets": [{"dataset_name": "x", "sample_count": -4}]}}},
        "data.train.datasets[0].sample_count",
        "must be greater than 0",
    ),
]


def document(cli, *args: str) -> dict:
    """``--json`` output whatever the exit code (2 for problems)."""
    return json.loads(cli(*args, "--json").stdout)


def write(tmp_path: Path, settings: dict, name: str = "config.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return str(path)


@pytest.mark.parametrize("command", sorted(GOOD))
def test_a_clean_config_of_every_command_passes(cli, tmp_path, command):
    config = write(tmp_path, GOOD[command])
    result = cli("check", config, "--command", command, "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert doc == {"schema_version": 1, "config_path": config, "kind": "task", "command": command, "cloud": None,
                   "ok": True, "problems": []}  # fmt: skip
    human = cli("check", config, "--command", command)
    assert human.exit_code == 0 and human.stdout.startswith(f"{config}: ok")


def test_the_command_is_inferred_as_submit_infers_it(cli, tmp_path):
    for command in ("train", "evaluate", "infer", "tune", "synth", "judge"):
        assert cli.json("check", write(tmp_path, GOOD[command]))["command"] == command


@pytest.mark.parametrize(("command", "change", "path", "words"), BAD, ids=[f"{c}-{p}" for c, _, p, _ in BAD])
def test_each_problem_is_named_by_its_setting(cli, tmp_path, command, change, path, words):
    config = write(tmp_path, GOOD[command] | change)
    result = cli("check", config, "--command", command, "--json")
    assert result.exit_code == 2, result.stdout + result.stderr
    problems = json.loads(result.stdout)["problems"]
    assert [p["path"] for p in problems] == [path] and words in problems[0]["problem"], problems
    human = cli("check", config, "--command", command)
    assert human.exit_code == 2 and human.stdout.splitlines() == [f"{config}: {path}: {problems[0]['problem']}"]


def test_every_problem_of_a_config_is_reported_at_once(cli, tmp_path):
    settings = {"model": MODEL, "training": {"bogus_knob": 1, "max_steps": "abc", "trainer_type": "NOPE"},
                "data": {"train": {"datasets": [{"dataset_name": "x", "bogus": 1, "sample_count": "zz"}]}}}  # fmt: skip
    problems = document(cli, "check", write(tmp_path, settings))["problems"]
    assert sorted(p["path"] for p in problems) == sorted([
        "training.bogus_knob", "training.max_steps", "training.trainer_type",
        "data.train.datasets[0].bogus", "data.train.datasets[0].sample_count",
    ])  # fmt: skip


def test_job_configs_resources_and_cloud_are_checked(cli, tmp_path):
    clean = write(tmp_path, {"run": "echo hi", "resources": {"cloud": "slurm", "accelerators": "A100:8"}})
    assert cli.json("check", clean) | {"problems": []} == {
        "schema_version": 1, "config_path": clean, "kind": "job", "command": "job", "cloud": "slurm", "ok": True,
        "problems": [],
    }  # fmt: skip
    bad = write(tmp_path, {"run": "echo", "num_nodes": "two", "resources": {"cloud": "gcp", "use_spot": "maybe",
                                                                            "disk_siz": 100}})  # fmt: skip
    doc = document(cli, "check", bad)
    assert doc["ok"] is False and {p["path"] for p in doc["problems"]} == {
        "num_nodes", "resources.use_spot", "resources.disk_siz"}  # fmt: skip
    unknown_cloud = write(tmp_path, {"run": "echo", "resources": {"cloud": "no-such-cloud"}})
    problems = document(cli, "check", unknown_cloud)["problems"]
    assert [p["path"] for p in problems] == ["resources.cloud"] and "unknown cloud" in problems[0]["problem"]
    # --cloud wins over resources.cloud, as in submit; a config with no cloud runs locally.
    assert cli.json("check", unknown_cloud, "--cloud", "slurm")["cloud"] == "slurm"
    assert cli.json("check", write(tmp_path, {"run": "echo"}))["cloud"] == "local"


def test_bad_input_is_one_line_and_exit_2(cli, tmp_path):
    (tmp_path / "broken.yaml").write_text("model: [\n")
    (tmp_path / "list.yaml").write_text("- a\n")
    (tmp_path / "neither.yaml").write_text("foo: 1\n")
    for args in (
        [str(tmp_path / "missing.yaml")],
        [str(tmp_path / "broken.yaml")],
        [str(tmp_path / "list.yaml")],
        [str(tmp_path / "neither.yaml")],
        [write(tmp_path, GOOD["train"]), "--command", "bogus"],
        [write(tmp_path, GOOD["train"]), "--cloud", "no-such-cloud"],
    ):
        for json_flag in ([], ["--json"]):
            result = cli("check", *args, *json_flag)
            assert result.exit_code == 2, (args, result.stderr)
            assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
            assert result.stderr.startswith("oumi-jobs: error: ") and "Traceback" not in result.stderr


def test_the_check_reads_no_network_and_writes_nothing(paths, cli, tmp_path):
    """finalize_and_validate asks the Hugging Face Hub about a model; the check reads only the local cache."""
    config = write(tmp_path, GOOD["train"])
    assert cli("check", config).exit_code == 0
    assert not paths.registry_file.exists()
    assert api.check_config(config, cwd=tmp_path).ok


def test_dotted_paths_are_read_and_taken_out():
    settings = {"a": {"b": [{"c": 1, "d": 2}]}, "e": 3}
    assert schema.split_path("a.b[0].c") == ["a", "b", 0, "c"]
    assert schema.locate(settings, "c") == "a.b[0].c" and schema.locate(settings, "e") == "e"
    assert schema.locate(settings, "zz") is None
    assert schema.drop_path(settings, "a.b[0].c") and settings == {"a": {"b": [{"d": 2}]}, "e": 3}
    assert not schema.drop_path(settings, "a.b[3].c")
    assert schema.named_in("`d` must be positive", settings) == "a.b[0].d"


def test_check_through_the_installed_entry_point(paths, tmp_path):
    """A new process, as a user runs it: stdout is only the document (oumi's log lines go to stderr)."""
    config = write(tmp_path, GOOD["infer"] | {"generation": {"max_new_tokens": "x"}})
    done = subprocess.run([sys.executable, "-m", "oumi_jobs", "check", config, "--json"], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert [p["path"] for p in json.loads(done.stdout)["problems"]] == ["generation.max_new_tokens"]
