"""Side outputs never change the outcome: a ``--metrics-file`` that cannot be written
after the cancel worked is a warning on stderr, with the cancel's own exit code and
JSON document."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from .helpers import submit_id, wait_until


def _running(cli, job_config, cluster: str = "local") -> str:
    job_id = submit_id(cli, str(job_config("sleep 60")), "--cluster", cluster)
    wait_until(lambda: cli.json("status", job_id)["state"] == "running")
    return job_id


def test_a_metrics_file_under_a_file_is_a_warning(paths, cli, job_config, tmp_path):
    job_id = _running(cli, job_config)
    (tmp_path / "not-a-dir").write_text("")
    result = cli("cancel", job_id, "--json", "--metrics-file", str(tmp_path / "not-a-dir" / "oumi.prom"))
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["job_id"] == job_id and doc["status"] == "completed" and doc["final_state"] == "cancelled"
    assert "warning: metrics not written" in result.stderr and "not-a-dir" in result.stderr
    assert "internal error" not in result.stderr
    assert "oumi_jobs_cancellation_requests_total" in paths.metrics_file.read_text()  # ours was written
    # A second cancel of the now finished job keeps its own outcome (exit 4) and still warns.
    again = cli("cancel", job_id, "--json", "--metrics-file", str(tmp_path / "not-a-dir" / "oumi.prom"))
    assert again.exit_code == 4 and json.loads(again.stdout)["status"] == "not_needed"
    assert "warning: metrics not written" in again.stderr


def test_bulk_cancel_warns_once_and_reports_every_job(cli, job_config, tmp_path):
    jobs = [_running(cli, job_config, cluster) for cluster in ("a", "b")]
    (tmp_path / "f").write_text("")
    result = cli("cancel", *jobs, "--json", "--force", "--metrics-file", str(tmp_path / "f" / "m.prom"))
    assert result.exit_code == 0, result.stderr
    assert sorted(doc["job_id"] for doc in json.loads(result.stdout)) == sorted(jobs)
    warnings = [line for line in result.stderr.splitlines() if "metrics not written" in line]
    assert len(warnings) == 1, result.stderr


def _needs_root(what: str) -> None:
    if os.geteuid() == 0:
        return
    message = f"needs root ({what}): run the tests as root, e.g. `sudo -E python -m pytest`"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def full_disk(tmp_path: Path):
    """A 64 KiB tmpfs, filled up."""
    _needs_root("mounts a tmpfs")
    mount = tmp_path / "full"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(mount)], check=True)
    try:
        with open(mount / "filler", "wb", buffering=0) as handle:
            try:
                while True:
                    handle.write(b"x" * 4096)
            except OSError:
                pass  # ENOSPC: full
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_metrics_file_on_a_full_disk_is_a_warning(paths, cli, job_config, full_disk):
    job_id = _running(cli, job_config)
    result = cli("cancel", job_id, "--json", "--metrics-file", str(full_disk / "oumi.prom"))
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "completed"
    assert "metrics not written" in result.stderr and "No space left" in result.stderr
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]  # no half-written temporary file left
