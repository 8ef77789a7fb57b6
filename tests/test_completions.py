"""The committed completion scripts match the CLI, and completion really completes.

A CLI change that alters a script (a renamed program, a new Typer) fails here
until ``python completions/generate.py`` is run and its output committed.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

COMPLETIONS = Path(__file__).resolve().parent.parent / "completions"


def _load_generator():
    spec = importlib.util.spec_from_file_location("oumi_jobs_completions_generate", COMPLETIONS / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _load_generator()


def installed_cli() -> str:
    """The installed console script: beside this interpreter, else on PATH."""
    beside = Path(sys.executable).with_name("oumi-jobs")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("oumi-jobs")
    if not found:
        pytest.skip("the oumi-jobs console script is not installed")
    return found


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("_TYPER_", generate.COMPLETE_VAR))}
    return env | {"DO_NOT_TRACK": "1"} | extra


@pytest.mark.parametrize("shell", generate.SHELLS)
def test_committed_script_is_what_the_cli_generates(shell):
    committed = generate.script_path(shell)
    assert committed.is_file(), f"{committed} is missing; run python completions/generate.py"
    assert committed.read_text(encoding="utf-8") == generate.completion_script(shell), (
        f"{committed.name} is out of date; run python completions/generate.py and commit the result"
    )


@pytest.mark.parametrize("shell", generate.SHELLS)
def test_show_completion_prints_the_same_script(shell):
    """`--show-completion SHELL` (shell detection off) agrees with the committed file."""
    result = subprocess.run(
        [sys.executable, "-m", "oumi_jobs", "--show-completion", shell],
        env=clean_env(_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() + "\n" == generate.script_path(shell).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("words", "cword", "expected"),
    [
        ("oumi-jobs su", 1, "submit"),
        ("oumi-jobs im", 1, "import-registry"),
        ("oumi-jobs registry re", 2, "recover"),
        ("oumi-jobs list --st", 2, "--state"),
        ("oumi-jobs status --wa", 2, "--watch"),
    ],
)
def test_bash_completion_protocol_completes(words, cword, expected):
    """What the bash script runs on <TAB>: the program with COMP_WORDS/COMP_CWORD and complete_bash."""
    result = subprocess.run(
        [installed_cli()],
        env=clean_env(**{generate.COMPLETE_VAR: "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [expected], result.stdout


def test_sourced_bash_script_fills_compreply(tmp_path):
    """Source the committed bash script in a real bash and call its completion function."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    cli = Path(installed_cli())
    driver = tmp_path / "complete.sh"
    driver.write_text(
        f'source "{generate.script_path("bash")}"\n'
        "COMP_WORDS=(oumi-jobs su)\n"
        "COMP_CWORD=1\n"
        "_oumi_jobs_completion oumi-jobs\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = clean_env(PATH=f"{cli.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(
        [bash, "--norc", "--noprofile", str(driver)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["submit"], (result.stdout, result.stderr)
