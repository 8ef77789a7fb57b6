"""Asking several clouds at once, through the cloud adapter: what ``list`` and ``prune`` read."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from oumi_jobs.cloud import adapter, facts
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.cloud.model import CloudJob, ClusterInfo
from oumi_jobs.errors import CloudUnreachableError, UsageError


@dataclass(frozen=True)
class CloudAnswer:
    cloud: str
    jobs: list[CloudJob]
    error: str | None  # why the cloud could not be read, or None
    elapsed_s: float = 0.0
    clusters: list[ClusterInfo] = field(default_factory=list)  # asked only for ``clusters``


@dataclass(frozen=True)
class CloudAnswers:
    """Every cloud a command asked, and its answer: what ``list``, ``clusters`` and ``cost`` report besides
    their rows."""

    clouds: dict[str, CloudAnswer]

    @property
    def unreachable(self) -> dict[str, str]:
        """The clouds that did not answer, and why (their jobs are left ``unknown``, their clusters unlisted)."""
        return {name: answer.error for name, answer in self.clouds.items() if answer.error}


def check_known(cloud: str, known: list[str]) -> None:
    """A cloud named by ``--cloud`` that the launcher has not registered: a usage error naming those it has."""
    if cloud not in known:
        raise UsageError(f"unknown cloud {cloud!r}; oumi.launcher knows: {', '.join(facts.listable(known))}")


class CloudWatcher(Protocol):
    """Told which clouds are asked and as each answers (a progress display)."""

    def asking(self, clouds: list[str]) -> None: ...

    def answered(self, answer: CloudAnswer) -> None: ...

    def notice(self, message: str) -> None:
        """Something the user should know before the clouds are asked (a server about to be started)."""
        ...


def registered_clouds(*, timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S) -> list[str]:
    """Every cloud the launcher has registered, custom ones too (its one-time import is not timed)."""
    clouds = adapter.current()
    clouds.prepare()
    return clouds.known_clouds(timeout_s=timeout_s)


def list_clouds(
    clouds: Iterable[str],
    *,
    timeout_s: float = DEFAULT_CLOUD_TIMEOUT_S,
    watcher: CloudWatcher | None = None,
    with_clusters: bool = False,
) -> dict[str, CloudAnswer]:
    """Ask several clouds at once, each within ``timeout_s``; a failing cloud does not stop the others.

    ``with_clusters``: each cloud is asked for its clusters too, first (each call within ``timeout_s``).
    """
    names = list(dict.fromkeys(clouds))
    if not names:
        return {}
    seam = adapter.current()
    seam.prepare()  # once, before the threads: the import is not something to race on
    if watcher is not None:
        note = seam.server_start_note(names, timeout_s=timeout_s)
        if note is not None:
            watcher.notice(note)
        watcher.asking(names)
    answers: dict[str, CloudAnswer] = {}
    lock = threading.Lock()

    def ask(cloud: str) -> None:
        started = time.monotonic()
        clusters: list[ClusterInfo] = []
        try:
            if with_clusters:
                clusters = seam.list_clusters(cloud, timeout_s=timeout_s)
            jobs, error = seam.list_jobs(cloud, timeout_s=timeout_s), None
        except CloudUnreachableError as exc:
            jobs, error = [], str(exc)
        answer = CloudAnswer(cloud, jobs, error, time.monotonic() - started, clusters)
        with lock:
            answers[cloud] = answer
        if watcher is not None:
            watcher.answered(answer)

    threads = [threading.Thread(target=ask, args=(c,), daemon=True) for c in names]
    for thread in threads:
        thread.start()
    calls = 2 if with_clusters else 1
    deadline = time.monotonic() + calls * timeout_s + 5
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
    for cloud in names:  # a thread that did not even finish its time limit
        answers.setdefault(
            cloud, CloudAnswer(cloud, [], f"cloud {cloud!r} did not answer within {timeout_s:g} s", timeout_s)
        )
    return answers
