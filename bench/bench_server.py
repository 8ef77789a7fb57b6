"""Cloud commands through the warm server, on the real Slurm cluster on loopback (a benchmark, not a test).

Start the cluster first: ``sudo ../shared/slurm/slurm-loopback.sh``.  Prints, each command a new process as a
user runs it:

* the first cloud command with no server running (it starts one: about one import of ``oumi.launcher``);
* ``status JOB`` of a running Slurm job: the median of ``--runs`` calls after the first, and
  ``oumi launch status --cloud slurm --cluster root@localhost --id N`` beside it, with the ratio;
* ``list`` with Slurm jobs in the registry;
* a verified ``cancel`` of a Slurm job;
* the same ``status`` with ``OUMI_JOBS_SERVER=off`` (today's in-process path), once;
* the server's resident memory when idle.

    python bench/bench_server.py [--runs 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLUSTER = "root@localhost"


def timed(*argv: str, env: dict[str, str] | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - started, done.stdout


def oumi_jobs(*args: str, env: dict[str, str] | None = None) -> tuple[float, str]:
    return timed(sys.executable, "-m", "oumi_jobs", *args, env=env)


def submit_running(home: str) -> str:
    config = Path(home) / "sleep.yaml"
    config.write_text("run: sleep 600\nresources:\n  cloud: slurm\n")
    job_id = oumi_jobs("submit", "-q", str(config), "--cluster", CLUSTER, "--workdir", home)[1].strip()
    for _ in range(300):
        if json.loads(oumi_jobs("status", job_id, "--json")[1])["state"] == "running":
            return job_id
        time.sleep(1)
    raise SystemExit(f"{job_id} did not start running")


# long function: one measurement after another, in the order the docstring lists them
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="warm status calls after the first")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.update(DO_NOT_TRACK="1", SKYPILOT_DISABLE_USAGE_COLLECTION="1", OUMI_SLURM_CONNECTIONS=CLUSTER)
    os.environ.pop("OUMI_JOBS_SERVER", None)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # users have .pyc files
    figures: dict[str, float | int | None] = {}
    with tempfile.TemporaryDirectory() as home:
        os.environ["OUMI_JOBS_HOME"] = home
        first_config = Path(home) / "first.yaml"
        first_config.write_text("run: sleep 600\nresources:\n  cloud: slurm\n")
        # The first cloud command starts the server (the submit's launching process would, too: time a
        # question instead, with no server running and one job to ask about).
        job_id = submit_running(home)
        oumi_jobs("server", "stop")
        figures["first_cloud_command_s"] = oumi_jobs("status", job_id)[0]
        launcher_id = json.loads(oumi_jobs("status", job_id, "--json")[1])["launcher_job_id"]
        warm = [oumi_jobs("status", job_id)[0] for _ in range(args.runs)]
        figures["status_warm_median_s"] = statistics.median(warm)
        figures["status_warm_p90_s"] = sorted(warm)[int(0.9 * (len(warm) - 1))]
        if shutil.which("oumi"):
            figures["oumi_launch_status_s"] = timed(
                "oumi", "launch", "status", "--cloud", "slurm", "--cluster", CLUSTER, "--id", launcher_id
            )[0]
            figures["oumi_launch_over_oumi_jobs"] = figures["oumi_launch_status_s"] / figures["status_warm_median_s"]
        figures["list_with_slurm_jobs_s"] = statistics.median(oumi_jobs("list")[0] for _ in range(5))
        figures["status_in_process_s"] = oumi_jobs("status", job_id, env=dict(os.environ, OUMI_JOBS_SERVER="off"))[0]
        figures["cancel_verified_s"] = oumi_jobs("cancel", job_id)[0]
        server = json.loads(oumi_jobs("server", "status", "--json")[1])
        figures["server_idle_rss_mib"] = (
            round(server["memory_rss_bytes"] / 2**20) if server["memory_rss_bytes"] else None
        )
        oumi_jobs("server", "stop")
    if args.json:
        print(json.dumps(figures))
        return
    for name, value in figures.items():
        print(f"{name:28} {value:.3f}" if isinstance(value, float) else f"{name:28} {value}")


if __name__ == "__main__":
    main()
