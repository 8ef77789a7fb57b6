"""The code checks, run by the test command: ruff (lint and format) and mypy (strict).

They come with the dev extra (README "Install"); without them these tests skip
with the install command, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ["oumi_jobs", "tests", "bench"]


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(module) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{module} is not installed; pip install -e '.[dev]' brings it")
        pytest.skip(f"{module} is not installed: pip install -e '.[dev]'")
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def test_ruff_finds_nothing() -> None:
    result = _run("ruff", "check", *CHECKED)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_code_is_formatted() -> None:
    result = _run("ruff", "format", "--check", *CHECKED)
    assert result.returncode == 0, "run `ruff format`:\n" + result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_strict_passes() -> None:
    result = _run("mypy")  # files and strictness: pyproject.toml [tool.mypy]
    assert result.returncode == 0, result.stdout + result.stderr
