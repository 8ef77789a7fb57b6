"""What a cloud reports, as oumi-jobs' own plain data.

These are what the cloud adapter (:mod:`oumi_jobs.cloud.adapter`) returns:
frozen dataclasses of strings, numbers and our :class:`State`, never an oumi
object, so that an adapter in another process can send them over a wire and
the services never learn which launcher answered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from oumi_jobs.states import State

# Settings of one oumi config class: setting name -> its own tree (a nested
# config class, or a list of them), or None where any value goes.
Tree = dict[str, Any]


@dataclass(frozen=True)
class CloudJob:
    """One job as its cloud reports it right now (oumi's JobStatus, every field kept)."""

    cloud: str
    cluster: str
    launcher_job_id: str
    name: str | None
    state: State
    status: str  # the launcher's own status string, e.g. "CANCELLED by 0"
    done: bool
    submit_time: float | None = None  # epoch seconds, where the cloud tells
    end_time: float | None = None
    start_time: float | None = None
    cost_per_hour: float | None = None  # USD for the whole cluster, where the cloud tells
    metadata: str = ""


@dataclass(frozen=True)
class LaunchResult:
    """What ``up`` reports: the cluster the job went to, and the job as its cloud first saw it."""

    cluster: str
    job: CloudJob

    @property
    def launcher_job_id(self) -> str:
        return self.job.launcher_job_id


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config, as oumi's own config classes see it.

    ``path`` is the setting's dotted name (``training.bogus_knob``,
    ``data.train.datasets[0].dataset_path``), or ``""`` for the config as a whole.
    """

    path: str
    problem: str


@dataclass(frozen=True)
class CredentialCheck:
    """Whether a cloud's credentials are set up here, by the cloud's own check.

    ``ready`` is None where the check could not be made (no answer in time, no
    SkyPilot API server running, a cloud with no such check): ``detail`` says why.
    """

    cloud: str
    ready: bool | None
    detail: str


@dataclass(frozen=True)
class ClusterInfo:
    """One cluster of a cloud; each optional field is None where the cloud does not tell it."""

    cloud: str
    name: str
    state: str | None = None  # the cloud's own word, e.g. SkyPilot's UP, INIT, STOPPED
    cost_per_hour: float | None = None  # USD for the whole cluster
    autostop_minutes: int | None = None  # idle minutes before it is stopped (or torn down); None: not set
    autodown: bool | None = None  # whether the autostop tears it down rather than stopping it


@dataclass(frozen=True)
class ClusterOutcome:
    """What ``stop`` or ``down`` of a cluster did.

    ``acted`` is False where the cloud does nothing for the action (oumi's
    Slurm, Polaris, Frontier and Perlmutter clusters): the call succeeded and
    the cluster, and its jobs, are as they were.
    """

    cloud: str
    cluster: str
    action: str  # "stop" or "down"
    acted: bool
    detail: str


class LogLines:
    """A job's log as an iterator of text lines (each with its newline), and a way to stop reading it.

    Iterating may block while the job writes nothing (a followed log ends only
    when the job does); ``close`` releases the stream, also half read.  A
    context manager closes it on leaving.
    """

    def __init__(self, lines: Iterable[str], close: Callable[[], None] = lambda: None) -> None:
        self._lines = iter(lines)
        self._close = close
        self._closed = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._lines)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> LogLines:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
