"""Notification latency (a benchmark, not a test): from a local job's end to the receiver's POST.

A real HTTP receiver on loopback (a thread of this process) gets each job's
``succeeded`` event; the latency is the receiver's clock at the POST minus the
job's recorded ``end_time``.  Also printed: what ``--notify`` costs the job
(its end time minus its start, with and without a URL: the job never waits).

Runs in a private ``OUMI_JOBS_HOME`` in a temporary folder, removed at the end.

    python bench/bench_notify.py [--runs N] [--json]
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
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_local import cli_command

JOB = "run: |\n  sleep 0.2\n"


def receiver() -> tuple[ThreadingHTTPServer, dict[str, float]]:
    arrivals: dict[str, float] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            at = time.time()
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            arrivals.setdefault(body["job"]["job_id"], at)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, arrivals


def run(cli: list[str], env: dict[str, str], *args: str) -> str:
    return subprocess.run([*cli, *args], env=env, check=True, capture_output=True, text=True).stdout


def finished(cli: list[str], env: dict[str, str], job_id: str) -> dict:
    while True:
        doc = json.loads(run(cli, env, "status", job_id, "--json"))
        if doc["done"]:
            return doc
        time.sleep(0.05)


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def measure(runs: int) -> dict[str, float]:
    cli = cli_command()
    server, arrivals = receiver()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    latencies, with_url, without_url = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-notify-") as home:
        env = os.environ | {"OUMI_JOBS_HOME": home, "OUMI_JOBS_WEBHOOK_SECRET": "bench"}
        config = Path(home) / "job.yaml"
        config.write_text(JOB)
        for _ in range(runs):
            noted = run(cli, env, "submit", "-q", str(config), "--notify", url).strip()
            plain = run(cli, env, "submit", "-q", str(config)).strip()
            for job_id, into in ((noted, with_url), (plain, without_url)):
                doc = finished(cli, env, job_id)
                into.append(epoch(doc["end_time"]) - epoch(doc["start_time"]))
            deadline = time.monotonic() + 120
            while noted not in arrivals and time.monotonic() < deadline:
                time.sleep(0.01)
            latencies.append(arrivals[noted] - epoch(finished(cli, env, noted)["end_time"]))
    server.shutdown()
    return {
        "runs": runs,
        "latency_median_s": statistics.median(latencies),
        "latency_max_s": max(latencies),
        "job_run_median_s_with_notify": statistics.median(with_url),
        "job_run_median_s_without": statistics.median(without_url),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = measure(args.runs)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"notification latency (job end -> receiver's POST), {figures['runs']} runs:")
    print(f"  median {figures['latency_median_s'] * 1000:.0f} ms, max {figures['latency_max_s'] * 1000:.0f} ms")
    print(f"a 0.2 s job's run, median: {figures['job_run_median_s_with_notify']:.3f} s with --notify, "
          f"{figures['job_run_median_s_without']:.3f} s without")  # fmt: skip


if __name__ == "__main__":
    main()
