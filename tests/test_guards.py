"""Guards (stall, NaN, max duration, max cost) on real local jobs watched by their supervisors, the guard
evaluation's rules, and SIGCONT after a cancel's graceful signal.

The real ``oumi train`` runs (a stall, a NaN, a clean run) are in tests/test_training_progress.py, which
builds the tiny model once.
"""

from __future__ import annotations

import math
import os
import signal
import time

import pytest

from oumi_jobs import guards
from oumi_jobs.local import guard_watch
from oumi_jobs.policy import STALL_AUTO_FLOOR_S, JobPolicy
from oumi_jobs.store.registry import Registry

from .helpers import submit_id, wait_done, wait_until


def _guard_events(cli, job_id: str) -> list[dict]:
    return [e for e in cli.json("events", job_id) if e["kind"] == "guard"]


# -- the evaluation, pure --------------------------------------------------------------------------------------
def test_no_guard_fires_for_a_job_without_guards() -> None:
    seen = guards.Observation(now=10_000.0, started=0.0, step=5, stall_since=0.0, non_finite="loss=nan at step 5")
    assert guards.evaluate(JobPolicy(), seen) is None


def test_a_stall_counts_from_the_last_step_and_never_before_the_first() -> None:
    policy = JobPolicy(stall_after_s=15.0)
    assert guards.evaluate(policy, guards.Observation(now=1000.0, started=0.0)) is None  # loading for 1000 s
    assert guards.evaluate(policy, guards.Observation(now=114.0, started=0.0, step=3, stall_since=100.0)) is None
    firing = guards.evaluate(policy, guards.Observation(now=116.0, started=0.0, step=3, stall_since=100.0))
    assert firing is not None and (firing.guard, firing.observed, firing.limit) == ("stall", 16.0, 15.0)
    failure = firing.failure()
    assert failure.failure_class == "stalled" and "observed 16, limit 15" in (failure.evidence or "")
    assert firing.reason.startswith("guard: stalled: its training step (3) has not advanced")


def test_checkpoint_or_evaluation_activity_restarts_the_stall_clock() -> None:
    clock = guards.StallClock()
    clock.see(None, 10.0, activity=12.0)  # before the first step: setup, not counted
    assert clock.since is None
    clock.see(3, 20.0)
    clock.see(3, 30.0, activity=28.0)  # a checkpoint being written at 28
    assert clock.since == 28.0
    clock.see(3, 50.0, activity=28.0)
    assert clock.since == 28.0 and clock.step == 3
    clock.see(5, 52.0)
    assert (clock.since, clock.step, clock.intervals) == (52.0, 5, [16.0])


def test_auto_stall_is_five_times_the_95th_percentile_step_interval_with_a_floor() -> None:
    auto = JobPolicy(stall_auto=True)
    assert guards.stall_limit(auto, [1.0, 2.0]) == STALL_AUTO_FLOOR_S  # too few intervals to learn from
    slow = [60.0] * 19 + [100.0]
    assert guards.stall_limit(auto, slow) == 5 * 60.0  # the 95th percentile of 20 is the 19th
    assert guards.stall_limit(auto, [0.1] * 50) == STALL_AUTO_FLOOR_S
    assert guards.stall_limit(JobPolicy(stall_after_s=15.0), slow) == 15.0


def test_max_cost_fires_on_the_cost_so_far_or_on_the_forecast() -> None:
    policy = JobPolicy(max_cost=1.0)
    # $2/h for 20 min: $0.67 spent; 20 more minutes to go: $1.33 forecast.
    seen = guards.Observation(now=1200.0, started=0.0, step=10, eta_s=1200.0, price_per_hour=2.0)
    firing = guards.evaluate(policy, seen)
    assert firing is not None and firing.guard == "max_cost" and firing.failure_class == "over_budget"
    assert math.isclose(float(firing.observed), 4 / 3, rel_tol=1e-3) and "by its end" in firing.cause
    near_end = guards.Observation(now=1200.0, started=0.0, step=10, eta_s=60.0, price_per_hour=2.0)
    assert guards.evaluate(policy, near_end) is None
    spent = guards.Observation(now=1900.0, started=0.0, price_per_hour=2.0)
    firing = guards.evaluate(policy, spent)
    assert firing is not None and "has cost about $1.06" in firing.cause
    assert guards.evaluate(policy, guards.Observation(now=1e9, started=0.0)) is None  # no price: no estimate


def test_nan_fires_on_a_non_finite_gradient_norm_and_skipped_guards_do_not_fire_again() -> None:
    policy = JobPolicy(nan_guard=True, max_duration_s=10.0)
    seen = guards.Observation(now=20.0, started=0.0, step=2, non_finite="grad_norm=nan at step 2")
    firing = guards.evaluate(policy, seen)
    assert firing is not None and (firing.guard, firing.failure_class) == ("nan", "diverged")
    then = guards.evaluate(policy, seen, skip=frozenset({"nan"}))
    assert then is not None and (then.guard, then.failure_class) == ("max_duration", "over_time")
    assert guards.evaluate(policy, seen, skip=frozenset({"nan", "max_duration"})) is None


# -- real local jobs -------------------------------------------------------------------------------------------
def test_max_duration_stops_a_sleeping_job_as_over_time(cli, paths, job_config) -> None:
    job_id = submit_id(cli, str(job_config("sleep 60")), "--max-duration", "3s")
    final = wait_done(cli, job_id, timeout=60)
    assert final["state"] == "failed", final
    failure = final["failure"]
    assert failure["class"] == "over_time" and "past its limit of 3 s" in failure["cause"]
    assert "max_duration guard: observed" in failure["evidence"]
    [event] = _guard_events(cli, job_id)
    assert (event["guard"], event["limit"], event["action"], event["attempt"]) == ("max_duration", 3.0, "stop", 1)
    assert event["observed"] >= 3.0
    [cancel] = [e for e in cli.json("events", job_id) if e["kind"] == "cancel"]
    assert cancel["reason"].startswith("guard: over_time:") and cancel["status"] == "completed"
    assert "over_time" in cli("status", job_id).stdout  # the human panel names the guard's class


def test_alert_only_records_and_the_job_succeeds(cli, paths, job_config) -> None:
    job_id = submit_id(cli, str(job_config("sleep 6")), "--max-duration", "2s", "--guard-action", "alert")
    final = wait_done(cli, job_id, timeout=60)
    assert final["state"] == "succeeded" and final["failure"] is None, final
    [event] = _guard_events(cli, job_id)  # once, though the limit stays passed at every look after
    assert (event["guard"], event["action"]) == ("max_duration", "alert")


def test_slow_checkpoint_saves_do_not_fire_the_stall_guard(cli, paths, job_config, tmp_path) -> None:
    """Steps 1-3, then a checkpoint written slowly (a file every 4 s for 24 s, no step), then steps 4-5: with
    `--stall-after 10s` the save keeps the stall clock fresh and the job succeeds."""
    out = tmp_path / "out"
    run = f"""
        mkdir -p {out}
        for s in 1 2 3; do echo '{{"loss": 1.5, "step": '$s'}}' >> {out}/metrics_rank0000.jsonl; sleep 0.5; done
        mkdir -p {out}/checkpoint-3
        for part in 1 2 3 4 5 6; do sleep 4; echo shard >> {out}/checkpoint-3/model-$part.safetensors; done
        for s in 4 5; do echo '{{"loss": 1.2, "step": '$s'}}' >> {out}/metrics_rank0000.jsonl; done
    """
    job_id = submit_id(cli, str(job_config(run, envs={"OUTPUT_DIR": str(out)})), "--stall-after", "10s")
    final = wait_done(cli, job_id, timeout=90)
    assert final["state"] == "succeeded", (final, _guard_events(cli, job_id))
    assert final["progress"]["step"] == 5
    assert _guard_events(cli, job_id) == []


def test_a_job_that_stops_stepping_is_stopped_as_stalled(cli, paths, job_config, tmp_path) -> None:
    """The control of the test above: the same steps and no checkpoint activity after them."""
    out = tmp_path / "out"
    run = f"""
        mkdir -p {out}
        for s in 1 2 3; do echo '{{"loss": 1.5, "step": '$s'}}' >> {out}/metrics_rank0000.jsonl; sleep 0.5; done
        sleep 120
    """
    job_id = submit_id(cli, str(job_config(run, envs={"OUTPUT_DIR": str(out)})), "--stall-after", "5s")
    final = wait_done(cli, job_id, timeout=90)
    assert final["state"] == "failed" and final["failure"]["class"] == "stalled", final
    [event] = _guard_events(cli, job_id)
    assert event["guard"] == "stall" and 5.0 <= event["observed"] < 60


def test_a_nan_in_a_jobs_metrics_stops_it_as_diverged(cli, paths, job_config, tmp_path) -> None:
    """As Oumi's trainer logs a NaN step: a loss of 0.0 and a NaN gradient norm."""
    out = tmp_path / "out"
    run = f"""
        mkdir -p {out}
        echo '{{"loss": 2.5, "grad_norm": 1.0, "step": 1}}' >> {out}/metrics_rank0000.jsonl
        echo '{{"loss": 0.0, "grad_norm": NaN, "step": 2}}' >> {out}/metrics_rank0000.jsonl
        sleep 120
    """
    job_id = submit_id(cli, str(job_config(run, envs={"OUTPUT_DIR": str(out)})), "--nan-guard")
    final = wait_done(cli, job_id, timeout=60)
    assert final["state"] == "failed" and final["failure"]["class"] == "diverged", final
    [event] = _guard_events(cli, job_id)
    assert event["guard"] == "nan" and event["observed"] == "grad_norm=nan at step 2"


# -- SIGCONT after the graceful signal --------------------------------------------------------------------------
def test_cancelling_a_stopped_process_ends_it_at_once_thanks_to_sigcont(cli, paths, job_config) -> None:
    job_id = submit_id(cli, str(job_config("exec sleep 300")))
    record = wait_until(lambda: _started(paths, job_id), timeout=20)
    os.kill(record.pid, signal.SIGSTOP)
    started = time.monotonic()
    result = cli("cancel", job_id, "--timeout", "60", "--json")
    took = time.monotonic() - started
    assert result.exit_code == 0, result.stderr
    final = wait_done(cli, job_id)
    assert final["state"] == "cancelled" and final["exit_signal"] == signal.SIGTERM, final
    assert took < 30, took  # far below the 60 s timeout: without SIGCONT it would have waited it out
    steps = cli.json("cancel-status", job_id)["steps"]
    assert any(s["name"] == "signal_term" and "then SIGCONT" in (s["detail"] or "") for s in steps), steps
    assert not any(s["name"] == "signal_kill" for s in steps)


def _started(paths, job_id: str):
    with Registry.open(paths) as registry:
        record = registry.get(job_id)
    return record if record is not None and record.pid is not None else None


@pytest.mark.parametrize("line", ["{'loss': 0.0, 'grad_norm': nan, 'learning_rate': 1e+30, 'epoch': 0.1}"])
def test_the_log_fallback_reads_a_nan_printed_as_python_does(line: str) -> None:
    match = guard_watch._NON_FINITE_LINE.search(line)
    assert match is not None and match.group(1) == "grad_norm"
