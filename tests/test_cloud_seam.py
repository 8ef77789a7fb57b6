"""The cloud seam: every service reaches clouds through ``adapter.current()``, so another adapter
(here an in-memory one; later one that forwards to a server) drops in without touching them.

Nothing here imports oumi: these run in the fast suite.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from oumi_jobs.cloud import adapter, facts
from oumi_jobs.cloud.model import CloudJob, ClusterInfo, ClusterOutcome, LaunchResult, LogLines, Tree
from oumi_jobs.errors import CloudCallError
from oumi_jobs.states import State
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.timestamps import now_iso


class MemoryAdapter:
    """A :class:`~oumi_jobs.cloud.adapter.CloudAdapter` over a dict: cloud -> cluster -> jobs."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, list[CloudJob]]] = {}
        self.calls: list[str] = []
        self.server_note: str | None = None  # what server_start_note answers

    def add(self, cloud: str, cluster: str, job_id: str, status: str, state: State) -> None:
        job = CloudJob(cloud, cluster, job_id, "job", state, status, state.done, cost_per_hour=1.5, start_time=1.0)
        self.jobs.setdefault(cloud, {}).setdefault(cluster, []).append(job)

    def prepare(self) -> None:
        self.calls.append("prepare")

    def known_clouds(self, *, timeout_s: float) -> list[str]:
        self.calls.append("known_clouds")
        return ["local", *self.jobs]

    def get_job(self, cloud: str, cluster: str, launcher_job_id: str, *, timeout_s: float) -> CloudJob | None:
        self.calls.append(f"get_job {cloud} {cluster} {launcher_job_id}")
        return next((j for j in self.jobs[cloud][cluster] if j.launcher_job_id == launcher_job_id), None)

    def list_jobs(self, cloud: str, *, timeout_s: float) -> list[CloudJob]:
        self.calls.append(f"list_jobs {cloud}")
        return [job for jobs in self.jobs.get(cloud, {}).values() for job in jobs]

    def list_clusters(self, cloud: str, *, timeout_s: float) -> list[ClusterInfo]:
        return [ClusterInfo(cloud, name) for name in self.jobs.get(cloud, {})]

    def server_start_note(self, clouds: list[str], *, timeout_s: float) -> str | None:
        self.calls.append(f"server_start_note {' '.join(clouds)}")
        return self.server_note

    def up(
        self, config: str | Mapping[str, Any], cluster: str | None, *, timeout_s: float, options: Any = None
    ) -> LaunchResult:
        raise NotImplementedError

    def cancel(self, cloud: str, cluster: str, launcher_job_id: str, *, timeout_s: float) -> CloudJob:
        self.calls.append(f"cancel {cloud} {cluster} {launcher_job_id}")
        jobs = self.jobs[cloud][cluster]
        index = next(i for i, j in enumerate(jobs) if j.launcher_job_id == launcher_job_id)
        jobs[index] = dataclasses.replace(jobs[index], status="CANCELLED", state=State.CANCELLED, done=True)
        return jobs[index]

    def log_stream(self, cloud: str, cluster: str, launcher_job_id: str, *, timeout_s: float) -> LogLines:
        if cloud == "no-logs":
            raise CloudCallError("logs failed", error_type="NotImplementedError", error_message="")
        return LogLines(["one\n", "two\n", "three\n"], lambda: None)

    def stop(self, cloud: str, cluster: str, *, timeout_s: float) -> ClusterOutcome:
        raise NotImplementedError

    def down(self, cloud: str, cluster: str, *, timeout_s: float) -> ClusterOutcome:
        raise NotImplementedError

    def settings_schema(self, *, timeout_s: float) -> dict[str, Tree]:
        return {}


@pytest.fixture
def memory() -> Iterator[MemoryAdapter]:
    stub = MemoryAdapter()
    previous = adapter.use(stub)
    try:
        yield stub
    finally:
        adapter.use(previous)


def register(paths, job_id: str, cloud: str, cluster: str, launcher_id: str) -> None:
    with Registry.open(paths) as registry:
        registry.add(JobRecord(job_id=job_id, cloud=cloud, submit_time=now_iso(), cluster=cluster,
                               launcher_job_id=launcher_id, command="train"))  # fmt: skip


def test_status_list_cancel_and_logs_go_through_the_current_adapter(paths, cli, memory):
    memory.add("mem", "c1", "7", "RUNNING", State.RUNNING)
    memory.add("mem", "c1", "8", "RUNNING", State.RUNNING)  # not ours: external
    register(paths, "ours", "mem", "c1", "7")
    assert cli.json("status", "ours")["state"] == "running"
    docs = cli.json("list")
    assert sorted((d["job_id"] or "", d["external"]) for d in docs) == [("", True), ("ours", False)]
    assert cli("logs", "ours").stdout == "one\ntwo\nthree\n"
    assert cli("logs", "ours", "--tail", "1").stdout == "three\n"
    record = cli.json("cancel", "ours")
    assert (record["status"], record["final_state"]) == ("completed", "cancelled")
    assert [s["name"] for s in record["steps"]] == ["check_state", "launcher_cancel", "verify"]
    assert "cancel mem c1 7" in memory.calls


def test_list_all_clouds_asks_the_adapter_which_clouds_exist(paths, cli, memory):
    memory.add("mem", "c1", "1", "PENDING", State.PENDING)
    result = cli("list", "--all-clouds")
    assert result.exit_code == 0, result.stderr
    assert "known_clouds" in memory.calls and "list_jobs local" not in memory.calls  # local is never listed
    assert memory.calls.index("prepare") < memory.calls.index("list_jobs mem")
    assert cli("list", "--cloud", "nowhere").exit_code == 2


def test_list_says_on_stderr_before_a_server_is_started_for_the_clouds(paths, cli, memory):
    """SkyPilot auto-starts its API server (and leaves it running): list says so first, in every mode."""
    memory.add("mem", "c1", "1", "RUNNING", State.RUNNING)
    memory.server_note = "SkyPilot starts one now"
    for mode in ([], ["--json"]):
        result = cli("list", "--all-clouds", *mode)
        assert result.exit_code == 0, result.stderr
        assert "oumi-jobs: note: SkyPilot starts one now" in result.stderr, mode
        assert "SkyPilot starts one" not in result.stdout  # stdout stays the listing
    last = {call.split()[0]: i for i, call in enumerate(memory.calls)}
    assert last["server_start_note"] < last["list_jobs"]  # said before the clouds are asked
    assert "mem" in memory.calls[last["server_start_note"]].split()  # about the clouds to be asked
    memory.server_note = None
    assert "note:" not in cli("list", "--all-clouds").stderr


def test_a_cloud_without_log_streams_says_so(paths, cli, memory):
    register(paths, "quiet", "no-logs", "c1", "1")
    result = cli("logs", "quiet")
    assert result.exit_code == 1 and "does not stream job logs" in result.stderr


def test_cloud_facts():
    assert facts.cluster_user("root@localhost") == "root" and facts.cluster_user("gpu-1") is None
    assert facts.listable(["local", "slurm", "oj-custom"]) == ["slurm", "oj-custom"]
    assert not facts.stops_and_downs("slurm") and facts.stops_and_downs("gcp")
    assert facts.is_sky_cloud("gcp") and not facts.is_sky_cloud("slurm")
    assert facts.LOCAL_CLOUD in facts.KNOWN_CLOUDS and facts.SKY_CLOUDS <= facts.KNOWN_CLOUDS
