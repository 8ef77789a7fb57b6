"""Local clusters as queues and --after chains, with real supervisors and processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from oumi_jobs.store.registry import Registry

from .helpers import submit_id, wait_done, wait_state, wait_until


def timed_job(job_config, timeline: Path, label: str, seconds: float = 0.4, extra: str = "") -> Path:
    return job_config(
        f"""
        echo "{label} start $(date +%s%N)" >> "{timeline}"
        {extra}
        sleep {seconds}
        echo "{label} end $(date +%s%N)" >> "{timeline}"
        """
    )


def intervals(timeline: Path) -> dict[str, tuple[int, int]]:
    marks: dict[str, dict[str, int]] = {}
    for line in timeline.read_text().splitlines():
        label, what, stamp = line.split()
        marks.setdefault(label, {})[what] = int(stamp)
    return {label: (m["start"], m["end"]) for label, m in marks.items()}


def max_overlap(spans: list[tuple[int, int]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def test_one_cluster_runs_jobs_one_at_a_time_in_submit_order(cli, job_config, tmp_path):
    timeline = tmp_path / "timeline"
    ids = [submit_id(cli, str(timed_job(job_config, timeline, f"j{i}")), "--cluster", "gpu0") for i in range(3)]
    queued = cli.json("status", ids[2])
    assert queued["state"] == "pending"
    assert queued["detail"].startswith("position ") and "queue gpu0" in queued["detail"]
    for job_id in ids:
        assert wait_done(cli, job_id)["state"] == "succeeded"
    spans = intervals(timeline)
    assert [spans[f"j{i}"] for i in range(3)] == sorted(spans.values())  # submit order
    assert spans["j0"][1] <= spans["j1"][0] and spans["j1"][1] <= spans["j2"][0]  # never overlapping
    assert [d["job_id"] for d in cli.json("list", "--cluster", "gpu0")] == ids  # the queue, in its order


def test_two_clusters_run_side_by_side(cli, job_config, tmp_path):
    timeline = tmp_path / "timeline"
    a = submit_id(cli, str(timed_job(job_config, timeline, "a", 1.0)), "--cluster", "left")
    b = submit_id(cli, str(timed_job(job_config, timeline, "b", 1.0)), "--cluster", "right")
    wait_done(cli, a)
    wait_done(cli, b)
    assert max_overlap(list(intervals(timeline).values())) == 2


def test_parallel_lets_n_jobs_run_at_once(cli, job_config, tmp_path):
    timeline = tmp_path / "timeline"
    ids = [
        submit_id(cli, str(timed_job(job_config, timeline, f"p{i}", 0.8)), "--cluster", "pool", "--parallel", "2")
        for i in range(4)
    ]
    for job_id in ids:
        wait_done(cli, job_id)
    assert max_overlap(list(intervals(timeline).values())) == 2


def test_killed_supervisor_and_job_free_the_slot(paths, cli, job_config, tmp_path):
    timeline = tmp_path / "timeline"
    first = submit_id(cli, str(job_config("sleep 300")), "--cluster", "solo")
    second = submit_id(cli, str(timed_job(job_config, timeline, "next", 0.1)), "--cluster", "solo")
    wait_state(cli, first, "running")
    assert cli.json("status", second)["state"] == "pending"
    with Registry.open(paths) as registry:
        record = registry.get(first)
    assert record and record.supervisor_pid and record.pgid
    os.kill(record.supervisor_pid, signal.SIGKILL)
    assert cli.json("status", second)["state"] == "pending", "the job itself still holds the slot"
    os.killpg(record.pgid, signal.SIGKILL)
    assert wait_done(cli, second)["state"] == "succeeded"
    assert cli.json("status", first)["state"] == "lost"


def test_chain_that_succeeds_runs_in_order(cli, job_config, tmp_path):
    timeline, gate = tmp_path / "timeline", tmp_path / "gate"
    # The head waits for the gate: the chain is still waiting when its tail is read, however slow the machine.
    held = f'until [ -e "{gate}" ]; do sleep 0.05; done'
    train = submit_id(cli, str(timed_job(job_config, timeline, "train", 0.3, held)), "--cluster", "a")
    evaluate = submit_id(cli, str(timed_job(job_config, timeline, "eval", 0.1)), "--cluster", "b", "--after", train)
    infer = submit_id(cli, str(timed_job(job_config, timeline, "infer", 0.1)), "--cluster", "c", "--after", evaluate)
    waiting = cli.json("status", infer)
    assert waiting["state"] == "pending" and f"waiting for {evaluate}" in waiting["detail"]
    assert waiting["depends_on"] == [evaluate]
    gate.touch()
    assert wait_done(cli, infer)["state"] == "succeeded"
    spans = intervals(timeline)
    assert spans["train"][1] <= spans["eval"][0] and spans["eval"][1] <= spans["infer"][0]


def test_chain_whose_head_fails_never_starts_the_rest(cli, job_config, tmp_path):
    ran = tmp_path / "ran"
    head = submit_id(cli, str(job_config("sleep 0.3; exit 1")), "--cluster", "x")
    middle = submit_id(cli, str(job_config(f"touch '{ran}'")), "--cluster", "y", "--after", head)
    tail = submit_id(cli, str(job_config(f"touch '{ran}'")), "--cluster", "z", "--after", middle)
    assert wait_done(cli, head)["state"] == "failed"
    middle_doc, tail_doc = wait_done(cli, middle), wait_done(cli, tail)
    assert middle_doc["state"] == tail_doc["state"] == "cancelled"
    assert f"dependency {head} failed" in middle_doc["status"]
    assert f"dependency {middle} cancelled" in tail_doc["status"]
    assert middle_doc["pid"] is None and tail_doc["pid"] is None
    assert not ran.exists()


def test_cascade_cancel_of_a_chain_head(cli, job_config, tmp_path):
    ran = tmp_path / "ran"
    head = submit_id(cli, str(job_config("sleep 300")), "--cluster", "h")
    second = submit_id(cli, str(job_config(f"touch '{ran}'")), "--cluster", "h2", "--after", head)
    third = submit_id(cli, str(job_config(f"touch '{ran}'")), "--cluster", "h3", "--after", second)
    wait_state(cli, head, "running")
    result = cli("cancel", head, "--force", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["caused_by"] is None
    for job_id, cause in ((second, head), (third, second)):
        doc = cli.json("cancel-status", job_id)
        assert doc["caused_by"] == cause and doc["status"] == "completed"
        assert wait_done(cli, job_id)["state"] == "cancelled"
    history = {d["job_id"]: d["caused_by"] for d in cli.json("cancellations")}
    assert history == {head: None, second: head, third: second}
    assert not ran.exists()


def test_no_cascade_cancels_only_the_named_job(cli, job_config, tmp_path):
    head = submit_id(cli, str(job_config("sleep 300")), "--cluster", "n")
    dependant = submit_id(cli, str(job_config("true")), "--cluster", "n2", "--after", head)
    wait_state(cli, head, "running")
    assert cli("cancel", head, "--force", "--no-cascade").exit_code == 0
    assert [d["job_id"] for d in cli.json("cancellations")] == [head]
    # It was not cancelled itself, but its dependency was: it can never start.
    doc = wait_done(cli, dependant)
    assert doc["state"] == "cancelled" and f"dependency {head} cancelled" in doc["status"]
    assert cli("cancel-status", dependant).exit_code == 3


def test_unknown_or_cyclic_after_is_rejected_and_nothing_written(paths, cli, job_config):
    config = str(job_config("true"))
    unknown = cli("submit", config, "--after", "nope")
    assert unknown.exit_code == 2 and "--after nope" in unknown.stderr
    assert not paths.state_dir.exists()
    existing = submit_id(cli, config, "--name", "base")
    cycle = cli("submit", config, "--name", "loop", "--after", "loop")
    assert cycle.exit_code == 2
    self_ref = cli("submit", config, "--name", "base", "--after", existing)
    assert self_ref.exit_code == 2 and "cannot wait for itself" in self_ref.stderr
    assert [d["job_id"] for d in cli.json("list")] == [existing]


def test_a_cancelled_pending_job_never_starts(cli, job_config, tmp_path):
    ran = tmp_path / "ran"
    blocker = submit_id(cli, str(job_config("sleep 300")), "--cluster", "q")
    queued = submit_id(cli, str(job_config(f"touch '{ran}'")), "--cluster", "q")
    wait_state(cli, blocker, "running")
    result = cli("cancel", queued, "--json")
    assert result.exit_code == 0
    assert "prevent_start" in [s["name"] for s in json.loads(result.stdout)["steps"]]
    assert cli("cancel", blocker, "--force").exit_code == 0  # its slot frees at once
    assert wait_done(cli, queued)["state"] == "cancelled"
    assert not ran.exists()


def test_prune_keeps_a_finished_job_that_a_waiting_job_needs(cli, job_config):
    import time

    blocker = submit_id(cli, str(job_config("sleep 300")), "--cluster", "pr")
    base = submit_id(cli, str(job_config("true")), "--cluster", "pr2")
    wait_done(cli, base)
    waiting = submit_id(cli, str(job_config("true")), "--cluster", "pr", "--after", base)
    wait_state(cli, blocker, "running")
    time.sleep(1.1)
    result = cli.json("prune", "--older-than", "1s")
    assert base not in result["removed"] and result["kept_running"] >= 2
    assert cli.json("status", waiting)["state"] == "pending"


SUBMITTER = textwrap.dedent(
    """
    import sys
    from oumi_jobs.submitting import SubmitRequest, submit
    from oumi_jobs.paths import Paths

    paths = Paths.from_env()
    for i in range(int(sys.argv[2])):
        print(submit(paths, SubmitRequest(config=sys.argv[1], cluster="one")).job_id, flush=True)
    """
)


@pytest.mark.slow
def test_200_jobs_from_4_processes_into_one_queue_each_run_once(paths, cli, job_config, tmp_path):
    ran = tmp_path / "ran"
    config = job_config(f'echo "$OUMI_JOBS_JOB_ID" >> "{ran}"')
    env = dict(os.environ)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", SUBMITTER, str(config), "50"], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    submitted = []
    for worker in workers:
        out, _ = worker.communicate(timeout=300)
        assert worker.returncode == 0
        submitted += out.split()
    assert len(set(submitted)) == 200

    def all_done() -> bool:
        return all(doc["done"] for doc in cli.json("list", "--cluster", "one"))

    wait_until(all_done, timeout=400, interval=1)
    lines = ran.read_text().split()
    assert sorted(lines) == sorted(submitted), "every job ran exactly once"
    assert {doc["state"] for doc in cli.json("list")} == {"succeeded"}
