"""Cancelling a job on this machine: its graceful signal across its whole process tree, a wait of up to
the cancellation's timeout, SIGKILL for whatever is left, then a re-scan that must find no process of the
job before the cancellation counts as completed (otherwise it fails, naming the survivors).

A job in a cgroup of its own (``local.containment``) is killed through ``cgroup.kill`` as well, which no
fork can race, and counts as gone only when its ``cgroup.procs`` lists no live process."""

from __future__ import annotations

import signal
import time
from collections.abc import Sequence
from pathlib import Path

from oumi_jobs.cancel.recorder import Recorder
from oumi_jobs.local import containment, terminator
from oumi_jobs.polling import Deadline, poll_until
from oumi_jobs.states import State
from oumi_jobs.store.cancellations import CancellationRecord, CancellationStatus, StepStatus
from oumi_jobs.store.registry import JobRecord
from oumi_jobs.timestamps import from_iso
from oumi_jobs.views import view_of

# After SIGKILL the kernel needs a moment to tear processes down.
KILL_GRACE_S = 5.0
# How long a not-yet-started job's supervisor gets to notice the cancel.
START_RACE_S = 10.0
# Signals after which SIGCONT is not sent: SIGKILL needs none, and SIGSTOP/SIGTSTP asked for the opposite.
_NO_CONTINUE = frozenset({signal.SIGKILL, signal.SIGSTOP, signal.SIGTSTP, signal.SIGCONT})
# Process checks are cheap: poll fast, so a cancel returns moments after the job is gone.
POLL_S = 0.02


class _ProcessWatch:
    """The job's processes, found by scanning; remembers every pid it saw (the GPU check asks about those)."""

    def __init__(self, job: JobRecord, recorded: list[tuple[int, float]]) -> None:
        self.job = job
        self.recorded = recorded
        self.seen: set[int] = set()

    def scan(self) -> list[terminator.Proc]:
        found = terminator.find_job_processes(self.job, self.recorded)
        self.seen.update(p.pid for p in found)
        return found

    def until_gone(self, deadline: Deadline) -> list[terminator.Proc]:
        """Wait until no process of the job is left or ``deadline`` passes; returns those left."""
        remaining: list[terminator.Proc] | None = None

        def left() -> list[terminator.Proc]:
            nonlocal remaining
            # Checking the known pids is cheaper than a scan; a scan again once they are gone
            # catches a process the job started meanwhile.
            remaining = self.scan() if remaining is None else (terminator.still_running(remaining) or self.scan())
            return remaining

        return poll_until(deadline, left, POLL_S, until=lambda procs: not procs)


def _started_or_ended(job: JobRecord) -> bool:
    return job.pid is not None or job.has_exit_record or view_of(job).state is State.LOST


def _reaped(job: JobRecord) -> bool:
    # A job waiting for its next attempt with no cancel standing was stopped by its guard's `retry`: the
    # attempt this cancellation ended is over, and the job goes on.
    waiting = job.retry_at is not None and not job.cancel_requested
    return job.has_exit_record or waiting or view_of(job).state is State.LOST


class LocalFlow:
    """The steps of one local job's cancellation, recorded through ``recorder``."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def start(self, sig: signal.Signals, *, detached_finish: bool) -> CancellationRecord:
        """Keep a job that has not started from starting, or send the first signal; then finish, here or in
        a detached finisher (``--no-wait``)."""
        rec = self.recorder
        rec.under_way()
        job = rec.job()
        if job.pid is None:
            job = self._prevent_start()
            if job.pid is None:
                return self._cleanup_and_finish()
        procs = terminator.find_job_processes(job, rec.registry.recorded_processes(job.job_id))
        self._send(signal.SIGKILL if rec.record.force else sig, procs)
        if detached_finish:
            return rec.hand_over_to_finisher()
        return self.finish()

    def resume(self) -> CancellationRecord:
        """Carry on a cancellation whose owner is gone: from its first signal if that was never sent, else
        from the wait (whose deadline still counts from that signal), or at once with SIGKILL if forced."""
        rec = self.recorder
        if not self._sent():
            return self.start(terminator.parse_signal(rec.record.signal), detached_finish=False)
        rec.under_way()
        return self.finish()

    def finish(self) -> CancellationRecord:
        """Wait, escalate, verify, clean up: the part a ``--no-wait`` finisher runs detached."""
        rec = self.recorder
        job = rec.job()
        watch = _ProcessWatch(job, rec.registry.recorded_processes(job.job_id))
        if rec.record.force:
            # A --force that took over a graceful cancellation: SIGKILL now, not after the graceful wait.
            if not self._sent(signal.SIGKILL) and (left := watch.scan()):
                self._send(signal.SIGKILL, left)
        elif self._wait(watch):
            self._send(signal.SIGKILL, watch.scan())
        return self._cleanup_and_finish(self._verify(watch))

    def _sent(self, sig: signal.Signals | None = None) -> bool:
        """Whether a signal step (of ``sig``, or any) is recorded as done."""
        prefix = "signal_kill" if sig == signal.SIGKILL else "signal_"
        return any(s.name.startswith(prefix) and s.status is StepStatus.COMPLETED for s in self.recorder.latest().steps)

    def _prevent_start(self) -> JobRecord:
        """Give the job's supervisor time to see the cancel flag, or the job time to show its pid."""
        with self.recorder.step("prevent_start") as step:
            job = poll_until(START_RACE_S, self.recorder.job, POLL_S, until=_started_or_ended)
            step.detail = (
                "the job had not started; its supervisor will not start it"
                if job.pid is None
                else f"the job started meanwhile (pid {job.pid})"
            )
        return job

    def _send(self, sig: signal.Signals, procs: list[terminator.Proc]) -> terminator.SignalReport:
        name = "signal_kill" if sig == signal.SIGKILL else f"signal_{sig.name.removeprefix('SIG').lower()}"
        with self.recorder.step(name) as step:
            # The whole cgroup first: a process forked after the scan is in it too.
            whole_cgroup = sig == signal.SIGKILL and terminator.kill_cgroup(self.recorder.job())
            report = terminator.signal_processes(procs, sig)
            self.recorder.add_signalled(len(report.signalled))
            parts = [f"{sig.name} to {len(report.signalled)} process(es): {list(report.signalled)}"]
            if sig not in _NO_CONTINUE:
                # As Slurm does: a stopped (SIGSTOP) process acts on its graceful signal only once continued,
                # so without this it would sit out the whole timeout and be killed.
                terminator.signal_processes(procs, signal.SIGCONT)
                parts.append("then SIGCONT")
            if whole_cgroup:
                parts.append("and to the job's cgroup (cgroup.kill)")
            if report.failed:
                parts.append("could not signal " + ", ".join(f"{pid} ({why})" for pid, why in report.failed))
                step.status = StepStatus.FAILED
            step.detail = "; ".join(parts)
        return report

    def _wait(self, watch: _ProcessWatch) -> list[terminator.Proc]:
        """Up to the timeout after the first signal (sent by this process or the one that handed over)."""
        timeout = self.recorder.record.timeout_s
        signalled_at = self._signal_time()
        with self.recorder.step("wait", f"up to {timeout:g} s for the job to exit") as step:
            remaining = watch.until_gone(Deadline.at_wall_time(signalled_at + timeout))
            step.detail = (
                f"{len(remaining)} process(es) still running after {timeout:g} s"
                if remaining
                else f"exited after {time.time() - signalled_at:.2f} s"
            )
        return remaining

    def _signal_time(self) -> float:
        for step in self.recorder.latest().steps:
            if step.name.startswith("signal_") and step.ended_at:
                return from_iso(step.ended_at).timestamp()
        return time.time()

    def _verify(self, watch: _ProcessWatch) -> list[int]:
        with self.recorder.step("verify") as step:
            remaining = watch.until_gone(Deadline.after(KILL_GRACE_S))
            in_cgroup = terminator.cgroup_left(watch.job)
            survivors = {p.pid for p in remaining} | set(in_cgroup) | (terminator.gpu_pids() & watch.seen)
            if survivors:
                step.fail(f"processes still alive: {sorted(survivors)}")
            else:
                checked = "; its cgroup.procs is empty" if watch.job.cgroup else ""
                step.detail = f"no process of the job is left{checked}"
        return sorted(survivors)

    def _cleanup_and_finish(self, survivors: Sequence[int] = ()) -> CancellationRecord:
        rec = self.recorder
        with rec.step("cleanup") as step:
            step.detail = "logs and output dir kept"
            if not survivors:
                # The supervisor writes the exit record once it has reaped the job.
                job = poll_until(KILL_GRACE_S, rec.job, POLL_S, until=_reaped)
                if job.cgroup:  # its supervisor removes it too, unless it was killed
                    containment.remove(Path(job.cgroup))
                if view_of(job).state is State.LOST and self._record_end_for_dead_supervisor(job):
                    step.detail = "its supervisor was gone: the job's end recorded by this cancellation; " + step.detail
        if survivors:
            return rec.finish(CancellationStatus.FAILED, survivors, f"{len(survivors)} process(es) survived")
        return rec.finish(CancellationStatus.COMPLETED)

    def _record_end_for_dead_supervisor(self, job: JobRecord) -> bool:
        """No process of the job is left and its supervisor died (kill -9, OOM) before writing the exit record:
        write it here, so the job reads ``cancelled`` (what happened) rather than ``lost``.  Its exit status is
        unknowable (we are not its parent), and the detail says so."""
        detail = (
            f"ended while cancellation {self.recorder.cancellation_id} ran; its supervisor was gone, "
            "so no exit status was recorded"
        )
        return self.recorder.registry.record_exit(job.job_id, detail=detail)
