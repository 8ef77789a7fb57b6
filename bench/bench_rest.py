"""REST API timings of the oumi-jobs server (a benchmark, not a test).

Prints:

* ``GET /api/jobs`` over 1,000 finished local jobs: the median (and min, max)
  wall time over ``--runs`` requests (default 30), on one kept-alive
  connection, over the unix socket and over loopback TCP with the token;
* ``GET /api/jobs/{id}`` from one client (median, as above), and from
  ``--clients`` concurrent clients (default 50, threads of this process, each
  with its own connection over the unix socket) for ``--seconds`` (default
  10): requests answered, errors, and the 50th and 99th percentile latencies;
  then the same while ``--idle`` (default 500) idle TCP connections are kept
  open against the server's port (each one the server closes is opened
  again): what a flood of slow clients costs the owner.

The server is a real process (``runner.serve``, as the tests start it) with a
private ``OUMI_JOBS_HOME`` in a temporary folder, removed at the end; the
records are written straight into the registry in one transaction (as
bench/bench_local.py does).  Timing starts once the server is warm (its
background import of ``oumi.launcher`` done), so that import does not share
the CPU with the requests.  The server is ended by its pid.

    python bench/bench_rest.py [--runs N] [--clients N] [--seconds S] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
RECORDS = 1_000
SERVE = (
    "import sys; from oumi_jobs.server import runner; p, f, o, _ = runner.parse_args(sys.argv[1:]); "
    "runner._configure_logging(None); sys.exit(runner.serve(p, f, o))"
)


def fill_registry(env: dict[str, str], count: int) -> list[str]:
    """``count`` finished local jobs, inserted in one transaction; their ids."""
    sys.path.insert(0, str(REPO))
    from oumi_jobs.local.procs import boot_id
    from oumi_jobs.paths import Paths
    from oumi_jobs.store.registry import JobRecord, Registry
    from oumi_jobs.timestamps import to_iso

    paths = Paths.from_env(env)
    start = datetime.now(timezone.utc) - timedelta(days=3)
    records = []
    for i in range(count):
        job_id, submitted = f"job-bench-{i:06d}", start + timedelta(seconds=10 * i)
        log_dir = paths.job_log_dir(job_id)
        records.append(JobRecord(
            job_id=job_id, cloud="local", submit_time=to_iso(submitted), command="job",
            config_path=f"/tmp/bench/job{i}.yaml", source="submit", argv=("/bin/bash", "-c", "echo hi"),
            workdir="/tmp", stdout_path=str(log_dir / "stdout.log"), stderr_path=str(log_dir / "stderr.log"),
            supervisor_pid=100_000 + i, supervisor_start_time=submitted.timestamp(), pid=200_000 + i,
            pgid=200_000 + i, process_start_time=submitted.timestamp() + 0.05, boot_id=boot_id(),
            started_at=to_iso(submitted + timedelta(milliseconds=50)), exit_code=0,
            end_time=to_iso(submitted + timedelta(seconds=1)),
        ))  # fmt: skip
    with Registry.open(paths) as registry:
        inserted = registry.add_many_if_absent(records)
    if len(inserted) != count:
        raise SystemExit(f"bench: inserted {len(inserted)} of {count} records")
    return [record.job_id for record in records]


def start_server(home: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """The server process, once it answers and is warm; and its ``server.json``."""
    argv = [
        sys.executable, "-c", SERVE, "--data-dir", str(home / "data"), "--state-dir", str(home / "state"),
        "--cache-dir", str(home / "cache"), "--host", "127.0.0.1", "--port", "0", "--idle-timeout", "0",
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bench: the server exited {process.returncode}: {log.read_text()}")
        for info_file in (home / "state" / "server").glob("*/server.json"):
            info = json.loads(info_file.read_text())
            try:
                with unix_client(info["socket"]) as client:
                    if client.get("/healthz").json().get("warm"):
                        return process, info
            except (httpx.HTTPError, ValueError):
                pass
        time.sleep(0.2)
    stop(process)
    raise SystemExit("bench: the server did not become warm within 180 s")


def unix_client(socket_path: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=socket_path), base_url="http://oumi-jobs", timeout=60)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def time_get(client: httpx.Client, path: str, runs: int, count: int | None = None) -> dict[str, float]:
    """Median, min and max of ``runs`` GETs of ``path`` (an array of ``count`` documents, or one)."""
    times = []
    for _ in range(runs + 1):  # the first warms the connection and SQLite's cache: not counted
        started = time.perf_counter()
        answer = client.get(path)
        times.append(time.perf_counter() - started)
        body = answer.json() if answer.status_code == 200 else None
        if body is None or (count is not None and len(body) != count):
            raise SystemExit(f"bench: GET {path} answered {answer.status_code}: {answer.text[:200]}")
    times = times[1:]
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "runs": runs}


def hammer(socket_path: str, ids: list[str], clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` threads asking for random jobs until ``seconds`` pass; latencies of the answers."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    stop_at: list[float] = []

    def run(seed: int) -> None:
        pick = random.Random(seed)
        mine: list[float] = []
        failed: list[str] = []
        with unix_client(socket_path) as client:
            start.wait()
            while time.monotonic() < stop_at[0]:
                job_id = pick.choice(ids)
                began = time.perf_counter()
                try:
                    answer = client.get(f"/api/jobs/{job_id}")
                except httpx.HTTPError as exc:
                    failed.append(type(exc).__name__)
                    continue
                if answer.status_code == 200 and answer.json()["job_id"] == job_id:
                    mine.append(time.perf_counter() - began)
                else:
                    failed.append(str(answer.status_code))
        with lock:
            latencies.extend(mine)
            errors.extend(failed)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    stop_at.append(time.monotonic() + seconds)
    start.wait()
    for thread in threads:
        thread.join()
    latencies.sort()

    def percentile(p: float) -> float | None:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else None

    return {"clients": clients, "seconds": seconds, "answered": len(latencies), "errors": len(errors),
            "error_kinds": sorted(set(errors)), "requests_per_s": len(latencies) / seconds,
            "p50_s": percentile(0.50), "p99_s": percentile(0.99)}  # fmt: skip


class IdleFlood:
    """``count`` TCP connections that send nothing, each reopened when the server closes it."""

    def __init__(self, address: str, count: int) -> None:
        host, port = address.removeprefix("http://").rsplit(":", 1)
        self.target, self.count = (host, int(port)), count
        self.done = threading.Event()
        self.opened = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        import selectors
        import socket

        selector = selectors.DefaultSelector()
        while not self.done.is_set():
            while len(selector.get_map()) < self.count and not self.done.is_set():
                try:
                    sock = socket.create_connection(self.target, timeout=5)
                except OSError:
                    break
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ)
                self.opened += 1
            for key, _ in selector.select(timeout=0.2):  # closed (or refused) by the server: open another
                selector.unregister(key.fileobj)
                key.fileobj.close()  # type: ignore[union-attr]
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]

    def __enter__(self) -> IdleFlood:
        self.thread.start()
        time.sleep(2)  # let them pile up first
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.done.set()
        self.thread.join(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--idle", type=int, default=500, help="idle TCP connections during the second round")
    parser.add_argument("--json", action="store_true", help="Print the figures as one JSON document.")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="oumi-jobs-bench-rest-"))
    env = os.environ | {"OUMI_JOBS_HOME": str(home), "OUMI_JOBS_SERVER": "off", "PYTHONPATH": str(REPO)}
    process = None
    try:
        ids = fill_registry(env, RECORDS)
        process, info = start_server(home, env, home / "server.out")
        token = (home / "state" / "server" / "token").read_text().strip()
        with unix_client(info["socket"]) as client:
            over_unix = time_get(client, "/api/jobs", args.runs, RECORDS)
            one_job = time_get(client, f"/api/jobs/{ids[RECORDS // 2]}", args.runs)
        with httpx.Client(base_url=info["address"], headers={"Authorization": f"Bearer {token}"}, timeout=60) as tcp:
            over_tcp = time_get(tcp, "/api/jobs", args.runs, RECORDS)
        concurrent = hammer(info["socket"], ids, args.clients, args.seconds)
        with IdleFlood(info["address"], args.idle) as flood:
            flooded = hammer(info["socket"], ids, args.clients, args.seconds)
        flooded["idle_connections_opened"] = flood.opened
    finally:
        if process is not None:
            stop(process)
        shutil.rmtree(home, ignore_errors=True)
    figures = {"list_1000_unix": over_unix, "list_1000_tcp": over_tcp, "get_job_one_client": one_job,
               "get_job_concurrent": concurrent, "get_job_concurrent_idle_flood": flooded,
               "cpus": os.cpu_count()}  # fmt: skip
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    for name, result in (("unix socket", over_unix), ("loopback TCP", over_tcp)):
        print(f"GET /api/jobs ({RECORDS:,} jobs) over the {name}: median {result['median_s'] * 1000:.1f} ms "
              f"(min {result['min_s'] * 1000:.1f}, max {result['max_s'] * 1000:.1f}; {result['runs']} runs)")  # fmt: skip
    print(f"GET /api/jobs/{{id}}, one client over the unix socket: median {one_job['median_s'] * 1000:.1f} ms "
          f"(min {one_job['min_s'] * 1000:.1f}, max {one_job['max_s'] * 1000:.1f})")  # fmt: skip
    for c, during in ((concurrent, ""), (flooded, f", with {args.idle} idle TCP connections held open")):
        kinds = f" ({', '.join(c['error_kinds'])})" if c["error_kinds"] else ""
        p50 = f"{c['p50_s'] * 1000:.1f} ms" if c["p50_s"] is not None else "-"
        p99 = f"{c['p99_s'] * 1000:.1f} ms" if c["p99_s"] is not None else "-"
        print(f"GET /api/jobs/{{id}}, {c['clients']} concurrent clients for {c['seconds']:g} s{during}: "
              f"{c['answered']:,} answered ({c['requests_per_s']:.0f}/s), {c['errors']} errors{kinds}, "
              f"p50 {p50}, p99 {p99} ({os.cpu_count()} CPUs, clients and server on the same machine)")  # fmt: skip


if __name__ == "__main__":
    main()
