"""Starting oumi-jobs' own detached helper processes, in one place.

Five helpers outlive the command that starts them: a local job's supervisor,
a cloud job's launching process, a ``--no-wait`` cancel's finisher, the
warm server and a notification sender.  Each
runs ``module.main(argv)`` in a new interpreter, in a session of its own (so
closing the terminal does not touch it), reads :meth:`Paths.as_options` and
one id from its command line, and imports nothing heavy until it must.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from oumi_jobs.errors import OumiJobsError
from oumi_jobs.paths import Paths, open_private_file

SUPERVISOR = "oumi_jobs.local.supervisor"
CLOUD_LAUNCHER = "oumi_jobs.local.launching"
CANCEL_FINISHER = "oumi_jobs.cancel.finisher"
SERVER = "oumi_jobs.server.runner"
NOTIFIER = "oumi_jobs.notify.sender"
HANDSHAKE_TIMEOUT_S = 60


def python_argv(module: str, *args: str) -> list[str]:
    """Run ``module.main(args)`` in a new interpreter, importing this very copy of oumi_jobs.

    ``python -m`` would import whichever oumi_jobs the new process finds first,
    which need not be the one running now (an upgrade, a checkout under test).
    """
    package_root = str(Path(__file__).resolve().parents[2])
    bootstrap = f"import sys; sys.path.insert(0, sys.argv[1]); from {module} import main; sys.exit(main(sys.argv[2:]))"
    return [sys.executable, "-c", bootstrap, package_root, *args]


def spawn_daemon(paths: Paths, module: str, target: str, env: Mapping[str, str], extra: Sequence[str] = ()) -> int:
    """Start ``module``'s helper for ``target``, which :func:`daemonize` s itself; returns the daemon's pid.

    The helper forks once more and prints the grandchild's pid, so the daemon
    is nobody's child (never a zombie of this process) and its pid is known
    before this returns.
    """
    paths.private_dir(paths.supervisors_dir)
    starter = subprocess.Popen(
        python_argv(module, *paths.as_options(), *extra, target),
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,  # why it could not start (the daemon's own goes to its log file)
        start_new_session=True,
        close_fds=True,
        cwd="/",
    )
    try:
        out, err = starter.communicate(timeout=HANDSHAKE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        starter.kill()
        starter.wait()
        raise RuntimeError(f"the supervisor of {target} did not start within {HANDSHAKE_TIMEOUT_S} s") from None
    if starter.returncode != 0 or not out.strip().isdigit():
        why = err.decode(errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(
            f"the supervisor of {target} failed to start (exit {starter.returncode}){': ' if why else ''}{''.join(why)}"
        )
    return int(out.strip())


def spawn_detached(paths: Paths, module: str, target: str, env: Mapping[str, str] | None = None) -> int:
    """Start ``module``'s helper for ``target`` in a session of its own, without a handshake; returns its pid.

    ``env``: the helper's environment (default: this process's).
    """
    process = subprocess.Popen(
        python_argv(module, *paths.as_options(), target),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True, env=None if env is None else dict(env),
    )  # fmt: skip
    return process.pid


def daemonize(log_file: Path) -> None:
    """Fork; the parent prints the child's pid and exits.  The child keeps no terminal.

    The log file is opened first (never through a symbolic link): where it
    cannot be, the helper exits 1 with the reason, and the caller reports it.
    """
    try:
        fd = open_private_file(log_file)
    except OumiJobsError as exc:
        os.write(2, f"{exc}\n".encode())
        os._exit(1)
    except OSError as exc:
        os.write(2, f"cannot open {log_file}: {exc.strerror}\n".encode())
        os._exit(1)
    child = os.fork()
    if child:
        os.write(1, f"{child}\n".encode())
        os._exit(0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.close(null)
