"""Reading configs: job configs pass through, task configs are wrapped, bad input exits 2 with nothing written."""

from __future__ import annotations

import pytest

from oumi_jobs.configs import oumi_executable, plan_launch
from oumi_jobs.errors import UsageError

TRAIN = "model:\n  model_name: HuggingFaceTB/SmolLM2-135M\ntraining:\n  output_dir: output/smol\n"
EVALUATE = "model:\n  model_name: gpt2\ntasks:\n  - evaluation_backend: lm_harness\ngeneration:\n  batch_size: 1\n"
INFER = "model:\n  model_name: gpt2\ngeneration:\n  max_new_tokens: 8\ninput_path: in.jsonl\noutput_path: out.jsonl\n"


@pytest.mark.parametrize(
    "text, command, output_dir",
    [(TRAIN, "train", "output/smol"), (EVALUATE, "evaluate", None), (INFER, "infer", "out.jsonl")],
)
def test_task_configs_are_wrapped_as_oumi_commands(tmp_path, text, command, output_dir):
    config = tmp_path / "task config.yaml"
    config.write_text(text)
    plan = plan_launch("task config.yaml", cwd=tmp_path)
    assert plan.kind == "task" and plan.command == command
    assert plan.argv == (oumi_executable(), command, "-c", str(config))
    assert plan.output_dir == output_dir
    assert plan.model_name
    assert plan.cloud == "local" and plan.workdir == tmp_path


def test_command_option_overrides_inference(tmp_path):
    (tmp_path / "c.yaml").write_text("model:\n  model_name: gpt2\n")
    with pytest.raises(UsageError, match="pass --command"):
        plan_launch("c.yaml", cwd=tmp_path)
    assert plan_launch("c.yaml", cwd=tmp_path, command="infer").argv[1] == "infer"
    with pytest.raises(UsageError, match="unknown --command"):
        plan_launch("c.yaml", cwd=tmp_path, command="rm -rf")


def test_job_config_cloud_comes_from_resources(tmp_path):
    (tmp_path / "job.yaml").write_text("resources:\n  cloud: local\nrun: echo hi\nworking_dir: .\n")
    plan = plan_launch("job.yaml", cwd=tmp_path)
    assert (plan.kind, plan.cloud, plan.argv) == ("job", "local", ("/bin/bash", "-c", "echo hi"))


BAD = {
    "missing": (None, "config file not found"),
    "yaml": ("run: [unclosed\n", "cannot parse config"),
    "scalar": ("just a string\n", "not a YAML mapping"),
    "neither": ("foo: bar\n", "neither an Oumi job config"),
    "empty-run": ("run: ''\nsetup: echo\n", "has no `run:`"),
    "cloud": ("run: echo\nresources:\n  cloud: mars\n", "unknown cloud 'mars'"),
    "envs": ("run: echo\nenvs: [1, 2]\n", "`envs:` must be a mapping"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_configs_exit_2_with_one_line_and_write_nothing(paths, cli, tmp_path, case):
    text, message = BAD[case]
    config = tmp_path / "bad.yaml"
    if text is not None:
        config.write_text(text)
    result = cli("submit", str(config))
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not paths.registry_file.exists() and not paths.state_dir.exists()


@pytest.mark.parametrize("args", [["--env", "NOEQUALS"], ["--env", "1BAD=x"], ["--cloud", "nowhere"]])
def test_bad_options_exit_2(paths, cli, tmp_path, args):
    config = tmp_path / "ok.yaml"
    config.write_text("run: echo\n")
    result = cli("submit", str(config), *args)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert not paths.registry_file.exists()


def test_unknown_state_filter_is_a_usage_error(cli):
    result = cli("list", "--state", "sleeping")
    assert result.exit_code == 2 and "unknown state 'sleeping'" in result.stderr
