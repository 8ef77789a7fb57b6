"""A real ``oumi train`` through ``oumi-jobs submit``: its progress read live, and its metrics plotted.

The model is made on the spot (no download), once per test session: the ``tiny``
fixture of tests/conftest.py.  About 20-30 s of CPU per run, most of it
importing oumi.  Marked ``slow`` but run by the plain ``python -m pytest``.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Any

import pytest

from .helpers import Cli, hermetic, submit_id, train_config, wait_until

# The run that is watched while it trains: the tiny model does about 150 steps a second on an idle core, so
# 12 steps end between two reads of its status; this many last a few seconds there, and longer under load.
WATCHED_STEPS = 400


@pytest.mark.slow
def test_a_real_oumi_train_shows_its_progress_and_plots(cli: Cli, tiny: Path, tmp_path: Path) -> None:
    job_id = submit_id(cli, str(train_config(tiny, tmp_path, WATCHED_STEPS)), *hermetic(tmp_path))

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
        ids.append(submit_id(cli, str(train_config(tiny, tmp_path, steps, f"train-{steps}.yaml")), *hermetic(tmp_path)))
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
    job_id = submit_id(cli, str(config), *hermetic(tmp_path))
    final = wait_until(lambda: (d := cli.json("status", job_id))["done"] and d, timeout=240, interval=0.5)
    assert isinstance(final, dict) and final["command"] == "infer"
    assert final["state"] == "succeeded", Path(final["stderr_path"]).read_text(errors="replace")[-3000:]
    found = final["progress"]
    assert found["source"] == "logs" and found["step"] == found["total_steps"] and found["fraction"] == 1.0
