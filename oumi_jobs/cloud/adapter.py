"""The cloud seam: every question to a cloud and every action on one goes through :func:`current`.

:class:`CloudAdapter` is the whole of what oumi-jobs asks of a launcher.  Each
call takes a time limit (``timeout_s``) and either answers within it, raises
:class:`~oumi_jobs.errors.CloudCallError` (the cloud raised: its error's type
name and message kept), or raises
:class:`~oumi_jobs.errors.CloudUnreachableError` (no answer in time).  What
goes in and comes out is plain data (:mod:`oumi_jobs.cloud.model`), so an
implementation may live in another process: one that forwards each call to a
long-running server, which keeps ``oumi.launcher`` imported, can be put in
place with :func:`use` without any service changing, or with :func:`use_lazily`, made by the first call
that needs one (a command that touches only local jobs then never imports the forwarding client).

The default is :class:`~oumi_jobs.cloud.oumi_adapter.OumiAdapter`, which runs
``oumi.launcher`` in this process (imported on the first call that needs it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from oumi_jobs.cloud.model import (
    CloudJob,
    ClusterInfo,
    ClusterOutcome,
    ConfigProblem,
    CredentialCheck,
    LaunchResult,
    LogLines,
    Tree,
)

DEFAULT_CLOUD_TIMEOUT_S = 30.0


class CloudAdapter(Protocol):
    """What oumi-jobs asks of the clouds.  ``cloud`` and ``cluster`` are names; ids are the launcher's job ids."""

    def prepare(self) -> None:
        """Do the one-time set-up (importing the launcher: 10-15 s) now, outside any call's time limit.

        Callers that ask several clouds at once, or that give a call a short
        limit, call it first; every other call does it itself when needed.
        """
        ...

    def known_clouds(self, *, timeout_s: float) -> list[str]:
        """Every cloud the launcher has registered, custom ones included (see facts.listable)."""
        ...

    def get_job(self, cloud: str, cluster: str, launcher_job_id: str, *, timeout_s: float) -> CloudJob | None:
        """One job's live status; None where its cluster no longer knows it (a missing cluster raises)."""
        ...

    def list_jobs(self, cloud: str, *, timeout_s: float) -> list[CloudJob]:
        """Every job of every cluster of ``cloud``."""
        ...

    def list_clusters(self, cloud: str, *, timeout_s: float) -> list[ClusterInfo]: ...

    def server_start_note(self, clouds: list[str], *, timeout_s: float) -> str | None:
        """What asking ``clouds`` will start in the background first, said before it happens, else None.

        SkyPilot starts a local API server in the user's HOME the first time a
        SkyPilot cloud is asked with no server running (about 20 s), and the
        server keeps running after the command.
        """
        ...

    def up(
        self,
        config: str | Mapping[str, Any],
        cluster: str | None,
        *,
        timeout_s: float,
        options: Mapping[str, Any] | None = None,
    ) -> LaunchResult:
        """Start a job: ``config`` is an oumi job config, as a YAML file's path or as its settings.

        ``cluster`` None lets the cloud name a new one; ``options`` go to the
        launcher as they are (e.g. ``idle_minutes_to_autostop`` for SkyPilot).
        """
        ...

    def cancel(self, cloud: str, cluster: str, launcher_job_id: str, *, timeout_s: float) -> CloudJob:
        """Ask the cloud to cancel the job; returns the job as the cloud answered (not necessarily ended yet)."""
        ...

    def log_stream(self, cloud: str, cluster: str, launcher_job_id: str, *, timeout_s: float) -> LogLines:
        """The job's log, followed until the job ends; ``timeout_s`` bounds opening it, not reading it."""
        ...

    def stop(self, cloud: str, cluster: str, *, timeout_s: float) -> ClusterOutcome: ...

    def down(self, cloud: str, cluster: str, *, timeout_s: float) -> ClusterOutcome: ...

    def settings_schema(self, *, timeout_s: float) -> dict[str, Tree | None]:
        """The settings each task command's oumi config class accepts (see :mod:`oumi_jobs.cloud.schema`)."""
        ...

    def check_config(self, settings: Mapping[str, Any], kind: str, *, timeout_s: float) -> list[ConfigProblem]:
        """What oumi's own config class for ``kind`` finds wrong with ``settings`` (empty: nothing).

        ``kind`` is ``"job"`` (an oumi job config) or a task command (``train``,
        ``evaluate``...: see :data:`oumi_jobs.cloud.schema.CONFIG_CLASSES`).
        Unknown settings, wrong types and values oumi refuses when it loads the
        config, each with its dotted path; then what ``finalize_and_validate``
        refuses (oumi stops at the first such problem).
        """
        ...

    def check_credentials(self, cloud: str, *, timeout_s: float) -> CredentialCheck:
        """Whether ``cloud``'s credentials are set up, by its own check (SkyPilot's for SkyPilot clouds).

        Never starts anything: where the check needs a server that is not
        running, ``ready`` is None and ``detail`` says so.
        """
        ...


_lock = threading.Lock()
_current: CloudAdapter | None = None  # made by the first call that needs one
_pending: Callable[[], CloudAdapter | None] | None = None  # what use_lazily put in place, not made yet


def in_process() -> CloudAdapter:
    """A new adapter that runs ``oumi.launcher`` in this process (imported by its first call, not here)."""
    # lazy import: the launcher adapter's module (its checks, its config schema) only once a cloud is asked
    from oumi_jobs.cloud.oumi_adapter import OumiAdapter

    return OumiAdapter()


def _resolved() -> CloudAdapter:
    """The adapter in place, made now if it is not yet (the caller holds ``_lock``)."""
    global _current, _pending
    if _pending is not None:
        make, _pending = _pending, None
        _current = make() or _current
    if _current is None:
        _current = in_process()
    return _current


def current() -> CloudAdapter:
    """The adapter every service calls."""
    with _lock:
        return _resolved()


def use(adapter: CloudAdapter) -> CloudAdapter:
    """Make ``adapter`` the one every service calls from now on, in this process; returns the one it replaces."""
    global _current
    with _lock:
        previous, _current = _resolved(), adapter
    return previous


def use_lazily(make: Callable[[], CloudAdapter | None]) -> None:
    """Make what ``make`` returns the adapter every service calls, made by the first call that needs one;
    where it returns None, the one in place before stays."""
    global _pending
    with _lock:
        _pending = make
