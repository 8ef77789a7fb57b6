"""A job's metrics are its own: Oumi appends to the metrics files of an output folder an earlier run used, and
only the lines written after the job started are its progress and its series.

Hand-written metrics files here, and one real job through a real supervisor (which measures the folder just
before it starts the job's process).  tests/test_training_progress.py runs two real ``oumi train`` in one folder.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from oumi_jobs.paths import Paths
from oumi_jobs.progress import reading, starts
from oumi_jobs.status import get_progress, metric_series
from oumi_jobs.store.registry import Registry
from oumi_jobs.timestamps import now_iso

from .helpers import Cli, add_record, make_record, submit_id, wait_done

EARLIER = [{"loss": 9.0 - step, "step": step, "epoch": step / 6} for step in range(1, 7)]
OWN = [{"loss": 2.0 / step, "step": step, "epoch": step / 4} for step in range(1, 5)]


def _append(path: Path, entries: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write("".join(json.dumps(e) + "\n" for e in entries))


def _earlier_run(folder: Path) -> Path:
    """A folder as a finished 6-step run left it: its metrics lines, and its trainer_state.json."""
    metrics = folder / "metrics_rank0000.jsonl"
    _append(metrics, EARLIER)
    history = {"global_step": 6, "max_steps": 6, "epoch": 1.0, "log_history": [{"loss": 3.0, "step": 6}]}
    (folder / "trainer_state.json").write_text(json.dumps(history))
    return metrics


def _measured(folder: Path) -> str:
    return starts.with_attempt(None, 1, starts.measure(folder))


def test_an_earlier_runs_lines_before_the_start_are_not_the_jobs(paths: Paths, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    metrics = _earlier_run(folder)
    measured = _measured(folder)  # the job starts here
    running = make_record("second", output_dir=str(folder), metrics_start=measured)
    assert reading.local_progress(paths, running, done=False) is None  # nothing of its own yet: not step 6
    _append(metrics, OWN[:2])
    found = reading.local_progress(paths, running, done=False)
    assert found is not None and (found.step, found.loss) == (2, 1.0)
    _append(metrics, OWN[2:])
    job_id = add_record(paths, make_record("second-ended", output_dir=str(folder), metrics_start=measured,
                                           end_time=now_iso(), exit_code=0))  # fmt: skip
    ended = get_progress(paths, job_id)
    assert ended is not None and (ended.step, ended.loss, ended.epoch) == (4, 0.5, 1.0)
    series = metric_series(paths, job_id, "loss")
    assert series.steps == (1.0, 2.0, 3.0, 4.0) and series.values == (2.0, 1.0, 2 / 3, 0.5)
    # The same folder read by a job of before this release (no start recorded): the whole file, as ever.
    legacy = add_record(paths, make_record("legacy", output_dir=str(folder), end_time=now_iso(), exit_code=0))
    assert metric_series(paths, legacy, "loss").steps == (1, 2, 3, 4, 5, 6, 1, 2, 3, 4)


def test_a_truncated_or_replaced_file_is_read_from_its_start(paths: Paths, tmp_path: Path) -> None:
    truncated, replaced = tmp_path / "truncated", tmp_path / "replaced"
    for folder in (truncated, replaced):
        _earlier_run(folder)
    measured = {folder: _measured(folder) for folder in (truncated, replaced)}
    (truncated / "metrics_rank0000.jsonl").write_text("")  # cut short: what it holds now is all the job's
    _append(truncated / "metrics_rank0000.jsonl", OWN[:3])
    fresh = replaced / "new.jsonl"  # put in its place: another inode, although longer than the recorded start
    _append(fresh, OWN * 3)
    os.replace(fresh, replaced / "metrics_rank0000.jsonl")
    for folder, count, last in ((truncated, 3, 3), (replaced, 12, 4)):
        job_id = add_record(paths, make_record(folder.name, output_dir=str(folder), metrics_start=measured[folder],
                                               end_time=now_iso(), exit_code=0))  # fmt: skip
        assert len(metric_series(paths, job_id, "loss").steps) == count
        assert get_progress(paths, job_id).step == last  # type: ignore[union-attr]


def test_a_trainer_state_the_job_rewrote_is_its_own(paths: Paths, tmp_path: Path) -> None:
    """No metrics files: trainer_state.json speaks once the job has rewritten it, never while the earlier run's
    stands."""
    folder = tmp_path / "ts"
    folder.mkdir()
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 6, "log_history": [{"loss": 3.0}]}))
    record = make_record("ts", output_dir=str(folder), metrics_start=_measured(folder))
    assert reading.local_progress(paths, record, done=False) is None
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 2, "log_history": [{"loss": 1.5}]}))
    found = reading.local_progress(paths, record, done=False)
    assert found is not None and (found.step, found.loss) == (2, 1.5)


def test_a_job_read_before_its_start_was_recorded_is_read_again_from_it(paths: Paths, tmp_path: Path) -> None:
    """Read while queued (no start yet: the whole folder), then started: the cache does not carry the earlier
    run's lines over."""
    folder = tmp_path / "queued"
    metrics = _earlier_run(folder)
    queued = make_record("queued", output_dir=str(folder))
    assert reading.local_progress(paths, queued, done=False).step == 6  # type: ignore[union-attr]
    started = make_record("queued", output_dir=str(folder), submit_time=queued.submit_time,
                          metrics_start=_measured(folder))  # fmt: skip
    _append(metrics, OWN[:1])
    found = reading.local_progress(paths, started, done=False)
    assert found is not None and (found.step, found.loss) == (1, 2.0)


def test_an_ended_job_keeps_its_lines_when_a_later_run_appends(paths: Paths, tmp_path: Path) -> None:
    """Its end was measured as it ended: the lines a later run appended after it are not the first job's."""
    folder = tmp_path / "out"
    metrics = folder / "metrics_rank0000.jsonl"
    measured = _measured(folder)  # the folder is empty: the file will be all the job's
    _append(metrics, EARLIER)
    ended = starts.with_attempt(measured, 1, starts.measure(folder), end=True)
    job_id = add_record(paths, make_record("first", output_dir=str(folder), metrics_start=ended,
                                           end_time=now_iso(), exit_code=0))  # fmt: skip
    _append(metrics, OWN)  # a second run in the same folder
    assert metric_series(paths, job_id, "loss").steps == (1, 2, 3, 4, 5, 6)
    found = get_progress(paths, job_id)
    assert found is not None and (found.step, found.loss) == (6, 3.0)
    # A job that ended before any metrics file was there has none of the lines a later run wrote in it.
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = starts.with_attempt(_measured(empty), 1, starts.measure(empty), end=True)
    silent = add_record(paths, make_record("silent", output_dir=str(empty), metrics_start=nothing,
                                           end_time=now_iso(), exit_code=0))  # fmt: skip
    _append(empty / "metrics_rank0000.jsonl", OWN)
    assert get_progress(paths, silent) is None


def test_recorded_starts_keep_each_attempt(tmp_path: Path) -> None:
    first = starts.with_attempt(None, 1, {"metrics_rank0000.jsonl": [5, 100, 7]})
    first = starts.with_attempt(first, 1, {"metrics_rank0000.jsonl": [5, 180, 8]}, end=True)
    both = starts.with_attempt(first, 2, {"metrics_rank0000.jsonl": [5, 250, 9]})
    assert starts.attempts(both) == {
        1: {"start": {"metrics_rank0000.jsonl": [5, 100, 7]}, "end": {"metrics_rank0000.jsonl": [5, 180, 8]}},
        2: {"start": {"metrics_rank0000.jsonl": [5, 250, 9]}},
    }
    own = starts.own_lines(make_record(metrics_start=both))  # from the first attempt's start; the last runs
    assert (own.start, own.end) == ({"metrics_rank0000.jsonl": [5, 100, 7]}, None)
    assert own.span("metrics_rank0000.jsonl", 5, 400) == (100, 400) and own.span("metrics_rank0000.jsonl", 6, 400) == (
        0,
        400,
    )
    assert starts.attempts("not json") == starts.attempts(None) == starts.attempts("[1]") == {}
    assert starts.attempts('{"1": {"start": {"m": [1, "x"]}}, "a": {}}') == {1: {"start": {}}}  # not ours: unread
    assert starts.measure(tmp_path / "absent") == {} and starts.measure(None) == {}


def test_the_supervisor_records_where_the_job_starts(paths: Paths, cli: Cli, tmp_path: Path, job_config: Any) -> None:
    """A real job in a folder an earlier run used: its supervisor measured the folder before the job wrote."""
    folder = tmp_path / "shared"
    metrics = _earlier_run(folder)
    size = metrics.stat().st_size
    script = tmp_path / "append.py"
    lines = "".join(json.dumps(e) + "\n" for e in OWN)
    script.write_text(f"import os\nopen(os.environ['OUTPUT_DIR'] + '/metrics_rank0000.jsonl', 'a').write({lines!r})\n")
    job_id = submit_id(cli, str(job_config(f"{sys.executable} {script}", envs={"OUTPUT_DIR": str(folder)})))
    final = wait_done(cli, job_id)
    assert final["state"] == "succeeded"
    with Registry.open(paths) as registry:
        record = registry.get(job_id)
    assert record is not None
    recorded = starts.attempts(record.metrics_start)
    assert list(recorded) == [1] and recorded[1]["start"]["metrics_rank0000.jsonl"][1] == size
    assert set(recorded[1]["start"]) == {"metrics_rank0000.jsonl", "trainer_state.json"}
    assert recorded[1]["end"]["metrics_rank0000.jsonl"][1] == metrics.stat().st_size > size  # measured as it ended
    assert (final["progress"]["step"], final["progress"]["loss"]) == (4, 0.5)
    assert cli.json("plot", job_id)["series"][0]["steps"] == [1, 2, 3, 4]
