"""What reading progress costs ``list`` (a benchmark, not a test): 1,000 jobs, with their progress and without.

Fills a private ``OUMI_JOBS_HOME`` (a temporary folder, removed at the end)
with 1,000 finished local training jobs, each with an output dir holding a
``metrics_rank0000.jsonl`` of 200 logging steps and a stderr log of tqdm bars,
then prints the median wall time over ``--runs`` runs of, each a fresh process:

* ``list --json`` and ``list`` with progress (the default), and the same
  commands with progress turned off, run alternately (the one difference: a driver passes
  ``with_progress=False`` to the core; both variants run through the same driver);
* the very first ``list --json``, which reads every job's files once and keeps
  what it read in the progress cache (once: a finished job is never read again).

Target: with progress within 1.5x of without.

    python bench/bench_progress.py [--runs N] [--jobs N]
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
from datetime import datetime, timedelta, timezone
from pathlib import Path

TARGET_X = 1.5
DRIVER = """
import functools, sys
from oumi_jobs import listing
if sys.argv[1] == "off":
    listing.list_job_documents = functools.partial(listing.list_job_documents, with_progress=False)
    listing.list_jobs_report = functools.partial(listing.list_jobs_report, with_progress=False)
from oumi_jobs.cli.app import main
sys.argv = ["oumi-jobs", *sys.argv[2:]]
main()
"""


def fill(home: Path, count: int) -> None:
    from oumi_jobs.paths import Paths
    from oumi_jobs.store.registry import JobRecord, Registry
    from oumi_jobs.timestamps import to_iso

    paths = Paths.from_env({"OUMI_JOBS_HOME": str(home)})
    start = datetime.now(timezone.utc) - timedelta(days=2)
    records = []
    for i in range(count):
        job_id = f"train-bench-{i:05d}"
        out = home / "outputs" / job_id
        out.mkdir(parents=True)
        lines = [
            json.dumps({"loss": 3.0 / s, "learning_rate": 1e-4, "epoch": s / 200, "step": s}) for s in range(1, 201)
        ]
        (out / "metrics_rank0000.jsonl").write_text("\n".join(lines) + "\n")
        log_dir = paths.job_log_dir(job_id)
        log_dir.mkdir(parents=True)
        bars = "".join(f"\r {s // 2}%|#   | {s}/200 [00:{s % 60:02d}<00:10, 4.00it/s]" for s in range(1, 201))
        (log_dir / "stderr.log").write_text(bars + "\n")
        (log_dir / "stdout.log").write_text("")
        submitted = start + timedelta(seconds=60 * i)
        records.append(
            JobRecord(
                job_id=job_id, cloud="local", submit_time=to_iso(submitted), command="train",
                output_dir=str(out), stdout_path=str(log_dir / "stdout.log"), stderr_path=str(log_dir / "stderr.log"),
                started_at=to_iso(submitted), exit_code=0, end_time=to_iso(submitted + timedelta(seconds=50)),
            )
        )  # fmt: skip
    with Registry.open(paths) as registry:
        registry.add_many_if_absent(records)


def timed_pair(without: list[str], with_progress: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """Median wall times of the two commands, run alternately (a busy machine slows both alike)."""
    for argv in (without, with_progress):  # warm-up: page cache, .pyc files
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for argv, into in ((without, times[0]), (with_progress, times[1])):
            started = time.perf_counter()
            subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
            into.append(time.perf_counter() - started)
    return statistics.median(times[0]), statistics.median(times[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=11, help="timed runs per command (default 11)")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs in the registry (default 1000)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="oumi-jobs-bench-progress-") as tmp:
        home = Path(tmp)
        fill(home, args.jobs)
        env = dict(os.environ, OUMI_JOBS_HOME=str(home), DO_NOT_TRACK="1", COLUMNS="200")
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        run = [sys.executable, "-c", DRIVER]
        started = time.perf_counter()
        first = subprocess.run([*run, "on", "list", "--json"], env=env, check=True, capture_output=True, text=True)
        first_s = time.perf_counter() - started
        listed = json.loads(first.stdout)
        if len(listed) != args.jobs or any(d["progress"]["step"] != 200 for d in listed):
            raise SystemExit("bench: list --json did not give every job's progress")
        print(f"oumi-jobs progress benchmark: {args.jobs} finished training jobs, median of {args.runs} runs")
        print(f"first list --json (reads every job's files once, fills the cache): {first_s:.3f} s")
        worst = 0.0
        for command in (["list", "--json"], ["list"]):
            without, with_progress = timed_pair([*run, "off", *command], [*run, "on", *command], env, args.runs)
            ratio = with_progress / without
            worst = max(worst, ratio)
            name = " ".join(command)
            print(f"{name:<12} without progress {without:.3f} s, with {with_progress:.3f} s: {ratio:.2f}x")
        verdict = "met" if worst <= TARGET_X else "NOT MET"
        print(f"target: with progress <= {TARGET_X:g}x without: {verdict} (worst {worst:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
