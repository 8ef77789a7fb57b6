"""Sweep timings (a benchmark, not a test), through the command line as a user runs it:

* ``sweep`` of 1,000 children of a trivial local job config: children registered per second (the
  whole command, from start to exit: planning, the staged copies, one transaction, the first start);
* ``status SWEEP --json`` with those 1,000 children;
* ``cancel SWEEP`` of the 1,000, 2 of them running (``--parallel 2``): every child ended and verified;
* ``list --json`` over 10,000 finished jobs against the import floor
  (``python -c "import typer, rich.console, platformdirs, sqlite3"``), both timed in this run (target <= 2x),
  and over 100,000 (printed), as ``bench/bench_local.py`` times them (``--no-listing``: not these).

Runs in a private ``OUMI_JOBS_HOME``; everything it starts is cancelled by the tool itself.

    python bench/bench_sweep.py [--children N] [--runs N] [--no-listing] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_local import (
    BIG_RECORDS,
    FLOOR,
    LIST_TARGET_X_FLOOR,
    RECORDS,
    cli_command,
    fill_registry,
    time_big_listing,
    time_command,
)


def run(cli: list[str], env: dict[str, str], *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([*cli, *args], env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bench: {' '.join(args[:2])} exited {done.returncode}: {done.stderr.strip()}")
    return took, done.stdout


def wait_running(cli: list[str], env: dict[str, str], sweep_id: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        counts = json.loads(run(cli, env, "status", sweep_id, "--json")[1])["counts"]
        if counts.get("running", 0) >= count:
            return
        time.sleep(0.2)
    raise SystemExit("bench: the first children did not start")


def listing_figures(cli: list[str], runs: int) -> dict[str, object]:
    """``list --json`` over RECORDS and BIG_RECORDS finished jobs, and the import floor, in this run."""
    with tempfile.TemporaryDirectory(prefix="oumi-jobs-bench-list-") as home:
        env = dict(os.environ, OUMI_JOBS_HOME=str(Path(home) / "list"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed tool runs from .pyc files
        floor = time_command("import floor", [sys.executable, "-c", FLOOR], env, runs)
        fill_registry(env, RECORDS)
        run(cli, env, "list", "--json")  # the first listing reads and keeps each finished job's progress
        listed = time_command("list --json", [*cli, "list", "--json"], env, runs)
        big = time_big_listing(cli, dict(env, OUMI_JOBS_HOME=str(Path(home) / "big")), runs)
    return {
        "import_floor_s": round(floor.median_s, 3),
        f"list_json_{RECORDS}_s": round(listed.median_s, 3),
        "list_json_x_floor": round(listed.median_s / floor.median_s, 2),
        "list_json_target_x_floor": LIST_TARGET_X_FLOOR,
        f"list_json_{BIG_RECORDS}_s": round(big.median_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=11, help="timed runs of list --json and the floor")
    parser.add_argument("--no-listing", action="store_true", help="skip the list --json figures")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cli = cli_command()
    with tempfile.TemporaryDirectory(prefix="oumi-jobs-bench-sweep-") as home:
        env = dict(os.environ, OUMI_JOBS_HOME=home)
        config = Path(home) / "job.yaml"
        config.write_text("run: sleep 300\nenvs:\n  N: 0\n")
        values = ",".join(str(i) for i in range(args.children))
        took, out = run(cli, env, "sweep", str(config), f"--set=envs.N={values}", "--parallel", "2",
                        "--cluster", "bench-sweep", "-q")  # fmt: skip
        sweep_id = out.strip()
        wait_running(cli, env, sweep_id, 2)
        status_s = min(run(cli, env, "status", sweep_id, "--json")[0] for _ in range(3))
        cancel_s, cancelled = run(cli, env, "cancel", sweep_id, "--json")
        after = json.loads(run(cli, env, "status", sweep_id, "--json")[1])
        document = json.loads(cancelled)
        figures = {
            "children": args.children,
            "register_children_per_s": round(args.children / took, 1),
            "sweep_command_s": round(took, 3),
            "status_sweep_json_s": round(status_s, 3),
            "cancel_sweep_s": round(cancel_s, 3),
            "cancelled_before_start": len(document["cancelled_before_start"]),
            "cancelled_running": len(document["cancellations"]),
            "all_cancelled": after["counts"] == {"cancelled": args.children},
        }
    if not args.no_listing:
        figures |= listing_figures(cli, args.runs)
    if args.json:
        print(json.dumps(figures))
        return
    for name, value in figures.items():
        print(f"{name:>27}: {value}")


if __name__ == "__main__":
    main()
