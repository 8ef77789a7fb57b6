"""A local job's guards, watched by its supervisor: a thread that looks every few seconds and acts.

Only a job whose policy has a guard gets one (:func:`start`).  Each look costs
one progress read, through the cache ``status`` keeps (so a look reads only what
the job wrote since the last one), plus what the stall and NaN guards need that
the progress does not hold, read as cheaply:

* **checkpoint saving**: the newest ``checkpoint-N`` (or ``tmp-checkpoint-N``)
  folder of the job's output folder, its own and its files' modification
  times (a file being written is touched by every write);
* **evaluation**: the tqdm bars other than the training bar, as the progress
  read keeps them in its cache (an evaluation bar that moved);
* **a NaN**: the new lines of the job's own metrics files (Oumi's
  ``metrics_rank*.jsonl``: the trainer logs a NaN step's loss as 0.0 but its
  ``grad_norm`` as NaN, which ``json`` writes as ``NaN``), else the new metric
  lines of its stdout log (``'grad_norm': nan``).

A log that grows while the step stays is not activity by itself (a hung
NCCL collective can print warnings for hours): only the signs above reset the
stall clock.  A guard that fires is recorded once per attempt as a ``guard``
event; ``stop`` then cancels the job through the cancellation service, in a
process of its own (:mod:`oumi_jobs.cancel.by_guard`), and the supervisor
records the guard's failure class; ``retry`` stops it the same way, and the
supervisor's attempt loop starts the next attempt (from its checkpoint) while
attempts are left; ``alert`` only records.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from oumi_jobs import guards, timeline
from oumi_jobs.errors import OumiJobsError
from oumi_jobs.local.detach import python_argv
from oumi_jobs.paths import Paths
from oumi_jobs.policy import JobPolicy
from oumi_jobs.progress import Progress
from oumi_jobs.progress.cache import load_state
from oumi_jobs.progress.parse import METRICS_GLOB
from oumi_jobs.progress.reading import job_output_dir, local_progress
from oumi_jobs.progress.starts import own_lines
from oumi_jobs.store.registry import JobRecord, Registry

# One look this often: a stall is seen within its limit plus this (SPEC: the limit plus 10 s).
LOOK_S = 3.0
GUARD_STOP = "oumi_jobs.cancel.by_guard"
# The guard's cancel waits up to its default timeout for the job, then verifies: it ends well within this.
STOP_TIMEOUT_S = 300.0
_CHECKPOINT = re.compile(r"^(?:tmp-)?checkpoint-(\d+)$")
_READ_CAP = 4 * 1024 * 1024


@dataclass
class _Tail:
    """Offsets read so far in files that only grow (new lines only)."""

    offsets: dict[str, int] = field(default_factory=dict)

    def new_text(self, path: Path, begin: int = 0, stop: int | None = None) -> str:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return ""
        with os.fdopen(fd, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size if stop is None else stop
            offset = max(self.offsets.get(str(path), begin), begin)
            if size - offset > _READ_CAP:
                offset = size - _READ_CAP
            handle.seek(offset)
            data = handle.read(max(0, size - offset))
        end = data.rfind(b"\n") + 1
        self.offsets[str(path)] = offset + end
        return data[:end].decode("utf-8", errors="replace")


def latest_checkpoint_activity(output_dir: Path | None) -> float | None:
    """The newest modification time of the newest checkpoint folder and its entries (None: no checkpoint)."""
    if output_dir is None:
        return None
    try:
        found = [(int(m.group(1)), e.path) for e in os.scandir(output_dir) if (m := _CHECKPOINT.match(e.name))]
    except OSError:
        return None
    if not found:
        return None
    newest = max(found)[1]
    try:
        times = [os.stat(newest).st_mtime]
        times += [e.stat(follow_symlinks=False).st_mtime for e in os.scandir(newest)]
    except OSError:
        return None
    return max(times)


class GuardWatch:
    """The guards of one attempt of one local job; :attr:`stopped` is the guard that stopped it, if any."""

    def __init__(self, paths: Paths, record: JobRecord, policy: JobPolicy, *, attempt: int, started: float) -> None:
        self.paths, self.record, self.policy, self.attempt = paths, record, policy, attempt
        self.guards = guards.AttemptGuards(policy, started, price_per_hour=record.cost_per_hour)
        self.stopped: guards.Firing | None = None
        self._tail = _Tail()
        self._bars: dict[str, float | None] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="oumi-jobs-guards", daemon=True)

    @property
    def retry_requested(self) -> bool:
        """Whether the guard that stopped the job asked for a retry (the attempt loop's to start)."""
        return self.stopped is not None and self.policy.guard_action == "retry"

    def begin(self) -> None:
        self._thread.start()

    def stop_looking(self) -> guards.Firing | None:
        """The job has ended: no look from now on (a cancel under way goes on); the guard that stopped it."""
        self._done.set()
        return self.stopped

    def finish(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """The job ended: stop looking, and let a guard's cancel that is under way end first."""
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._done.wait(LOOK_S):
            try:
                firing = self.look(time.time())
            except Exception as exc:  # whatever a job wrote, the watch goes on: the next look tries again
                print(f"oumi-jobs supervisor: a guard's look failed ({exc!r}); looking again", file=sys.stderr)
                continue
            if firing is not None and self._act(firing):
                return

    def look(self, now: float) -> guards.Firing | None:
        """Read the job once and evaluate its guards (those that fired already are not evaluated again)."""
        record = self.record
        progress = local_progress(self.paths, record, done=False)
        activity = None
        if self.policy.stall_after_s is not None or self.policy.stall_auto:  # only the stall guard asks
            signs = (latest_checkpoint_activity(job_output_dir(record)), self._evaluation_activity(progress))
            activity = max((t for t in signs if t is not None), default=None)
        wanted = self.policy.nan_guard and self.guards.non_finite is None
        return self.guards.look(
            now, progress, activity=activity, non_finite=self._read_non_finite() if wanted else None
        )

    def _evaluation_activity(self, progress: Progress | None) -> float | None:
        """When an evaluation bar (a tqdm bar other than the training one) last moved, as the progress cache
        keeps the bars; None if none moved since the last look."""
        total = progress.total_steps if progress is not None else None
        state, _ = load_state(self.paths, self.record)
        moved = None
        for key, (n, _rate, mtime) in state.bars.items():
            if key != str(total) and self._bars.get(key) != n:
                self._bars[key] = n
                moved = mtime if moved is None or (mtime is not None and mtime > moved) else moved
        return moved

    def _read_non_finite(self) -> str | None:
        """A NaN or infinite loss or gradient norm in what the job logged since the last look."""
        output_dir = job_output_dir(self.record)
        own = own_lines(self.record)
        metrics: list[Path] = []
        if output_dir is not None:
            try:
                metrics = [Path(e.path) for e in os.scandir(output_dir) if METRICS_GLOB.match(e.name)]
            except OSError:
                metrics = []
        for path in metrics:
            try:
                info = os.stat(path)
            except OSError:
                continue
            begin, stop = own.span(path.name, info.st_ino, info.st_size)
            for line in self._tail.new_text(path, begin, stop).splitlines():
                if (found := guards.non_finite_in_metrics_line(line)) is not None:
                    return found
        if not metrics and self.record.stdout_path:
            return guards.non_finite_in_log(self._tail.new_text(Path(self.record.stdout_path)))
        return None

    def _act(self, firing: guards.Firing) -> bool:
        """Record the firing, and stop the job unless the action is ``alert``; True when watching is over."""
        if self._done.is_set():  # it ended while this look ran: nothing to guard any more
            return True
        action = self.policy.guard_action
        detail = {"guard": firing.guard, "observed": firing.observed, "limit": firing.limit, "action": action}
        try:
            with Registry.open(self.paths) as registry:
                now_record = registry.get(self.record.job_id)
                if now_record is None or now_record.cancel_requested:
                    return True  # someone cancels it already: it ends cancelled, as they asked, not by a guard
                timeline.record(registry, self.record.job_id, "guard", attempt=self.attempt, **detail)
        except OumiJobsError as exc:
            print(f"oumi-jobs supervisor: cannot record the {firing.guard} guard ({exc})", file=sys.stderr)
        if action == "alert":
            return False
        self.stopped = firing  # before the cancel: the supervisor reads it when the job has ended
        self._stop(firing)
        return True

    def _stop(self, firing: guards.Firing) -> None:
        argv = python_argv(GUARD_STOP, *self.paths.as_options(), self.record.job_id)
        try:
            subprocess.run(
                argv, env=os.environ | {guards.GUARD_REASON_ENV: firing.reason}, stdin=subprocess.DEVNULL,
                start_new_session=True, timeout=STOP_TIMEOUT_S, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            print(f"oumi-jobs supervisor: the {firing.guard} guard's cancel failed ({exc})", file=sys.stderr)


def ended(watch: GuardWatch | None) -> guards.Firing | None:
    """The job has ended: stop looking (a cancel under way goes on); the guard that stopped it, if any."""
    return None if watch is None else watch.stop_looking()


def finish(watch: GuardWatch | None) -> None:
    """After the exit record: wait for a guard's cancel under way to end (it waits for that record)."""
    if watch is not None:
        watch.finish()


def start(paths: Paths, record: JobRecord, *, attempt: int = 1) -> GuardWatch | None:
    """Start watching a job that has just started, if its policy has a guard (None otherwise)."""
    policy = JobPolicy.decode(record.policy)
    if not policy.guarded:
        return None
    try:
        with Registry.open(paths) as registry:  # as the supervisor recorded it: where its metrics start, its price
            record = registry.get(record.job_id) or record
    except OumiJobsError:
        pass  # a registry refusing reads for now: the record as the supervisor was given it
    watch = GuardWatch(paths, record, policy, attempt=attempt, started=time.time())
    watch.begin()
    return watch
