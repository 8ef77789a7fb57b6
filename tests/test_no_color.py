"""``NO_COLOR`` means no colour and no spinner (SPEC principle 4), on a terminal too.

The command runs as the installed entry point on a real pseudo-terminal; the
same run without ``NO_COLOR`` shows that the terminal does get the live display.
"""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

import pytest

from oumi_jobs.cli import cloud_progress

from .helpers import on_a_terminal, submit_id

ROOT = Path(__file__).resolve().parent.parent


def _env(paths, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    return env | {"PYTHONPATH": str(ROOT), "OUMI_JOBS_HOME": str(paths.data_dir.parent), "COLUMNS": "100"} | extra


@pytest.mark.parametrize("no_color", [True, False], ids=["NO_COLOR", "colour"])
def test_status_watch_on_a_terminal_does_not_animate_with_no_color(paths, cli, job_config, no_color):
    job_id = submit_id(cli, str(job_config("sleep 1.5")))
    extra = {"NO_COLOR": "1"} if no_color else {}
    argv = ["oumi-jobs", "status", "--watch", job_id]  # the installed entry point, importing this copy
    shown = on_a_terminal(argv, _env(paths, **extra), ROOT)
    assert job_id.encode() in shown
    if no_color:
        assert b"\x1b" not in shown, shown[:400]  # no colour, no cursor moves, no spinner frames
        assert b"succeeded" in shown.splitlines()[-1]  # plain lines, the last one the end
    else:
        assert b"\x1b[" in shown  # the same terminal gets the live display: the check above can fail


def test_cloud_progress_shows_no_spinner_with_no_color(monkeypatch):
    master, slave = os.openpty()
    terminal = io.TextIOWrapper(io.FileIO(slave, "w"), encoding="utf-8")
    monkeypatch.setattr(sys, "stderr", terminal)
    try:
        watchers = []

        def work(watcher):
            watchers.append(watcher)
            time.sleep(0.3)  # a spinner would draw meanwhile
            return "answer"

        monkeypatch.setenv("NO_COLOR", "1")
        assert cloud_progress.with_cloud_progress(work, live=True) == "answer"
        monkeypatch.delenv("NO_COLOR")
        assert cloud_progress.with_cloud_progress(work, live=True) == "answer"
        assert cloud_progress.with_cloud_progress(work, live=False) == "answer"  # what --json and pipes get
        plain = type(watchers[2])
        assert type(watchers[0]) is plain  # no spinner to tell which clouds are still asked: plain notices only
        assert type(watchers[1]) is not plain  # on the same terminal without NO_COLOR: the spinner
    finally:
        terminal.close()
        os.close(master)
