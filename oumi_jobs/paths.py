"""Where oumi-jobs keeps its files.

One :class:`Paths` object is built at start-up and passed down; nothing reads
the environment behind the caller's back.  ``OUMI_JOBS_HOME`` puts everything
under one folder (tests, several profiles); otherwise platformdirs picks the
user data/state/cache dirs, which honour the XDG variables.

The folders are the user's alone: each is 0700 and each file 0600 whatever
the umask, a folder of another user is refused, and log, event and
supervisor files are opened without following symbolic links, so nobody can
redirect what oumi-jobs writes (:func:`ensure_private_dir`,
:func:`open_private_file`, :func:`write_private_file`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from oumi_jobs.errors import OumiJobsError

APP_NAME = "oumi-jobs"
HOME_ENV = "OUMI_JOBS_HOME"
DIR_MODE = 0o700
FILE_MODE = 0o600


@dataclass(frozen=True)
class Paths:
    data_dir: Path
    state_dir: Path
    cache_dir: Path
    # Where the user's config.toml lives (notification defaults); None: no config file is read.
    config_dir: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Paths:
        env = os.environ if environ is None else environ
        home = env.get(HOME_ENV)
        if home:
            root = Path(home).expanduser().absolute()
            return cls(root / "data", root / "state", root / "cache", root / "config")
        import platformdirs  # only needed without the override

        return cls(
            Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
            Path(platformdirs.user_state_dir(APP_NAME, appauthor=False)),
            Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)),
            Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
        )

    def as_options(self) -> list[str]:
        """These paths as the options of a detached helper process (read back by :meth:`parse_helper_argv`)."""
        config = ["--config-dir", str(self.config_dir)] if self.config_dir is not None else []
        return ["--data-dir", str(self.data_dir), "--state-dir", str(self.state_dir), "--cache-dir",
                str(self.cache_dir), *config]  # fmt: skip

    @classmethod
    def parse_helper_argv(cls, prog: str, target: str, argv: Sequence[str] | None = None) -> tuple[Paths, str]:
        """``(paths, target)`` from a helper's command line: :meth:`as_options` then one ``target`` id."""
        import argparse

        parser = argparse.ArgumentParser(prog=prog)
        for flag in ("--data-dir", "--state-dir", "--cache-dir"):
            parser.add_argument(flag, required=True, type=Path)
        parser.add_argument("--config-dir", type=Path)
        parser.add_argument(target)
        args = parser.parse_args(argv)
        return cls(args.data_dir, args.state_dir, args.cache_dir, args.config_dir), getattr(args, target)

    @property
    def registry_file(self) -> Path:
        return self.data_dir / "registry.sqlite3"

    @property
    def config_file(self) -> Path | None:
        """The user's ``config.toml`` (its ``[notify]`` defaults); None where these paths have no config folder."""
        return None if self.config_dir is None else self.config_dir / "config.toml"

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

    @property
    def clusters_dir(self) -> Path:
        """Local clusters' slot files (:mod:`oumi_jobs.local.queues`)."""
        return self.state_dir / "clusters"

    def job_log_dir(self, job_id: str) -> Path:
        return self.logs_dir / job_id

    def supervisor_log(self, job_id: str) -> Path:
        return self.supervisors_dir / f"{job_id}.log"

    def private_dir(self, path: Path) -> Path:
        """:func:`ensure_private_dir` of ``path``, every folder from its profile root down checked."""
        for root in (self.data_dir, self.state_dir, self.cache_dir):
            if path == root or root in path.parents:
                return ensure_private_dir(path, root)
        return ensure_private_dir(path)

    def check_folders(self) -> None:
        """The profile's folders that exist are the user's own (else the first that is not is named), each 0700.

        Creates nothing, so a read-only command on a read-only registry still runs.
        """
        for folder in (self.data_dir, self.state_dir, self.cache_dir, self.logs_dir, self.supervisors_dir,
                       self.clusters_dir):  # fmt: skip
            if os.path.lexists(folder):
                self.private_dir(folder)


def ensure_private_dir(path: Path, root: Path | None = None) -> Path:
    """Create ``path`` and its missing parents 0700 whatever the umask.

    The folders from ``root`` (default: ``path`` itself) down to ``path`` are
    ours: each must be a real folder (not a symbolic link) of the user's, or
    OumiJobsError names it (exit 1), and its mode is set to 0700 where it
    differs (wider from an older oumi-jobs or a umask).
    Folders above ``root`` are created where missing and otherwise left alone.
    """
    root = path if root is None else root
    for folder in (*reversed(path.parents), path):
        ours = folder == root or root in folder.parents
        try:
            info = os.stat(folder) if folder == root else os.lstat(folder)
        except FileNotFoundError:
            try:
                os.mkdir(folder, DIR_MODE)
            except FileExistsError:
                pass  # another process made it meanwhile: checked below like any
            info = os.lstat(folder)
            ours = True  # made by us: 0700 even above the root
        if ours:
            _check_ours(folder, info, stat.S_ISDIR, "folder")
            _tighten(folder, info, DIR_MODE)
    return path


def open_private_file(path: Path | str, flags: int = os.O_WRONLY | os.O_APPEND, *, create: bool = True) -> int:
    """Open a file of ours (a log, the event log, a slot) without following a symbolic link; a file descriptor.

    A missing file is created 0600 with O_EXCL, so a name planted meanwhile is
    refused rather than written through; an existing one must be a regular file
    of the user's with no other hard link, and is tightened to 0600.
    """
    flags |= os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(3):  # the file may appear (or vanish) between two opens
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            if not create:
                raise
            try:
                fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, FILE_MODE)
            except FileExistsError:
                continue
        except OSError as exc:
            if os.path.islink(path):
                raise OumiJobsError(f"refusing to open {path}: it is a symbolic link") from exc
            raise
        try:
            info = os.fstat(fd)
            _check_ours(Path(path), info, stat.S_ISREG, "regular file")
            if info.st_nlink > 1:
                raise OumiJobsError(f"refusing to open {path}: it has other hard links")
            _tighten(fd, info, FILE_MODE)
        except BaseException:
            os.close(fd)
            raise
        return fd
    raise OumiJobsError(f"cannot open {path}: it keeps appearing and disappearing")


def write_private_file(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically by a 0600 file holding ``data`` (a symbolic link there is replaced, not followed)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = open_private_file(partial, os.O_WRONLY)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _check_ours(path: Path, info: os.stat_result, is_kind: Callable[[int], bool], kind: str) -> None:
    if not is_kind(info.st_mode):
        what = "a symbolic link" if stat.S_ISLNK(info.st_mode) else f"not a {kind}"
        raise OumiJobsError(f"refusing to use {path}: it is {what}")
    if info.st_uid != os.geteuid():
        raise OumiJobsError(
            f"refusing to use {path}: it belongs to another user (uid {info.st_uid}, you are uid {os.geteuid()})"
        )


def _tighten(target: Path | int, info: os.stat_result, mode: int) -> None:
    """``mode`` where it differs (a wider one from an older oumi-jobs or a umask); a read-only mount keeps it."""
    if stat.S_IMODE(info.st_mode) != mode:
        try:
            os.chmod(target, mode)
        except OSError:
            pass
