"""The dashboard's timings in a real browser (a benchmark, not a test): Debian's chromium through Playwright.

Prints, with a private ``OUMI_JOBS_HOME`` in a temporary folder (removed at the end):

* the jobs page over 10,000 finished local jobs (inserted straight through the store): the time from asking
  for the page to its first job row on screen, with the server warm (median of ``--runs``); target <= 1 s;
* a job page whose job logged a 10,000-step loss curve: the time to the chart drawn with every point;
* the server's CPU per open page while jobs run: its CPU time over ``--window`` seconds with no page open,
  then with a jobs page and a job page open in each of ``--pages`` tabs (their live fragments polling).

The server is started by ``oumi-jobs ui --no-browser`` and stopped at the end; the live jobs are ended by
``oumi-jobs cancel``.

    python bench/bench_dashboard.py [--runs N] [--pages N] [--window S] [--json]
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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil
from bench_local import fill_registry

RECORDS = 10_000
CURVE_STEPS = 10_000
FIRST_ROW_TARGET_S = 1.0
# A job that logs CURVE_STEPS metric lines the way the trainer prints them, then ends.
CURVE_JOB = (
    f'python3 -c "import math\nfor i in range(1, {CURVE_STEPS + 1}):\n'
    " print({'loss': 3 * math.exp(-i / 3000) + 0.1, 'step': i})\"\n"
)
LIVE_JOB = 'for i in $(seq 1 100000); do echo "line $i"; sleep 0.2; done\n'


def oumi_jobs(env: Mapping[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "oumi_jobs", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"bench: oumi-jobs {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def submit(env: Mapping[str, str], folder: Path, name: str, run: str, *extra: str) -> str:
    config = folder / f"{name}.yaml"
    config.write_text("run: |\n" + "".join(f"  {line}\n" for line in run.splitlines()))
    return oumi_jobs(env, "submit", "-q", str(config), *extra).strip()


def wait_done(env: Mapping[str, str], job_id: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not json.loads(oumi_jobs(env, "status", job_id, "--json"))["done"]:
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: job {job_id} did not end within {timeout:g} s")
        time.sleep(0.5)


def time_first_row(page: Any, base: str, runs: int) -> list[float]:
    page.goto(base + "/")  # warm: the server's first listing, the browser's cache of the assets
    page.wait_for_selector("tr[data-job-id]")
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        page.goto(base + "/", wait_until="commit")
        page.wait_for_selector("tr[data-job-id]")
        times.append(time.perf_counter() - began)
    return times


def time_curve(page: Any, base: str, job_id: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        page.goto(f"{base}/jobs/{job_id}", wait_until="commit")
        page.wait_for_selector(f'.chart[data-metric="loss"][data-points="{CURVE_STEPS}"] canvas', timeout=60_000)
        times.append(time.perf_counter() - began)
    return times


def server_cpu(pid: int, window_s: float) -> float:
    """The server's CPU seconds (user and system) per wall second over ``window_s``."""
    process = psutil.Process(pid)
    before, began = process.cpu_times(), time.monotonic()
    time.sleep(window_s)
    after, wall = process.cpu_times(), time.monotonic() - began
    return (after.user - before.user + after.system - before.system) / wall


def cpu_per_page(browser: Any, login: Any, base: str, live: list[str], pages: int, window_s: float) -> dict:
    deadline = time.monotonic() + 120
    while not (status := json.loads(login("server", "status", "--json")))["warm"]:  # its import of oumi: done
        if time.monotonic() > deadline:
            raise SystemExit("bench: the server did not import oumi.launcher within 120 s")
        time.sleep(1)
    pid = status["pid"]
    idle = server_cpu(pid, window_s)
    contexts = []
    for _ in range(pages):
        context = browser.new_context()
        tab = context.new_page()
        tab.goto(json.loads(login("ui", "--no-browser", "--json"))["url"])
        context.new_page().goto(f"{base}/jobs/{live[0]}")
        contexts.append(context)
    busy = server_cpu(pid, window_s)
    for context in contexts:
        context.close()
    return {"idle_cpu": idle, "with_pages_cpu": busy, "open_pages": 2 * pages,
            "cpu_per_page": (busy - idle) / (2 * pages)}  # fmt: skip


def bench(runs: int, pages: int, window_s: float) -> dict:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("bench: needs Debian's chromium (apt-get install chromium)")
    folder = Path(tempfile.mkdtemp(prefix="oumi-jobs-bench-dashboard-"))
    env = {**os.environ, "OUMI_JOBS_HOME": str(folder / "home")}
    live: list[str] = []
    try:
        fill_registry(env, RECORDS)
        curve = submit(env, folder, "curve", CURVE_JOB)
        wait_done(env, curve)
        live = [submit(env, folder, f"live{i}", LIVE_JOB, "--cluster", f"live{i}") for i in range(3)]

        def login(*args: str) -> str:
            return oumi_jobs(env, *args)

        url = json.loads(login("ui", "--no-browser", "--json"))["url"]
        base = url.split("/login?", 1)[0]
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=chromium)
            page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
            page.goto(url)
            first_row = time_first_row(page, base, runs)
            drawn = time_curve(page, base, curve, max(3, runs // 2))
            page.goto("about:blank")  # no page of the timings left open while the CPU is measured
            cpu = cpu_per_page(browser, login, base, live, pages, window_s)
            browser.close()
        return {"jobs": RECORDS, "first_row_s": first_row, "curve_steps": CURVE_STEPS, "curve_drawn_s": drawn, **cpu}
    finally:
        for job_id in live:
            subprocess.run([sys.executable, "-m", "oumi_jobs", "cancel", job_id], env=env, capture_output=True,
                           timeout=120, check=False)  # fmt: skip
        subprocess.run([sys.executable, "-m", "oumi_jobs", "server", "stop"], env=env, capture_output=True,
                       timeout=60, check=False)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--pages", type=int, default=2, help="tabs, each with a jobs page and a job page")
    parser.add_argument("--window", type=float, default=20.0, help="seconds of server CPU measured, each")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    found = bench(args.runs, args.pages, args.window)
    if args.json:
        print(json.dumps(found))
        return 0
    first, drawn = statistics.median(found["first_row_s"]), statistics.median(found["curve_drawn_s"])
    verdict = "met" if first <= FIRST_ROW_TARGET_S else "missed"
    print(
        f"jobs page, {found['jobs']:,} jobs, first row (warm, median of {len(found['first_row_s'])}): "
        f"{first * 1000:.0f} ms (min {min(found['first_row_s']) * 1000:.0f}, target <= 1 s: {verdict})"
    )
    print(
        f"job page, {found['curve_steps']:,}-step loss curve drawn (median of {len(found['curve_drawn_s'])}): "
        f"{drawn * 1000:.0f} ms (min {min(found['curve_drawn_s']) * 1000:.0f})"
    )
    print(f"server CPU while 3 jobs run: {found['idle_cpu'] * 100:.1f}% with no page open, "
          f"{found['with_pages_cpu'] * 100:.1f}% with {found['open_pages']} pages open: "
          f"{found['cpu_per_page'] * 100:.2f}% of a core per open page")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
