"""The library facade, oumi_jobs.api: complete, light, and enough to drive a job without the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from oumi_jobs import api
from oumi_jobs.paths import Paths

from .helpers import wait_until


def test_every_exported_name_exists_and_comes_from_the_package() -> None:
    assert len(set(api.__all__)) == len(api.__all__)
    missing = [name for name in api.__all__ if not hasattr(api, name)]
    assert missing == []
    for name in api.__all__:
        value = getattr(api, name)
        module = getattr(value, "__module__", None)
        assert module is None or module.startswith("oumi_jobs."), (name, module)  # constants have no module


def test_importing_the_facade_loads_nothing_heavy() -> None:
    code = (
        "import json, sys, oumi_jobs.api\n"
        "heavy = ('oumi', 'torch', 'sky', 'transformers', 'rich')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(result.stdout) == []


def test_submit_status_cancel_and_its_record_through_the_facade(paths: Paths, job_config, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    config = job_config(f"echo started; touch '{ready}'; sleep 300")
    submitted = api.submit(paths, api.SubmitRequest(config=str(config)))
    assert isinstance(submitted, api.Submitted) and submitted.warnings == ()
    job_id = submitted.job_id
    wait_until(lambda: ready.exists() and api.get_status(paths, job_id).state is api.State.RUNNING)
    assert job_id in [view.job_id for view in api.list_jobs(paths)]

    record = api.cancel_job(paths, job_id, api.CancelOptions(timeout_s=5, reason="facade test"))
    assert isinstance(record, api.CancellationRecord)
    assert record.status is api.CancellationStatus.COMPLETED and record.final_state == "cancelled"
    assert record.reason == "facade test" and record.survivors == ()
    assert api.cancellation_exit_code(record) == api.ExitCode.OK

    view = api.get_status(paths, job_id)
    assert isinstance(view, api.JobView) and view.state is api.State.CANCELLED and view.done
    assert api.job_document(view)["state"] == "cancelled"
    assert "".join(api.read_log(paths, job_id)) == "started\n"

    latest = api.cancellation_status(paths, job_id)
    assert latest.cancellation_id == record.cancellation_id
    assert [r.cancellation_id for r in api.cancellation_history(paths, job=job_id)] == [record.cancellation_id]
    document = api.cancellation_document(latest)
    assert document["schema_version"] == api.SCHEMA_VERSION and document["status"] == "completed"

    again = api.cancel_job(paths, job_id)  # the job is over: nothing to cancel, a conflict
    assert again.status is api.CancellationStatus.NOT_NEEDED
    assert api.cancellation_exit_code(again) == api.ExitCode.CONFLICT
