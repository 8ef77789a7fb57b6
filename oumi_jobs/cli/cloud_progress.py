"""The spinner that names the clouds not answered yet, while a command asks them (``list``, ``clusters``).

Apart from :mod:`oumi_jobs.cli.live`, whose displays import the rendering of jobs, plots and
cancellations: ``list --json`` uses only this, and rich is not imported unless a person watches.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from oumi_jobs.cli.output import animated, console, print_stderr

if TYPE_CHECKING:
    from oumi_jobs.cloud.survey import CloudWatcher

T = TypeVar("T")


def with_cloud_progress(work: Callable[[CloudWatcher], T], *, live: bool) -> T:
    """Run ``work(watcher)``; on a terminal, a spinner names the clouds that have not answered yet.

    Notices (SkyPilot about to start its API server) reach stderr in every mode, before the wait they explain.
    """
    if not live:
        return work(_Notices())  # --json: not even rich is imported
    out = console(stderr=True)
    if not animated(out):
        return work(_Notices())
    from rich.status import Status

    with Status("loading oumi.launcher (about 12 s)...", console=out) as status:
        return work(_CloudSpinner(status))


class _Notices:
    """A :class:`~oumi_jobs.cloud.survey.CloudWatcher` that shows nothing but the notices, as plain lines."""

    def asking(self, clouds: list[str]) -> None:
        pass

    def answered(self, answer: Any) -> None:
        pass

    def notice(self, message: str) -> None:
        print_stderr(f"oumi-jobs: note: {message}")


class _CloudSpinner:
    """A :class:`~oumi_jobs.cloud.survey.CloudWatcher` that shows the clouds still being asked."""

    def __init__(self, status: Any) -> None:
        self._status = status
        self._waiting: list[str] = []
        self._total = 0
        self._lock = threading.Lock()

    def asking(self, clouds: list[str]) -> None:
        with self._lock:
            self._waiting, self._total = list(clouds), len(clouds)
            self._show()

    def notice(self, message: str) -> None:
        print_stderr(f"oumi-jobs: note: {message}")  # rich shows it above the spinner

    def answered(self, answer: Any) -> None:
        with self._lock:
            if answer.cloud in self._waiting:
                self._waiting.remove(answer.cloud)
            self._show()

    def _show(self) -> None:
        answered = self._total - len(self._waiting)
        self._status.update(
            f"asking clouds ({answered}/{self._total} answered), waiting for: {', '.join(self._waiting)}"
        )
