"""The cloud adapter of a command: every call forwarded to this environment's warm server.

A command's cloud work (status, list, cancel, logs of cloud jobs, and the
launching process of a cloud submit) goes through
:func:`oumi_jobs.cloud.adapter.current`; :func:`install` puts a
:class:`ForwardingAdapter` there, so the services do not change and only the
server imports ``oumi.launcher``.  Nothing happens until the first cloud
call: commands that touch only local jobs never reach, or start, a server.

``OUMI_JOBS_SERVER=off`` keeps the in-process adapter (each command imports
the launcher itself, 10-15 s).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from oumi_jobs.client import Client, ServerUnavailableError
from oumi_jobs.cloud import adapter, wire
from oumi_jobs.cloud.adapter import CloudAdapter
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
from oumi_jobs.paths import Paths
from oumi_jobs.server import lifecycle

SERVER_ENV = "OUMI_JOBS_SERVER"
OFF = frozenset({"off", "0", "false", "no"})
# The server imports the launcher after it starts answering: the first call waits for that, outside its limit.
WARM_UP_TIMEOUT_S = 300.0
# Calls that only ask: safe to send again to a new server when the one asked died answering.
QUESTIONS = frozenset({"prepare", "known_clouds", "get_job", "list_jobs", "list_clusters", "server_start_note",
                       "settings_schema", "check_config", "check_credentials"})  # fmt: skip


def server_enabled(environ: Mapping[str, str] | None = None) -> bool:
    return (os.environ if environ is None else environ).get(SERVER_ENV, "").strip().lower() not in OFF


def install(paths: Paths, on_start: Callable[[str], None] | None = None) -> bool:
    """Make this process's cloud calls go to the server, unless ``OUMI_JOBS_SERVER=off``; whether it did."""
    forwarding = adapter_for(paths, on_start)
    if forwarding is not None:
        adapter.use(forwarding)
    return forwarding is not None


def adapter_for(paths: Paths, on_start: Callable[[str], None] | None = None) -> CloudAdapter | None:
    """An adapter that forwards each call to this environment's server; None with ``OUMI_JOBS_SERVER=off``."""
    if not server_enabled():
        return None
    return ForwardingAdapter(lambda: lifecycle.connect(paths, on_start=on_start), lambda: lifecycle.existing(paths))


class ForwardingAdapter:
    """A :class:`CloudAdapter` whose every call runs in the server.

    The first call goes straight to the server ``existing`` names, if any: on the warm path a command makes
    one request, the call itself (the server waits for its own warm-up first, so that call may wait that
    much longer).  Where none answers, ``connect`` finds or starts one and waits until it is warm.
    """

    def __init__(self, connect: Callable[[], Client], existing: Callable[[], Client | None] | None = None) -> None:
        self._connect = connect
        self._existing = existing
        self._client: Client | None = None
        self._warm = False  # a call has been answered: the server has finished its warm-up
        self._lock = threading.Lock()

    def _client_for_call(self) -> tuple[Client, float]:
        """The client, and how much longer than its limit a call may take (the server's warm-up)."""
        with self._lock:
            if self._client is None and self._existing is not None:
                self._client, self._existing = self._existing(), None
            if self._client is None:
                client = self._connect()
                client.adapter_call("prepare", {}, WARM_UP_TIMEOUT_S)  # returns once the launcher is imported
                self._client, self._warm = client, True
            return self._client, 0.0 if self._warm else WARM_UP_TIMEOUT_S

    def _send(self, method: str, arguments: dict[str, Any], timeout_s: float | None) -> Any:
        client, extra_s = self._client_for_call()
        data = client.adapter_call(method, arguments, timeout_s, extra_s=extra_s)
        self._warm = True
        return data

    def _call(self, method: str, timeout_s: float | None, **kwargs: Any) -> Any:
        arguments = kwargs if timeout_s is None else {**kwargs, "timeout_s": timeout_s}
        data = self._send_once_more(method, arguments, timeout_s)
        return wire.decode(wire.return_type(CloudAdapter, method), data)

    def _send_once_more(self, method: str, arguments: dict[str, Any], timeout_s: float | None) -> Any:
        try:
            data = self._send(method, arguments, timeout_s)
        except ServerUnavailableError as exc:
            # Gone before the call reached it (none answers where server.json says, or an idle exit since we
            # connected), or killed while answering a question: ask a new server once.  An action it dropped
            # (up, cancel, stop, down) may have happened: sending it again could act twice, so that error
            # goes to the caller.
            if not (exc.before_request or method in QUESTIONS):
                raise
            with self._lock:
                self._client, self._existing, self._warm = None, None, False
            data = self._send(method, arguments, timeout_s)
        return data

    def prepare(self) -> None:
        """A server that answers waits for its own warm-up before each call, outside the call's limit: only
        one that must first be started is waited for here (no request is sent to a server found running)."""
        self._client_for_call()

    def known_clouds(self, *, timeout_s: float) -> list[str]:
        result: list[str] = self._call("known_clouds", timeout_s)
        return result

    def get_job(self, cloud: str, cluster: str, launcher_job_id: str, *, timeout_s: float) -> CloudJob | None:
        job: CloudJob | None = self._call("get_job", timeout_s, cloud=cloud, cluster=cluster,
                                          launcher_job_id=launcher_job_id)  # fmt: skip
        return job

    def list_jobs(self, cloud: str, *, timeout_s: float) -> list[CloudJob]:
        jobs: list[CloudJob] = self._call("list_jobs", timeout_s, cloud=cloud)
        return jobs

    def list_clusters(self, cloud: str, *, timeout_s: float) -> list[ClusterInfo]:
        clusters: list[ClusterInfo] = self._call("list_clusters", timeout_s, cloud=cloud)
        return clusters

    def server_start_note(self, clouds: list[str], *, timeout_s: float) -> str | None:
        note: str | None = self._call("server_start_note", timeout_s, clouds=clouds)
        return note

    def up(
        self,
        config: str | Mapping[str, Any],
        cluster: str | None,
        *,
        timeout_s: float,
        options: Mapping[str, Any] | None = None,
    ) -> LaunchResult:
        launched: LaunchResult = self._call("up", timeout_s, config=config, cluster=cluster, options=options)
        return launched

    def cancel(self, cloud: str, cluster: str, launcher_job_id: str, *, timeout_s: float) -> CloudJob:
        job: CloudJob = self._call("cancel", timeout_s, cloud=cloud, cluster=cluster, launcher_job_id=launcher_job_id)
        return job

    def log_stream(self, cloud: str, cluster: str, launcher_job_id: str, *, timeout_s: float) -> LogLines:
        kwargs = {"cloud": cloud, "cluster": cluster, "launcher_job_id": launcher_job_id, "timeout_s": timeout_s}
        client, extra_s = self._client_for_call()
        lines, close = client.stream_lines(
            "POST", "/adapter/log_stream", json={"kwargs": kwargs}, open_timeout_s=timeout_s + 15 + extra_s
        )
        return LogLines(lines, close)

    def stop(self, cloud: str, cluster: str, *, timeout_s: float) -> ClusterOutcome:
        outcome: ClusterOutcome = self._call("stop", timeout_s, cloud=cloud, cluster=cluster)
        return outcome

    def down(self, cloud: str, cluster: str, *, timeout_s: float) -> ClusterOutcome:
        outcome: ClusterOutcome = self._call("down", timeout_s, cloud=cloud, cluster=cluster)
        return outcome

    def settings_schema(self, *, timeout_s: float) -> dict[str, Tree | None]:
        schema: dict[str, Tree | None] = self._call("settings_schema", timeout_s)
        return schema

    def check_config(self, settings: Mapping[str, Any], kind: str, *, timeout_s: float) -> list[ConfigProblem]:
        problems: list[ConfigProblem] = self._call("check_config", timeout_s, settings=settings, kind=kind)
        return problems

    def check_credentials(self, cloud: str, *, timeout_s: float) -> CredentialCheck:
        checked: CredentialCheck = self._call("check_credentials", timeout_s, cloud=cloud)
        return checked


def _conforms(forwarding: ForwardingAdapter) -> CloudAdapter:
    return forwarding  # mypy checks here that every Protocol method is forwarded
