"""Finding, starting and stopping this environment's server, from the command's side.

:func:`connect` is what a cloud command calls: it uses the server of its
environment and version if one answers, else starts one (one starter at a
time, under ``start.lock``: two commands that auto-start at once end up
with one server) and waits until it answers.  A server of another version
with the same key is asked to exit once its requests are done.  A socket left
by a dead server answers nothing and is replaced by the next server, which
holds ``server.lock`` (see :mod:`oumi_jobs.server.runner`).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from oumi_jobs.client import Client, ServerPeerError, ServerUnavailableError
from oumi_jobs.errors import ConflictError, OumiJobsError
from oumi_jobs.local import detach
from oumi_jobs.local.procs import boot_id, is_alive, start_time_of
from oumi_jobs.paths import Paths, ensure_private_dir, open_private_file
from oumi_jobs.polling import poll_until
from oumi_jobs.server.activity import ServeOptions
from oumi_jobs.server.location import ServerFiles

# A new server answers within a second or two (it imports oumi after it answers); a loaded machine is slower.
START_TIMEOUT_S = 60.0
# How long a command waits for another command that is starting the server.
START_LOCK_TIMEOUT_S = START_TIMEOUT_S + 15
STOP_TIMEOUT_S = 20.0
PROBE_TIMEOUT_S = 5.0
STARTING_NOTE = "starting the oumi-jobs server (about 12 s, once; it keeps oumi imported for the next commands)"


@dataclass(frozen=True)
class ServerRecord:
    """What ``server.json`` says of a server, and whether it answered."""

    pid: int
    version: str
    key: str
    socket: str
    address: str
    transport: str
    idle_timeout_s: float
    started_at: float
    log: str
    start_time: float | None
    boot_id: str | None

    @classmethod
    def read(cls, files: ServerFiles) -> ServerRecord | None:
        try:
            data: Mapping[str, Any] = json.loads(files.info.read_text())
            return cls(int(data["pid"]), str(data["version"]), str(data["key"]), str(data["socket"]),
                       str(data["address"]), str(data["transport"]), float(data["idle_timeout_s"]),
                       float(data["started_at"]), str(data["log"]), data.get("start_time"),
                       data.get("boot_id"))  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @property
    def alive(self) -> bool:
        return is_alive(self.pid, self.start_time, self.boot_id)


def _answering(files: ServerFiles) -> tuple[ServerRecord, Client] | None:
    """The server of ``files`` with a client to it, if it answers now."""
    record = ServerRecord.read(files)
    if record is None:
        return None
    client = Client.unix(record.socket)
    try:
        client.get("/healthz", timeout_s=PROBE_TIMEOUT_S)
    except ServerPeerError:
        raise  # someone else's process at our socket: never start a server over it, say so
    except OumiJobsError:
        client.close()
        return None
    return record, client


def existing(paths: Paths, *, environ: Mapping[str, str] | None = None) -> Client | None:
    """A client of the server this environment's ``server.json`` names, without asking it anything (its
    first request tells whether it answers: one round trip on the warm path); None where none is recorded."""
    record = ServerRecord.read(ServerFiles.for_env(paths, environ))
    return None if record is None else Client.unix(record.socket)


def connect(
    paths: Paths,
    *,
    environ: Mapping[str, str] | None = None,
    on_start: Callable[[str], None] | None = None,
    options: ServeOptions | None = None,
) -> Client:
    """A client of this environment's server, started first if none answers (``on_start`` is told so)."""
    files = ServerFiles.for_env(paths, environ)
    found = _answering(files)
    if found is not None:
        return found[1]
    with _StartLock(files):
        found = _answering(files)  # another command started it while we waited for the lock
        if found is not None:
            return found[1]
        if on_start is not None:
            on_start(STARTING_NOTE)
        _retire_other_versions(files)
        started = _spawn(paths, files, options or ServeOptions(), environ)
        return _wait_until_answering(files, started)


def start(paths: Paths, options: ServeOptions, *, environ: Mapping[str, str] | None = None) -> ServerRecord:
    """``server start``: start this environment's server, detached; ConflictError if one already runs."""
    options.checked()
    files = ServerFiles.for_env(paths, environ)
    with _StartLock(files):
        found = _answering(files)
        if found is not None:
            found[1].close()
            raise ConflictError(f"the oumi-jobs server already runs (pid {found[0].pid}, {found[0].address})")
        _retire_other_versions(files)
        started = _spawn(paths, files, options, environ)
        _wait_until_answering(files, started).close()
    record = ServerRecord.read(files)
    assert record is not None  # it answered, so it wrote its record first
    return record


def run_foreground(paths: Paths, options: ServeOptions) -> None:
    """``server run``: become the server (same pid, for a service manager), serving until stopped or idle."""
    options.checked()
    files = ServerFiles.for_env(paths)
    argv = detach.python_argv(detach.SERVER, *paths.as_options(), *options.as_args(), "--foreground", files.key)
    os.execv(argv[0], argv)


@dataclass(frozen=True)
class StopResult:
    pid: int | None  # None: no server was running
    how: str  # "stopped", "terminated", "killed" or "not running"


def stop(paths: Paths, *, environ: Mapping[str, str] | None = None) -> StopResult:
    """Stop this environment's server: asked over its socket, then SIGTERM, then SIGKILL (its pid verified)."""
    files = ServerFiles.for_env(paths, environ)
    record = ServerRecord.read(files)
    if record is None or not record.alive:
        return StopResult(None, "not running")
    found = _answering(files)
    if found is not None:
        with found[1] as client:
            try:
                client.post("/server/stop", timeout_s=PROBE_TIMEOUT_S)
            except OumiJobsError:
                pass  # it may close the connection as it goes: its exit is what counts
        if _gone(record, STOP_TIMEOUT_S):
            return StopResult(record.pid, "stopped")
    for how, sig in (("terminated", signal.SIGTERM), ("killed", signal.SIGKILL)):
        if record.alive:
            os.kill(record.pid, sig)
        if _gone(record, STOP_TIMEOUT_S):
            return StopResult(record.pid, how)
    raise OumiJobsError(f"the oumi-jobs server (pid {record.pid}) is still running after SIGKILL")


def status(paths: Paths, *, environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The running server's status document (``GET /server``), or None where none answers."""
    client = existing(paths, environ=environ)
    if client is None:
        return None
    try:  # one request: its answer (or none) says whether the server runs
        document: dict[str, Any] = client.get("/server", timeout_s=PROBE_TIMEOUT_S)
    except ServerPeerError:
        raise
    except OumiJobsError:
        return None
    return document


def _gone(record: ServerRecord, timeout_s: float) -> bool:
    return poll_until(timeout_s, lambda: not record.alive, 0.05)


class _StartLock:
    """``start.lock`` held: one starter at a time per server."""

    def __init__(self, files: ServerFiles) -> None:
        self.files = files
        self.fd = -1

    def __enter__(self) -> None:
        ensure_private_dir(self.files.folder, self.files.root.parent)
        self.fd = open_private_file(self.files.start_lock, os.O_RDWR)
        deadline = time.monotonic() + START_LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    raise ServerUnavailableError(
                        f"another command has been starting the oumi-jobs server for {START_LOCK_TIMEOUT_S:g} s; "
                        f"see {self.files.log}"
                    ) from None
                time.sleep(0.05)

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)  # releases the lock


@dataclass(frozen=True)
class _Started:
    """A server process just started, and where its log stood before it (what it writes comes after)."""

    pid: int
    start_time: float | None
    log_offset: int


def _spawn(paths: Paths, files: ServerFiles, options: ServeOptions, environ: Mapping[str, str] | None) -> _Started:
    env = dict(os.environ if environ is None else environ)
    try:
        offset = files.log.stat().st_size
    except OSError:
        offset = 0
    try:
        pid = detach.spawn_daemon(paths, detach.SERVER, files.key, env, options.as_args())
    except RuntimeError as exc:
        why = str(exc).replace(f"the supervisor of {files.key}", "it")
        raise ServerUnavailableError(f"the oumi-jobs server could not start: {why} (its log: {files.log})") from None
    return _Started(pid, start_time_of(pid), offset)


def _wait_until_answering(files: ServerFiles, started: _Started) -> Client:
    """A client once the server answers; ServerUnavailableError at once if the process exits first."""

    def check() -> tuple[ServerRecord, Client] | bool | None:
        found = _answering(files)
        if found is None and not is_alive(started.pid, started.start_time, boot_id()):
            return False
        return found

    found = poll_until(START_TIMEOUT_S, check, 0.05, until=lambda answer: answer is not None)
    if found is False:
        found = _answering(files)  # it may have answered, then exited, between two looks
        if found is None:
            raise ServerUnavailableError(
                f"the oumi-jobs server (pid {started.pid}) exited as it started: {_last_error(files, started)} "
                f"(its log: {files.log})"
            )
    if not found:
        raise ServerUnavailableError(
            f"the oumi-jobs server did not answer within {START_TIMEOUT_S:g} s of its start; see {files.log}"
        )
    assert isinstance(found, tuple)
    return found[1]


def _last_error(files: ServerFiles, started: _Started) -> str:
    """The last error line the server wrote to its log since it started (its message only)."""
    try:
        with open(files.log, "rb") as log:
            log.seek(started.log_offset)
            lines = log.read(1 << 16).decode(errors="replace").splitlines()
    except OSError:
        return "no reason in its log"
    errors = [line for line in lines if " ERROR " in line] or [line for line in lines if line.strip()]
    if not errors:
        return "no reason in its log"
    return errors[-1].split(": ", 1)[-1].strip()


def _retire_other_versions(files: ServerFiles) -> None:
    """Servers of another oumi-jobs version for this environment exit once their requests are done."""
    for other in files.others():
        found = _answering(other)
        if found is None:
            continue
        with found[1] as client:
            try:
                client.post("/server/stop", params={"drain": True}, timeout_s=PROBE_TIMEOUT_S)
            except OumiJobsError:
                pass  # it answered a moment ago; if it cannot take this, its idle exit still ends it
