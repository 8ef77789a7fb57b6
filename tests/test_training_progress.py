"""A real ``oumi train`` through ``oumi-jobs submit``: its progress read live, and its metrics plotted.

The model is made on the spot (no download): a random Llama of two layers,
hidden size 32, saved with ``save_pretrained``, a word-level tokenizer with a
chat template, and a ``text_sft_jsonl`` dataset.  About 20-30 s of CPU, most
of it importing oumi.  Marked ``slow`` but run by the plain ``python -m pytest``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from .helpers import Cli, submit_id, wait_until

MAX_STEPS = 12
# The run that is watched while it trains: the tiny model does about 150 steps a second on an idle core, so
# 12 steps end between two reads of its status; this many last a few seconds there, and longer under load.
WATCHED_STEPS = 400

# Run in a child interpreter: the test process need not import torch and transformers.
_BUILD = textwrap.dedent(
    """
    import json, random, sys
    from pathlib import Path
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    root = Path(sys.argv[1])
    words = "the a cat dog sat on mat ran fast slow big small red blue green tree".split()
    specials = ["<pad>", "<unk>", "<s>", "</s>", "user", "assistant", "system"]
    vocab = {w: i for i, w in enumerate(specials + words)}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>",
        model_max_length=128,
    )
    fast.chat_template = "{% for m in messages %}{{ m['role'] }} {{ m['content'] }} </s> {% endfor %}"
    fast.save_pretrained(root / "tiny")
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=128, pad_token_id=0, bos_token_id=2, eos_token_id=3,
    )
    LlamaForCausalLM(config).save_pretrained(root / "tiny")
    random.seed(0)
    with open(root / "data.jsonl", "w") as handle:
        for _ in range(64):
            ask, answer = (" ".join(random.choice(words) for _ in range(6)) for _ in range(2))
            messages = [{"role": "user", "content": ask}, {"role": "assistant", "content": answer}]
            handle.write(json.dumps({"messages": messages}) + "\\n")
    """
)


def _train_config(root: Path, here: Path, max_steps: int = MAX_STEPS, name: str = "train.yaml") -> Path:
    config = here / name
    config.write_text(
        textwrap.dedent(
            f"""
            model:
              model_name: {root / "tiny"}
              tokenizer_name: {root / "tiny"}
              model_max_length: 128
              torch_dtype_str: float32
            data:
              train:
                datasets:
                  - dataset_name: text_sft_jsonl
                    dataset_path: {root / "data.jsonl"}
            training:
              trainer_type: TRL_SFT
              max_steps: {max_steps}
              per_device_train_batch_size: 4
              logging_steps: 1
              save_steps: 0
              save_final_model: false
              output_dir: {here / "out"}
              enable_wandb: false
              enable_tensorboard: false
              enable_mlflow: false
              dataloader_num_workers: 0
            """
        )
    )
    return config


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the tiny model (``tiny/``) and the dataset (``data.jsonl``), made once for this module."""
    root = tmp_path_factory.mktemp("tiny-oumi")
    built = subprocess.run(
        [sys.executable, "-c", _BUILD, str(root)], capture_output=True, text=True, timeout=240, check=False
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return root


def _hermetic(root: Path) -> list[str]:
    """``--env`` options: offline, no telemetry, the Hugging Face caches in the test's own folder."""
    settings = [f"HF_HOME={root / 'hf'}", "HF_HUB_OFFLINE=1", "DO_NOT_TRACK=1", "TOKENIZERS_PARALLELISM=false"]
    return [f"--env={setting}" for setting in settings]


@pytest.mark.slow
def test_a_real_oumi_train_shows_its_progress_and_plots(cli: Cli, tiny: Path, tmp_path: Path) -> None:
    job_id = submit_id(cli, str(_train_config(tiny, tmp_path, WATCHED_STEPS)), *_hermetic(tmp_path))

    steps_while_running: list[int] = []

    def finished() -> dict[str, Any] | None:
        document: dict[str, Any] = cli.json("status", job_id)
        found = document["progress"]
        if not document["done"] and found and found["step"] is not None:
            steps_while_running.append(found["step"])
        return document if document["done"] else None

    final = wait_until(finished, timeout=240, interval=0.25)
    assert isinstance(final, dict)
    stderr_log = Path(final["stderr_path"]).read_text(errors="replace")[-3000:]
    assert final["state"] == "succeeded", stderr_log
    assert len(set(steps_while_running)) >= 2, steps_while_running  # seen moving while it ran
    assert steps_while_running == sorted(steps_while_running)
    progress = final["progress"]
    assert progress["source"] == "metrics"
    assert progress["step"] == progress["total_steps"] == WATCHED_STEPS and progress["fraction"] == 1.0
    assert math.isfinite(progress["loss"]) and progress["loss"] > 0 and progress["rate"] > 0

    png = tmp_path / "loss.png"
    drawn = cli("plot", job_id, "--png", str(png))
    assert drawn.exit_code == 0, drawn.stderr
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    shown = cli("plot", job_id, "--metric", "loss", "--metric", "learning_rate")
    assert shown.exit_code == 0 and "loss" in shown.stdout and "learning_rate" in shown.stdout
    assert f"step {WATCHED_STEPS}/{WATCHED_STEPS} · 100%" in cli("status", job_id).stdout


@pytest.mark.slow
def test_two_trainings_in_one_folder_each_have_only_their_own_steps(cli: Cli, tiny: Path, tmp_path: Path) -> None:
    """Oumi appends to the metrics file of a folder an earlier run used: the second job's progress and series
    are its own 4 steps, not the first job's 6 before them."""
    ids = []
    for steps in (6, 4):
        ids.append(
            submit_id(cli, str(_train_config(tiny, tmp_path, steps, f"train-{steps}.yaml")), *_hermetic(tmp_path))
        )
        final = wait_until(lambda: (d := cli.json("status", ids[-1]))["done"] and d, timeout=240, interval=0.5)
        assert isinstance(final, dict)
        assert final["state"] == "succeeded", Path(final["stderr_path"]).read_text(errors="replace")[-3000:]
    # Both runs in one file, each ending with its summary line (the trainer's runtime, at its last step).
    entries = [json.loads(line) for line in (tmp_path / "out" / "metrics_rank0000.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in entries] == [1, 2, 3, 4, 5, 6, 6, 1, 2, 3, 4, 4]
    progress = final["progress"]
    assert (progress["step"], progress["total_steps"], progress["source"]) == (4, 4, "metrics")
    plotted = cli.json("plot", *ids)
    assert [series["job_id"] for series in plotted["series"]] == ids
    assert plotted["series"][0]["steps"] == [1, 2, 3, 4, 5, 6]  # the first's end was measured as it ended
    assert plotted["series"][1]["steps"] == [1, 2, 3, 4]
    assert plotted["series"][1]["values"] == [entry["loss"] for entry in entries[7:] if "loss" in entry]


@pytest.mark.slow
def test_a_real_oumi_infer_shows_its_tqdm_progress(cli: Cli, tiny: Path, tmp_path: Path) -> None:
    """Inference has no metrics files: its progress is the tqdm bar it draws last, read from its stderr log."""
    (tmp_path / "in.jsonl").write_text(
        "".join('{"messages": [{"role": "user", "content": "the cat sat"}]}\n' for _ in range(6))
    )
    config = tmp_path / "infer.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            model:
              model_name: {tiny / "tiny"}
              tokenizer_name: {tiny / "tiny"}
              model_max_length: 128
              torch_dtype_str: float32
            generation:
              max_new_tokens: 4
              batch_size: 2
            input_path: {tmp_path / "in.jsonl"}
            output_path: {tmp_path / "answers.jsonl"}
            engine: NATIVE
            """
        )
    )
    job_id = submit_id(cli, str(config), *_hermetic(tmp_path))
    final = wait_until(lambda: (d := cli.json("status", job_id))["done"] and d, timeout=240, interval=0.5)
    assert isinstance(final, dict) and final["command"] == "infer"
    assert final["state"] == "succeeded", Path(final["stderr_path"]).read_text(errors="replace")[-3000:]
    found = final["progress"]
    assert found["source"] == "logs" and found["step"] == found["total_steps"] and found["fraction"] == 1.0
