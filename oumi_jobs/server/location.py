"""Where a server lives, and which server a command may use: one per environment and version.

The environment variables that select clouds and credentials change what
``oumi.launcher`` sees, so they are part of the server's key: a command run
with another ``OUMI_SLURM_CONNECTIONS``, ``HOME`` or AWS profile gets a server
of its own, never one that would answer for someone else's clouds.  So is the
Python that runs it.  The oumi-jobs version is part of the folder's name; a
server of another version with the same key is retired (it exits once its
requests are done) when a command of this version starts its own.

Everything lives in a private folder under the state dir:
``server/<key>-<version>/`` holds ``sock`` (the unix socket, 0600),
``server.json`` (who runs there), ``server.lock`` (held by the running
server for its whole life: a server killed by SIGKILL releases it),
``start.lock`` (one starter at a time) and ``server.log``.  The TCP bearer
token is one per state dir: ``server/token`` (0600).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from oumi_jobs import __version__
from oumi_jobs.paths import Paths, ensure_private_dir, open_private_file, write_private_file

# Variables that change which clouds and credentials the launcher uses, or which oumi it imports.  Not PATH:
# a service manager's differs from a shell's, and the Python (sys.executable) already says which oumi runs.
KEY_VARIABLES = frozenset({
    "HOME", "PYTHONPATH", "KUBECONFIG", "SSH_AUTH_SOCK", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
    "XDG_CACHE_HOME", "OUMI_JOBS_HOME",
})  # fmt: skip
KEY_PREFIXES = (
    "OUMI_", "SKYPILOT_", "SKY_", "AWS_", "AZURE_", "GOOGLE_", "GCP_", "CLOUDSDK_", "KUBE", "LAMBDA_",
    "RUNPOD_", "OCI_", "IBM_", "NEBIUS_", "PAPERSPACE_", "FLUIDSTACK_", "CUDO_", "VAST_", "SCP_", "HF_",
)  # fmt: skip
# oumi-jobs' own settings for one command, which do not change what the launcher sees.
NOT_KEY_PREFIXES = ("OUMI_JOBS_",)

# A unix socket's path must fit sun_path (108 bytes on Linux); past this, the socket moves to /tmp.
MAX_SOCKET_PATH = 100
TOKEN_BYTES = 32


def oumi_jobs_version() -> str:
    return __version__


def server_key(environ: Mapping[str, str]) -> str:
    """A short digest of what selects clouds and credentials in ``environ``, and of the Python running."""
    chosen = {
        name: value
        for name, value in environ.items()
        if name in KEY_VARIABLES or (name.startswith(KEY_PREFIXES) and not name.startswith(NOT_KEY_PREFIXES))
    }
    text = json.dumps({"env": chosen, "python": os.path.realpath(sys.executable)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ServerFiles:
    """The files of one server (one key and version) under a state dir."""

    root: Path  # state_dir/server
    key: str
    version: str

    @classmethod
    def for_env(cls, paths: Paths, environ: Mapping[str, str] | None = None, version: str | None = None) -> ServerFiles:
        return cls(paths.state_dir / "server", server_key(os.environ if environ is None else environ),
                   version or oumi_jobs_version())  # fmt: skip

    @property
    def folder(self) -> Path:
        return self.root / f"{self.key}-{self.version}"

    @property
    def info(self) -> Path:
        return self.folder / "server.json"

    @property
    def server_lock(self) -> Path:
        return self.folder / "server.lock"

    @property
    def start_lock(self) -> Path:
        return self.folder / "start.lock"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    @property
    def token(self) -> Path:
        return self.root / "token"

    @property
    def socket(self) -> Path:
        """The socket's path: in the folder where it fits, else under a private folder of this user in /tmp."""
        here = self.folder / "sock"
        if len(str(here)) <= MAX_SOCKET_PATH:
            return here
        digest = hashlib.sha256(str(here).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"oumi-jobs-{os.getuid()}" / f"{digest}.sock"

    def others(self) -> list[ServerFiles]:
        """The folders of servers with this key and another version (to retire)."""
        if not self.root.is_dir():
            return []
        found = []
        for folder in self.root.glob(f"{self.key}-*"):
            other = folder.name[len(self.key) + 1 :]
            if folder.is_dir() and other != self.version:
                found.append(ServerFiles(self.root, self.key, other))
        return found


def read_or_create_token(files: ServerFiles, *, rotate: bool = False) -> str:
    """The state dir's bearer token for TCP clients (created on first use, 0600); ``rotate`` replaces it."""
    ensure_private_dir(files.root)
    if not rotate:
        try:
            fd = open_private_file(files.token, os.O_RDONLY, create=False)
        except FileNotFoundError:
            pass
        else:
            with os.fdopen(fd) as handle:
                token = handle.read().strip()
            if token:
                return token
    token = secrets.token_urlsafe(TOKEN_BYTES)
    write_private_file(files.token, f"{token}\n".encode())
    return token
