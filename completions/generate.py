"""Regenerate the shell completion scripts of ``oumi-jobs`` in this folder.

    python completions/generate.py           # rewrite oumi-jobs.{bash,zsh,fish}
    python completions/generate.py --check   # exit 1 if any is out of date

Each script is what the CLI itself prints for that shell.  Typer answers
Click's completion protocol: run with ``_OUMI_JOBS_COMPLETE=source_<shell>``
the program prints its completion script and exits (the same script that
``oumi-jobs --show-completion`` prints for a detected shell).  Leading and
trailing blank lines are trimmed and one newline ends the file.

Install: bash ``source oumi-jobs.bash`` (or copy it to
``~/.local/share/bash-completion/completions/oumi-jobs``); zsh: copy
``oumi-jobs.zsh`` as ``_oumi-jobs`` into a folder on ``$fpath``; fish: copy
``oumi-jobs.fish`` to ``~/.config/fish/completions/``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROG_NAME = "oumi-jobs"
COMPLETE_VAR = "_OUMI_JOBS_COMPLETE"
SHELLS = ("bash", "zsh", "fish")


def script_path(shell: str) -> Path:
    return HERE / f"{PROG_NAME}.{shell}"


def completion_script(shell: str) -> str:
    """The completion script the CLI prints now for ``shell``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("_TYPER_", COMPLETE_VAR))}
    env |= {COMPLETE_VAR: f"source_{shell}", "DO_NOT_TRACK": "1"}
    # `python -m oumi_jobs` runs the console script's own main(), prog_name included.
    result = subprocess.run(
        [sys.executable, "-m", "oumi_jobs"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise RuntimeError(f"oumi-jobs printed no {shell} completion script (exit {result.returncode}): {result.stderr}")
    return result.stdout.strip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the oumi-jobs completion scripts.")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a script is out of date")
    args = parser.parse_args(argv)
    stale = []
    for shell in SHELLS:
        path, text = script_path(shell), completion_script(shell)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path.name)
        if not args.check:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}; run python completions/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
