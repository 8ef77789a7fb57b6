"""The lean listing (finished local jobs projected into JSON by SQLite) and the general path agree.

``list --json`` reads documents through ``listing.list_job_documents``; a person's
``list`` and library users read views through ``listing.list_jobs_report``.  For
the same registry and filters both must give the same documents, key for key
and in the same order (``as_of`` aside: each read has its own).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest

from oumi_jobs.failures import Failure, encode_failure
from oumi_jobs.listing import list_job_documents, list_jobs_report
from oumi_jobs.paths import Paths
from oumi_jobs.progress import cache as progress_cache
from oumi_jobs.render.base import job_document
from oumi_jobs.render.listing import lean_texts
from oumi_jobs.render.sweeps import sweep_document, sweep_document_text
from oumi_jobs.states import State
from oumi_jobs.status import read_status
from oumi_jobs.store.registry import Registry
from oumi_jobs.store.sweeps import SweepRecord
from oumi_jobs.sweeps.service import sweep_documents, sweep_status
from oumi_jobs.timestamps import now, to_iso

from .helpers import Cli, add_record, make_record


def _at(minutes_ago: float) -> str:
    return to_iso(now() - timedelta(minutes=minutes_ago))


_OOM = encode_failure(
    Failure("host_oom", "the kernel's OOM killer stopped it", "more memory", 'Killed process 7 ("py") ü\n')
)


def _trained_output(paths: Paths) -> str:
    """A training run's output folder whose ``trainer_state.json`` gives the job a progress."""
    output = paths.data_dir.parent / "trained-output"
    output.mkdir(parents=True, exist_ok=True)
    state = {"global_step": 7, "max_steps": 10, "epoch": 0.7, "log_history": [{"loss": 0.125, "step": 7}]}
    (output / "trainer_state.json").write_text(json.dumps(state))
    return str(output)


def _fill(paths: Paths) -> None:
    """Jobs of every shape a document can take, finished or not, local or cloud."""
    ended = {"end_time": _at(1), "started_at": _at(50), "pid": 4242}
    records = [
        make_record("ok", submit_time=_at(60), exit_code=0, cluster="local", containment="cgroup", **ended),
        make_record(
            "exit-3", submit_time=_at(59), exit_code=3, cluster="gpu", name="three", containment="subreaper", **ended
        ),
        make_record("killed", submit_time=_at(58), exit_signal=9, cluster="gpu", **ended),
        make_record("odd-signal", submit_time=_at(57), exit_signal=77, **ended),
        make_record("cancelled", submit_time=_at(56), exit_signal=15, cancel_requested=True, **ended),
        make_record(
            "never-ran",
            submit_time=_at(55),
            end_time=_at(2),
            end_detail="never started: dep failed",
            cancel_requested=True,
            depends_on=("exit-3", "ok"),
        ),  # fmt: skip
        make_record("no-detail", submit_time=_at(54), end_time=_at(2)),
        make_record("exit-127", submit_time=_at(53), exit_code=127, end_detail="cannot start 'nope'", **ended),
        make_record(
            "odd-text",
            submit_time=_at(52),
            exit_code=0,
            name='quote " back\\slash \n\t\x01 ünï 日本 \u2028',
            output_dir="/tmp/ü",
            stdout_path="/x/stdout.log",
            stderr_path="/x/stderr.log",
            model_name="m",
            config_path="/c.yaml",
            command="train",
            launcher_job_id="L1",
            **ended,
        ),  # fmt: skip
        make_record("same-second-a", submit_time=_at(10), exit_code=0, **ended),
        # A price (only cloud launches get one, but the projection must agree on any row): 49 min at 3.17/h.
        make_record("priced", submit_time=_at(9), exit_code=0, cost_per_hour=3.17, **ended),
        make_record("priced-no-start", submit_time=_at(8), exit_code=0, cost_per_hour=1.5, end_time=_at(1)),
        # Why it failed, stored when it ended: projected as it is, and only for a job that failed.
        make_record("oom", submit_time=_at(7), exit_signal=9, failure=_OOM, **ended),
        make_record(
            "cancelled-after-triage",
            submit_time=_at(6),
            exit_signal=15,
            cancel_requested=True,
            failure=encode_failure(Failure("killed", "c", "h", "signal 15 (SIGTERM)")),
            **ended,
        ),  # fmt: skip
        # A progress read from its files, once, then kept in the registry and projected from there.
        make_record(
            "trained", submit_time=_at(5), exit_code=0, command="train", output_dir=_trained_output(paths), **ended
        ),
        # Not finished: these take the general path inside the lean listing too.
        make_record("starting", submit_time=_at(0), depends_on=("ok",)),
        make_record("interrupted", submit_time=_at(30)),
        make_record("launching", cloud="slurm", cluster="me@host", submit_time=_at(5)),
        make_record("launched", cloud="slurm", cluster="me@host", launcher_job_id="17", submit_time=_at(4)),
        make_record("cloud-failed", cloud="gcp", submit_time=_at(3), end_time=_at(2), end_detail="launch failed"),
    ]
    for record in records:
        add_record(paths, record)
    # Two jobs submitted in the same instant are ordered by insertion, both ways.
    add_record(paths, make_record("same-second-b", submit_time=records[9].submit_time, exit_code=1, **ended))


def _without_as_of(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for document in documents:
        assert isinstance(document.pop("as_of"), str)
    return documents


FILTERS = [
    {},
    {"cluster": "gpu"},
    {"cluster": "local"},
    {"cloud": "local"},
    {"cloud": "slurm"},
    {"states": [State.SUCCEEDED]},
    {"states": [State.CANCELLED, State.FAILED]},
    {"states": [State.PENDING, State.LOST, State.LAUNCHING]},
    {"since": "20m"},
    {"limit": 3},
    {"limit": 0},
]


@pytest.mark.parametrize("filters", FILTERS, ids=[json.dumps(f, default=str) for f in FILTERS])
def test_lean_and_general_paths_give_identical_documents(paths: Paths, filters: dict[str, Any]) -> None:
    _fill(paths)
    general = [job_document(view) for view in list_jobs_report(paths, local_only=True, **filters).views]
    lean = [json.loads(text) for text in lean_texts(list_job_documents(paths, local_only=True, **filters))]
    assert _without_as_of(lean) == _without_as_of(general)
    if not filters:
        assert len(lean) == 21
    # The first lean listing kept the finished jobs' documents; the second reads them from the registry.
    kept = [json.loads(text) for text in lean_texts(list_job_documents(paths, local_only=True, **filters))]
    assert _without_as_of(kept) == lean
    with Registry.open(paths) as registry:
        selected = {k: v for k, v in filters.items() if k in ("cloud", "cluster")}  # as the listing's SQL selects
        rows = registry.listing(as_of="t", schema_version=1, **selected)
    kept_ids = {row[0] for row in rows if row[4]}
    assert all(row[2] is not None for row in rows if row[4])  # only finished local jobs' documents are kept
    assert {doc["job_id"] for doc in lean if doc["end_time"] and doc["cloud"] == "local"} <= kept_ids


def test_progress_is_kept_in_the_registry_and_projected_from_there(paths: Paths) -> None:
    _fill(paths)
    first = [json.loads(text) for text in lean_texts(list_job_documents(paths, local_only=True))]
    trained = next(doc for doc in first if doc["job_id"] == "trained")["progress"]
    assert trained is not None and trained["step"] == 7 and trained["total_steps"] == 10
    # Kept by the first listing: with the files and the cache gone, the next listing still has it, from SQL.
    (paths.data_dir.parent / "trained-output" / "trainer_state.json").unlink()
    progress_cache.forget(paths, ["trained"])
    with Registry.open(paths) as registry:
        rows = {row[0]: row for row in registry.listing(as_of="t", schema_version=1)}
    assert rows["trained"][3] and json.loads(rows["trained"][2] or "")["progress"] == trained
    assert rows["ok"][3] and json.loads(rows["ok"][2] or "")["progress"] is None  # read: it has none
    again = [json.loads(text) for text in lean_texts(list_job_documents(paths, local_only=True))]
    assert _without_as_of(again) == _without_as_of(first)
    without = list_job_documents(paths, local_only=True, with_progress=False)
    assert all(json.loads(text)["progress"] is None for text in lean_texts(without))


def test_status_of_a_finished_job_keeps_its_progress_for_the_listing(paths: Paths) -> None:
    _fill(paths)
    assert read_status(paths, "trained").progress is not None
    with Registry.open(paths) as registry:
        rows = {row[0]: row for row in registry.listing(as_of="t", schema_version=1)}
    assert rows["trained"][3] and json.loads(rows["trained"][2] or "")["progress"]["step"] == 7
    assert not rows["ok"][3]  # never read since it ended: the next listing reads it


def test_finished_local_jobs_come_out_of_the_store_as_json(paths: Paths) -> None:
    _fill(paths)
    with Registry.open(paths) as registry:
        rows = {row[0]: (row[1], row[2]) for row in registry.listing(as_of="t", schema_version=1)}
    assert rows["ok"][0] == "succeeded" and json.loads(rows["ok"][1])["status"] == "exited 0"
    assert json.loads(rows["killed"][1])["status"] == "killed by SIGKILL"
    assert json.loads(rows["odd-signal"][1])["status"] == "killed by signal 77"
    assert json.loads(rows["never-ran"][1])["depends_on"] == ["exit-3", "ok"]
    priced = json.loads(rows["priced"][1])
    assert priced["cost_per_hour"] == 3.17 and priced["cost_so_far"] == pytest.approx(3.17 * 49 / 60, abs=1e-3)
    assert json.loads(rows["priced-no-start"][1])["cost_so_far"] is None
    assert json.loads(rows["ok"][1])["cost_per_hour"] is None
    assert json.loads(rows["oom"][1])["failure"] == json.loads(_OOM)
    assert json.loads(rows["cancelled-after-triage"][1])["failure"] is None  # cancelled, not failed
    assert json.loads(rows["exit-3"][1])["failure"] is None  # ended before triage was stored
    for unfinished in ("starting", "interrupted", "launching", "launched", "cloud-failed"):
        assert rows[unfinished] == (None, None), unfinished


def _kept(paths: Paths) -> dict[str, bool]:
    """Whether each listed job's document was read from those the registry keeps."""
    with Registry.open(paths) as registry:
        return {row[0]: bool(row[4]) for row in registry.listing(as_of="t", schema_version=1)}


def _lean(paths: Paths) -> dict[str, dict[str, Any]]:
    texts = lean_texts(list_job_documents(paths, local_only=True))
    return {doc["job_id"]: doc for doc in _without_as_of([json.loads(text) for text in texts])}


def test_a_kept_document_is_dropped_whoever_changes_what_it_is_built_from(paths: Paths) -> None:
    """The registry's own triggers drop a kept document when its row, its attempts or its dependencies change,
    here by another connection (another process, an older release) that knows nothing of kept documents."""
    _fill(paths)
    _lean(paths)
    assert all(kept for job_id, kept in _kept(paths).items() if job_id.startswith(("ok", "exit-3", "killed")))
    changes = {
        "ok": "UPDATE jobs SET name = 'renamed' WHERE job_id = 'ok'",
        "exit-3": "INSERT INTO attempts (job_id, attempt, state) VALUES ('exit-3', 1, 'failed')",
        "killed": "INSERT INTO job_dependencies (job_id, depends_on) VALUES ('killed', 'ok')",
        "never-ran": "DELETE FROM job_dependencies WHERE job_id = 'never-ran' AND depends_on = 'ok'",
    }
    with sqlite3.connect(paths.registry_file) as db:
        db.executescript(";".join(changes.values()) + ";UPDATE jobs SET attempt = 2 WHERE job_id = 'exit-3'")
    kept = _kept(paths)
    assert [job_id for job_id in changes if kept[job_id]] == [] and kept["oom"] and kept["odd-text"]
    docs = _lean(paths)
    assert docs["ok"]["name"] == "renamed" and docs["killed"]["depends_on"] == ["ok"]
    assert docs["never-ran"]["depends_on"] == ["exit-3"] and docs["exit-3"]["attempt"] == 2
    assert [a["attempt"] for a in docs["exit-3"]["attempts"]] == [1, 2]
    general = {view.job_id: job_document(view) for view in list_jobs_report(paths, local_only=True).views}
    assert docs == {job_id: doc for job_id, doc in zip(general, _without_as_of(list(general.values())), strict=True)}
    assert all(_kept(paths)[job_id] for job_id in changes)  # kept again by that listing
    with sqlite3.connect(paths.registry_file) as db:
        db.execute("DELETE FROM jobs WHERE job_id = 'ok'")
        assert db.execute("SELECT count(*) FROM job_documents WHERE for_job_id = 'ok'").fetchone() == (0,)
        db.execute("UPDATE attempts SET state = 'lost' WHERE job_id = 'exit-3'")
    assert not _kept(paths)["exit-3"] and _lean(paths)["exit-3"]["attempts"][0]["state"] == "lost"


def test_a_kept_document_of_another_shape_or_another_job_is_not_used(paths: Paths) -> None:
    """A document kept by another release's projection, or under a row id another job has now, is built again."""
    _fill(paths)
    first = _lean(paths)
    with sqlite3.connect(paths.registry_file) as db:
        db.execute("UPDATE job_documents SET head = '{\"forged\":1', shape = 'other' WHERE for_job_id = 'ok'")
        db.execute("UPDATE job_documents SET head = '{\"forged\":2', for_job_id = 'x' WHERE for_job_id = 'oom'")
    assert not any(_kept(paths)[job_id] for job_id in ("ok", "oom"))
    assert _lean(paths) == first


def test_list_json_prints_the_lean_documents(paths: Paths, cli: Cli) -> None:
    _fill(paths)
    printed = cli.json("list", "--local-only")
    assert isinstance(printed, list)
    general = [job_document(view) for view in list_jobs_report(paths, local_only=True).views]
    assert _without_as_of(printed) == _without_as_of(general)


# What `list --json` over finished local jobs has no use for: the other commands, the views of jobs and how
# they are read (cancellation, failures, progress from files), the warm server's client, the launcher's
# adapter, rich.  Importing them cost it more than its query (bench/bench_local.py).
_NOT_LEAN = (
    "oumi_jobs.cli.jobs_cli", "oumi_jobs.cli.cancel_cli", "oumi_jobs.cli.sweeps_cli", "oumi_jobs.cli.live",
    "oumi_jobs.cli.render", "oumi_jobs.cancel", "oumi_jobs.status", "oumi_jobs.views", "oumi_jobs.failures",
    "oumi_jobs.progress.reading", "oumi_jobs.server", "oumi_jobs.client", "oumi_jobs.cloud.oumi_adapter",
    "oumi_jobs.submitting", "oumi_jobs.render.base", "rich", "oumi", "sky",
)  # fmt: skip
_MODULES_AFTER = """
import json, sys
from oumi_jobs.cli.app import main
try:
    main()
finally:
    sys.stderr.write("@@" + json.dumps(sorted(sys.modules)) + "\\n")
"""


def test_list_json_of_finished_local_jobs_imports_only_what_it_uses(paths: Paths) -> None:
    ended = {"end_time": _at(1), "started_at": _at(50), "pid": 4242}
    for i, code in enumerate((0, 3, 0)):
        add_record(paths, make_record(f"done-{i}", submit_time=_at(10 - i), exit_code=code, **ended))
    lean_texts(list_job_documents(paths, local_only=True))  # their progress read once, and kept
    done = subprocess.run(
        [sys.executable, "-c", _MODULES_AFTER, "list", "--json"],
        env=os.environ, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [doc["job_id"] for doc in json.loads(done.stdout)] == ["done-2", "done-1", "done-0"]
    modules = json.loads(done.stderr.rpartition("@@")[2])
    assert "oumi_jobs.listing" in modules and "oumi_jobs.store.listing" in modules  # the check sees imports
    loaded = sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in _NOT_LEAN))
    assert loaded == []


def test_a_sweep_document_read_the_lean_way_is_the_general_one(paths: Paths, cli: Cli) -> None:
    ended = {"end_time": _at(1), "started_at": _at(50), "pid": 4242}
    sweep = SweepRecord("sw-lean", "lean", "/c.yaml", "local", None, 4, 1, _at(60))
    children = [
        make_record("sw-lean-0", submit_time=_at(60), exit_code=0, overrides='{"a": 1}', **ended),
        make_record("sw-lean-1", submit_time=_at(60), exit_code=3, failure=_OOM, overrides='{"a": 2}', **ended),
        make_record("sw-lean-2", submit_time=_at(60), exit_signal=15, cancel_requested=True, **ended),
        # No exit record, its process gone: the general path inside the lean one.
        make_record("sw-lean-3", submit_time=_at(60), supervisor_pid=2**22 + 1, supervisor_start_time=1.0),
    ]
    with Registry.open(paths) as registry:
        registry.add_sweep(sweep, [dataclasses.replace(c, sweep_id="sw-lean") for c in children])
    general = sweep_document(sweep_status(paths, "sw-lean"))
    lean = json.loads(sweep_document_text(sweep_documents(paths, "sw-lean")))
    _without_as_of(general["children"])
    _without_as_of(lean["children"])
    assert lean == general
    assert [c["job_id"] for c in lean["children"]] == ["sw-lean-0", "sw-lean-1", "sw-lean-2", "sw-lean-3"]
    assert [lean["counts"][state] for state in ("succeeded", "failed", "cancelled")] == [1, 1, 1]
    assert lean["children"][1]["failure"] == json.loads(_OOM)
    lean_texts(list_job_documents(paths, local_only=True))  # keeps the finished children's progress and documents
    assert [_kept(paths)[f"sw-lean-{i}"] for i in range(4)] == [True, True, True, False]
    kept = json.loads(sweep_document_text(sweep_documents(paths, "sw-lean")))
    _without_as_of(kept["children"])
    assert kept == general  # each child's progress null, as a sweep's document has it
    printed = cli.json("status", "sw-lean")
    assert isinstance(printed, dict)
    _without_as_of(printed["children"])
    assert printed == general


def test_a_cloud_job_its_guard_cancelled_reads_failed_with_its_guard_on_every_path(paths: Paths, clouds) -> None:
    """Its cloud says cancelled; the guard's failure kept on the job (keep_guard_failure) makes it failed, with that
    failure, in ``status``, the listing of views and the listing of documents alike.  A cancelled job without a
    kept failure stays cancelled."""
    from oumi_jobs.guards import Firing

    firing = Firing("max_duration", 12.0, 10.0, "it ran for 12 s, past its limit of 10 s")
    cancelled = [clouds.job(i, "CANCELLED", clouds.JobState.CANCELLED, "c1", done=True) for i in ("5", "6")]
    clouds.BEHAVIOUR["oj-fake"] = clouds.Behaviour(clusters={"c1": cancelled})
    add_record(paths, make_record("guarded", cloud="oj-fake", cluster="c1", launcher_job_id="5", submit_time=_at(2)))
    add_record(paths, make_record("by-hand", cloud="oj-fake", cluster="c1", launcher_job_id="6", submit_time=_at(1)))
    with Registry.open(paths) as registry:
        assert registry.keep_guard_failure("guarded", 1, encode_failure(firing.failure()) or "")
        registry.update("by-hand", cancel_requested=True)
        assert not registry.keep_guard_failure("by-hand", 1, "{}")  # someone's cancel came first
    general = {view.job_id: job_document(view) for view in list_jobs_report(paths, local_only=False).views}
    lean = [json.loads(text) for text in lean_texts(list_job_documents(paths, local_only=False))]
    status = job_document(read_status(paths, "guarded", with_progress=False))
    for doc in (general["guarded"], next(d for d in lean if d["job_id"] == "guarded"), status):
        assert (doc["state"], doc["failure"]["class"], doc["status"]) == ("failed", "over_time", "CANCELLED"), doc
    assert (general["by-hand"]["state"], general["by-hand"]["failure"]) == ("cancelled", None)
