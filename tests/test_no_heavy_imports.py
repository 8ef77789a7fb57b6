"""Local-only commands never import oumi, torch, sky or transformers, nor Apprise (only a notification to an
Apprise URL needs it).

Covered: --help, submit, status, logs, list, prune, cancel, cancel-status and
cancellations of local jobs, and the supervisor while it runs a job.

Each check runs in a fresh interpreter (this test process may have imported
anything), with the private OUMI_JOBS_HOME of the ``paths`` fixture, whose
teardown ends what is left of the jobs registered there, and nothing else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from oumi_jobs.paths import Paths

HEAVY = ("oumi", "torch", "sky", "transformers", "apprise")

_PRELUDE = "HEAVY = {heavy!r}\n"

_REPORT = """
import json, sys
loaded = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
print("@@REPORT@@" + json.dumps({"heavy": loaded, "extra": extra, "modules": sorted(sys.modules)}))
"""

CLI_DRIVER = """
import json, sys, time
from typer.testing import CliRunner
from oumi_jobs.cli.app import app

runner = CliRunner()
steps = {}

def cli(*args):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    steps[" ".join(args)] = {"exit_code": result.exit_code, "output": result.output[-2000:]}
    return result

cli("--help")
cli("list", "--json")
job_id = cli("submit", "-q", sys.argv[1]).output.strip()
deadline = time.monotonic() + 30
while True:
    doc = json.loads(cli("status", job_id, "--json").output)
    if doc["done"] or time.monotonic() > deadline:
        break
    time.sleep(0.1)
cli("status", job_id)
cli("logs", job_id)
cli("list", "--json")
cli("list")
cli("prune", "--dry-run", "--json")
# Cancel of a running local job: signals, waits, verifies, records.
sleeper = cli("submit", "-q", sys.argv[2]).output.strip()
cli("cancel", sleeper, "--timeout", "5", "--json")
cli("cancel-status", sleeper, "--json")
cli("cancellations", "--json")
cancelled = json.loads(cli("status", sleeper, "--json").output)
extra = {"steps": steps, "job_id": job_id, "final": doc, "cancelled": cancelled}
"""

SUPERVISOR_DRIVER = """
import sys
from pathlib import Path
from oumi_jobs.local import supervisor
from oumi_jobs.paths import Paths
from oumi_jobs.local.procs import boot_id
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.timestamps import now_iso

HEAVY = ("oumi", "torch", "sky", "transformers", "apprise")
extra = {"imported": sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)}
paths = Paths.from_env()
logs = paths.job_log_dir("supervised")
with Registry.open(paths) as registry:
    registry.add(JobRecord(
        job_id="supervised", cloud="local", submit_time=now_iso(), command="job",
        argv=("/bin/bash", "-c", "echo hi"), workdir=str(Path.cwd()),
        stdout_path=str(logs / "stdout.log"), stderr_path=str(logs / "stderr.log"), boot_id=boot_id(),
    ))
# The supervisor's work after it has detached: start the job, record it, wait, record its exit.
extra["supervise"] = supervisor.supervise(paths, "supervised")
with Registry.open(paths) as registry:
    record = registry.get("supervised")
extra["exit_code"] = record.exit_code
extra["stdout"] = (logs / "stdout.log").read_text()
"""


def run_driver(source: str, tmp_path: Path, *args: str) -> dict:
    script = tmp_path / "driver.py"
    script.write_text(_PRELUDE.format(heavy=HEAVY) + textwrap.dedent(source) + _REPORT)
    env = dict(os.environ, DO_NOT_TRACK="1", SKYPILOT_DISABLE_USAGE_COLLECTION="1")
    env.pop("OUMI_JOBS_DEBUG", None)
    result = subprocess.run(
        [sys.executable, str(script), *args],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (result.stdout[-4000:], result.stderr[-4000:])
    reports = [line for line in result.stdout.splitlines() if line.startswith("@@REPORT@@")]
    assert reports, (result.stdout[-4000:], result.stderr[-4000:])
    return json.loads(reports[-1].removeprefix("@@REPORT@@"))


def test_local_commands_import_nothing_heavy(paths: Paths, tmp_path: Path):
    config = tmp_path / "cfg.yaml"
    config.write_text("run: echo hi\n")
    sleeper = tmp_path / "sleeper.yaml"
    sleeper.write_text("run: sleep 30\n")
    report = run_driver(CLI_DRIVER, tmp_path, str(config), str(sleeper))
    steps = report["extra"]["steps"]
    failed = {step: outcome for step, outcome in steps.items() if outcome["exit_code"] != 0}
    assert not failed, failed
    assert report["extra"]["final"]["state"] == "succeeded", report["extra"]["final"]
    assert steps[f"logs {report['extra']['job_id']}"]["output"] == "hi\n"
    assert report["extra"]["cancelled"]["state"] == "cancelled", report["extra"]["cancelled"]
    # The driver really ran the CLI and the core in that interpreter.
    assert {
        "oumi_jobs.cli.app",
        "oumi_jobs.listing",
        "oumi_jobs.status",
        "oumi_jobs.submitting",
        "oumi_jobs.store.registry",
        "oumi_jobs.prune",
    } <= set(report["modules"])
    assert report["heavy"] == [], f"local commands imported {report['heavy']}"


def test_supervisor_imports_nothing_heavy(paths: Paths, tmp_path: Path):
    report = run_driver(SUPERVISOR_DRIVER, tmp_path)
    assert report["extra"]["imported"] == [], f"importing oumi_jobs.supervisor imported {report['extra']['imported']}"
    assert (report["extra"]["supervise"], report["extra"]["exit_code"], report["extra"]["stdout"]) == (0, 0, "hi\n")
    assert "oumi_jobs.local.supervisor" in report["modules"]
    assert report["heavy"] == [], f"the supervisor imported {report['heavy']} while running a job"


def test_the_check_sees_a_heavy_import(tmp_path: Path):
    """The detector is live: a driver that imports a (light) stand-in named like a heavy module is caught."""
    fake = tmp_path / "fakepkgs" / "sky"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    source = f"import sys\nsys.path.insert(0, {str(fake.parent)!r})\nimport sky\nextra = None\n"
    report = run_driver(source, tmp_path)
    assert report["heavy"] == ["sky"]
