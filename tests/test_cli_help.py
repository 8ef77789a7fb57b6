"""``oumi-jobs --help`` lists every command from ``cli/app.py``'s SUMMARIES, without building any.

The lines must be what each command's own help says (its text up to the first blank line), and the whole
page what click prints with every command built; and listing them must import no command's module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pytest
import typer.main
from click.testing import CliRunner
from typer.core import TyperGroup

from oumi_jobs.cli.app import COMMANDS, SUMMARIES, app, load_command


def _first_paragraph(command: click.Command) -> str:
    text = command.short_help or command.help or ""
    return " ".join(text.split("\n\n")[0].split())


def test_every_command_has_its_summary_and_no_other() -> None:
    assert list(SUMMARIES) == list(COMMANDS)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_summary_is_what_its_command_says_of_itself(name: str) -> None:
    command = load_command(name, COMMANDS[name])
    assert not command.hidden and not command.deprecated
    assert SUMMARIES[name] == _first_paragraph(command), (
        f"cli/app.py SUMMARIES[{name!r}] differs from the command's help: copy its first paragraph there"
    )


def test_the_root_help_is_the_one_click_prints_with_every_command_built() -> None:
    group = typer.main.get_group(app)
    lazy = CliRunner().invoke(group, ["--help"], prog_name="oumi-jobs", terminal_width=100)
    built = TyperGroup(name="oumi-jobs", commands={n: load_command(n, w) for n, w in COMMANDS.items()})
    click_says = click.Context(built, info_name="oumi-jobs", terminal_width=100, max_content_width=100)
    formatter = click_says.make_formatter()
    built.format_commands(click_says, formatter)
    assert lazy.exit_code == 0 and lazy.stdout.endswith(formatter.getvalue())


_MODULES_AFTER = """
import json, sys
from oumi_jobs.cli.app import main
try:
    main()
except SystemExit:
    pass
sys.stderr.write("@@" + json.dumps(sorted(sys.modules)) + "\\n")
"""


def test_the_root_help_imports_no_command_module() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _MODULES_AFTER, "--help"],
        env=os.environ, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "Commands:" in done.stdout and "sweeps" in done.stdout, done.stderr
    modules = json.loads(done.stderr.rpartition("@@")[2])
    loaded = sorted({f"oumi_jobs.cli.{where.partition(':')[0]}" for where in COMMANDS.values()} & set(modules))
    assert loaded == []
