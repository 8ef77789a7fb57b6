"""A real tiny ``oumi train`` killed mid-run and retried: it resumes from its checkpoint, and the job says so
(``resumed_from_step``, ``first_step``, ``redone_steps``); a control run with resume turned off in its config
starts again from scratch and gets a warning.  Two trainings of two attempts each: marked slow."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from oumi_jobs.paths import Paths
from oumi_jobs.progress.resume import newest_checkpoint
from oumi_jobs.store.registry import Registry

from .helpers import Cli, hermetic, submit_id, train_config, wait_until

MAX_STEPS = 40
SAVE_STEPS = 5
KILL_AFTER = 12
# Four micro-batches a step: the tiny model then takes a fraction of a second per step, so the test sees step 12
# well before step 15 (and its checkpoint) comes.
SLOWER = "gradient_accumulation_steps: 4\n"


def _steps(metrics: Path) -> list[int]:
    try:
        lines = metrics.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [int(json.loads(line)["step"]) for line in lines if line.strip()]


def _kill_after_step(paths: Paths, job_id: str, out: Path) -> tuple[int, int]:
    """SIGKILL the job's process group once it logged step KILL_AFTER; (its last logged step, its newest
    checkpoint), read once it is gone."""
    metrics = out / "metrics_rank0000.jsonl"
    deadline = time.monotonic() + 240
    while not _steps(metrics) or _steps(metrics)[-1] < KILL_AFTER:
        assert time.monotonic() < deadline, "the training never reached its step"
        time.sleep(0.02)
    with Registry.open(paths) as registry:
        record = registry.get(job_id)
    assert record is not None and record.pgid is not None and record.attempt == 1
    os.killpg(record.pgid, signal.SIGKILL)  # the job this test submitted
    wait_until(lambda: _gone(record.pgid), 20)
    last, checkpoint = _steps(metrics)[-1], newest_checkpoint(out)
    assert checkpoint is not None and last < MAX_STEPS
    return last, checkpoint


def _gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _train(cli: Cli, tiny: Path, tmp_path: Path, extra: str = "") -> str:
    config = train_config(tiny, tmp_path, MAX_STEPS, save_steps=SAVE_STEPS, extra=SLOWER + extra)
    return submit_id(cli, str(config), "--retries", "1", "--retry-delay", "0.5s", *hermetic(tmp_path))


def _finished(cli: Cli, job_id: str) -> dict:
    done = wait_until(lambda: (doc := cli.json("status", job_id))["done"] and doc, 300, interval=0.5)
    assert isinstance(done, dict)
    assert done["state"] == "succeeded", Path(done["stderr_path"]).read_text(errors="replace")[-3000:]
    return done


@pytest.mark.slow
def test_a_killed_training_is_retried_and_resumes_from_its_checkpoint(
    cli: Cli, tiny: Path, tmp_path: Path, paths: Paths
) -> None:
    job_id = _train(cli, tiny, tmp_path)
    last, checkpoint = _kill_after_step(paths, job_id, tmp_path / "out")
    done = _finished(cli, job_id)
    assert done["attempt"] == 2 and done["progress"]["step"] == MAX_STEPS
    first, second = done["attempts"]
    assert first["state"] == "failed" and first["failure"]["class"] == "killed"
    assert checkpoint % SAVE_STEPS == 0 and checkpoint >= KILL_AFTER - KILL_AFTER % SAVE_STEPS
    assert second["resumed_from_step"] == checkpoint and second["first_step"] == checkpoint + 1
    assert second["redone_steps"] == last - checkpoint
    assert not [e for e in cli.json("events", job_id) if e["kind"] == "resume_warning"]


@pytest.mark.slow
def test_a_retry_with_resume_turned_off_starts_from_scratch_and_is_warned(
    cli: Cli, tiny: Path, tmp_path: Path, paths: Paths
) -> None:
    job_id = _train(cli, tiny, tmp_path, "try_resume_from_last_checkpoint: false\n")
    last, checkpoint = _kill_after_step(paths, job_id, tmp_path / "out")
    done = _finished(cli, job_id)
    second = done["attempts"][1]
    assert (second["resumed_from_step"], second["first_step"], second["redone_steps"]) == (0, 1, last)
    warnings = [e for e in cli.json("events", job_id) if e["kind"] == "resume_warning"]
    assert len(warnings) == 1 and warnings[0]["attempt"] == 2 and warnings[0]["checkpoint"] == checkpoint
    shown = cli("status", job_id)
    assert f"checkpoint-{checkpoint} existed" in " ".join(shown.stdout.split())
