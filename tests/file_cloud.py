"""A controllable cloud whose state lives in a JSON file, so that every process
sees it: the test, and the detached launching process of oumi-jobs.

Registered through Oumi's own ``register_cloud_builder``; other processes load
it through Oumi's ``OUMI_EXTRA_DEPS_FILE``.  The file is ``$OJ_FILE_CLOUD``:
``{"up_delay_s": float, "up_error": str|null, "next_id": int,
   "run_s": float|null, "final_status": str, "cancel_error": str|null,
   "clusters": {name: [{"id", "name", "status", ...}]}}``: a job reads RUNNING
for ``run_s`` seconds (forever if null), then ``final_status``.  A long
``up_delay_s`` is a cloud that hangs in ``up``; ``cancel_error`` makes
``cancel_job`` raise it.  ``up_kwargs`` records the launcher options each
``up`` got, ``actions`` each ``[stop|down, cluster]`` (a down removes the
cluster, a stop marks it ``stopped``); ``cost_per_hour`` is the price every
job reports (null: none); ``log_text`` is every job's log (default: one line). ``get_delay_s`` and
``cancel_delay_s`` slow its answers.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from oumi.core.launcher import BaseCloud, BaseCluster, JobState, JobStatus
from oumi.core.registry import register_cloud_builder

NAME = "oj-file"
_STATES = {"RUNNING": JobState.RUNNING, "CANCELLED": JobState.CANCELLED, "COMPLETED": JobState.SUCCEEDED,
           "FAILED": JobState.FAILED}  # fmt: skip


@contextmanager
def state(write: bool = False):
    path = os.environ["OJ_FILE_CLOUD"]
    with open(path, "r+" if write else "r") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
        data: dict[str, Any] = json.load(handle)
        yield data
        if write:
            handle.seek(0)
            handle.truncate()
            json.dump(data, handle)


def init(path: str, **settings: Any) -> None:
    with open(path, "w") as handle:
        json.dump({"up_delay_s": 0.0, "up_error": None, "next_id": 1, "clusters": {}, "cancelled": [],
                   "run_s": None, "final_status": "COMPLETED", "cancel_error": None, "up_kwargs": [], "actions": [],
                   "stopped": [], "cost_per_hour": None} | settings, handle)  # fmt: skip


def update(**settings: Any) -> None:
    """Change settings, keeping the clusters and jobs."""
    with state(write=True) as data:
        data.update(settings)


def _status(cluster: str, job: dict[str, Any], cost_per_hour: float | None = None) -> JobStatus:
    word = job["status"]
    ended = None
    if word == "RUNNING" and job.get("ends_at") and time.time() >= job["ends_at"]:
        word, ended = job["final_status"], job["ends_at"]
    return JobStatus(name=job["name"], id=job["id"], status=word, cluster=cluster, metadata="",
                     done=word != "RUNNING", state=_STATES.get(word, JobState.PENDING), cost_per_hour=cost_per_hour,
                     end_at=ended)  # fmt: skip


class FileCluster(BaseCluster):
    def __init__(self, name: str) -> None:
        self._name = name

    def name(self) -> str:
        return self._name

    def get_job(self, job_id: str) -> JobStatus | None:
        return next((j for j in self.get_jobs() if j.id == job_id), None)

    def get_jobs(self) -> list[JobStatus]:
        with state() as data:
            delay = data.get("get_delay_s") or 0.0
            jobs = [_status(self._name, j, data.get("cost_per_hour")) for j in data["clusters"].get(self._name, [])]
        time.sleep(delay)  # a slow cloud (or SSH): tests kill a server mid-answer
        return jobs

    def cancel_job(self, job_id: str) -> JobStatus:
        with state(write=True) as data:
            delay = data.get("cancel_delay_s") or 0.0
            data["cancelling"] = True  # tests wait for this to kill a server mid-cancel
        time.sleep(delay)
        with state(write=True) as data:
            if data.get("cancel_error"):
                raise RuntimeError(data["cancel_error"])
            for job in data["clusters"][self._name]:
                if job["id"] == job_id:
                    job["status"] = "CANCELLED"
                    data["cancelled"].append(job_id)
                    return _status(self._name, job)
        raise RuntimeError(f"no job {job_id}")

    def run_job(self, job) -> JobStatus:  # type: ignore[no-untyped-def]
        with state(write=True) as data:
            entry = {"id": str(data["next_id"]), "name": job.name or "job", "status": "RUNNING", "run": job.run,
                     "setup": job.setup, "working_dir": job.working_dir, "envs": dict(job.envs or {}),
                     "accelerators": job.resources.accelerators, "num_nodes": job.num_nodes,
                     "ends_at": time.time() + data["run_s"] if data["run_s"] is not None else None,
                     "final_status": data["final_status"]}  # fmt: skip
            data["next_id"] += 1
            data["clusters"].setdefault(self._name, []).append(entry)
            price = data.get("cost_per_hour")
        return _status(self._name, entry, price)

    def stop(self) -> None:
        with state(write=True) as data:
            data["actions"].append(["stop", self._name])
            data["stopped"].append(self._name)

    def down(self) -> None:
        with state(write=True) as data:
            data["actions"].append(["down", self._name])
            data["clusters"].pop(self._name, None)

    def get_logs_stream(self, cluster_name: str, job_id: str | None = None) -> io.TextIOBase:
        with state() as data:
            follow, text = data.get("log_follow"), data.get("log_text")
        return _FollowedLog() if follow else io.StringIO(text or "a line of the job's log\n")


class _FollowedLog(io.TextIOBase):
    """A running job's followed log (``log_follow``): one line, then nothing until it is closed."""

    def __init__(self) -> None:
        super().__init__()
        self._lines = ["a line of the job's log\n"]
        self._closing = threading.Event()

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        if self._lines:
            return self._lines.pop(0)
        self._closing.wait(600)
        return ""

    def close(self) -> None:
        self._closing.set()
        super().close()


class FileCloud(BaseCloud):
    def up_cluster(self, job, name, **kwargs) -> JobStatus:  # type: ignore[no-untyped-def]
        with state(write=True) as data:
            delay, error = data["up_delay_s"], data["up_error"]
            data["provisioning"] = True  # tests wait for this to cancel mid-launch
            data.setdefault("up_kwargs", []).append(dict(kwargs))
        time.sleep(delay)  # provisioning
        if error:
            raise RuntimeError(error)
        return FileCluster(name or "fc-auto").run_job(job)

    def get_cluster(self, name: str) -> BaseCluster | None:
        with state() as data:
            return FileCluster(name) if name in data["clusters"] else None

    def list_clusters(self) -> list[BaseCluster]:
        with state() as data:
            return [FileCluster(name) for name in data["clusters"]]


_register: Callable[..., Any] = register_cloud_builder(NAME)
_register(lambda: FileCloud())
