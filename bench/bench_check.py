"""``oumi-jobs check CONFIG``, cold: a new process each time (a benchmark, not a test).

A check is almost all the import of oumi's config classes (``oumi.core.configs``
pulls in torch and transformers); the check itself is a few milliseconds.
Prints, as medians over ``--runs``:

* ``check`` of a clean training config, as a user runs it (a new process);
* ``check`` of a config with three problems (each problem loads it once more);
* the check alone, in a process that has already imported oumi's config
  classes (what a warm server pays per call, less its own HTTP round trip).

* ``check`` through the warm server, as a user runs it: the first (which starts the server) and the
  median of the next ones.

    python bench/bench_check.py [--runs N] [--json]
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

CLEAN = """model:
  model_name: gpt2
training:
  output_dir: out
  max_steps: 10
data:
  train:
    datasets:
      - dataset_name: yahma/alpaca-cleaned
"""
BAD = CLEAN.replace("  max_steps: 10\n", "  max_steps: ten\n  bogus_knob: 1\n  trainer_type: NOPE\n")


def cold(config: Path, *, server: bool = False) -> float:
    """Seconds of ``python -m oumi_jobs check CONFIG --json`` in a new process: importing oumi itself
    (``OUMI_JOBS_SERVER=off``), or asking the warm server (``server``)."""
    env = dict(os.environ, OUMI_JOBS_SERVER="on" if server else "off")
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "oumi_jobs", "check", str(config), "--json"], capture_output=True, check=False,
        env=env,
    )  # fmt: skip
    return time.perf_counter() - started


def warm(config: Path, runs: int) -> float:
    """Median seconds of the check alone, once oumi's config classes are imported (the first call imports them)."""
    from oumi_jobs.preflight import check_config

    check_config(config, cwd=config.parent)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        check_config(config, cwd=config.parent)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="new-process runs of each check (each imports oumi)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("SKYPILOT_DISABLE_USAGE_COLLECTION", "1")
    with tempfile.TemporaryDirectory() as home:
        os.environ["OUMI_JOBS_HOME"] = home
        clean, bad = Path(home) / "clean.yaml", Path(home) / "bad.yaml"
        clean.write_text(CLEAN)
        bad.write_text(BAD)
        figures = {
            "check_clean_cold_s": statistics.median(cold(clean) for _ in range(args.runs)),
            "check_3_problems_cold_s": statistics.median(cold(bad) for _ in range(args.runs)),
            "check_clean_in_process_s": warm(clean, max(args.runs, 5)),
            "check_3_problems_in_process_s": warm(bad, max(args.runs, 5)),
            "check_first_with_no_server_s": cold(clean, server=True),  # starts the server
            "check_clean_warm_server_s": statistics.median(cold(clean, server=True) for _ in range(5)),
            "check_3_problems_warm_server_s": statistics.median(cold(bad, server=True) for _ in range(5)),
        }
        subprocess.run([sys.executable, "-m", "oumi_jobs", "server", "stop"], capture_output=True, check=False)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"check, clean config, new process        {figures['check_clean_cold_s']:.2f} s")
    print(f"check, 3 problems, new process          {figures['check_3_problems_cold_s']:.2f} s")
    print(f"check alone, clean (oumi imported)      {figures['check_clean_in_process_s'] * 1000:.0f} ms")
    print(f"check alone, 3 problems (oumi imported) {figures['check_3_problems_in_process_s'] * 1000:.0f} ms")
    print(f"check, first, starting the server       {figures['check_first_with_no_server_s']:.2f} s")
    print(f"check, clean, warm server, new process  {figures['check_clean_warm_server_s']:.2f} s")
    print(f"check, 3 problems, warm server          {figures['check_3_problems_warm_server_s']:.2f} s")


if __name__ == "__main__":
    main()
