"""Training progress read live from a job's files: metrics jsonl of every rank, trainer_state.json, tqdm bars and
metric lines in its logs; the incremental cache; and where people see it (status, list, --watch, plot).

The jobs here are real processes: a small script that logs like Oumi's trainer, one step each time the test
opens its gate (no timing assumptions).  tests/test_training_progress.py runs a real ``oumi train``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from oumi_jobs.listing import list_job_documents, list_jobs_report
from oumi_jobs.paths import Paths
from oumi_jobs.progress import Progress, reading
from oumi_jobs.progress.parse import parse_metric_line, parse_tqdm
from oumi_jobs.render.base import job_document
from oumi_jobs.render.listing import lean_texts
from oumi_jobs.status import get_progress, metric_series
from oumi_jobs.timestamps import now_iso

from .helpers import Cli, add_record, make_record, on_a_terminal, submit_id, wait_done, wait_until

# Logs like Oumi's trainer: each step, a line in the metrics file of ranks 0 and 1 (rank 1's loss differs), a
# tqdm bar on stderr and the trainer's metrics dict on stdout (values as text, as the trainer prints them).
TRAINER = r"""
import json, os, sys, time
from pathlib import Path

out, gate, total = Path(os.environ["OUTPUT_DIR"]), Path(sys.argv[1]), int(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
for step in range(1, total + 1):
    while not (gate / str(step)).exists():
        time.sleep(0.02)
    for rank in (0, 1):
        entry = {"loss": 3.0 - 0.25 * step + rank, "learning_rate": 1e-4 / step, "epoch": step / total, "step": step}
        with open(out / f"metrics_rank{rank:04}.jsonl", "a") as handle:
            handle.write(json.dumps(entry) + "\n")
    sys.stderr.write(f"\r {100 * step // total}%|###       | {step}/{total} [00:0{step}<00:0{total - step}, 2.00it/s]")
    sys.stderr.flush()
    print({"loss": str(3.0 - 0.25 * step), "epoch": str(step / total), "step": step}, flush=True)
"""


@pytest.fixture
def trainer(tmp_path: Path, job_config: Any) -> Any:
    """``(config, gate)``: a job config running the trainer above for ``total`` steps; ``gate / str(n)`` lets step n
    happen."""

    def make(total: int = 5, *, open_gate: bool = False) -> tuple[Path, Path]:
        script = tmp_path / "trainer.py"
        script.write_text(TRAINER)
        gate = tmp_path / f"gate-{total}-{len(list(tmp_path.iterdir()))}"
        gate.mkdir()
        if open_gate:
            for step in range(1, total + 1):
                (gate / str(step)).touch()
        out = tmp_path / f"out-{gate.name}"
        config = job_config(f"{sys.executable} {script} {gate} {total}", envs={"OUTPUT_DIR": str(out)})
        return config, gate

    return make


def _progress(cli: Cli, job_id: str) -> dict[str, Any] | None:
    document: dict[str, Any] | None = cli.json("status", job_id)["progress"]
    return document


def _at_step(cli: Cli, job_id: str, step: int) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        found = _progress(cli, job_id)
        # The trainer writes its metrics, then its bar (which tells the total).
        return found if found and found["step"] == step and found["total_steps"] else None

    return wait_until(reached, timeout=30)  # type: ignore[return-value]


def test_progress_of_a_running_job_moves_step_by_step(cli: Cli, trainer: Any) -> None:
    config, gate = trainer(5)
    job_id = submit_id(cli, str(config))
    assert _progress(cli, job_id) is None  # nothing logged yet: null, not zeros
    seen = []
    for step in range(1, 6):
        (gate / str(step)).touch()
        found = _at_step(cli, job_id, step)
        seen.append(found)
        assert found["source"] == "metrics" and found["total_steps"] == 5  # the total from the tqdm bar
        assert found["loss"] == pytest.approx(3.0 - 0.25 * step)  # rank 0's, not rank 1's
        assert found["fraction"] == pytest.approx(step / 5) and found["epoch"] == pytest.approx(step / 5)
        assert found["rate"] == pytest.approx(2.0)  # tqdm's it/s
        assert found["as_of"] is not None
    running = seen[1]
    assert running["eta_s"] == pytest.approx(1.5)  # 3 steps left at 2 steps/s
    final = wait_done(cli, job_id)["progress"]
    assert (final["step"], final["total_steps"], final["fraction"], final["eta_s"]) == (5, 5, 1.0, None)


def test_status_list_and_watch_show_it(cli: Cli, trainer: Any) -> None:
    config, _ = trainer(4, open_gate=True)
    waited = cli("submit", str(config), "--wait")
    assert waited.exit_code == 0, waited.stderr
    job_id = waited.stdout.splitlines()[0]
    # Not a terminal: plain lines, one each time the job or its progress moved.
    assert any("step 4/4 · 100%" in line for line in waited.stdout.splitlines()), waited.stdout
    shown = cli("status", job_id).stdout
    assert "step 4/4 · 100% · epoch 1 · loss 2 · 2 steps/s" in shown
    assert "4/4 100% loss 2" in cli("list").stdout and "PROGRESS" in cli("list").stdout
    watched = cli("status", job_id, "--watch")
    assert watched.exit_code == 0 and "step 4/4" in watched.stdout


def _write(path: Path, entries: list[dict[str, Any]], tail: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in entries) + tail)


def _finished(paths: Paths, tmp_path: Path, name: str, **fields: Any) -> str:
    values: dict[str, Any] = {"output_dir": str(tmp_path / name), "end_time": now_iso(), "exit_code": 0} | fields
    return add_record(paths, make_record(name, **values))


def _running(paths: Paths, tmp_path: Path, name: str, **fields: Any) -> Any:
    """A job record read as running (its progress is read as of a job not done)."""
    return make_record(name, output_dir=str(tmp_path / name), **fields)


def test_a_truncated_last_line_waits_for_its_newline(paths: Paths, tmp_path: Path) -> None:
    record = _running(paths, tmp_path, "torn")
    metrics = tmp_path / "torn" / "metrics_rank0000.jsonl"
    _write(metrics, [{"loss": 2.0, "step": 1}], tail='{"loss": 1.5, "st')
    assert reading.local_progress(paths, record, done=False).step == 1  # type: ignore[union-attr]
    with metrics.open("a") as handle:
        handle.write('ep": 2}\n')
    found = reading.local_progress(paths, record, done=False)
    assert found is not None and (found.step, found.loss) == (2, 1.5)


def test_a_replaced_metrics_file_is_read_anew(paths: Paths, tmp_path: Path) -> None:
    record = _running(paths, tmp_path, "again")
    metrics = tmp_path / "again" / "metrics_rank0000.jsonl"
    _write(metrics, [{"loss": 3.0 - i / 10, "step": i} for i in range(1, 8)])
    assert reading.local_progress(paths, record, done=False).step == 7  # type: ignore[union-attr]
    fresh = metrics.with_name("new.jsonl")  # a new run: a new file put in its place
    _write(fresh, [{"loss": 9.0, "step": 1}, {"loss": 8.5, "step": 2}])
    os.replace(fresh, metrics)
    found = reading.local_progress(paths, record, done=False)
    assert found is not None and (found.step, found.loss) == (2, 8.5)


def test_every_rank_is_read_and_rank_0_sums_up(paths: Paths, tmp_path: Path) -> None:
    record = _running(paths, tmp_path, "ranks")
    _write(tmp_path / "ranks" / "metrics_rank0001.jsonl", [{"loss": 7.0, "step": 3, "epoch": 0.9}])
    found = reading.local_progress(paths, record, done=False)
    assert found is not None and (found.step, found.loss) == (3, 7.0)  # only rank 1 so far: it speaks
    _write(tmp_path / "ranks" / "metrics_rank0000.jsonl", [{"loss": 1.0, "step": 2, "epoch": 0.5}])
    found = reading.local_progress(paths, record, done=False)
    assert found is not None and (found.step, found.loss, found.epoch) == (2, 1.0, 0.5)


def test_total_from_the_config_and_eta_from_the_rate(paths: Paths, tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("model:\n  model_name: m\ntraining:\n  max_steps: 100\n  output_dir: out\n")
    stderr = tmp_path / "stderr.log"
    # A tokenising bar (described), an evaluation bar (another total) and the trainer's bar.
    stderr.write_text(
        "Map: 100%|██████████| 64/64 [00:00<00:00, 2870.41 examples/s]\n"
        " 10%|█         | 10/100 [00:05<00:45,  2.00it/s]\r"
        " 50%|█████     | 4/8 [00:01<00:01,  4.00it/s]\r"
    )
    record = make_record(
        "eta", command="train", config_path=str(config), workdir=str(tmp_path), output_dir="out",
        stderr_path=str(stderr),
    )  # fmt: skip
    _write(tmp_path / "out" / "metrics_rank0000.jsonl", [{"loss": 2.5, "step": 10, "epoch": 0.1}])
    found = reading.local_progress(paths, record, done=False)
    assert found == Progress(
        step=10, total_steps=100, fraction=0.1, epoch=0.1, loss=2.5, eta_s=45.0, rate=2.0, source="metrics",
        as_of=found.as_of if found else None,
    )  # fmt: skip


def test_logs_alone_are_the_fallback(paths: Paths, tmp_path: Path) -> None:
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    stdout.write_text("hello\n{'loss': '3.153', 'grad_norm': '1.32', 'epoch': '0.0625', 'step': 1}\n")
    stderr.write_text("  0%|          | 0/6 [00:00<?, ?it/s] 17%|█▋        | 1/6 [00:01<00:07,  1.52s/it]")
    record = make_record("logs", command="train", stdout_path=str(stdout), stderr_path=str(stderr))
    found = reading.local_progress(paths, record, done=False)
    assert found is not None and found.source == "logs"
    assert (found.step, found.total_steps, found.loss, found.epoch) == (1, 6, 3.153, 0.0625)
    assert found.rate == pytest.approx(1 / 1.52, rel=1e-3)


def test_trainer_state_json_is_read(paths: Paths, tmp_path: Path) -> None:
    state = {"global_step": 12, "max_steps": 40, "epoch": 0.3, "log_history": [{"loss": 1.75, "step": 12}]}
    (tmp_path / "ts").mkdir()
    (tmp_path / "ts" / "trainer_state.json").write_text(json.dumps(state))
    found = reading.local_progress(paths, _running(paths, tmp_path, "ts"), done=False)
    assert found is not None and (found.step, found.total_steps, found.loss, found.source) == (12, 40, 1.75, "metrics")


def test_a_job_read_after_it_ended_is_not_read_again(paths: Paths, tmp_path: Path) -> None:
    job_id = _finished(paths, tmp_path, "ended")
    metrics = tmp_path / "ended" / "metrics_rank0000.jsonl"
    _write(metrics, [{"loss": 1.25, "step": 4}])
    assert get_progress(paths, job_id) == get_progress(paths, job_id)
    metrics.unlink()  # what was read after it ended stands: its files are never read again
    found = get_progress(paths, job_id)
    assert found is not None and (found.step, found.loss) == (4, 1.25)
    assert (paths.cache_dir / "progress" / f"{job_id}.json").stat().st_mode & 0o777 == 0o600


def test_lean_and_general_listings_give_the_same_progress(paths: Paths, tmp_path: Path) -> None:
    """Finished local jobs are read the lean way by ``list --json``: the very same progress objects, read first
    by either path."""
    for name, step in (("first", 3), ("second", 8)):
        _finished(paths, tmp_path, name)
        _write(tmp_path / name / "metrics_rank0000.jsonl", [{"loss": 1.0 / step, "step": step}])
    _finished(paths, tmp_path, "silent")  # no file at all: null
    lean = [json.loads(text) for text in lean_texts(list_job_documents(paths))]  # read first by the lean path
    general = [job_document(view) for view in list_jobs_report(paths).views]
    assert [d["progress"] for d in lean] == [d["progress"] for d in general]
    assert [d["progress"] and d["progress"]["step"] for d in lean] == [None, 8, 3]
    assert list(lean[1]) == list(general[1])  # same keys in the same order


def test_parsers() -> None:
    assert parse_tqdm(" 40%|████      | 2/5 [00:01<00:01, 2.01it/s]") == (2, 5, 2.01, "")
    assert parse_tqdm("Map:  50%|█| 5/10 [00:01<00:01, 5.00it/s]") == (5, 10, 5.0, "Map")
    assert parse_tqdm("  0%|          | 0/6 [00:00<?, ?it/s]") == (0, 6, None, "")
    assert parse_tqdm("downloaded 3/4 files") is None
    assert parse_metric_line("{'loss': '3.153', 'epoch': 0.5, 'note': 'x'}") == {"loss": 3.153, "epoch": 0.5}
    assert parse_metric_line('{"loss": NaN, "step": 2}') == {"step": 2.0}
    assert parse_metric_line("{'unrelated': 1}") is None
    assert parse_metric_line("{__import__('os')}") is None
    assert parse_metric_line("{[1]: 2}") is None and parse_metric_line('{"step": 1' + "0" * 400 + "}") is None
    assert parse_tqdm(" 1/5 [00:00<00:01, 1.2.3it/s]") == (1, 5, None, "")


# -- plot ------------------------------------------------------------------------------
@pytest.fixture
def two_jobs(paths: Paths, tmp_path: Path) -> tuple[str, str]:
    ids = []
    for name, scale in (("run-a", 1.0), ("run-b", 2.0)):
        ids.append(_finished(paths, tmp_path, name))
        entries = [{"loss": scale / s, "learning_rate": 1e-4, "step": s} for s in range(1, 6)]
        _write(tmp_path / name / "metrics_rank0000.jsonl", entries)
    return ids[0], ids[1]


def test_plot_in_the_terminal_overlays_jobs(cli: Cli, two_jobs: tuple[str, str]) -> None:
    shown = cli("plot", *two_jobs, "--metric", "loss", "--metric", "learning_rate")
    assert shown.exit_code == 0, shown.stderr
    for text in ("loss", "learning_rate", "step", *two_jobs):  # a panel per metric, a legend entry per job
        assert text in shown.stdout
    assert "\x1b[" not in shown.stdout  # not a terminal: no colour


def test_plot_of_an_unknown_metric_lists_the_jobs_metrics(cli: Cli, two_jobs: tuple[str, str]) -> None:
    refused = cli("plot", two_jobs[0], "--metric", "accuracy")
    assert refused.exit_code == 2 and refused.stdout == ""
    assert "no metric 'accuracy'" in refused.stderr and "learning_rate, loss" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1


def test_plot_images(cli: Cli, two_jobs: tuple[str, str], tmp_path: Path) -> None:
    png, svg = tmp_path / "loss.png", tmp_path / "loss.svg"
    assert cli("plot", *two_jobs, "--png", str(png)).exit_code == 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert cli("plot", two_jobs[0], "-m", "learning_rate", "--svg", str(svg)).exit_code == 0
    assert "<svg" in svg.read_text()[:500]
    assert cli("plot", two_jobs[0], "--png", str(png), "--svg", str(svg)).exit_code == 2
    document = cli.json("plot", *two_jobs)
    assert [s["job_id"] for s in document["series"]] == list(two_jobs)
    assert document["series"][1]["values"] == [2.0, 1.0, 2 / 3, 0.5, 0.4]


def test_metric_series_for_the_library(paths: Paths, two_jobs: tuple[str, str]) -> None:
    series = metric_series(paths, two_jobs[1], "loss")
    assert series.steps == (1.0, 2.0, 3.0, 4.0, 5.0) and series.values[0] == 2.0 and series.source == "metrics"
    assert series.metrics == ("learning_rate", "loss")


def test_plotting_libraries_load_only_for_a_plot() -> None:
    """plotext and matplotlib are imported by ``plot`` alone: not by the library, the CLI, status or list."""
    import subprocess

    code = (
        "import json, sys, oumi_jobs.api, oumi_jobs.cli.app\n"
        "from typer.testing import CliRunner\n"
        "from oumi_jobs.cli.app import app\n"
        "CliRunner().invoke(app, ['list'])\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('plotext', 'matplotlib'))))\n"
    )
    env = dict(os.environ)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []


# -- cloud jobs: their log stream, read for a few seconds by status, never by list ---------------------------
class StreamingCloud:
    """A cloud adapter (tests/test_cloud_seam.py has the full one) whose one job is running and whose log stream
    gives ``lines`` and then blocks, as a followed log of a running job does."""

    def __init__(self) -> None:
        import threading

        self.lines: list[str] = []
        self.streams_opened = 0
        self.released = threading.Event()

    def prepare(self) -> None:
        pass

    def server_start_note(self, clouds: list[str], *, timeout_s: float) -> None:
        return None

    def _job(self) -> Any:
        from oumi_jobs.cloud.model import CloudJob
        from oumi_jobs.states import State

        return CloudJob("mem", "c1", "7", "train", State.RUNNING, "RUNNING", False)

    def get_job(self, cloud: str, cluster: str, launcher_job_id: str, *, timeout_s: float) -> Any:
        return self._job()

    def list_jobs(self, cloud: str, *, timeout_s: float) -> list[Any]:
        return [self._job()]

    def log_stream(self, cloud: str, cluster: str, launcher_job_id: str, *, timeout_s: float) -> Any:
        from oumi_jobs.cloud.model import LogLines

        self.streams_opened += 1
        given = list(self.lines)

        def follow() -> Any:
            yield from given
            self.released.wait(60)  # a running job's log: no end until it is closed

        return LogLines(follow(), self.released.set)


def test_a_cloud_jobs_progress_comes_from_its_log_stream(paths: Paths, cli: Cli) -> None:
    import time

    from oumi_jobs.cloud import adapter
    from oumi_jobs.store.registry import JobRecord

    cloud = StreamingCloud()
    previous = adapter.use(cloud)  # type: ignore[arg-type]
    try:
        add_record(paths, JobRecord("gpu-run", "mem", now_iso(), cluster="c1", launcher_job_id="7", command="train"))
        cloud.lines = [
            "setup done\n", "{'loss': '2.5', 'epoch': '0.3', 'step': 3}\n",
            " 30%|###       | 3/10 [00:03<00:07, 1.00it/s]\r 30%|###       | 3/10 [00:03<00:07, 1.00it/s]\n",
        ]  # fmt: skip
        started = time.monotonic()
        found = cli.json("status", "gpu-run")["progress"]
        assert time.monotonic() - started < 30  # the stream never ends: it is read for a bounded time
        assert (found["step"], found["total_steps"], found["loss"], found["source"]) == (3, 10, 2.5, "logs")
        assert found["eta_s"] == pytest.approx(7.0)
        opened = cloud.streams_opened
        listed = cli.json("list")
        assert listed[0]["progress"] == found and cloud.streams_opened == opened  # list shows what was read
        cloud.released.clear()
        cloud.lines += [
            "{'loss': '2.0', 'epoch': '0.5', 'step': 5}\n",
            " 50%|#####     | 5/10 [00:05<00:05, 1.00it/s]\n",
        ]
        again = cli.json("status", "gpu-run")["progress"]  # read a moment ago: not opened again, so status is fast
        assert again == found and cloud.streams_opened == opened
        from oumi_jobs.status import get_status

        found = _progress_dict(get_status(paths, "gpu-run", live_progress=True))  # --watch, wait: each time
        assert (found["step"], found["loss"]) == (5, 2.0) and cloud.streams_opened == opened + 1
    finally:
        cloud.released.set()
        adapter.use(previous)


def _progress_dict(view: Any) -> dict[str, Any]:
    from oumi_jobs.render.base import job_document

    progress: dict[str, Any] = job_document(view)["progress"]
    return progress


def test_a_job_id_used_again_is_read_afresh_and_prune_forgets(paths: Paths, cli: Cli, tmp_path: Path) -> None:
    """``--name`` may give a new job the id of a pruned one: what was read for the old one is not the new one's."""
    from oumi_jobs.store.registry import Registry

    job_id = _finished(paths, tmp_path, "named", submit_time="2026-01-01T00:00:00+00:00")
    _write(tmp_path / "named" / "metrics_rank0000.jsonl", [{"loss": 1.0, "step": 9}])
    assert get_progress(paths, job_id).step == 9  # type: ignore[union-attr]
    with Registry.open(paths) as registry:
        registry.delete([job_id])
    _finished(paths, tmp_path, "named", output_dir=str(tmp_path / "elsewhere"))  # the same id, a new job
    assert get_progress(paths, job_id) is None
    assert json.loads(lean_texts(list_job_documents(paths))[0])["progress"] is None
    assert cli("prune", "--older-than", "0s").exit_code == 0
    assert not (paths.cache_dir / "progress" / f"{job_id}.json").exists()


def test_inference_shows_the_bar_it_draws_now(paths: Paths, tmp_path: Path) -> None:
    """``oumi infer`` (NATIVE engine) draws a bar per phase on stderr; the latest one is its progress.  These are
    the lines a real ``oumi infer`` of a tiny model wrote."""
    stderr = tmp_path / "stderr.log"
    stderr.write_text(
        "Loading weights:   0%|          | 0/21 [00:00<?, ?it/s]"
        "Loading weights: 100%|██████████| 21/21 [00:00<00:00, 13879.67it/s]\n"
        "Generating Model Responses:   0%|          | 0/3 [00:00<?, ?it/s]"
        "Generating Model Responses:  33%|███▎      | 1/3 [00:03<00:06,  3.30s/it]"
    )
    record = make_record("infer", command="infer", stderr_path=str(stderr))
    found = reading.local_progress(paths, record, done=False)
    assert found is not None and (found.step, found.total_steps, found.source) == (1, 3, "logs")
    assert found.eta_s == pytest.approx(6.6)


def test_plot_watch_follows_a_job_to_its_end(cli: Cli, trainer: Any) -> None:
    """Not at a terminal, ``--watch`` draws once the job has ended; while it has logged nothing it waits."""
    config, gate = trainer(3)
    job_id = submit_id(cli, str(config))
    for step in range(1, 4):
        (gate / str(step)).touch()
    watched = cli("plot", job_id, "--watch", "--metric", "learning_rate")
    assert watched.exit_code == 0, watched.stderr
    assert "learning_rate" in watched.stdout and job_id in watched.stdout
    assert cli.json("status", job_id)["done"]


def test_terminal_plots_drawn_one_after_another_start_afresh() -> None:
    """plotext keeps one global figure: a plot of one panel after one of two (``plot --watch`` redraws, a library
    user plotting twice) must not inherit the last panel's lines."""
    from oumi_jobs.cli.render import plot_text
    from oumi_jobs.plots import Plot
    from oumi_jobs.progress import MetricSeries

    steps = (1.0, 2.0, 3.0, 4.0, 5.0)
    two = Plot(
        ("loss", "learning_rate"),
        tuple(MetricSeries(job, m, steps, (1.0, 0.5, 0.3, 0.2, 0.1), (), "metrics")
              for m in ("loss", "learning_rate") for job in ("run-a", "run-b")),
        True,
    )  # fmt: skip
    one = Plot(
        ("learning_rate",), (MetricSeries("job-c", "learning_rate", steps[:3], (3.0, 2.0, 1.0), (), None),), True
    )
    assert plot_text(two, width=100, height=20, color=False).count("\n") >= 39  # two panels of 20 lines
    drawn = plot_text(one, width=100, height=20, color=False)
    assert "job-c" in drawn and "run-a" not in drawn


@pytest.mark.parametrize("no_color", [True, False], ids=["NO_COLOR", "colour"])
def test_watch_on_a_terminal_draws_a_bar_unless_no_color(paths: Paths, cli: Cli, trainer: Any, no_color: bool) -> None:
    config, gate = trainer(4)
    job_id = submit_id(cli, str(config))
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env |= {"OUMI_JOBS_HOME": str(paths.data_dir.parent), "COLUMNS": "160"} | ({"NO_COLOR": "1"} if no_color else {})
    import threading

    def release() -> None:  # the job moves while it is watched (read through the library: one CliRunner at a time)
        for step in range(1, 5):
            (gate / str(step)).touch()
            wait_until(lambda: (found := get_progress(paths, job_id)) is not None and found.step == step)  # noqa: B023

    opener = threading.Thread(target=release)
    opener.start()
    root = Path(__file__).resolve().parent.parent  # `python -m oumi_jobs` of this copy
    shown = on_a_terminal([sys.executable, "-m", "oumi_jobs", "status", "--watch", job_id], env, root)
    opener.join()
    if no_color:
        assert b"\x1b" not in shown, shown[:400]  # plain lines: no colour, no bar redrawn in place
        assert "step 4/4 · 100%".encode() in shown.splitlines()[-1]
    else:
        assert b"\x1b[" in shown and "━".encode() in shown  # rich's bar, redrawn in place
        assert "step 4/4 · 100%".encode() in shown
