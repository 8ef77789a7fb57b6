"""Triage: every failed or lost job says why.

The rules table is checked rule by rule (each example line is classified by
its own rule, and by no earlier one); the corpus is real jobs made on this
machine, one per class that can be caused here: a real OOM kill in a memory
cgroup, a kill from outside, a full tmpfs, the log lines of a GPU's OOM and an
NCCL timeout, a plain exit code and an unknown crash.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import typing
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from oumi_jobs.failures import Ending, Failure, encode_failure, triage
from oumi_jobs.failures.rules import CLASSES, LOG_RULES, STATUS_RULES, first_rule, status_rule
from oumi_jobs.paths import Paths
from oumi_jobs.render.base import job_document
from oumi_jobs.server.schemas import FailureClass, JobDocument
from oumi_jobs.states import State
from oumi_jobs.views import view_of

from .helpers import Cli, hermetic, make_record, submit_id, train_config, wait_done, wait_state, wait_until

IN_CI = os.environ.get("CI") == "true"
V1_MEMORY = Path("/sys/fs/cgroup/memory")


# -- the table -----------------------------------------------------------------------------
@pytest.mark.parametrize("rule", LOG_RULES, ids=[rule.name for rule in LOG_RULES])
def test_each_log_rule_classifies_its_example_and_no_earlier_rule_does(rule) -> None:
    assert rule.failure_class in CLASSES
    assert rule.examples
    for example in rule.examples:
        assert first_rule(example) is rule, example
        assert first_rule(example.lower()) is rule, example  # tools print the same words in their own case


@pytest.mark.parametrize("rule", STATUS_RULES, ids=[rule.words[0] for rule in STATUS_RULES])
def test_each_launcher_state_rule_classifies_its_words(rule) -> None:
    assert rule.failure_class in CLASSES
    for word in rule.words:
        assert status_rule(f"{word} (exit 0:9)") is rule
        failure = triage(Ending(launcher_status=word))
        assert (failure.failure_class, failure.evidence) == (rule.failure_class, word)
    assert status_rule("CANCELLED by 0") is None  # a cancelled job did not fail


def test_the_classes_are_the_contracts() -> None:
    assert set(typing.get_args(FailureClass)) == set(CLASSES) and len(CLASSES) == 14


def test_the_rest_model_takes_the_document_as_built() -> None:
    failure = Failure("gpu_oom", "a GPU ran out of memory", "lower the batch size", GPU_OOM)
    record = make_record("oom", exit_code=1, end_time="2026-01-01T00:00:00+00:00", failure=encode_failure(failure))
    document = job_document(view_of(record))
    assert document["failure"] == {
        "class": "gpu_oom",
        "cause": failure.cause,
        "hint": failure.hint,
        "evidence": GPU_OOM,
    }
    assert JobDocument.model_validate(document).model_dump(by_alias=True)["failure"] == document["failure"]


def test_a_line_no_rule_knows_is_quoted_and_never_guessed(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    log.write_text("Traceback (most recent call last):\n  File 'x', line 1\nRuntimeError: the flux capacitor\n\n")
    failure = triage(Ending(exit_code=1, log_paths=(str(log),)))
    assert (failure.failure_class, failure.evidence) == ("unknown", "RuntimeError: the flux capacitor")
    log.write_text("all fine here\n")
    assert triage(Ending(exit_code=1, log_paths=(str(log),))).failure_class == "exit_code"


def test_a_sigkill_without_the_kernels_log_is_not_called_a_kill_by_hand(tmp_path: Path) -> None:
    failure = triage(Ending(exit_signal=signal.SIGKILL, pids=(1,), kmsg_path=str(tmp_path / "no-kmsg")))
    assert failure.failure_class == "killed" and "OOM killer" in failure.cause and "unreadable" in failure.cause


def test_a_cloud_launch_that_failed_quotes_the_launchers_words() -> None:
    ended = {"cloud": "gcp", "end_time": "2026-01-01T00:00:00+00:00"}
    failed = view_of(make_record("up-failed", end_detail="launch failed: RuntimeError: quota exhausted", **ended))
    assert failed.state is State.FAILED and failed.failure is not None
    assert (failed.failure.failure_class, failed.failure.evidence) == ("unknown", failed.record.end_detail)
    full = view_of(
        make_record("up-full", end_detail="launch failed: OSError: [Errno 28] No space left on device", **ended)
    )
    assert full.failure is not None and full.failure.failure_class == "disk_full"


def test_the_cgroup_v2_oom_counter_is_the_kernels_evidence(tmp_path: Path) -> None:
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    failure = triage(Ending(exit_signal=signal.SIGKILL, cgroup=str(tmp_path)))
    assert failure.failure_class == "host_oom" and failure.evidence == f"{tmp_path}/memory.events: oom_kill 1"


def test_a_lost_job_says_it_was_lost() -> None:
    view = view_of(make_record("gone", submit_time="2020-01-01T00:00:00+00:00"))
    assert view.state is State.LOST
    assert view.failure is not None and view.failure.failure_class == "lost"
    assert view.failure.evidence == view.detail


# -- the corpus: real jobs -------------------------------------------------------------------
def _failure_of(cli: Cli, job_id: str) -> dict:
    document = wait_done(cli, job_id, timeout=60)
    assert document["state"] == "failed", document
    failure = document["failure"]
    assert set(failure) == {"class", "cause", "hint", "evidence"}
    assert failure["cause"] and "\n" not in failure["cause"] and failure["hint"]
    return failure


def test_a_plain_exit_code_is_its_evidence_in_status_list_and_json(paths: Paths, cli: Cli, job_config) -> None:
    job_id = submit_id(cli, str(job_config("exit 3")))
    failure = _failure_of(cli, job_id)
    assert (failure["class"], failure["evidence"]) == ("exit_code", "exit code 3")
    human = cli("status", job_id).stdout
    assert "exit_code: it exited with code 3" in " ".join(human.split())
    assert "exit_code:" in cli("list").stdout
    lean = [doc for doc in cli.json("list") if doc["job_id"] == job_id]
    assert lean[0]["failure"] == failure  # the lean listing projects the very object


def test_an_unknown_crash_quotes_its_last_error_line(paths: Paths, cli: Cli, job_config) -> None:
    job_id = submit_id(cli, str(job_config("python3 -c \"raise RuntimeError('boom 42')\"")))
    failure = _failure_of(cli, job_id)
    assert (failure["class"], failure["evidence"]) == ("unknown", "RuntimeError: boom 42")


GPU_OOM = (
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of "
    "79.10 GiB of which 3.44 MiB is free. Including non-PyTorch memory, this process has 79.09 GiB memory in use."
)
NCCL_TIMEOUT = (
    "[rank0]:[E1205 01:02:03.456789 1234 ProcessGroupNCCL.cpp:632] [Rank 0] Watchdog caught collective operation "
    "timeout: WorkNCCL(SeqNum=42, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=600000) ran for 600013 "
    "milliseconds before timing out."
)


@pytest.mark.parametrize(("line", "expected"), [(GPU_OOM, "gpu_oom"), (NCCL_TIMEOUT, "nccl")], ids=["gpu", "nccl"])
def test_the_log_lines_of_a_real_job(paths: Paths, cli: Cli, job_config, line: str, expected: str) -> None:
    run = f"echo 'step 1 of 10'\necho {json.dumps(line)} >&2\necho 'Traceback noise: Error somewhere' >&2\nexit 1"
    failure = _failure_of(cli, submit_id(cli, str(job_config(run))))
    assert (failure["class"], failure["evidence"]) == (expected, line)


def test_a_process_killed_from_outside(paths: Paths, cli: Cli, job_config) -> None:
    job_id = submit_id(cli, str(job_config("sleep 300")))
    os.kill(wait_state(cli, job_id, "running")["pid"], signal.SIGKILL)
    failure = _failure_of(cli, job_id)
    assert (failure["class"], failure["evidence"]) == ("killed", "signal 9 (SIGKILL)")


def _as_root(what: str) -> None:
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail(f"{what} needs root, and CI runs as root")
        pytest.skip(f"{what} needs root")


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    _as_root("mounting a tmpfs")
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)], check=False)
    if mounted.returncode != 0:
        (pytest.fail if IN_CI else pytest.skip)(f"cannot mount a tmpfs at {mount_point}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


def test_a_disk_full(paths: Paths, cli: Cli, job_config, tiny_tmpfs: Path) -> None:
    job_id = submit_id(cli, str(job_config(f"head -c 1048576 /dev/zero > {tiny_tmpfs}/fill")))
    failure = _failure_of(cli, job_id)
    assert failure["class"] == "disk_full" and "No space left on device" in failure["evidence"]


@pytest.fixture
def memory_cgroup() -> Iterator[Path]:
    """A cgroup v1 memory cgroup of 64 MiB (and no swap beyond it)."""
    _as_root("a memory cgroup")
    if not (V1_MEMORY / "cgroup.procs").exists():
        (pytest.fail if IN_CI else pytest.skip)(f"no cgroup v1 memory controller at {V1_MEMORY}")
    group = V1_MEMORY / f"oumi-jobs-test-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(64 << 20))
        if (group / "memory.memsw.limit_in_bytes").exists():
            (group / "memory.memsw.limit_in_bytes").write_text(str(64 << 20))
        yield group
    finally:
        group.rmdir()  # the job has ended: the cgroup is empty


def test_a_real_host_oom_kill_in_a_memory_cgroup(paths: Paths, cli: Cli, job_config, memory_cgroup: Path) -> None:
    hog = "b = []\nwhile True: b.append(bytearray(8 << 20))"
    run = f"echo $$ > {memory_cgroup}/cgroup.procs\nexec python3 -c {shlex.quote(hog)}"
    job_id = submit_id(cli, str(job_config(run)))
    failure = _failure_of(cli, job_id)
    oom_kills = dict(line.split() for line in (memory_cgroup / "memory.oom_control").read_text().splitlines())
    assert int(oom_kills.get("oom_kill", "1")) > 0, failure  # the kernel's own count (kernels since 4.13 keep it)
    assert failure["class"] == "host_oom", failure
    assert "Killed process" in failure["evidence"] and memory_cgroup.name in failure["cause"]


@pytest.mark.slow
def test_a_real_oumi_train_with_a_missing_dataset(cli: Cli, tiny: Path, tmp_path: Path) -> None:
    config = train_config(tiny, tmp_path)
    config.write_text(config.read_text().replace(str(tiny / "data.jsonl"), str(tmp_path / "nowhere.jsonl")))
    job_id = submit_id(cli, str(config), *hermetic(tmp_path))
    document = wait_done(cli, job_id, timeout=240)
    assert document["state"] == "failed", Path(document["stderr_path"]).read_text(errors="replace")[-3000:]
    failure = document["failure"]
    assert failure["class"] == "config_error" and failure["cause"] == "a dataset the config names cannot be found"
    assert str(tmp_path / "nowhere.jsonl") in failure["evidence"]  # Oumi's own line, quoted


def test_a_message_wrapped_by_rich_is_matched_across_its_lines(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    log.write_text("Error: dataset_path\n'/data/a-long-folder/train.jsonl' does not exist.\n")
    failure = triage(Ending(exit_code=1, log_paths=(str(log),)))
    assert failure.failure_class == "config_error"
    assert failure.evidence == "Error: dataset_path '/data/a-long-folder/train.jsonl' does not exist."


@pytest.mark.slow
def test_slurm_jobs_ended_from_outside_by_scancel(slurm, paths: Paths, cli: Cli, tmp_path: Path, monkeypatch) -> None:
    """Slurm's own state decides: a job scancel'd from outside is cancelled (no failure); one whose batch shell
    scancel kills is FAILED, and as Slurm's status says no more, the failure quotes it and never guesses."""
    monkeypatch.setenv("OUMI_SLURM_CONNECTIONS", os.environ.get("OUMI_SLURM_CONNECTIONS", slurm))
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "slurm-job.yaml"
    config.write_text("run: |\n  echo started\n  sleep 600\nresources:\n  cloud: slurm\n")
    jobs = [submit_id(cli, str(config), "--cluster", slurm) for _ in range(2)]

    def status(job_id: str) -> dict:
        return cli.json("status", job_id, "--cloud-timeout", "60")

    launched = [wait_until(lambda j=j: (d := status(j))["state"] == "running" and d, 300, 1) for j in jobs]
    cancelled, killed = (document["launcher_job_id"] for document in launched)  # type: ignore[index]
    subprocess.run(["scancel", cancelled], check=True)
    subprocess.run(["scancel", "--batch", "--signal=KILL", killed], check=True)
    ended = [wait_until(lambda j=j: (d := status(j))["done"] and d, 120, 1) for j in jobs]
    assert (ended[0]["state"], ended[0]["failure"]) == ("cancelled", None)  # type: ignore[index]
    assert ended[1]["state"] == "failed" and ended[1]["failure"]["evidence"] == ended[1]["status"]  # type: ignore[index]
    assert ended[1]["failure"]["class"] == "unknown" and ended[1]["status"].startswith("FAILED")  # type: ignore[index]
