"""Controllable clouds registered through Oumi's own ``register_cloud_builder``, so
tests drive the real ``oumi.launcher`` (slow, failing, hanging clouds; many jobs).

Importing this module imports ``oumi.launcher`` (10-15 s): only the cloud tests do.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass, field

from oumi.core.launcher import BaseCloud, BaseCluster, JobState, JobStatus
from oumi.core.registry import register_cloud_builder

import oumi_jobs.cloud.oumi_adapter as adapter


@dataclass
class Behaviour:
    delay_s: float = 0.0
    error: str | None = None
    hang: bool = False
    cancel_lag_s: float = 0.0  # how long a cancelled job still reads as running
    cancel_hangs: bool = False
    cancelled: list[str] = field(default_factory=list)  # launcher ids cancel_job was called for
    clusters: dict[str, list[JobStatus]] = field(default_factory=dict)
    unlisted: set[str] = field(default_factory=set)  # ids get_jobs leaves out and get_job finds (Slurm's ended)


BEHAVIOUR: dict[str, Behaviour] = {}
_hang_forever = threading.Event()  # never set: a hanging call waits on it


def _act(cloud: str) -> Behaviour:
    behaviour = BEHAVIOUR.setdefault(cloud, Behaviour())
    if behaviour.hang:
        _hang_forever.wait()
    if behaviour.delay_s:
        time.sleep(behaviour.delay_s)
    if behaviour.error:
        raise RuntimeError(behaviour.error)
    return behaviour


def job(job_id: str, status: str, state: JobState, cluster: str, name: str = "job", done: bool = False) -> JobStatus:
    return JobStatus(name=name, id=job_id, status=status, cluster=cluster, metadata="", done=done, state=state,
                     submit_time=1_790_000_000.0)  # fmt: skip


class FakeCluster(BaseCluster):
    def __init__(self, cloud: str, name: str) -> None:
        self._cloud, self._name = cloud, name

    def name(self) -> str:
        return self._name

    def get_job(self, job_id: str) -> JobStatus | None:
        jobs = _act(self._cloud).clusters.get(self._name, [])
        return next((j for j in jobs if j.id == job_id), None)

    def get_jobs(self) -> list[JobStatus]:
        behaviour = _act(self._cloud)
        return [j for j in behaviour.clusters.get(self._name, []) if j.id not in behaviour.unlisted]

    def cancel_job(self, job_id: str) -> JobStatus:
        behaviour = _act(self._cloud)
        if behaviour.cancel_hangs:
            _hang_forever.wait()
        behaviour.cancelled.append(job_id)
        jobs = behaviour.clusters[self._name]
        index = next(i for i, j in enumerate(jobs) if j.id == job_id)
        ended = job(job_id, "CANCELLED by 0", JobState.PENDING, self._name)  # oumi 0.9's Slurm mapping

        def end_later() -> None:
            jobs[index] = ended

        if behaviour.cancel_lag_s:
            timer = threading.Timer(behaviour.cancel_lag_s, end_later)
            timer.daemon = True
            timer.start()
        else:
            end_later()
        return jobs[index]

    def run_job(self, job) -> JobStatus:  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def down(self) -> None:
        raise NotImplementedError

    def get_logs_stream(self, cluster_name: str, job_id: str | None = None) -> io.TextIOBase:
        raise NotImplementedError


class FakeCloud(BaseCloud):
    def __init__(self, name: str) -> None:
        self._name = name

    def up_cluster(self, job, name, **kwargs) -> JobStatus:  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def get_cluster(self, name: str) -> BaseCluster | None:
        return FakeCluster(self._name, name) if name in _act(self._name).clusters else None

    def list_clusters(self) -> list[BaseCluster]:
        return [FakeCluster(self._name, name) for name in _act(self._name).clusters]


NAMES = ["oj-fake", "oj-hang", "oj-fail", "oj-slow1", "oj-slow2", "oj-slow3", "oj-slow4"]
for _name in NAMES:
    register_cloud_builder(_name)(lambda _name=_name: FakeCloud(_name))
from . import file_cloud  # noqa: E402,F401  (registers oj-file in this process too)

adapter.load()
