"""Where oumi-jobs keeps its files.

One :class:`Paths` object is built at start-up and passed down; nothing reads
the environment behind the caller's back.  ``OUMI_JOBS_HOME`` puts everything
under one folder (tests, several profiles); otherwise platformdirs picks the
user data/state/cache dirs, which honour the XDG variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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
