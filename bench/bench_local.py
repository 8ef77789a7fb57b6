"""Start-up and local-command timings of oumi-jobs (a benchmark, not a test).

Prints the median wall time over ``--runs`` runs (default 15) of:

* ``python -c pass``                 the interpreter's own floor;
* the import floor                   ``python -c "import typer, rich.console, platformdirs, sqlite3"``:
                                     what any Typer + rich tool pays before it does anything;
* ``oumi-jobs --help``               target <= 0.2 s;
* ``oumi-jobs list --json``          over 10,000 finished local jobs, target <= 2x the import floor
                                     (measured in the same run, so a slow machine moves both);
* ``oumi-jobs list --json``          over 100,000 finished local jobs, printed (fewer runs: at most 3);
* ``oumi-jobs status ID``            of one real local job while it runs.

Every command runs as a fresh process, as a person or script would run it,
with a private ``OUMI_JOBS_HOME`` in a temporary folder that is removed at the
end.  The one real job is ended at the end by SIGKILL to its own process group
(whose id is its pid), and to nothing else.

    python bench/bench_local.py [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

RECORDS = 10_000
FLOOR = "import typer, rich.console, platformdirs, sqlite3"
LIST_JSON = f"oumi-jobs list --json ({RECORDS:,} jobs)"
BIG_RECORDS = 100_000
LIST_TARGET_X_FLOOR = 2.0


@dataclass
class Result:
    name: str
    median_s: float
    min_s: float
    max_s: float
    runs: int
    target_s: float | None
    met: bool | None


def cli_command() -> list[str]:
    """The installed console script: the one beside this interpreter, else the first on PATH.

    A pyenv shim on PATH is a bash script that re-execs through ``pyenv exec``
    (tens of milliseconds per call); the script beside ``sys.executable`` is
    what the shim ends up running, so it is preferred.
    """
    beside = Path(sys.executable).with_name("oumi-jobs")
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("oumi-jobs")
    if found:
        return [found]
    return [sys.executable, "-m", "oumi_jobs"]


def run_checked(argv: Sequence[str], env: Mapping[str, str]) -> str:
    result = subprocess.run(
        list(argv), env=dict(env), capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def time_command(
    name: str, argv: Sequence[str], env: Mapping[str, str], runs: int, *, target_s: float | None = None
) -> Result:
    """One untimed warm-up run (page cache, .pyc files), then ``runs`` timed ones."""
    run_checked(argv, env)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        code = subprocess.call(
            list(argv), env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        times.append(time.perf_counter() - started)
        if code != 0:
            raise SystemExit(f"bench: {' '.join(argv)} exited {code}")
    median = statistics.median(times)
    met = None if target_s is None else median <= target_s
    return Result(name, median, min(times), max(times), runs, target_s, met)


def fill_registry(env: Mapping[str, str], count: int) -> None:
    """``count`` finished local jobs, inserted in one transaction."""
    from oumi_jobs.local.procs import boot_id
    from oumi_jobs.paths import Paths
    from oumi_jobs.store.registry import JobRecord, Registry
    from oumi_jobs.timestamps import to_iso

    paths = Paths.from_env(env)
    start = datetime.now(timezone.utc) - timedelta(days=3)
    host_boot = boot_id()
    records = []
    for i in range(count):
        job_id = f"job-bench-{i:06d}"
        submitted = start + timedelta(seconds=10 * i)
        log_dir = paths.job_log_dir(job_id)
        records.append(
            JobRecord(
                job_id=job_id,
                cloud="local",
                submit_time=to_iso(submitted),
                command="job",
                config_path=f"/tmp/bench/job{i}.yaml",
                source="submit",
                argv=("/bin/bash", "-c", "echo hi"),
                workdir="/tmp",
                stdout_path=str(log_dir / "stdout.log"),
                stderr_path=str(log_dir / "stderr.log"),
                supervisor_pid=100_000 + i,
                supervisor_start_time=submitted.timestamp(),
                pid=200_000 + i,
                pgid=200_000 + i,
                process_start_time=submitted.timestamp() + 0.05,
                boot_id=host_boot,
                started_at=to_iso(submitted + timedelta(milliseconds=50)),
                exit_code=0,
                end_time=to_iso(submitted + timedelta(seconds=1)),
            )
        )
    with Registry.open(paths) as registry:
        inserted = registry.add_many_if_absent(records)
    if len(inserted) != count:
        raise SystemExit(f"bench: inserted {len(inserted)} of {count} records")


def time_big_listing(cli: Sequence[str], env: Mapping[str, str], runs: int) -> Result:
    """``list --json`` over BIG_RECORDS jobs, after one untimed run (the one that reads and keeps each finished
    job's progress, as the first listing after they ended does)."""
    fill_registry(env, BIG_RECORDS)
    listed = json.loads(run_checked([*cli, "list", "--json"], env))
    if len(listed) != BIG_RECORDS:
        raise SystemExit(f"bench: list --json returned {len(listed)} jobs, expected {BIG_RECORDS}")
    return time_command(f"oumi-jobs list --json ({BIG_RECORDS:,} jobs)", [*cli, "list", "--json"], env, min(runs, 3))


def status_json(cli: Sequence[str], job_id: str, env: Mapping[str, str]) -> dict:
    return json.loads(run_checked([*cli, "status", job_id, "--json"], env))


def wait_for(predicate, timeout: float, what: str):
    from oumi_jobs.polling import poll_until

    value = poll_until(timeout, predicate, 0.1)
    if not value:
        raise SystemExit(f"bench: {what} not within {timeout} s")
    return value


def end_job(cli: Sequence[str], job_id: str, env: Mapping[str, str]) -> None:
    """SIGKILL the job's own process group, then let its supervisor record the exit."""
    doc = status_json(cli, job_id, env)
    pid = doc.get("pid")
    # `running` means the registry's pid is still the very process the
    # supervisor started (pid, start time and boot id all match).
    if pid and doc["state"] in ("running", "cancelling"):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # The supervisor exits once it has written the exit record; waiting for it
    # keeps it from writing into the temporary home after it is removed.
    wait_for(lambda: status_json(cli, job_id, env)["done"], 15, f"the end of job {job_id}")


def bench(runs: int) -> tuple[list[Result], dict]:
    cli = cli_command()
    results = []
    with tempfile.TemporaryDirectory(prefix="oumi-jobs-bench-") as tmp:
        base_env = dict(os.environ, DO_NOT_TRACK="1", SKYPILOT_DISABLE_USAGE_COLLECTION="1")
        base_env.pop("OUMI_JOBS_DEBUG", None)
        # An installed tool runs from compiled .pyc files; without them every
        # run would compile every module again (the warm-up run writes them).
        base_env.pop("PYTHONDONTWRITEBYTECODE", None)
        list_env = dict(base_env, OUMI_JOBS_HOME=str(Path(tmp) / "list-home"))
        job_env = dict(base_env, OUMI_JOBS_HOME=str(Path(tmp) / "job-home"))

        results.append(time_command("python -c pass", [sys.executable, "-c", "pass"], base_env, runs))
        floor = time_command("import floor (typer, rich, platformdirs, sqlite3)", [sys.executable, "-c", FLOOR],
                             base_env, runs)  # fmt: skip
        results.append(floor)
        results.append(time_command("oumi-jobs --help", [*cli, "--help"], list_env, runs, target_s=0.2))

        fill_registry(list_env, RECORDS)
        listed = json.loads(run_checked([*cli, "list", "--json"], list_env))
        if len(listed) != RECORDS:
            raise SystemExit(f"bench: list --json returned {len(listed)} jobs, expected {RECORDS}")
        listing = time_command(
            LIST_JSON, [*cli, "list", "--json"], list_env, runs, target_s=LIST_TARGET_X_FLOOR * floor.median_s
        )
        results.append(listing)
        results.append(time_big_listing(cli, dict(base_env, OUMI_JOBS_HOME=str(Path(tmp) / "big-home")), runs))

        config = Path(tmp) / "cfg.yaml"
        config.write_text("run: sleep 30\n")
        job_id = run_checked([*cli, "submit", "-q", str(config)], job_env).strip()
        try:
            wait_for(lambda: status_json(cli, job_id, job_env)["state"] == "running", 15, f"job {job_id} running")
            results.append(time_command("oumi-jobs status ID (running job)", [*cli, "status", job_id], job_env, runs))
            if status_json(cli, job_id, job_env)["state"] != "running":
                raise SystemExit(f"bench: job {job_id} stopped running while status was timed")
        finally:
            end_job(cli, job_id, job_env)
    info = {
        "executable": " ".join(cli), "python": sys.version.split()[0], "runs": runs, "records": RECORDS,
        "list_json_x_floor": round(listing.median_s / floor.median_s, 2), "target_x_floor": LIST_TARGET_X_FLOOR,
    }  # fmt: skip
    return results, info


def print_table(results: list[Result], info: dict) -> None:
    print(f"oumi-jobs local benchmark: median of {info['runs']} runs, python {info['python']}")
    print(f"command: {info['executable']}")
    width = max(len(r.name) for r in results)
    print(f"{'name':<{width}}  {'median s':>8}  {'min s':>6}  {'max s':>6}  {'target':>7}  result")
    for r in results:
        target = f"<= {r.target_s:.2f}" if r.target_s is not None else "-"
        verdict = "-" if r.met is None else ("met" if r.met else "NOT MET")
        print(f"{r.name:<{width}}  {r.median_s:8.3f}  {r.min_s:6.3f}  {r.max_s:6.3f}  {target:>7}  {verdict}")
    print(f"list --json / import floor: {info['list_json_x_floor']:.2f}x (target <= {info['target_x_floor']:g}x)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command (default 15)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON document")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    os.environ["DO_NOT_TRACK"] = "1"
    results, info = bench(args.runs)
    if args.json:
        print(json.dumps({**info, "results": [asdict(r) for r in results]}, indent=2))
    else:
        print_table(results, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
