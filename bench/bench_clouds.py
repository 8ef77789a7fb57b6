"""Cloud query timings (a benchmark, not a test).

* the cost of ``import oumi.launcher`` (paid once per process that asks a cloud);
* ``list`` over k registered clouds that each take L seconds to answer: with
  the clouds asked in parallel it takes about L, not k x L.

The clouds are the controllable ones of ``tests/fake_clouds.py``, registered
through Oumi's ``register_cloud_builder`` and driven through the real
``oumi.launcher``.

    python bench/bench_clouds.py [--latency L] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=2.0, help="seconds each cloud takes to answer")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("SKYPILOT_DISABLE_USAGE_COLLECTION", "1")

    started = time.perf_counter()
    import oumi.launcher  # noqa: F401  (what the first cloud query of a process pays)

    import_s = time.perf_counter() - started
    from oumi_jobs.listing import list_jobs_report
    from oumi_jobs.paths import Paths
    from oumi_jobs.store.registry import JobRecord, Registry
    from oumi_jobs.timestamps import now_iso
    from tests import fake_clouds

    names = [n for n in fake_clouds.NAMES if n.startswith("oj-slow")]
    figures: dict[str, float] = {"import oumi.launcher (s)": round(import_s, 2)}
    with tempfile.TemporaryDirectory(prefix="oumi-jobs-bench-") as tmp:
        os.environ["OUMI_JOBS_HOME"] = tmp
        paths = Paths.from_env()
        for k in range(1, len(names) + 1):
            with Registry.open(paths) as registry:
                name = names[k - 1]
                fake_clouds.BEHAVIOUR[name] = fake_clouds.Behaviour(
                    delay_s=args.latency,
                    clusters={"c": [fake_clouds.job("1", "RUNNING", fake_clouds.JobState.RUNNING, "c")]},
                )
                registry.add(JobRecord(job_id=f"j{k}", cloud=name, submit_time=now_iso(), cluster="c",
                                       launcher_job_id="1"))  # fmt: skip
            began = time.perf_counter()
            report = list_jobs_report(paths, local_only=False)
            took = time.perf_counter() - began
            assert len(report.views) == k and not report.unreachable
            figures[f"list over {k} cloud(s) of {args.latency:g} s each (s)"] = round(took, 2)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    for name, value in figures.items():
        print(f"{name:<44} {value}")


if __name__ == "__main__":
    main()
