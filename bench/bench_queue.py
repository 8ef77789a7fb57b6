"""Queue timings (a benchmark, not a test).

* hand-over: the delay between a job of a local cluster ending and the next
  job of that queue starting, from timestamps the jobs write themselves
  (median, target <= 0.5 s);
* submit throughput into one queue: jobs submitted per second through the
  library, and jobs run per second until the queue is empty (``--jobs``,
  default 500 quick jobs).

    python bench/bench_queue.py [--jobs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

STAMPED = 'run: |\n  echo "start $(date +%s%N)" >> {log}\n  sleep 0.1\n  echo "end $(date +%s%N)" >> {log}\n'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--handovers", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="oumi-jobs-bench-") as tmp:
        work = Path(tmp)
        os.environ["OUMI_JOBS_HOME"] = str(work / "home")
        from oumi_jobs.listing import list_jobs
        from oumi_jobs.paths import Paths
        from oumi_jobs.submitting import SubmitRequest, submit

        paths = Paths.from_env()
        log = work / "stamps"
        stamped = work / "stamped.yaml"
        stamped.write_text(STAMPED.format(log=log))
        for _ in range(args.handovers + 1):
            submit(paths, SubmitRequest(config=str(stamped), cluster="handover"))
        wait_all_done(paths, "handover", list_jobs)
        marks = [line.split() for line in log.read_text().splitlines()]
        starts = [int(t) for kind, t in marks if kind == "start"]
        ends = [int(t) for kind, t in marks if kind == "end"]
        gaps = [(start - end) / 1e9 for end, start in zip(ends, starts[1:], strict=False)]

        quick = work / "quick.yaml"
        quick.write_text("run: 'true'\n")
        began = time.perf_counter()
        for _ in range(args.jobs):
            submit(paths, SubmitRequest(config=str(quick), cluster="throughput"))
        submitted = time.perf_counter() - began
        wait_all_done(paths, "throughput", list_jobs, timeout=3600)
        finished = time.perf_counter() - began

    figures = {
        "queue hand-over delay (s, median)": round(statistics.median(gaps), 4),
        "queue hand-over delay (s, max)": round(max(gaps), 4),
        f"submit throughput, {args.jobs} jobs into one queue (jobs/s)": round(args.jobs / submitted, 1),
        f"run throughput, {args.jobs} quick jobs through one queue (jobs/s)": round(args.jobs / finished, 1),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    for name, value in figures.items():
        print(f"{name:<62} {value}")
    print("target: hand-over <= 0.5 s:", "met" if statistics.median(gaps) <= 0.5 else "NOT met")


def wait_all_done(paths, cluster: str, list_jobs, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not all(view.done for view in list_jobs(paths, cluster=cluster)):
        if time.monotonic() > deadline:
            sys.exit(f"bench: queue {cluster} did not drain within {timeout} s")
        time.sleep(0.5)


if __name__ == "__main__":
    main()
