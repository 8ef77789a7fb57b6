"""What a person sees of jobs: rich tables and panels, the plain lines beside them, and the styles all share.

The human side of :class:`oumi_jobs.cli.output.Output` (whose ``human=``
renderers these are); the JSON side is :mod:`oumi_jobs.render`.  The other
areas' are beside it (``render_cancel``, ``render_clusters``,
``render_registry``), using its styles, times and sums of money.  Views
refreshed in place (watch, progress) are in :mod:`oumi_jobs.cli.live`.

rich is imported inside the functions that render, so importing this module
costs nothing a ``--json`` run would notice.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

from oumi_jobs.cli.output import console, hint, print_line
from oumi_jobs.failures import Failure
from oumi_jobs.plots import Plot
from oumi_jobs.policy import JobPolicy
from oumi_jobs.preflight import ConfigCheck
from oumi_jobs.progress import Progress
from oumi_jobs.states import State
from oumi_jobs.store.registry import JobRecord
from oumi_jobs.submitting import DryRun
from oumi_jobs.views import JobView

STATE_STYLES = {
    State.PENDING: "blue",
    State.LAUNCHING: "blue",
    State.RUNNING: "cyan",
    State.CANCELLING: "yellow",
    State.SUCCEEDED: "green",
    State.FAILED: "bold red",
    State.CANCELLED: "yellow",
    State.LOST: "magenta",
    State.UNKNOWN: "dim",
}


def styled_state(state: State) -> str:
    return f"[{STATE_STYLES[state]}]{state.value}[/]"


def short_time(iso: str | None) -> str:
    if not iso:
        return "-"
    return iso[:19].replace("T", " ")


def jobs_table(views: list[JobView]) -> Any:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    # The id and state are what people copy and scan for: never shortened.
    id_width = max((len(v.job_id) for v in views), default=3)
    table.add_column("JOB", no_wrap=True, min_width=id_width)
    table.add_column("STATE", no_wrap=True, min_width=10)
    for column in ("STATUS", "CLOUD", "SUBMITTED", "COMMAND"):
        table.add_column(column, no_wrap=True)
    table.add_column("PROGRESS", no_wrap=True)
    priced = any(v.record.cost_per_hour is not None for v in views)
    if priced:  # a column only where a launcher gave a price: local jobs have none
        table.add_column("COST (EST.)", no_wrap=True, justify="right")
    table.add_column("DETAIL", overflow="fold")
    for view in views:
        record = view.record
        cloud = record.cloud + (f":{record.cluster}" if record.cluster else "")
        cells = [
            record.job_id or f"(external {record.launcher_job_id})",
            styled_state(view.state),
            view.status or "-",
            cloud,
            short_time(record.submit_time),
            record.command or "-",
            progress_cell(view.progress),
        ]
        if priced:
            cells.append(money(view.cost_so_far()))
        table.add_row(*cells, detail_cell(view))
    return table


def detail_cell(view: JobView) -> str:
    """The listing's detail: why a failed job failed, where that is known, before the source's own words."""
    from rich.markup import escape

    failure = view.failure
    if failure is None:
        return escape(view.detail or "")
    return escape(f"{failure.failure_class}: {failure.cause}" + (f"; {view.detail}" if view.detail else ""))


def failure_line(failure: Failure | None) -> str | None:
    """One line: the class, the cause, the evidence it came from and what to do."""
    if failure is None:
        return None
    from rich.markup import escape

    evidence = f" ({failure.evidence})" if failure.evidence else ""
    return f"[bold]{failure.failure_class}[/]: " + escape(f"{failure.cause}{evidence}. What to do: {failure.hint}")


def guards_line(view: JobView) -> str | None:
    """The guards that fired, e.g. ``stall (stop) at 12:03:04: observed 16.2, limit 15``."""
    from rich.markup import escape

    shown = []
    for event in view.fired_guards:
        detail = event.detail
        shown.append(
            f"{detail.get('guard')} ({detail.get('action')}) at {short_time(event.at)}: "
            f"observed {detail.get('observed')}, limit {detail.get('limit')}"
        )
    return escape("; ".join(shown)) if shown else None


def money(amount: float | None) -> str:
    return "-" if amount is None else f"${amount:,.2f}"


def _cost_line(view: JobView) -> str | None:
    rate = view.record.cost_per_hour
    if rate is None:
        return None
    return f"{money(rate)}/h; about {money(view.cost_so_far())} so far (an estimate: price x time running)"


def job_panel(view: JobView) -> Any:
    from rich.table import Table

    record = view.record
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows: list[tuple[str, str | None]] = [
        ("job", record.job_id),
        ("name", record.name),
        ("state", styled_state(view.state)),
        ("status", view.status),
        ("detail", view.detail),
        ("failure", failure_line(view.failure)),
        ("guards", guards_line(view)),
        ("attempt", _attempt_line(record)),
        ("resume", _resume_line(record.resume)),
        ("progress", progress_line(view.progress) if view.progress else None),
        ("cloud", record.cloud + (f" (cluster {record.cluster})" if record.cluster else "")),
        ("launcher id", record.launcher_job_id),
        ("command", record.command),
        ("config", record.config_path),
        ("model", record.model_name),
        ("output dir", record.output_dir),
        ("pid", str(record.pid) if record.pid else None),
        ("submitted", short_time(record.submit_time)),
        ("started", short_time(record.started_at) if record.started_at else None),
        ("ended", short_time(record.end_time) if record.end_time else None),
        ("cost", _cost_line(view)),
        ("stdout", record.stdout_path),
        ("stderr", record.stderr_path),
        ("as of", short_time(view.as_of)),
    ]
    for label, value in rows:
        if value:
            grid.add_row(label, value)
    return grid


def _attempt_line(record: JobRecord) -> str | None:
    """``attempt 2/3``, for a job that may be or was retried."""
    most = max(JobPolicy.decode(record.policy).max_attempts, record.attempt)
    return f"attempt {record.attempt}/{most}" if most > 1 else None


def _resume_line(resume: str | None) -> str | None:
    """Whether the current attempt resumed from its checkpoint, as its resume check found."""
    if not resume:
        return None
    from rich.markup import escape

    checked = json.loads(resume)
    if checked.get("warning"):
        return f"[yellow]warning: {escape(checked['warning'])}[/]"
    if checked.get("first_step") is None:
        return None
    return (
        f"from step {checked.get('resumed_from_step') or 0}, first step {checked['first_step']}, "
        f"{checked.get('redone_steps') or 0} step(s) trained again"
    )


# -- progress ------------------------------------------------------------------------
def duration_text(seconds: float) -> str:
    """``45s``, ``3m``, ``2h05m``, ``3d4h``: an ETA at a glance."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600}h"


def _loss_text(loss: float) -> str:
    return f"{loss:.4g}"


def progress_line(progress: Progress) -> str:
    """``step 120/500 · 24% · epoch 0.48 · loss 1.23 · 2.1 steps/s · ETA 3m`` (what is known of it)."""
    parts = []
    if progress.step is not None:
        parts.append(f"step {progress.step}" + (f"/{progress.total_steps}" if progress.total_steps else ""))
    if progress.fraction is not None:
        parts.append(f"{progress.fraction:.0%}")
    if progress.epoch is not None:
        parts.append(f"epoch {progress.epoch:.3g}")
    if progress.loss is not None:
        parts.append(f"loss {_loss_text(progress.loss)}")
    if progress.rate is not None:
        parts.append(f"{progress.rate:.3g} steps/s" if progress.rate >= 1 else f"{1 / progress.rate:.3g} s/step")
    if progress.eta_s is not None:
        parts.append(f"ETA {duration_text(progress.eta_s)}")
    return " · ".join(parts) or "-"


def progress_cell(progress: Progress | None) -> str:
    """The list's PROGRESS column: ``120/500 24% loss 1.23``."""
    if progress is None or progress.step is None:
        return "-" if progress is None or progress.loss is None else f"loss {_loss_text(progress.loss)}"
    text = f"{progress.step}/{progress.total_steps}" if progress.total_steps else f"step {progress.step}"
    if progress.fraction is not None:
        text += f" {progress.fraction:.0%}"
    if progress.loss is not None:
        text += f" loss {_loss_text(progress.loss)}"
    return text


def plot_text(plot: Plot, *, width: int, height: int, color: bool) -> str:
    """The plot for a terminal, drawn by plotext: a panel per metric, a line and a legend entry per job."""
    import plotext as plt

    # clear_figure clears the active figure, which after a drawing is its last panel: the whole one is meant.
    plt.main()
    plt.clear_figure()
    plt.limitsize(False, False)  # the size asked for, not plotext's guess of the terminal's (24 lines in a pipe)
    plt.plotsize(width, height * len(plot.metrics))
    if not color:
        plt.theme("clear")
    plt.subplots(len(plot.metrics), 1)
    for row, metric in enumerate(plot.metrics, 1):
        plt.subplot(row, 1)
        for index, series in enumerate(plot.of(metric)):
            if not series.steps:
                continue  # a followed job that has logged nothing yet
            marker = None if color else _MARKERS[index % len(_MARKERS)]  # no colour: the marker tells jobs apart
            plt.plot(list(series.steps), list(series.values), label=series.job_id, marker=marker)
        plt.title(metric)
        plt.xlabel("step")
    text: str = plt.build()
    return text if color else plt.uncolorize(text)


_MARKERS = ("hd", "x", "o", "+", "*", "#")


def print_plot(plot: Plot) -> None:
    """The plot on stdout: in colour and at the terminal's width at a terminal, plain and 100 wide otherwise."""
    import os

    out = console()
    color = out.is_terminal and not os.environ.get("NO_COLOR")
    width, height = out.size if out.is_terminal else (100, 20 * len(plot.metrics) + 2)
    print_line(plot_text(plot, width=width, height=max(10, (height - 2) // len(plot.metrics)), color=color))
    waiting = [s.job_id for s in plot.series if not s.steps]
    if waiting:
        hint(f"nothing logged yet by: {', '.join(dict.fromkeys(waiting))}")


def print_job(view: JobView) -> None:
    console().print(job_panel(view))


def print_jobs(views: list[JobView]) -> None:
    if not views:
        hint("no jobs")
        return
    console().print(jobs_table(views))


def print_clouds(answers: dict[str, Any]) -> None:
    """What each cloud asked said: reachable with how many jobs, or why not."""
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("CLOUD", "ANSWER", "JOBS", "TOOK"):
        table.add_column(column, justify="right" if column in ("JOBS", "TOOK") else "left")
    for name in sorted(answers):
        answer = answers[name]
        verdict = f"[red]unreachable: {answer.error}[/]" if answer.error else "[green]reachable[/]"
        jobs = "-" if answer.error else str(len(answer.jobs))
        table.add_row(name, verdict, jobs, f"{answer.elapsed_s:.1f}s")
    console().print(table)


def print_log(chunks: Iterable[str]) -> None:
    """A job's log as it comes (``logs -f`` shows each chunk at once)."""
    for chunk in chunks:
        sys.stdout.write(chunk)
        sys.stdout.flush()


def print_server_started(pid: int, address: str) -> None:
    print_line(f"the oumi-jobs server runs (pid {pid}) at {address}")


def print_server_stopped(pid: int | None, how: str) -> None:
    print_line("no oumi-jobs server was running" if pid is None else f"the oumi-jobs server (pid {pid}) {how}")


def print_server_status(document: dict[str, Any]) -> None:
    memory = document.get("memory_rss_bytes")
    idle = document["idle_timeout_s"]
    rows = [
        ("pid", str(document["pid"])),
        ("version", document["version"]),
        ("address", document["address"]),
        ("uptime", f"{document['uptime_s']:.0f} s"),
        ("idle timeout", "never" if not idle else f"{idle:g} s (idle now {document['idle_s']:.0f} s)"),
        ("launcher", "imported" if document["warm"] else "importing"),
        ("clouds asked", ", ".join(document["clouds_loaded"]) or "none yet"),
        ("requests served", str(document["requests_served"])),
        ("memory", "unknown" if memory is None else f"{memory / 2**20:.0f} MiB"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print_line(f"{name:<{width}}  {value}")


def print_check(check: ConfigCheck) -> None:
    """A problem a line on stdout (``setting: problem``, as linters print findings), or that it is clean."""
    what = "job config" if check.kind == "job" else f"{check.command} config"
    if check.ok:
        print_line(f"{check.config_path}: ok ({what}, checked with oumi's own config classes)")
        return
    for problem in check.problems:
        print_line(f"{check.config_path}: {problem.path or '(config)'}: {problem.problem}")
    hint(f"{len(check.problems)} problem(s) in this {what}")


def print_dry_run(dry: DryRun) -> None:
    """What would run: a cloud job's job config (and its staged task config) as YAML, a local job's command."""
    import shlex

    import yaml

    plan = dry.plan
    if dry.job_config is not None:
        print_line(f"# job config for {plan.cloud} (cluster {plan.cluster or 'named by the cloud'}), job {dry.job_id}")
        print_line(yaml.safe_dump(dry.job_config, sort_keys=False).rstrip())
        if dry.staged_config is not None:
            print_line(f"---\n# staged task config: {dry.staged_config['path']}")
            print_line(yaml.safe_dump(dry.staged_config["settings"], sort_keys=False).rstrip())
    else:
        print_line(f"# local job {dry.job_id} on cluster {plan.cluster or 'local'}")
        print_line(f"cwd: {plan.workdir}")
        print_line(f"argv: {shlex.join(plan.argv)}")
        for name, value in dict(plan.env_overrides).items():
            print_line(f"env: {name}={value}")
    hint("dry run: nothing was registered, started or provisioned")


def print_ui_link(url: str, opened: bool) -> None:
    print_line(f"{'opened in your browser: ' if opened else ''}{url}")
    hint("the link works once, for 5 minutes; `oumi-jobs ui` makes another")
