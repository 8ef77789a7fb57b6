"""A job's timeline (`events JOB`) and its policy (retries, guards, notifications) as submit keeps it."""

from __future__ import annotations

import json

import pytest

from oumi_jobs import timeline
from oumi_jobs.errors import UsageError
from oumi_jobs.policy import DEFAULT_RETRY_ON, JobPolicy, PolicyTexts, parse_policy
from oumi_jobs.store.registry import Registry

from .helpers import submit_id, wait_done

EVENT_KEYS = {"schema_version", "event_id", "job_id", "attempt", "at", "kind"}


def test_a_failed_jobs_timeline_reads_its_records_and_its_stored_events(cli, paths, job_config):
    job_id = submit_id(cli, str(job_config("echo boom >&2; exit 3")))
    wait_done(cli, job_id)
    with Registry.open(paths) as registry:
        stored = timeline.record(registry, job_id, "guard", guard="max_duration", observed=5.0, limit=1.0,
                                 action="alert")  # fmt: skip
        with pytest.raises(ValueError, match="at"):
            timeline.record(registry, job_id, "guard", at="not-a-detail")
        assert timeline.record(registry, "no-such-job", "guard") is None
    events = cli.json("events", job_id[:8])
    assert [e["kind"] for e in events] == ["submitted", "started", "ended", "guard"]
    assert all(set(e) >= EVENT_KEYS and e["job_id"] == job_id and e["attempt"] == 1 for e in events)
    assert [e["event_id"] for e in events] == [None, None, None, stored]
    ended, guard = events[2], events[3]
    assert (ended["exit_code"], ended["failure"]["class"]) == (3, "exit_code")
    assert (guard["guard"], guard["observed"], guard["limit"], guard["action"]) == ("max_duration", 5.0, 1.0, "alert")
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    human = cli("events", job_id).stdout
    assert "ended" in human and "exit_code - it exited with code 3" in human


def test_events_of_an_unknown_job_is_exit_3(cli):
    result = cli("events", "nope")
    assert result.exit_code == 3 and "no job 'nope'" in result.stderr


def test_submit_keeps_the_policy_it_was_given(cli, paths, job_config):
    config = str(job_config("exit 0"))
    job_id = submit_id(cli, config, "--retries", "2", "--retry-on", "exit_code,lost", "--retry-delay", "1s",
                       "--stall-after", "auto", "--max-duration", "2h", "--max-cost", "3.5", "--nan-guard",
                       "--guard-action", "retry", "--notify", "http://127.0.0.1:9/hook")  # fmt: skip
    plain = submit_id(cli, config)
    with Registry.open(paths) as registry:
        kept = JobPolicy.decode(registry.resolve(job_id).policy)
        assert registry.resolve(plain).policy is None  # the default policy is not written
    assert kept == JobPolicy(
        retries=2, retry_on=("exit_code", "lost"), retry_delay_s=1.0, stall_auto=True, max_duration_s=7200.0,
        max_cost=3.5, nan_guard=True, guard_action="retry", notify=("http://127.0.0.1:9/hook",),
    )  # fmt: skip
    assert (kept.max_attempts, kept.guarded, kept.retries_on("lost"), kept.retries_on("diverged")) == (
        3, True, True, False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--retry-on", "bogus", "unknown failure class 'bogus'"),
        ("--retries", "-1", "--retries"),
        ("--stall-after", "5q", "--stall-after: invalid duration"),
        ("--max-duration", "0s", "--max-duration: must be longer than 0s"),
        ("--max-cost", "nan", "--max-cost"),
        ("--guard-action", "reboot", "--guard-action: 'reboot' is not one of stop, retry, alert"),
        ("--notify", "not a url", "--notify"),
    ],
)
def test_a_bad_policy_is_one_line_and_registers_nothing(cli, paths, job_config, option, value, says):
    for command in ("submit", "sweep"):
        extra = ["--set", "envs.X=1,2"] if command == "sweep" else []
        result = cli(command, str(job_config("exit 0")), *extra, option, value)
        assert result.exit_code == 2, result.stderr
        assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    with Registry.open(paths) as registry:
        assert registry.jobs() == [] and registry.sweeps() == []


def test_every_child_of_a_sweep_keeps_its_policy(cli, paths, job_config):
    sweep_id = cli("sweep", "-q", str(job_config("exit 0")), "--set", "envs.X=1,2", "--retries", "1").stdout.strip()
    with Registry.open(paths) as registry:
        children = [job for job in registry.jobs() if job.sweep_id == sweep_id]
    assert len(children) == 2
    assert {JobPolicy.decode(child.policy).retries for child in children} == {1}


def test_the_policy_parser_defaults_and_round_trip():
    assert parse_policy(PolicyTexts()) == JobPolicy() and JobPolicy().encode() is None
    assert JobPolicy().retry_on == DEFAULT_RETRY_ON and not JobPolicy().guarded
    policy = parse_policy(PolicyTexts(retry_on=["killed", "killed"], stall_after="90s", notify=["ntfys://topic"]))
    assert policy.retry_on == ("killed",) and policy.stall_after_s == 90.0
    assert JobPolicy.decode(policy.encode()) == policy
    newer = json.dumps({**json.loads(policy.encode() or "{}"), "a_later_field": 1})
    assert JobPolicy.decode(newer) == policy  # a newer release's field is left out, not an error
    with pytest.raises(UsageError):
        parse_policy(PolicyTexts(max_cost=float("inf")))
