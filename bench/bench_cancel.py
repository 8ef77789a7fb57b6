"""Cancellation timings (a benchmark, not a test).

* ``cancel --force`` of a 4-process job tree: median time from starting the
  command to the last of the 4 processes being gone (target <= 0.3 s);
* SIGKILL escalation: how far from ``--timeout`` the SIGKILL lands for a job
  that ignores SIGTERM (target within 0.2 s).

Runs in a private ``OUMI_JOBS_HOME``; every job it starts is cancelled by the
tool itself.

    python bench/bench_cancel.py [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_local import cli_command

TREE = """run: |
  sleep 300 & echo $! >> {pids}
  sleep 300 & echo $! >> {pids}
  sleep 300 & echo $! >> {pids}
  echo $$ >> {pids}
  wait
"""
STUBBORN = "run: |\n  trap '' TERM\n  echo $$ > {ready}\n  while true; do sleep 0.05; done\n"


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("bench: timed out waiting for a job")
        time.sleep(0.01)


def submit(cli: list[str], env: dict[str, str], config: Path, cluster: str) -> str:
    out = subprocess.run([*cli, "submit", "-q", str(config), "--cluster", cluster], env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return out.stdout.strip()


def force_cancel_once(cli: list[str], env: dict[str, str], work: Path, n: int) -> float:
    pids_file = work / f"pids-{n}"
    config = work / f"tree-{n}.yaml"
    config.write_text(TREE.format(pids=pids_file))
    job_id = submit(cli, env, config, f"tree-{n}")
    wait_for(lambda: pids_file.exists() and len(pids_file.read_text().split()) == 4)
    pids = [int(p) for p in pids_file.read_text().split()]
    gone_at: list[float] = []

    def watch() -> None:
        while any(alive(p) for p in pids):
            time.sleep(0.0005)
        gone_at.append(time.perf_counter())

    started = time.perf_counter()
    watcher = threading.Thread(target=watch)
    watcher.start()
    subprocess.run([*cli, "cancel", "--force", job_id], env=env, capture_output=True, check=True)
    watcher.join(timeout=30)
    return gone_at[0] - started


def escalation_once(cli: list[str], env: dict[str, str], work: Path, n: int, timeout_s: float) -> float:
    ready = work / f"ready-{n}"
    config = work / f"stubborn-{n}.yaml"
    config.write_text(STUBBORN.format(ready=ready))
    job_id = submit(cli, env, config, f"stubborn-{n}")
    wait_for(ready.exists)
    out = subprocess.run([*cli, "cancel", job_id, "--timeout", str(timeout_s), "--json"], env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    steps = {s["name"]: s for s in json.loads(out.stdout)["steps"]}
    from datetime import datetime

    term = datetime.fromisoformat(steps["signal_term"]["ended_at"])
    kill = datetime.fromisoformat(steps["signal_kill"]["ended_at"])
    return (kill - term).total_seconds() - timeout_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=1.0, help="--timeout of the escalation runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cli = cli_command()
    with tempfile.TemporaryDirectory(prefix="oumi-jobs-bench-") as tmp:
        work = Path(tmp)
        env = dict(os.environ, OUMI_JOBS_HOME=str(work / "home"), DO_NOT_TRACK="1")
        force = [force_cancel_once(cli, env, work, n) for n in range(args.runs)]
        late = [escalation_once(cli, env, work, n, args.timeout) for n in range(max(3, args.runs // 2))]
    figures = {
        "cancel --force, 4-process tree gone (s)": (statistics.median(force), 0.3),
        f"SIGKILL lateness after --timeout {args.timeout:g} s (s)": (statistics.median(late), 0.2),
    }
    if args.json:
        print(json.dumps({k: {"median_s": round(v, 4), "target_s": t} for k, (v, t) in figures.items()}, indent=2))
        return
    for name, (value, target) in figures.items():
        print(f"{name:<52} median {value:7.3f}   target <= {target:g}   {'met' if value <= target else 'NOT met'}")
    print(f"(force: {args.runs} runs, min {min(force):.3f} max {max(force):.3f}; "
          f"escalation: {len(late)} runs, min {min(late):.3f} max {max(late):.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
