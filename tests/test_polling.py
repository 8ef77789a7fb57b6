"""poll_until: the one deadline loop of the cancellation flows."""

from __future__ import annotations

import time

from oumi_jobs.polling import Deadline, poll_until


def test_returns_the_first_answer_that_satisfies_until():
    answers = iter([0, 0, 3, 4])
    assert poll_until(5.0, lambda: next(answers), 0.001) == 3


def test_returns_the_last_answer_when_the_limit_passes():
    calls = []
    started = time.monotonic()
    answer = poll_until(0.1, lambda: calls.append(1) or len(calls), 0.01, until=lambda n: n < 0)
    took = time.monotonic() - started
    assert answer == len(calls) and len(calls) >= 2 and 0.1 <= took < 1.0


def test_checks_once_even_with_a_deadline_already_past():
    assert poll_until(Deadline.at_wall_time(time.time() - 5), lambda: "late", 1.0, until=lambda _: False) == "late"


def test_no_limit_waits_for_until():
    answers = iter(range(100))
    assert poll_until(None, lambda: next(answers), 0.0, until=lambda n: n == 42) == 42


def test_deadlines_on_both_clocks():
    soon = Deadline.after(0.05)
    assert not soon.passed() and 0 < soon.remaining() <= 0.05
    assert Deadline.at_wall_time(time.time() - 1).passed()
