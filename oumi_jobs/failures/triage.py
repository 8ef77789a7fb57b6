"""Triage: why one attempt of a job failed, asked of its sources in order of trust.

1. the kernel's own OOM record: the job's cgroup v2 ``memory.events``
   (``oom_kill``), or its "Killed process PID" line in ``/dev/kmsg`` for one
   of the job's pids (which also names the v1 memory cgroup it was in);
2. the exit signal (a kill from outside) and the supervisor's own words (a
   command that could not start);
3. the launcher's final status (Slurm's, SkyPilot's: :data:`rules.STATUS_RULES`);
4. the tail of the job's logs, matched against :data:`rules.LOG_RULES`
   (Oumi's config validation among them);
5. otherwise ``unknown`` quoting the last error line, or ``exit_code`` with the
   code when the logs hold no error at all.  It never guesses.

Computed once per ended attempt, from facts that exist only then (the cgroup
is removed after), and stored with its exit record; a reader never recomputes
a stored one.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from oumi_jobs.failures.rules import ERROR_LINE, LOG_RULES, NOT_THE_ERROR, status_rule
from oumi_jobs.states import State
from oumi_jobs.store.records import JobRecord

LOG_TAIL_BYTES = 64 * 1024
EVIDENCE_CHARS = 300
WRAPPED_LINES = 3  # the most lines one message is matched across
KMSG_PATH = "/dev/kmsg"
# The signals someone (a person, a scheduler, the kernel) sends to stop a process from outside.
_OUTSIDE_SIGNALS = frozenset({signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT})
_KILLED_PROCESS = re.compile(r"Killed process (\d+) \(")
_OOM_MEMCG = re.compile(r"oom-kill:.*?oom_memcg=([^,]*),.*?\bpid=(\d+)\b")


@dataclass(frozen=True)
class Failure:
    """Why a job failed: one of :data:`rules.CLASSES`, a one-line cause, what to do, and what told us."""

    failure_class: str
    cause: str
    hint: str
    evidence: str | None

    def as_dict(self) -> dict[str, str | None]:
        """The ``failure`` object of the job document (stored as it is, so SQL can project it)."""
        return {"class": self.failure_class, "cause": self.cause, "hint": self.hint, "evidence": self.evidence}


@dataclass(frozen=True)
class Ending:
    """What is known of one attempt when it ended."""

    exit_code: int | None = None
    exit_signal: int | None = None
    detail: str | None = None  # the supervisor's own words, when the command could not start
    pids: tuple[int, ...] = ()  # the job's process first, then its descendants
    cgroup: str | None = None  # the job's own cgroup v2 directory
    log_paths: tuple[str, ...] = ()  # stderr first
    launcher_status: str | None = None
    kmsg_path: str = KMSG_PATH


def encode_failure(failure: Failure | None) -> str | None:
    return None if failure is None else json.dumps(failure.as_dict(), ensure_ascii=False, separators=(",", ":"))


def decode_failure(text: str | None) -> Failure | None:
    if not text:
        return None
    data = json.loads(text)
    return Failure(data["class"], data["cause"], data["hint"], data.get("evidence"))


def triage(ending: Ending) -> Failure:
    """The failure of an attempt that did not succeed: the first source that knows, in order of trust."""
    lines = _log_tail(ending.log_paths)
    return (
        _kernel_oom(ending)
        or _signal_or_start(ending)
        or _launcher_status(ending.launcher_status)
        or _log_rules(lines)
        or _unexplained(ending, lines)
    )


def failure_on_read(record: JobRecord, state: State, status: str | None, detail: str | None) -> Failure | None:
    """A job's failure as a reader shows it: the stored one; for a cloud job, from its launcher's status (its
    logs are not read here); a lost job's loss; None for a job that did not fail (or ended before triage was
    stored: its facts are gone)."""
    if state not in (State.FAILED, State.LOST):
        return None
    if record.failure:
        return decode_failure(record.failure)
    if state is State.LOST:
        cause = "it ended with no exit record, and nothing can tell how"
        return Failure("lost", cause, "retry it; `oumi-jobs logs JOB` may show its last words", detail or status)
    if record.is_local:
        return None
    # A launch that failed has the launcher's own error as its detail: the log rules know some of those words.
    words = detail or status
    return (
        _launcher_status(status)
        or _log_rules([detail] if detail else [])
        or Failure("unknown", "its launcher reports a failure that no rule knows",
                   "read its logs: `oumi-jobs logs JOB`", _clip(words) if words else None)
    )  # fmt: skip


# -- the sources, in order ---------------------------------------------------------------
def _kernel_oom(ending: Ending) -> Failure | None:
    hint = "give the job more memory, or lower its batch size or data loader's workers"
    if ending.cgroup:
        kills = _counter(Path(ending.cgroup) / "memory.events", "oom_kill")
        if kills:
            cause = "the kernel's OOM killer stopped it: its cgroup ran out of memory"
            return Failure("host_oom", cause, hint, f"{ending.cgroup}/memory.events: oom_kill {kills}")
    if ending.exit_signal != signal.SIGKILL and ending.exit_code != 128 + signal.SIGKILL:
        return None  # the OOM killer sends SIGKILL; a shell reports its child's as 137
    found = _kmsg_oom(ending.kmsg_path, set(ending.pids))
    if found is None:
        return None
    line, memcg = found
    where = f" (memory cgroup {memcg})" if memcg and memcg != "/" else ""
    return Failure("host_oom", f"the kernel's OOM killer stopped it{where}", hint, _clip(line))


def _signal_or_start(ending: Ending) -> Failure | None:
    if ending.exit_signal is not None and ending.exit_signal in _OUTSIDE_SIGNALS:
        name = signal.Signals(ending.exit_signal).name
        cause = f"it was killed from outside by {name} (not by oumi-jobs, and not by the kernel's OOM killer)"
        if ending.exit_signal == signal.SIGKILL and not _readable(ending.kmsg_path):
            # Without the kernel's log, an OOM kill and a kill by hand look the same: say so, never guess.
            cause = (
                "it was killed by SIGKILL from outside or by the kernel's OOM killer (the kernel's log is unreadable)"
            )
        hint = "find who sent it (a person, a scheduler, a watchdog); retry it if that was a mistake"
        return Failure("killed", cause, hint, f"signal {ending.exit_signal} ({name})")
    if ending.detail and ending.detail.startswith("cannot start"):
        hint = "check the command: the program must exist and be executable"
        return Failure("config_error", "its command could not be started", hint, _clip(ending.detail))
    return None


def _launcher_status(status: str | None) -> Failure | None:
    rule = status_rule(status)
    return None if rule is None or not status else Failure(rule.failure_class, rule.cause, rule.hint, _clip(status))


def _log_rules(lines: Sequence[str]) -> Failure | None:
    for rule in LOG_RULES:
        for index in reversed(range(len(lines))):
            for text in _wrapped(lines, index):
                if rule.pattern.search(text):
                    return Failure(rule.failure_class, rule.cause, rule.hint, _clip(text))
    return None


def _wrapped(lines: Sequence[str], index: int) -> Iterator[str]:
    """The line, then it joined with the next one, then two: Oumi prints its errors with rich, which wraps them at
    the terminal's width (80 columns in a log file), so one message can span lines."""
    yield lines[index]
    for width in range(2, WRAPPED_LINES + 1):
        if index + width <= len(lines):
            yield " ".join(part.strip() for part in lines[index : index + width])


def _unexplained(ending: Ending, lines: Sequence[str]) -> Failure:
    quote = last_error_line(lines)
    if ending.exit_signal is not None:
        name = _signal_text(ending.exit_signal)
        cause = f"it was killed by {name}, and no rule knows why"
        return Failure("unknown", cause, "read its logs: `oumi-jobs logs JOB`", _clip(quote or f"signal {name}"))
    if quote is not None:
        code = f"exited with code {ending.exit_code}" if ending.exit_code is not None else "ended"
        cause = f"it {code} on an error no rule knows"
        return Failure("unknown", cause, "read its logs: `oumi-jobs logs JOB`", _clip(quote))
    cause = f"it exited with code {ending.exit_code} and logged no error"
    hint = "the code is the program's own: see its documentation, or its logs (`oumi-jobs logs JOB`)"
    return Failure("exit_code", cause, hint, f"exit code {ending.exit_code}")


# -- reading -------------------------------------------------------------------------------
def last_error_line(lines: Sequence[str]) -> str | None:
    """The last line that reports an error (not the ``Traceback`` line that announces one)."""
    for line in reversed(lines):
        if ERROR_LINE.search(line) and not NOT_THE_ERROR.search(line):
            return line.strip()
    return None


def _log_tail(paths: Iterable[str]) -> list[str]:
    """The last lines of each log, the first log's last (stderr last, so that its lines are tried first)."""
    lines: list[str] = []
    for path in reversed(tuple(paths)):
        try:
            with open(path, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(size - LOG_TAIL_BYTES, 0))
                text = handle.read().decode(errors="replace")
        except OSError:
            continue
        # tqdm redraws with carriage returns: each redraw is a line of its own.
        lines.extend(part for part in re.split(r"[\r\n]+", text) if part.strip())
    return lines


def _counter(path: Path, name: str) -> int:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _kmsg_oom(path: str, pids: set[int]) -> tuple[str, str | None] | None:
    """The kernel log's "Killed process PID" line for one of ``pids``, and the memory cgroup it names."""
    if not pids:
        return None
    found: tuple[str, str | None] | None = None
    memcgs: dict[int, str] = {}
    for message in _kmsg_messages(path):
        if (oom := _OOM_MEMCG.search(message)) is not None:
            memcgs[int(oom.group(2))] = oom.group(1)
        killed = _KILLED_PROCESS.search(message)
        if killed is not None and int(killed.group(1)) in pids:
            pid = int(killed.group(1))
            found = (message, memcgs.get(pid))  # the last one: a pid reused since is the newer record
    return found


def _readable(path: str) -> bool:
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    except OSError:
        return False
    return True


def _kmsg_messages(path: str) -> list[str]:
    """Every record the kernel's ring buffer still holds, oldest first ([] where it cannot be read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return []
    messages = []
    try:
        while True:
            try:
                record = os.read(fd, 8192)
            except BlockingIOError:
                break  # read to the end
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    continue  # records overwritten while reading: the next read goes on from the oldest left
                break
            if not record:
                break
            _, _, message = record.decode(errors="replace").partition(";")
            messages.append(message.split("\n", 1)[0])
    finally:
        os.close(fd)
    return messages


def _signal_text(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= EVIDENCE_CHARS else text[: EVIDENCE_CHARS - 1] + "…"
