"""The output sink: each mode shows what it should, and --json / -q never load rich."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from oumi_jobs.cli.output import Mode, Output
from oumi_jobs.render.outcome import Encoded, Outcome

from .helpers import wait_done


def _never() -> object:
    raise AssertionError("built for a mode that does not show it")


def test_json_prints_one_document_and_nothing_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    out = Output.from_flags(as_json=True, quiet=True)  # --json wins: stdout stays one document
    assert out.mode is Mode.JSON and not out.live
    out.value("job-1")
    out.hint("for a person")
    out.result(lambda: {"schema_version": 1, "job_id": "job-1"}, human=_never)
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"schema_version": 1, "job_id": "job-1"}
    assert captured.err == ""


def test_human_renders_and_never_builds_the_document(capsys: pytest.CaptureFixture[str]) -> None:
    out = Output.from_flags()
    assert out.mode is Mode.HUMAN and out.live
    shown = []
    out.value("job-1")
    out.hint("follow it with: oumi-jobs logs -f job-1")
    out.result(_never, human=lambda: shown.append("rendered"))
    out.result({"ignored": True})  # nothing more to show a person
    captured = capsys.readouterr()
    assert shown == ["rendered"]
    assert captured.out == "job-1\n"
    assert captured.err == "follow it with: oumi-jobs logs -f job-1\n"  # plain: stderr is not a terminal


def test_quiet_prints_only_the_essential_value(capsys: pytest.CaptureFixture[str]) -> None:
    out = Output.from_flags(quiet=True)
    out.value("job-1")
    out.hint("for a person")
    out.result(_never, human=_never)
    assert capsys.readouterr() == ("job-1\n", "")


@pytest.mark.parametrize("flags", [{}, {"as_json": True}, {"quiet": True}])
def test_warnings_and_errors_reach_stderr_in_every_mode(flags: dict, capsys: pytest.CaptureFixture[str]) -> None:
    out = Output.from_flags(**flags)
    out.warn("this may take a while")
    out.error("job x is already failed; nothing to cancel")
    assert capsys.readouterr() == (
        "",
        "oumi-jobs: warning: this may take a while\noumi-jobs: error: job x is already failed; nothing to cancel\n",
    )


def test_notes_are_lines_unless_a_person_is_shown_them_otherwise(capsys: pytest.CaptureFixture[str]) -> None:
    Output.from_flags(as_json=True).notes(["oj-fail: unreachable"], human=_never)
    assert capsys.readouterr() == ("", "oj-fail: unreachable\n")
    Output.from_flags().notes(["oj-fail: unreachable"])
    assert capsys.readouterr() == ("", "oj-fail: unreachable\n")
    tables = []
    Output.from_flags().notes(["oj-fail: unreachable"], human=lambda: tables.append("clouds"))
    assert capsys.readouterr() == ("", "") and tables == ["clouds"]


def test_follow_shows_items_to_a_person_and_only_returns_the_last_otherwise() -> None:
    def items() -> Iterator[int]:
        yield from (1, 2, 3)

    seen: list[int] = []

    def watch(followed: Iterator[int]) -> int:
        seen.extend(followed)
        return seen[-1]

    assert Output.from_flags().follow(items(), human=watch) == 3 and seen == [1, 2, 3]
    assert Output.from_flags(as_json=True).follow(items(), human=_never) == 3  # type: ignore[arg-type]
    assert Output.from_flags(quiet=True).follow(items(), human=_never) == 3  # type: ignore[arg-type]


def _imports_rich(*args: str) -> tuple[bool, subprocess.CompletedProcess[str]]:
    """Run the real command in a fresh interpreter; whether it imported rich (from ``-X importtime``)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "oumi_jobs", *args],
        env=dict(os.environ, DO_NOT_TRACK="1"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    modules = [
        line.rpartition("|")[2].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    ]
    return any(name.split(".")[0] == "rich" for name in modules), result


def test_json_and_quiet_commands_never_import_rich(cli, job_config) -> None:
    rich, submitted = _imports_rich("submit", "-q", str(job_config("echo hi")))
    assert submitted.returncode == 0 and not rich, submitted.stderr[-2000:]
    job_id = submitted.stdout.strip()
    wait_done(cli, job_id)
    for args in (
        ["list", "--json"],
        ["status", job_id, "--json"],
        ["logs", job_id, "--json"],
        ["cancel", job_id, "--json"],  # already done: the 'nothing to cancel' line, exit 4
        ["cancellations", "--json"],
        ["prune", "--dry-run", "--json"],
    ):
        rich, result = _imports_rich(*args)
        assert result.returncode in (0, 4), (args, result.stderr[-2000:])
        assert not rich, f"{' '.join(args)} imported rich"
    # The detector is live: a table for a person does load it.
    rich, _ = _imports_rich("list")
    assert rich


def test_an_outcome_is_rendered_once_for_json(capsys: pytest.CaptureFixture[str]) -> None:
    outcome = Outcome(
        lambda: {"schema_version": 1, "ok": False},
        warnings=("metrics file not written", "metrics file not written"),
        errors=("job job-1 is already succeeded; nothing to cancel",),
        unreachable={"slurm": "timed out", "gcp": "no credentials"},
        exit_code=4,
    )
    assert Output.from_flags(as_json=True).outcome(outcome, human=_never, human_notes=_never) == 4
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"schema_version": 1, "ok": False}
    assert captured.err.splitlines() == [
        "oumi-jobs: warning: metrics file not written",  # once, however many records carried it
        "oumi-jobs: error: job job-1 is already succeeded; nothing to cancel",
        "gcp: no credentials",
        "slurm: timed out",
    ]


def test_an_outcome_for_a_person_and_for_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    shown: list[str] = []
    outcome = Outcome(_never, errors=("went wrong",), unreachable={"slurm": "timed out"}, exit_code=5)
    code = Output.from_flags().outcome(
        outcome, human=lambda: shown.append("result"), human_notes=lambda: shown.append("clouds")
    )
    assert (code, shown) == (5, ["result", "clouds"])
    assert capsys.readouterr().err.splitlines() == ["oumi-jobs: error: went wrong"]  # the notes were shown as a table
    assert Output.from_flags(quiet=True).outcome(outcome, human=_never) == 5
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.splitlines() == ["oumi-jobs: error: went wrong", "slurm: timed out"]


def test_encoded_documents_are_printed_as_they_are(capsys: pytest.CaptureFixture[str]) -> None:
    texts = ['{"job_id":"a","name":"é"}', '{"job_id":"b"}']
    assert Output.from_flags(as_json=True).outcome(Outcome(Encoded(texts))) == 0
    assert capsys.readouterr().out == '[{"job_id":"a","name":"é"},{"job_id":"b"}]\n'
