"""``status`` of one Slurm job, on the real Slurm cluster on loopback (a benchmark, not a test).

Start the cluster first: ``sudo ../shared/slurm/slurm-loopback.sh``.  Prints:

* ``status JOB`` as a user runs it (a new process: the import of
  ``oumi.launcher`` plus one question to the job's cluster);
* the cluster round trip alone (``get_status`` in a process that has already
  imported the launcher), which is what ``--watch`` and ``submit --wait`` pay
  per refresh;
* ``cancel`` of that job, through ``launcher.cancel`` and verified by status.

    python bench/bench_slurm.py [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CLUSTER = "root@localhost"


def oumi_jobs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "oumi_jobs", *args], capture_output=True, text=True, check=True)


def timed(call) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="new-process status runs (each imports oumi)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("SKYPILOT_DISABLE_USAGE_COLLECTION", "1")
    os.environ.setdefault("OUMI_SLURM_CONNECTIONS", CLUSTER)

    with tempfile.TemporaryDirectory() as home:
        os.environ["OUMI_JOBS_HOME"] = home
        config = Path(home) / "sleep.yaml"
        config.write_text("run: sleep 600\nresources:\n  cloud: slurm\n")
        job_id = oumi_jobs("submit", "-q", str(config), "--cluster", CLUSTER, "--workdir", home).stdout.strip()

        from oumi_jobs import status
        from oumi_jobs.paths import Paths

        paths = Paths.from_env()
        import_s = timed(lambda: __import__("oumi_jobs.cloud.oumi_adapter", fromlist=["load"]).load())
        deadline = time.monotonic() + 180
        while status.get_status(paths, job_id).state.value != "running":
            if time.monotonic() > deadline:
                raise SystemExit(f"{job_id} did not reach running on {CLUSTER} within 180 s")
            time.sleep(1)

        process_s = [timed(lambda: oumi_jobs("status", job_id, "--json")) for _ in range(args.runs)]
        round_trip_s = [timed(lambda: status.get_status(paths, job_id)) for _ in range(10)]
        cancel_s = timed(lambda: oumi_jobs("cancel", job_id, "--json"))

    figures = {
        "status_new_process_median_s": round(statistics.median(process_s), 2),
        "status_new_process_runs_s": [round(t, 2) for t in process_s],
        "launcher_import_s": round(import_s, 2),
        "status_round_trip_median_s": round(statistics.median(round_trip_s), 3),
        "cancel_new_process_s": round(cancel_s, 2),
    }
    if args.json:
        print(json.dumps(figures))
        return
    print(f"status of one Slurm job, new process (median of {args.runs}): {figures['status_new_process_median_s']} s")
    print(f"  of which import oumi.launcher (this process):          {figures['launcher_import_s']} s")
    print(f"  cluster round trip once imported (median of 10):      {figures['status_round_trip_median_s']} s")
    print(f"cancel of that job, new process (incl. verification):   {figures['cancel_new_process_s']} s")


if __name__ == "__main__":
    main()
