"""Guards (stall, NaN, max duration, max cost) on real local jobs watched by their supervisors, the guard
evaluation's rules, and SIGCONT after a cancel's graceful signal.

Three real ``oumi train`` runs of the tiny model (the session's ``tiny`` fixture, shared with
tests/test_training_progress.py): one stopped with SIGSTOP while it trains (stalled), one with an absurd
learning rate (diverged), and a clean one with every guard on (succeeds).
"""

from __future__ import annotations

import math
import os
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

from oumi_jobs import guards
from oumi_jobs.policy import STALL_AUTO_FLOOR_S, JobPolicy
from oumi_jobs.progress import Progress
from oumi_jobs.store.registry import Registry
from oumi_jobs.timestamps import from_epoch

from .helpers import hermetic, submit_id, train_config, wait_done, wait_until


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


def test_a_watchers_attempt_guards_fire_each_guard_once_from_looks_at_its_progress() -> None:
    """What a watcher (the supervisor's thread, the server's watch of a cloud job) holds per job: looks at its
    progress, as read, in; each guard that fires, once, out."""
    watched = guards.AttemptGuards(JobPolicy(stall_after_s=15.0, max_cost=1.0), started=0.0, price_per_hour=3.0)

    def at(step: int, written: float) -> Progress:
        return Progress(step=step, total_steps=100, eta_s=None, as_of=from_epoch(written))

    assert watched.look(5.0, None) is None  # loading: no step yet
    assert watched.look(10.0, at(1, 9.0)) is None
    assert watched.look(20.0, at(3, 19.0)) is None
    assert watched.look(30.0, at(3, 19.0), activity=29.0) is None  # saving a checkpoint
    stall = watched.look(45.0, at(3, 19.0))
    assert stall is not None and stall.guard == "stall" and stall.observed == 16.0
    assert watched.look(50.0, at(3, 19.0)) is None  # fired once for this attempt
    cost = watched.look(1300.0, at(3, 19.0))
    assert cost is not None and cost.guard == "max_cost" and watched.fired == {"stall", "max_cost"}


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
    shown = cli("status", job_id).stdout
    assert "guards" in shown and "max_duration (alert)" in shown and "limit 2" in shown


def test_retry_stops_the_attempt_and_the_next_one_runs_though_its_class_is_not_retried(
    cli, paths, job_config, tmp_path
) -> None:
    """Attempt 1 sleeps past its 2 s limit and is stopped by the guard; attempt 2 exits 0.  `over_time` is not
    in --retry-on: the guard's retry starts the next attempt anyway, and its own cancel does not count as one."""
    count = tmp_path / "count"
    run = f"n=$(( $(cat {count} 2>/dev/null || echo 0) + 1 )); echo $n > {count}; [ $n -ge 2 ] || sleep 60"
    job_id = submit_id(cli, str(job_config(run)), "--max-duration", "2s", "--guard-action", "retry",
                       "--retries", "1", "--retry-on", "exit_code", "--retry-delay", "0.2s")  # fmt: skip
    final = wait_until(lambda: (d := cli.json("status", job_id))["done"] and d, timeout=90)
    assert final["state"] == "succeeded" and final["attempt"] == 2, final
    first = final["attempts"][0]
    assert first["state"] == "failed" and first["failure"]["class"] == "over_time", first
    events = cli.json("events", job_id)
    [guard] = [e for e in events if e["kind"] == "guard"]
    assert (guard["action"], guard["attempt"]) == ("retry", 1) and "retry" not in guard
    [retrying] = [e for e in events if e["kind"] == "retrying"]
    assert (retrying["failure_class"], retrying["next_attempt"], retrying["by_guard"]) == ("over_time", 2, True)
    [cancel] = [c for c in cli.json("cancellations") if c["job_id"] == job_id]
    assert cancel["reason"].startswith("guard: over_time:") and cancel["status"] == "completed", cancel


def test_retry_as_a_guard_action_needs_retries(cli, paths, job_config) -> None:
    result = cli("submit", str(job_config("true")), "--max-duration", "2s", "--guard-action", "retry")
    assert result.exit_code == 2 and "--guard-action retry needs --retries N" in result.stderr
    assert cli.json("list") == []


def test_a_guard_does_not_take_over_a_cancel_under_way(cli, paths, job_config) -> None:
    """A job that ignores SIGTERM is being cancelled (6 s until SIGKILL) when its 2 s limit passes: it ends
    cancelled, as the person asked, with no guard firing on it."""
    job_id = submit_id(cli, str(job_config("trap '' TERM; sleep 60")), "--max-duration", "2s")
    wait_until(lambda: _started(paths, job_id), timeout=20)
    result = cli("cancel", job_id, "--timeout", "6", "--reason", "by hand")
    assert result.exit_code == 0, result.stderr
    final = wait_done(cli, job_id)
    assert final["state"] == "cancelled" and final["failure"] is None, final
    assert _guard_events(cli, job_id) == []
    [cancel] = [e for e in cli.json("events", job_id) if e["kind"] == "cancel"]
    assert cancel["reason"] == "by hand"


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
def test_a_nan_is_read_from_metrics_lines_and_from_log_lines(line: str) -> None:
    assert guards.non_finite_in_log(line) == "grad_norm=nan in the log"
    assert guards.non_finite_in_log("{'loss': 2.1, 'grad_norm': 0.5}") is None
    assert guards.non_finite_in_metrics_line('{"loss": 0.0, "grad_norm": NaN, "step": 2}') == "grad_norm=nan at step 2"
    assert guards.non_finite_in_metrics_line('{"eval_loss": Infinity, "step": 4}') == "eval_loss=inf at step 4"
    assert guards.non_finite_in_metrics_line('{"loss": 0.0, "grad_norm": 1.5, "step": 2}') is None


# -- real `oumi train` runs ------------------------------------------------------------------------------------
# Enough steps that a run the guard misses is still training when the test gives up on it.
LONG_RUN_STEPS = 100_000


def _train(cli, tiny, tmp_path, max_steps: int, *options: str, **training) -> str:
    config = train_config(tiny, tmp_path, max_steps, **training)
    return submit_id(cli, str(config), *hermetic(tmp_path), *options)


def _stderr_tail(document: dict) -> str:
    return Path(document["stderr_path"]).read_text(errors="replace")[-3000:]


@pytest.mark.slow
def test_a_real_training_stopped_with_sigstop_ends_stalled(cli, paths, tiny, tmp_path) -> None:
    job_id = _train(cli, tiny, tmp_path, LONG_RUN_STEPS, "--stall-after", "15s")

    def stepping() -> dict | None:
        document = cli.json("status", job_id)
        assert not document["done"], _stderr_tail(document)
        progress = document["progress"]
        return document if progress and (progress["step"] or 0) >= 3 else None

    running = wait_until(stepping, timeout=240, interval=0.2)
    assert isinstance(running, dict)
    os.killpg(running["pid"], signal.SIGSTOP)  # `oumi train` and any worker of its group: nothing trains now
    metrics = tmp_path / "out" / "metrics_rank0000.jsonl"
    last_step = metrics.stat().st_mtime
    final = wait_done(cli, job_id, timeout=120)
    assert final["state"] == "failed" and final["failure"]["class"] == "stalled", final
    [event] = _guard_events(cli, job_id)
    seen_after = datetime.fromisoformat(event["at"]).timestamp() - last_step
    assert event["guard"] == "stall" and event["limit"] == 15.0 and 15.0 <= seen_after < 60, seen_after
    steps = cli.json("cancel-status", job_id)["steps"]
    # The stopped process was continued after its SIGTERM and acted on it: no SIGKILL was needed.
    assert any(s["name"] == "signal_term" and "then SIGCONT" in (s["detail"] or "") for s in steps), steps
    assert not any(s["name"] == "signal_kill" for s in steps) and final["exit_signal"] == signal.SIGTERM


@pytest.mark.slow
def test_a_real_training_that_diverges_ends_diverged_before_its_last_step(cli, paths, tiny, tmp_path) -> None:
    """A learning rate of 1e30: the gradient norm is NaN from step 2 while the trainer logs the loss as 0.0."""
    job_id = _train(cli, tiny, tmp_path, LONG_RUN_STEPS, "--nan-guard", learning_rate=1e30)
    final = wait_done(cli, job_id, timeout=300)
    assert final["state"] == "failed" and final["failure"]["class"] == "diverged", (final, _stderr_tail(final))
    assert final["progress"]["step"] < LONG_RUN_STEPS
    [event] = _guard_events(cli, job_id)
    assert event["guard"] == "nan" and "=nan at step" in event["observed"], event


@pytest.mark.slow
def test_a_clean_real_training_with_every_guard_succeeds(cli, paths, tiny, tmp_path) -> None:
    options = ("--stall-after", "15s", "--nan-guard", "--max-duration", "30m", "--max-cost", "5")
    job_id = _train(cli, tiny, tmp_path, 12, *options)
    final = wait_done(cli, job_id, timeout=240)
    assert final["state"] == "succeeded" and final["failure"] is None, _stderr_tail(final)
    assert final["progress"]["step"] == 12 and _guard_events(cli, job_id) == []
