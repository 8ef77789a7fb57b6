"""The server process: binds its sockets, serves the app with uvicorn, and exits when idle or told to.

``oumi-jobs server run`` runs :func:`serve` in the foreground (systemd,
containers); ``server start`` and the commands that auto-start a server run
:func:`main` detached (see :mod:`oumi_jobs.server.lifecycle`).

* The unix socket is bound under a temporary name, made 0600, then renamed
  into place, so it never exists with a wider mode; who may hold a
  connection, and for how long, is :mod:`oumi_jobs.server.connections`'.
* ``server.lock`` is held for the server's whole life.  Whoever holds it may
  replace a socket left by a dead server; a second server of the same key
  cannot start.
* The idle exit: after ``idle_timeout_s`` with no request, never while one is
  under way (a launch, a cancel, a followed log).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from oumi_jobs.errors import ConflictError, OumiJobsError, UsageError
from oumi_jobs.local.detach import daemonize
from oumi_jobs.local.procs import boot_id, start_time_of
from oumi_jobs.paths import Paths, ensure_private_dir, open_private_file, write_private_file
from oumi_jobs.server import connections, watcher
from oumi_jobs.server.activity import DEFAULT_IDLE_TIMEOUT_S, Activity, ServeOptions, ServerSettings, is_loopback
from oumi_jobs.server.app import create_app, warm_up
from oumi_jobs.server.location import ServerFiles, read_or_create_token

log = logging.getLogger("oumi_jobs.server")

# A stop lets requests under way end for this long; then their connections are closed.
GRACEFUL_STOP_S = 10
# A server that is exiting still holds its lock for a moment: a new one waits this long before giving up.
LOCK_WAIT_S = 3.0


# server.log is rotated past this (one older file kept).
LOG_MAX_BYTES = 10 << 20


def _take_server_lock(files: ServerFiles) -> int:
    fd = open_private_file(files.server_lock, os.O_RDWR)
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise ConflictError(
                    f"an oumi-jobs server already runs for this environment (see {files.info})"
                ) from None
            time.sleep(0.02)


def _bind_unix(path: Path) -> socket.socket:
    """Bind the socket 0600 at ``path``, replacing a dead server's (we hold the server lock).

    Its folder is opened without following a link and checked on the opened folder (ours, no access for
    others), and the socket is made in that very folder: a folder planted under /tmp, or a link to one,
    is refused and never used.
    """
    folder = _open_socket_folder(path.parent)
    try:
        partial = f".{path.name}.{os.getpid()}"
        try:
            os.unlink(partial, dir_fd=folder)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(f"/proc/self/fd/{folder}/{partial}")  # the folder checked, whatever its path names now
        finally:
            os.umask(old_umask)
        os.chmod(partial, 0o600, dir_fd=folder)
        os.replace(partial, path.name, src_dir_fd=folder, dst_dir_fd=folder)
    finally:
        os.close(folder)
    sock.listen(128)
    return sock


def _open_socket_folder(folder: Path) -> int:
    """The socket's folder, made 0700 where missing, opened without following a link; OumiJobsError unless
    it is a folder of this user's that no one else may enter."""
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise OumiJobsError(f"refusing to use {folder} for the server's socket: {exc.strerror}") from None
    info = os.fstat(fd)
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        os.close(fd)
        raise OumiJobsError(
            f"refusing to use {folder} for the server's socket: it belongs to uid {info.st_uid} with mode "
            f"{stat.S_IMODE(info.st_mode):o} (it must be yours, 0700)"
        )
    return fd


def _bind_tcp(options: ServeOptions) -> socket.socket:
    assert options.host is not None
    family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((options.host, options.port or 0))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {options.host}:{options.port}: {exc.strerror}") from None
    sock.listen(128)
    return sock


def _watch(server: Any, activity: Activity, idle_timeout_s: float) -> None:
    """Ask uvicorn to exit: at once on ``POST /server/stop``; once no request is under way after a drain was
    asked (a server being replaced); or once idle for ``idle_timeout_s``."""
    interval = min(1.0, idle_timeout_s / 10) if idle_timeout_s > 0 else 1.0
    while not server.should_exit:
        if activity.stop_event.is_set() and not activity.drain_requested:
            why = "asked to stop"
        elif activity.drain_requested and activity.in_flight == 0:
            why = "drained"
        elif idle_timeout_s > 0 and activity.idle_for() >= idle_timeout_s:
            why = f"idle for {idle_timeout_s:g} s"
        elif activity.drain_requested:
            time.sleep(0.05)  # the stop event is set, so it cannot be waited on: the requests under way are
            continue
        else:
            activity.stop_event.wait(interval)  # a stop request wakes this at once
            continue
        log.info("exiting: %s", why)
        server.should_exit = True
        return


# long function: the server's life in order (lock, sockets, app, info, threads, serve, clean-up) reads best whole
def serve(paths: Paths, files: ServerFiles, options: ServeOptions, *, on_listening: Any = None) -> int:
    """Run a server until it is stopped or idle; ``on_listening`` is called once its sockets accept."""

    options.checked()
    ensure_private_dir(files.folder, paths.state_dir)
    lock_fd = _take_server_lock(files)
    sockets = [_bind_unix(files.socket)]
    bound = os.stat(files.socket).st_ino
    token_file = None
    if options.host:
        sockets.append(_bind_tcp(options))
        read_or_create_token(files)
        token_file = str(files.token)
    address = str(files.socket)
    if options.host:
        host, port = sockets[1].getsockname()[:2]
        scheme = "https" if options.tls_cert else "http"
        address = f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"
    settings = ServerSettings(files.version, address, "tcp" if options.host else "unix", options.idle_timeout_s,
                              token_file, time.time())  # fmt: skip
    activity, warm = Activity(), threading.Event()
    app = create_app(paths, settings, activity, warm=warm, shutdown=activity.request_stop)
    server = _uvicorn_server(app, activity, options, sockets[1:])
    info = {
        "schema_version": 1, "pid": os.getpid(), "version": files.version, "key": files.key,
        "socket": str(files.socket), "address": address, "transport": settings.transport,
        "idle_timeout_s": options.idle_timeout_s, "started_at": settings.started_at, "log": str(files.log),
        "start_time": start_time_of(os.getpid()), "boot_id": boot_id(),  # so a stop signals only this process
    }  # fmt: skip
    write_private_file(files.info, json.dumps(info).encode())
    warm_up(warm)
    watcher.start(paths, activity)  # the jobs that need the server: cloud retries
    threading.Thread(target=_watch, args=(server, activity, options.idle_timeout_s), daemon=True).start()
    if options.host and not is_loopback(sockets[1].getsockname()[0]):
        log.warning("serving %s beyond this machine: anyone who can reach it and has the token can act", address)
    log.info("oumi-jobs server %s (pid %d) listening on %s", files.version, os.getpid(), address)
    if on_listening is not None:
        on_listening(info)
    # uvicorn handles SIGTERM and SIGINT (a graceful stop), then raises them again with the handlers it found:
    # these, so that the clean-up below runs and the server exits 0 rather than dying by the signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        server.run(sockets=sockets[:1])
    finally:
        _remove_if_ours(files.info, os.getpid())
        _unlink_if(files.socket, bound)
        os.close(lock_fd)
    return 0


def _uvicorn_server(app: Any, activity: Activity, options: ServeOptions, tcp: list[socket.socket]) -> Any:
    """uvicorn's server for ``app``: plain on the unix socket (run with it), TLS on ``tcp`` where asked."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            # uvicorn puts its TLS on every socket it serves: the unix socket is started without it first.
            tls, self.config.ssl = self.config.ssl, None
            await super().startup(sockets=sockets)
            plain, self.config.ssl = list(self.servers), tls
            if tcp and not self.should_exit:
                await super().startup(sockets=tcp)
                self.servers = plain + self.servers

    config = uvicorn.Config(
        app, interface="asgi3", http=connections.peer_checked_h11(activity), lifespan="off", proxy_headers=False, server_header=False,
        log_config=None, access_log=False, loop="asyncio", timeout_graceful_shutdown=GRACEFUL_STOP_S,
        ssl_certfile=options.tls_cert, ssl_keyfile=options.tls_key,
    )  # fmt: skip
    try:
        config.load()
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise UsageError(f"cannot serve TLS with {options.tls_cert} and {options.tls_key}: {exc}") from None
    return Server(config)


def _unlink_if(path: Path, inode: int) -> None:
    """Remove our socket, not one a later server bound there (our folder may have been removed under us)."""
    try:
        if os.stat(path).st_ino == inode:
            path.unlink()
    except OSError:
        pass


def _remove_if_ours(info: Path, pid: int) -> None:
    try:
        if json.loads(info.read_text()).get("pid") == pid:
            info.unlink()
    except (OSError, ValueError):
        pass


def _configure_logging(log_file: Path | None) -> None:
    """Log to stderr; a daemon's stderr is its log file, rotated at LOG_MAX_BYTES."""
    handler = logging.StreamHandler(sys.stderr) if log_file is None else _RotatingStderr(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    # Counted and logged by Activity.rejected, a few times a minute at most.
    logging.getLogger("uvicorn.error").addFilter(lambda record: record.getMessage() != "Invalid HTTP request received.")


class _RotatingStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to stderr (fd 2, the log file); past LOG_MAX_BYTES the file becomes ``<log>.1`` (replacing the
    one before) and a new one takes its place on fds 1 and 2, so what else writes there follows."""

    def __init__(self, log_file: Path) -> None:
        super().__init__(sys.stderr)
        self.log_file = log_file

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        try:
            if os.fstat(2).st_size < LOG_MAX_BYTES:
                return
            os.replace(self.log_file, self.log_file.with_name(self.log_file.name + ".1"))
            fd = open_private_file(self.log_file)
        except (OSError, OumiJobsError):
            return  # keep writing where it was: a log that cannot rotate is no reason to stop serving
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)


def parse_args(argv: Sequence[str] | None) -> tuple[Paths, ServerFiles, ServeOptions, bool]:
    parser = argparse.ArgumentParser(prog="oumi-jobs-server")
    for flag in ("--data-dir", "--state-dir", "--cache-dir"):
        parser.add_argument(flag, required=True, type=Path)
    parser.add_argument("--config-dir", type=Path)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--allow-remote", action="store_true")
    parser.add_argument("--allow-insecure-remote", action="store_true")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT_S)
    parser.add_argument("--foreground", action="store_true", help="log to stderr; do not daemonize")
    parser.add_argument("key", nargs="?", help="the key its starter computed: it must be this process's own")
    args = parser.parse_args(argv)
    paths = Paths(args.data_dir, args.state_dir, args.cache_dir, args.config_dir)
    options = ServeOptions(args.host, args.port, args.allow_remote, args.idle_timeout, args.tls_cert, args.tls_key,
                           args.allow_insecure_remote)  # fmt: skip
    files = ServerFiles.for_env(paths)
    if args.key and args.key != files.key:
        parser.error(f"this environment's server key is {files.key}, not {args.key}")
    return paths, files, options, args.foreground


def main(argv: list[str] | None = None) -> int:
    """The server: daemonized into its log file (started by a command), or in the foreground (``server run``)."""
    paths, files, options, foreground = parse_args(argv)
    ensure_private_dir(files.folder, paths.state_dir)
    if not foreground:
        daemonize(files.log)
    _configure_logging(None if foreground else files.log)
    try:
        return serve(paths, files, options)
    except OumiJobsError as exc:
        log.error("%s", exc)
        if foreground:
            print(f"oumi-jobs: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
