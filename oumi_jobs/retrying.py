"""Retries: the next attempt of a job, under its policy or by hand (``retry JOB``).

An attempt keeps the job id.  The jobs row is the current attempt's; when an
attempt is retried, its facts go to the attempts table (``store/attempts.py``)
and the job waits, ``pending`` and saying so, until its next attempt is due.

Who starts the next attempt:

* a local job's supervisor, which outlives each attempt: it decides
  (:func:`not_retried_because`), schedules (:func:`schedule`), waits out the
  delay and starts the next attempt itself.  A supervisor killed meanwhile is
  found by the next reader of the job (``status``, ``wait``, ``logs -f``:
  :func:`take_over`), which starts a new supervisor for the attempt, claimed
  once in the registry;
* a cloud job's next attempt is a new launch through its launching process,
  started by the warm server's watcher (``server/watcher.py``) or by
  ``retry JOB``.

A guard whose action is ``retry`` stops the attempt with a cancel of its own;
that attempt is retried whatever its class while attempts are left, the guard's
cancel not counting as anyone's (``by_guard`` of :func:`not_retried_because`
and :func:`schedule`).

The delay doubles with each attempt (``--retry-delay`` first, then twice
that, and so on), capped at :data:`MAX_RETRY_DELAY_S` or ``--retry-delay``,
whichever is longer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from oumi_jobs import timeline
from oumi_jobs.errors import OumiJobsError
from oumi_jobs.failures import Failure, decode_failure, encode_failure
from oumi_jobs.local import detach
from oumi_jobs.local.procs import identify, is_alive
from oumi_jobs.paths import Paths
from oumi_jobs.policy import JobPolicy
from oumi_jobs.progress import resume
from oumi_jobs.states import State
from oumi_jobs.store.records import AttemptRecord
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.timestamps import from_iso, now, to_iso

MAX_RETRY_DELAY_S = 600.0
BACKOFF = 2.0
# Added to the argv of a retried `oumi train` (unless the user set it): Oumi then loads the newest checkpoint.
RESUME_OPTION = "--training.try_resume_from_last_checkpoint"


def retry_delay_s(policy: JobPolicy, attempt: int) -> float:
    """The wait before the attempt after ``attempt``: the policy's delay, doubled for each attempt since the
    first, capped."""
    grown = policy.retry_delay_s * BACKOFF ** max(attempt - 1, 0)
    return min(grown, max(policy.retry_delay_s, MAX_RETRY_DELAY_S))


def not_retried_because(record: JobRecord, failure: Failure | None, *, by_guard: bool = False) -> str | None:
    """Why the attempt that just ended with ``failure`` is not retried under the job's policy (None: it is).

    ``by_guard``: a guard whose action is ``retry`` stopped it: it is retried whatever its class while attempts
    are left, and the cancel that guard made to stop it is not someone's cancel."""
    policy = JobPolicy.decode(record.policy)
    if failure is None:
        return "it did not fail"
    if record.cancel_requested and not by_guard:
        return "it was cancelled"
    if record.attempt >= policy.max_attempts:
        return f"no retries left (attempt {record.attempt}/{policy.max_attempts})"
    if not by_guard and not policy.retries_on(failure.failure_class):
        return f"{failure.failure_class} is not among the classes retried ({', '.join(policy.retry_on) or 'none'})"
    if repeats_last_failure(record, failure):
        return f"it failed the same way twice ({failure.failure_class}: {failure.evidence}); retrying again would too"
    return None


def repeats_last_failure(record: JobRecord, failure: Failure) -> bool:
    """Whether the attempt before the current one failed with the same class and evidence: a job that fails
    the same way on every attempt stops early."""
    before = decode_failure(record.earlier_attempts[-1].failure) if record.earlier_attempts else None
    return before is not None and (before.failure_class, before.evidence) == (failure.failure_class, failure.evidence)


def log_paths(record: JobRecord, attempt: int) -> tuple[str | None, str | None]:
    """Where attempt ``attempt`` writes its stdout and stderr: attempt 1 as before, each later one beside it."""

    def beside(path: str | None, stream: str) -> str | None:
        return None if path is None else str(Path(path).parent / f"{stream}.{attempt}.log")

    first = record.earlier_attempts[0] if record.earlier_attempts else None
    out = first.stdout_path if first else record.stdout_path
    err = first.stderr_path if first else record.stderr_path
    return (out, err) if attempt == 1 else (beside(out, "stdout"), beside(err, "stderr"))


def ended_attempt(record: JobRecord, state: State, failure: Failure | None, **exit_record: object) -> AttemptRecord:
    """The current attempt as it ended, to keep (``exit_record``: exit_code, exit_signal, end_time, end_detail,
    where the row has none yet)."""
    fields: dict[str, object] = {
        "exit_code": record.exit_code, "exit_signal": record.exit_signal, "end_time": record.end_time,
        "end_detail": record.end_detail,
    } | exit_record  # fmt: skip
    return AttemptRecord(
        attempt=record.attempt, state=state.value, start_time=record.started_at, failure=encode_failure(failure),
        resume=record.resume, stdout_path=record.stdout_path, stderr_path=record.stderr_path,
        cluster=record.cluster, launcher_job_id=record.launcher_job_id, **fields,  # type: ignore[arg-type]
    )  # fmt: skip


def schedule(
    registry: Registry,
    record: JobRecord,
    ended: AttemptRecord,
    failure: Failure | None,
    *,
    delay_s: float,
    by_hand: bool = False,
    by_guard: bool = False,
    claimed_by: tuple[int, float | None] | None = None,
) -> bool:
    """Make the job wait ``delay_s`` for its next attempt, keeping ``ended``; a ``retrying`` event says so.
    False when the job moved on meanwhile (a cancel, an exit record, another attempt).  ``by_guard``: a guard's
    ``retry`` stopped the attempt; its own cancel does not hold the retry back."""
    attempt = ended.attempt + 1
    stdout, stderr = log_paths(record, attempt)
    retry_at = to_iso(now() + timedelta(seconds=delay_s))
    if not registry.next_attempt(
        record.job_id, ended, retry_at=retry_at, stdout_path=stdout, stderr_path=stderr, by_hand=by_hand or by_guard,
        forget_launch=not record.is_local, claimed_by=claimed_by,
    ):  # fmt: skip
        return False
    timeline.record(
        registry, record.job_id, "retrying", attempt=ended.attempt,
        failure_class=failure.failure_class if failure else None, delay_s=round(delay_s, 3),
        next_attempt=attempt, by_hand=by_hand, **({"by_guard": True} if by_guard else {}),
    )  # fmt: skip
    return True


def start_next(paths: Paths, registry: Registry, job_id: str) -> int:
    """Start the process that runs the job's next attempt (a local job's supervisor; a cloud job's launching
    process) and record it as the job's supervisor; its pid."""
    record = registry.get(job_id)
    assert record is not None
    module = detach.SUPERVISOR if record.is_local else detach.CLOUD_LAUNCHER
    try:
        pid = detach.spawn_daemon(paths, module, job_id, dict(os.environ))
    except (OSError, RuntimeError, ValueError) as exc:
        raise OumiJobsError(f"cannot start attempt {record.attempt} of job {job_id}: {exc}") from exc
    identity = identify(pid)
    registry.update(job_id, supervisor_pid=pid, supervisor_start_time=identity.start_time if identity else None)
    if not record.is_local:
        registry.attempt_started(job_id, record.attempt)  # launching now (a supervisor clears it as it starts)
    return pid


def take_over(paths: Paths, ref: str) -> int | None:
    """A local job waiting for its next attempt whose supervisor died (killed between attempts): start a new
    supervisor for that attempt, claimed once whoever else reads the job now; its pid, or None (nothing to do).
    Cheap when there is nothing to take over: one read of the job."""
    with Registry.open(paths) as registry:
        record = registry.resolve(ref)
        if record.retry_at is None or record.has_exit_record or record.pid is not None or not record.is_local:
            return None
        if is_alive(record.supervisor_pid, record.supervisor_start_time, record.boot_id):
            return None
        me = identify(os.getpid())
        claimed = (os.getpid(), me.start_time if me else None)
        if not registry.claim_retry(record.job_id, record.attempt, record.supervisor_pid, claimed):
            return None
        return start_next(paths, registry, record.job_id)


def resume_argv(record: JobRecord) -> tuple[str, ...]:
    """The argv of the job's current attempt: a retried ``oumi train`` resumes from its last checkpoint, unless
    the user said otherwise (on its command line, or ``try_resume_from_last_checkpoint: false`` in its config).
    A job config's ``run:`` script is the user's own: nothing is added there."""
    argv = record.argv
    if record.attempt <= 1 or record.command != "train" or any(a.startswith(RESUME_OPTION) for a in argv):
        return argv
    if _resume_turned_off(record.config_path):
        return argv
    return (*argv, RESUME_OPTION, "true")


def _resume_turned_off(config_path: str | None) -> bool:
    import yaml

    try:
        config = yaml.safe_load(Path(config_path).read_text()) if config_path else None
    except (OSError, yaml.YAMLError):
        return False
    training = config.get("training") if isinstance(config, dict) else None
    return isinstance(training, dict) and training.get("try_resume_from_last_checkpoint") is False


def resume_watch(paths: Paths, job_id: str) -> Callable[[], None]:
    """What the supervisor calls while an attempt runs (and once as it ends): completes the attempt's resume
    check from its first logged step, once, and records a ``resume_warning`` event if it started from scratch
    although a checkpoint existed."""
    finished = False

    def look() -> None:
        nonlocal finished
        if finished:
            return
        with Registry.open(paths) as registry:
            record = registry.get(job_id)
            text = resume.checked(record) if record is not None and record.resume else None
            finished = record is None or not record.resume or text is not None
            if record is None or text is None:
                return
            registry.update(job_id, resume=text)
            noted = json.loads(text)
            if noted.get("warning"):
                timeline.record(
                    registry, job_id, "resume_warning", attempt=record.attempt, checkpoint=noted.get("checkpoint"),
                    first_step=noted.get("first_step"), warning=noted["warning"],
                )  # fmt: skip

    return look


def when_due(record: JobRecord) -> float:
    """Seconds until the job's next attempt is due (0: now)."""
    if record.retry_at is None:
        return 0.0
    return max((from_iso(record.retry_at) - now()).total_seconds(), 0.0)


__all__ = [
    "MAX_RETRY_DELAY_S",
    "RESUME_OPTION",
    "ended_attempt",
    "log_paths",
    "not_retried_because",
    "repeats_last_failure",
    "resume_argv",
    "resume_watch",
    "retry_delay_s",
    "schedule",
    "start_next",
    "take_over",
    "when_due",
]
