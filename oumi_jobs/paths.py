"""Where oumi-jobs keeps its files.

One :class:`Paths` object is built at start-up and passed down; nothing reads
the environment behind the caller's back.  ``OUMI_JOBS_HOME`` puts everything
under one folder (tests, several profiles); otherwise platformdirs picks the
user data/state/cache dirs, which honour the XDG variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "oumi-jobs"
HOME_ENV = "OUMI_JOBS_HOME"


@dataclass(frozen=True)
class Paths:
    data_dir: Path
    state_dir: Path
    cache_dir: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Paths:
        env = os.environ if environ is None else environ
        home = env.get(HOME_ENV)
        if home:
            root = Path(home).expanduser().absolute()
            return cls(root / "data", root / "state", root / "cache")
        import platformdirs  # only needed without the override

        return cls(
            Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
            Path(platformdirs.user_state_dir(APP_NAME, appauthor=False)),
            Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)),
        )

    def as_options(self) -> list[str]:
        """These paths as the options of a detached helper process (read back by :meth:`parse_helper_argv`)."""
        return [
            "--data-dir",
            str(self.data_dir),
            "--state-dir",
            str(self.state_dir),
            "--cache-dir",
            str(self.cache_dir),
        ]

    @classmethod
    def parse_helper_argv(cls, prog: str, target: str, argv: Sequence[str] | None = None) -> tuple[Paths, str]:
        """``(paths, target)`` from a helper's command line: :meth:`as_options` then one ``target`` id."""
        import argparse

        parser = argparse.ArgumentParser(prog=prog)
        for flag in ("--data-dir", "--state-dir", "--cache-dir"):
            parser.add_argument(flag, required=True, type=Path)
        parser.add_argument(target)
        args = parser.parse_args(argv)
        return cls(args.data_dir, args.state_dir, args.cache_dir), getattr(args, target)

    @property
    def registry_file(self) -> Path:
        return self.data_dir / "registry.sqlite3"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def supervisors_dir(self) -> Path:
        return self.state_dir / "supervisors"

    @property
    def event_log_file(self) -> Path:
        """Structured (JSON lines) log of submits, cancel steps and prunes."""
        return self.state_dir / "events.jsonl"

    @property
    def metrics_file(self) -> Path:
        return self.state_dir / "metrics.prom"

    def job_log_dir(self, job_id: str) -> Path:
        return self.logs_dir / job_id

    def supervisor_log(self, job_id: str) -> Path:
        return self.supervisors_dir / f"{job_id}.log"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) readable by the user alone (0700)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        if path.stat().st_mode & 0o077:
            path.chmod(0o700)
    except OSError:
        pass
    return path
