"""Guard timings and costs (a benchmark, not a test).

* **Stall detection**: seconds from a job's last training step (its metrics
  file's last write) to its ``guard`` event, for ``--stall-after 15s`` (target
  <= 25 s, SPEC: the stall time plus 10 s).  The job writes three steps as
  Oumi's metrics logger does, then hangs (``sleep``); several run at once.
* **The watcher's cost**: CPU seconds per watched job per minute, with N
  (default 100) sleeping local jobs under a guard policy, less the same
  number of sleeping jobs without one (their supervisors' own waiting): the
  supervisors' CPU time (``/proc/PID/stat``) over the window.

Runs in a private ``OUMI_JOBS_HOME``; every job it starts is cancelled by the
tool itself at the end.

    python bench/bench_guards.py [--stall-runs N] [--jobs N] [--window S] [--json]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from oumi_jobs import timeline
from oumi_jobs.cancel.service import CancelOptions, cancel_jobs
from oumi_jobs.paths import Paths
from oumi_jobs.policy import JobPolicy
from oumi_jobs.store.registry import Registry
from oumi_jobs.submitting import SubmitRequest, submit
from oumi_jobs.timestamps import from_iso

STALL_AFTER_S = 15.0
HANG = """run: |
  mkdir -p {out}
  for s in 1 2 3; do echo '{{"loss": 1.5, "step": '$s'}}' >> {out}/metrics_rank0000.jsonl; sleep 0.5; done
  sleep 600
envs:
  OUTPUT_DIR: {out}
"""
SLEEPER = "run: |\n  sleep 3600\n"


def wait_for(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise SystemExit("bench: timed out waiting for the jobs")


def guard_event_at(paths: Paths, job_id: str) -> float | None:
    events = [e for e in timeline.timeline(paths, job_id).events if e.kind == "guard"]
    return from_iso(events[0].at).timestamp() if events else None


def stall_detection(paths: Paths, work: Path, runs: int) -> list[float]:
    """Seconds from each hanging job's last step to its guard event."""
    jobs = []
    for n in range(runs):
        out = work / f"stall-{n}"
        config = work / f"stall-{n}.yaml"
        config.write_text(HANG.format(out=out))
        policy = JobPolicy(stall_after_s=STALL_AFTER_S)
        jobs.append((submit(paths, SubmitRequest(str(config), cluster=f"stall-{n}", policy=policy)).job_id, out))

    def all_fired() -> list[float] | None:
        found = [guard_event_at(paths, job_id) for job_id, _ in jobs]
        return None if None in found else [at for at in found if at is not None]

    seen = wait_for(all_fired, timeout=STALL_AFTER_S * 6)
    return [at - (out / "metrics_rank0000.jsonl").stat().st_mtime for at, (_, out) in zip(seen, jobs, strict=True)]


def supervisors_cpu(paths: Paths, job_ids: list[str]) -> float:
    """The CPU seconds (user + system) the jobs' supervisors have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    with Registry.open(paths) as registry:
        pids = [r.supervisor_pid for j in job_ids if (r := registry.get(j)) is not None and r.supervisor_pid]
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def start_sleepers(paths: Paths, work: Path, count: int, policy: JobPolicy, tag: str) -> list[str]:
    config = work / "sleeper.yaml"
    config.write_text(SLEEPER)
    ids = [submit(paths, SubmitRequest(str(config), cluster=f"{tag}-{n}", policy=policy)).job_id for n in range(count)]

    def all_started() -> bool:
        with Registry.open(paths) as registry:
            return all((r := registry.get(j)) is not None and r.pid is not None for j in ids)

    wait_for(all_started, timeout=60 + count)
    return ids


def watcher_cost(paths: Paths, work: Path, count: int, window_s: float) -> dict[str, float]:
    """CPU seconds per job per minute of guarded and unguarded sleeping jobs' supervisors, and the difference."""
    guarded_policy = JobPolicy(stall_after_s=STALL_AFTER_S, max_duration_s=3600.0, nan_guard=True)
    figures = {}
    for tag, policy in (("plain", JobPolicy()), ("guarded", guarded_policy)):
        ids = start_sleepers(paths, work, count, policy, tag)
        time.sleep(5)  # past the supervisors' start
        before = supervisors_cpu(paths, ids)
        time.sleep(window_s)
        used = supervisors_cpu(paths, ids) - before
        figures[tag] = used / count / (window_s / 60.0)
        cancel_jobs(paths, ids, CancelOptions(timeout_s=5))
    figures["watcher"] = figures["guarded"] - figures["plain"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stall-runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--window", type=float, default=60.0, help="seconds the CPU is measured over")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-guards-") as home:
        os.environ["OUMI_JOBS_HOME"] = home
        paths, work = Paths.from_env(), Path(home) / "work"
        work.mkdir()
        try:
            stalls = stall_detection(paths, work, args.stall_runs)
            cost = watcher_cost(paths, work, args.jobs, args.window)
        finally:
            with Registry.open(paths) as registry:
                left = [r.job_id for r in registry.jobs(finished_local=False)]
            if left:
                cancel_jobs(paths, left, CancelOptions(timeout_s=5))
    result = {
        "stall_after_s": STALL_AFTER_S,
        "stall_detection_s": {"median": statistics.median(stalls), "max": max(stalls), "runs": stalls},
        "cpu_s_per_job_per_minute": cost,
        "jobs": args.jobs,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"stall detection, --stall-after {STALL_AFTER_S:g}s: median {statistics.median(stalls):.1f} s, "
          f"max {max(stalls):.1f} s (target <= {STALL_AFTER_S + 10:g} s) over {len(stalls)} runs")  # fmt: skip
    print(f"watcher CPU per watched job per minute, {args.jobs} jobs: {cost['watcher'] * 1000:.1f} ms "
          f"(guarded supervisors {cost['guarded'] * 1000:.1f} ms, unguarded {cost['plain'] * 1000:.1f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
