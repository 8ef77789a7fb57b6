"""Live displays for people at a terminal: views refreshed in place, spinners
and progress while a job or a cancellation is followed (the clouds' spinner is
:mod:`oumi_jobs.cli.cloud_progress`).

Everything here falls back to plain lines (or nothing) when stdout is not a
terminal, or ``NO_COLOR`` is set (SPEC principle 4: no colour and no spinners);
:mod:`oumi_jobs.cli.render` has the static renderings they reuse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from oumi_jobs.cli.output import animated, console, print_line
from oumi_jobs.cli.render import STATE_STYLES, job_panel, plot_text, progress_line, styled_state
from oumi_jobs.cli.render_cancel import cancellation_panel, print_cancellation
from oumi_jobs.plots import Plot
from oumi_jobs.progress import Progress
from oumi_jobs.states import State
from oumi_jobs.store.cancellations import CancellationRecord
from oumi_jobs.views import JobView
from oumi_jobs.waiting import WaitResult

if TYPE_CHECKING:  # rich is imported only when something is shown to a person
    pass

T = TypeVar("T")


def watch(views: Iterator[JobView]) -> JobView:
    """Show each view as it comes, refreshed in place on a terminal; returns the last.

    On a terminal the job's panel sits above its phases so far (launching,
    pending, running...), each with how long it took; the current one spins;
    a training job's progress bar (ETA, latest loss) is under them.  Plain
    lines carry the progress too: a new line each time it moves.
    """
    out = console()
    last: JobView | None = None
    if animated(out):
        from rich.console import Group
        from rich.live import Live

        phases = _Phases()
        with Live(console=out, refresh_per_second=8, transient=False) as live:
            for view in views:
                last = view
                phases.see(view.state)
                parts = [job_panel(view), "", phases]
                if view.progress is not None:
                    parts += ["", progress_bar(view.progress)]
                live.update(Group(*parts), refresh=True)
    else:
        previous = None
        for view in views:
            last = view
            line = f"{view.job_id} {view.state.value} {view.status or ''}".rstrip()
            if view.progress is not None:
                line += f" · {progress_line(view.progress)}"
            if line != previous:
                print_line(line)
                previous = line
    assert last is not None
    return last


def watch_jobs(results: Iterator[WaitResult]) -> WaitResult:
    """``wait``: a line per job (its state, status and how long the wait has seen it so far), refreshed in
    place on a terminal; elsewhere (a pipe, ``NO_COLOR``) a plain line each time a job's line changes."""
    out = console()
    last: WaitResult | None = None
    if animated(out):
        from rich.live import Live

        board = _WaitBoard()
        with Live(console=out, refresh_per_second=4, transient=False, get_renderable=board.render) as live:
            for result in results:
                last = board.result = result
                live.refresh()
    else:
        shown: dict[str, str] = {}
        for result in results:
            last = result
            for view in result.views:
                line = f"{view.job_id} {view.state.value} {view.status or ''}".rstrip()
                if shown.get(view.job_id) != line:
                    print_line(line)
                    shown[view.job_id] = line
    assert last is not None
    return last


def progress_bar(progress: Progress) -> Any:
    """A bar of the steps done, and the progress line (loss, rate, ETA) beside it."""
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    grid = Table.grid(padding=(0, 1))
    total = progress.total_steps
    bar = ProgressBar(total=float(total) if total else None, completed=float(progress.step or 0), width=40)
    grid.add_row(bar, progress_line(progress))
    return grid


def watch_plot(plots: Iterator[Plot]) -> Plot:
    """``plot --watch``: the plot redrawn in place as the jobs log; not at a terminal (or NO_COLOR), drawn once
    when they have ended.  Returns the last."""
    out = console()
    last: Plot | None = None
    if animated(out):
        from rich.live import Live
        from rich.text import Text

        with Live(console=out, auto_refresh=False, screen=False) as live:
            for plot in plots:
                last = plot
                width, height = out.size
                text = plot_text(plot, width=width, height=max(10, (height - 2) // len(plot.metrics)), color=True)
                live.update(Text.from_ansi(text), refresh=True)
    else:
        for plot in plots:
            last = plot
        assert last is not None
        print_line(plot_text(last, width=100, height=20, color=False))
    assert last is not None
    return last


class _WaitBoard:
    """The jobs of a ``wait``, one row each: a spinner while not done, then how it ended and when."""

    def __init__(self) -> None:
        import time

        self.result: WaitResult | None = None
        self._started = time.monotonic()
        self._ended: dict[str, float] = {}
        self._spinners: dict[str, Any] = {}

    def render(self) -> Any:
        import time

        from rich.spinner import Spinner
        from rich.table import Table

        grid = Table.grid(padding=(0, 1))
        for view in self.result.views if self.result is not None else ():
            if view.done:
                ended = self._ended.setdefault(view.job_id, time.monotonic())
                mark: Any = "[green]✓[/]" if view.state is State.SUCCEEDED else "[red]✗[/]"
            else:
                ended = time.monotonic()
                mark = self._spinners.setdefault(view.job_id, Spinner("dots", style=STATE_STYLES[view.state]))
            clock = _clock(ended - self._started)
            grid.add_row(mark, view.job_id, styled_state(view.state), view.status or "", clock, view.detail or "")
        return grid


class _Phases:
    """The states a followed job went through, with their durations (rendered anew at each refresh)."""

    def __init__(self) -> None:
        self._phases: list[tuple[State, float, Any]] = []  # state, when it was first seen, its spinner
        self._ended: float | None = None

    def see(self, state: State) -> None:
        import time

        from rich.spinner import Spinner

        now = time.monotonic()
        if not self._phases or self._phases[-1][0] is not state:
            self._phases.append((state, now, Spinner("dots", style=STATE_STYLES[state])))
        if state.done and self._ended is None:
            self._ended = now

    def __rich__(self) -> Any:
        import time

        from rich.table import Table

        grid = Table.grid(padding=(0, 1))
        for index, (state, started, spinner) in enumerate(self._phases):
            current = index == len(self._phases) - 1
            ended = (self._ended or time.monotonic()) if current else self._phases[index + 1][1]
            mark = spinner if current and not state.done else "[green]✓[/]" if not current else "●"
            grid.add_row(mark, styled_state(state), "" if state.done else _clock(ended - started))
        return grid


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def watch_cancellation(records: Iterator[CancellationRecord]) -> CancellationRecord:
    out = console()
    last: CancellationRecord | None = None
    if animated(out):
        from rich.live import Live

        with Live(console=out, auto_refresh=False) as live:
            for record in records:
                last = record
                live.update(cancellation_panel(record), refresh=True)
    else:
        for record in records:
            last = record
        if last is not None:
            print_cancellation(last)
    assert last is not None
    return last


def run_with_progress(work: Callable[[], T], poll: Callable[[], CancellationRecord], *, live: bool) -> T:
    """Run ``work`` (a cancellation); on a terminal, show its steps live from ``poll``.

    ``work`` runs in this, the main, thread, so Ctrl-C reaches the cancellation
    itself (which hands the rest on, see ``cancel.takeover``); Rich's refresh
    thread draws the steps.
    """
    if not live:
        return work()  # --json: not even rich is imported
    out = console()
    if not animated(out):
        return work()
    from rich.live import Live
    from rich.text import Text

    def panel() -> Any:
        try:
            return cancellation_panel(poll())
        except Exception:
            return Text("")  # no record yet

    with Live(console=out, get_renderable=panel, refresh_per_second=10, transient=True):
        return work()
