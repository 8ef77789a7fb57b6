"""Reading a job's progress incrementally: a local job's files, a cloud job's log stream, summed up as a Progress.

A local job's progress is read from its output dir (Oumi's
``metrics_rank*.jsonl``, one JSON object per logging step, and
``trainer_state.json``; only what the job itself wrote there, see
:mod:`oumi_jobs.progress.starts`) and from its logs (the trainer's tqdm
``N/M`` bars, and the metrics Python prints as dict lines), which are the fallback and the
only source of a cloud job (its launcher's log stream).  What was read is
kept in :mod:`oumi_jobs.progress.cache`; a local job's progress read after it ended is kept in the registry
too (its ``final_progress``), from which the lean listing projects it.
"""

from __future__ import annotations

import json
import os
import re
import stat
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from oumi_jobs.errors import OumiJobsError
from oumi_jobs.paths import Paths
from oumi_jobs.progress import Progress
from oumi_jobs.progress.cache import JobState, as_dict, load_state, save_state
from oumi_jobs.progress.parse import (
    LATEST_KEYS,
    METRICS_GLOB,
    as_number,
    fill_missing,
    json_line,
    merge_entry,
    numeric,
    parse_metric_line,
    parse_tqdm,
)
from oumi_jobs.progress.starts import TRAINER_STATE, OwnLines, own_lines
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.timestamps import from_epoch

# A first look at a big log reads only its end: progress needs the latest lines, not the history.
_FIRST_READ_CAP = 8 * 1024 * 1024


def _read_new(
    state: JobState, path: Path, *, own: OwnLines | None = None, cap: int = _FIRST_READ_CAP
) -> tuple[str, str, float, bool] | None:
    """What ``path`` got since the last read: its complete lines, the line still being written after them, its
    mtime, and whether it was read anew from its start (replaced or truncated since); None when nothing new.
    Only the job's ``own`` lines in it are read (those before are an earlier run's, those after a later one's).

    Only the complete lines are consumed: the line being written is read again
    next time (tqdm redraws its bar as ``\r`` and the bar, so its latest bar is
    always that line).  Never through a symbolic link; the job's files are only
    read.
    """
    key = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        inode, offset = state.files.get(key, [info.st_ino, -1])
        anew = inode != info.st_ino or info.st_size < offset
        begin, size = own.span(path.name, info.st_ino, info.st_size) if own else (0, info.st_size)
        if anew or offset < 0:
            offset = begin
        if offset == begin and size - begin > cap:
            offset = size - cap
        if size <= offset:
            return None
        handle.seek(offset)
        data = handle.read(size - offset)
    end = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
    state.files[key] = [info.st_ino, offset + end]
    text, rest = (data[:end].decode("utf-8", errors="replace"), data[end:].decode("utf-8", errors="replace"))
    return text, rest, info.st_mtime, anew


def _read_metrics(state: JobState, output_dir: Path, own: OwnLines) -> None:
    """Every rank's metrics file, the job's own lines in it; the latest step, loss and epoch of each rank."""
    try:
        names = [e.name for e in os.scandir(output_dir) if METRICS_GLOB.match(e.name)]
    except OSError:
        return
    for name in names:
        rank = str(int(METRICS_GLOB.match(name).group(1)))  # type: ignore[union-attr]
        got = _read_new(state, output_dir / name, own=own)
        if got is None:
            continue
        text, _, mtime, anew = got
        if anew:  # a new run wrote the file afresh: what the old one said is gone
            state.ranks.pop(rank, None)
            state.samples = []
        newest: dict[str, float] = {}
        for line in reversed(text.splitlines()):  # newest first: a long file is read back only to its last loss
            if (entry := json_line(line)) is not None:
                fill_missing(newest, entry)
                if all(key in newest for key in LATEST_KEYS):
                    break
        latest = state.ranks.setdefault(rank, {})
        if newest:
            latest.update(newest, mtime=mtime)
        if "step" in latest:
            _sample(state, latest["step"], mtime)


def _sample(state: JobState, step: float, mtime: float) -> None:
    """Keep the first and the latest (step, time written) seen, whose slope is the rate."""
    point = [step, mtime]
    if not state.samples:
        state.samples = [point]
    elif point[0] > state.samples[-1][0]:
        state.samples = [state.samples[0], point]


def _read_trainer_state(state: JobState, output_dir: Path, own: OwnLines) -> None:
    """``trainer_state.json``: rewritten whole at each checkpoint and at the end; read when it changed, and
    only as the job wrote it (not as an earlier run left it, nor as a later one rewrote it)."""
    path = output_dir / TRAINER_STATE
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        return
    if not stat.S_ISREG(info.st_mode) or state.trainer.get("mtime") == info.st_mtime:
        return
    if not own.rewritten_by_it(TRAINER_STATE, info):
        return
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return  # being rewritten: read next time
    if not isinstance(data, dict):
        return
    latest: dict[str, float] = {"mtime": info.st_mtime}
    history = data.get("log_history")
    for entry in history if isinstance(history, list) else []:
        if isinstance(entry, dict):
            merge_entry(latest, numeric(entry))
    for key, ours in (("global_step", "step"), ("max_steps", "max_steps"), ("epoch", "epoch")):
        if (value := as_number(data.get(key))) is not None:
            latest[ours] = value
    state.trainer = latest


_SEGMENTS = re.compile(r"[\r\n]")


# Read back from a log's end: bars for this many segments past the newest one (evaluation bars come between
# the training bar's redraws), metric lines until the newest of each is found or this many times further.
_BAR_LOOKBACK = 100


_LINE_LOOKBACK = 200


def _read_log_text(state: JobState, text: str, mtime: float, *, described_bars: bool) -> None:
    """tqdm bars and metric lines of a piece of log, read newest first: only each bar's latest state and each
    metric's latest value are kept, so a long log is read back only as far as those are found."""
    bars: dict[str, list[float | None]] = {}  # newest first
    logged: dict[str, float] = {}
    since_bar = 0
    for segment in reversed(_SEGMENTS.split(text)):
        since_bar += 1 if bars else 0
        in_window = since_bar <= _BAR_LOOKBACK
        if in_window and ("it/s" in segment or "s/it" in segment):
            bar = parse_tqdm(segment)
            if bar is not None and (described_bars or not bar[3]):
                bars.setdefault(str(bar[1]), [bar[0], bar[2], mtime])
        elif segment.startswith("{") and (entry := parse_metric_line(segment)) is not None:
            fill_missing(logged, entry)
        if not in_window and (all(k in logged for k in LATEST_KEYS) or since_bar > _LINE_LOOKBACK * _BAR_LOOKBACK):
            break
    for total, latest in reversed(bars.items()):  # oldest first, so the newest stay when old ones are dropped
        state.bars.pop(total, None)
        state.bars[total] = latest
    while len(state.bars) > 8:  # evaluation bars come and go: keep the latest few
        del state.bars[next(iter(state.bars))]
    if logged:
        state.logged.update(logged, mtime=mtime)


def _read_logs(state: JobState, record: JobRecord) -> None:
    for log in (record.stderr_path, record.stdout_path):
        if log and (got := _read_new(state, Path(log))) is not None:
            text, rest, mtime, _ = got
            _read_log_text(state, text + rest, mtime, described_bars=record.command != "train")


def _config_total(state: JobState, record: JobRecord) -> None:
    """``training.max_steps`` of a task config, read once (a positive number: the total)."""
    if state.config_read:
        return
    state.config_read = True
    if record.command != "train" or not record.config_path:
        return
    try:
        import yaml

        data = yaml.safe_load(Path(record.config_path).read_text(encoding="utf-8"))
    except Exception:  # a config edited or removed since: the total comes from elsewhere
        return
    training = data.get("training") if isinstance(data, dict) else None
    steps = training.get("max_steps") if isinstance(training, dict) else None
    if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0:
        state.config_total = steps


def job_output_dir(record: JobRecord) -> Path | None:
    if not record.output_dir:
        return None
    path = Path(record.output_dir).expanduser()
    if not path.is_absolute() and record.workdir:
        path = Path(record.workdir) / path
    return path


def _summary(state: JobState, *, done: bool, training: bool) -> Progress | None:
    """The progress the state tells: rank 0's metrics first, then trainer_state.json, then the logs."""
    rank = state.ranks[min(state.ranks, key=int)] if state.ranks else {}
    metrics = rank or state.trainer
    total = state.config_total or _int(state.trainer.get("max_steps"))
    bar = _chosen_bar(state, total, training=training)
    if total is None and bar is not None:
        total = int(bar[0])
    steps = [v for v in (rank.get("step"), state.trainer.get("step"), state.logged.get("step")) if v is not None]
    if bar is not None and (not steps or total == bar[0]):
        steps.append(bar[1][0] or 0)
    if not steps and not metrics and not state.logged:
        return None
    step = _int(max(steps)) if steps else None
    source = "metrics" if metrics else "logs"
    loss = next((m["loss"] for m in (rank, state.trainer, state.logged) if "loss" in m), None)
    epoch = next((m["epoch"] for m in (rank, state.trainer, state.logged) if "epoch" in m), None)
    rate = _rate(state, bar, metrics, done=done)
    fraction = min(1.0, max(0.0, step / total)) if step is not None and total else None
    eta = None
    if not done and rate and step is not None and total is not None:
        eta = round(max(0, total - step) / rate, 1)
    mtimes = [m.get("mtime") for m in (rank, state.trainer, state.logged)] + [bar[1][2] if bar else None]
    newest = max((t for t in mtimes if t is not None), default=None)
    return Progress(
        step=step, total_steps=total, fraction=None if fraction is None else round(fraction, 4), epoch=epoch,
        loss=loss, eta_s=eta, rate=None if rate is None else round(rate, 4), source=source,
        as_of=from_epoch(newest) if newest is not None else None,
    )  # fmt: skip


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _chosen_bar(state: JobState, total: int | None, *, training: bool) -> tuple[int, list[float | None]] | None:
    """Training: the trainer's bar, as long as the known total, else the longest (evaluation bars are shorter).
    Other commands (evaluate, infer): the bar drawn last, whatever its description (what runs now)."""
    if not state.bars:
        return None
    if total is not None and str(total) in state.bars:
        return total, state.bars[str(total)]
    chosen = max(state.bars, key=int) if training else next(reversed(state.bars))
    return int(chosen), state.bars[chosen]


def _rate(
    state: JobState, bar: tuple[int, list[float | None]] | None, metrics: Mapping[str, float], *, done: bool
) -> float | None:
    """Steps per second: the trainer's own figure at the end, tqdm's while running, else the files' pace."""
    if "train_steps_per_second" in metrics and done:
        return metrics["train_steps_per_second"]
    if bar is not None and bar[1][1]:
        return bar[1][1]
    if len(state.samples) == 2:
        (s0, t0), (s1, t1) = state.samples
        if t1 > t0 and s1 > s0:
            return (s1 - s0) / (t1 - t0)
    return metrics.get("train_steps_per_second")


def local_progress(paths: Paths, record: JobRecord, *, done: bool, keep: bool = True) -> Progress | None:
    """A local job's progress; a job already read after it ended is not read again.  Read for the first time
    since it ended, it is kept in the registry too (:func:`keep_final`), unless ``keep`` is False: the caller
    keeps a batch of them itself."""
    state, previous = load_state(paths, record)
    if state.done:
        return Progress(**state.progress) if state.progress else None
    _config_total(state, record)
    output_dir = job_output_dir(record)
    if output_dir is not None:
        own = own_lines(record)
        _read_metrics(state, output_dir, own)
        _read_trainer_state(state, output_dir, own)
    _read_logs(state, record)
    progress = _summary(state, done=done, training=record.command == "train")
    state.done, state.progress = done, as_dict(progress)
    save_state(paths, record.job_id, state, previous)
    if done and keep:
        keep_final(paths, [(record, progress)])
    return progress


def final_text(record: JobRecord, progress: Progress | None) -> tuple[str, str, str]:
    """What the registry keeps of a finished job's progress: ``(job id, submit time, progress as JSON)``."""
    return record.job_id, record.submit_time, json.dumps(as_dict(progress), separators=(",", ":"))


def keep_final(paths: Paths, finals: Sequence[tuple[JobRecord, Progress | None]]) -> None:
    """Keep finished local jobs' progress in the registry, in one transaction.  Like the cache, only a
    shortcut: a registry that cannot be written (another user's, a full disk) costs a re-read next time."""
    try:
        with Registry.open(paths) as registry:
            registry.keep_final_progress([final_text(record, progress) for record, progress in finals])
    except OumiJobsError:
        pass


def cloud_progress(
    paths: Paths, record: JobRecord, lines: Iterable[str] | None, *, done: bool, budget_s: float
) -> Progress | None:
    """A cloud job's progress from its log stream, read for at most ``budget_s``; None where never read.

    The stream starts at the log's beginning each time: the lines counted last
    time are skipped, not parsed again.  ``lines`` None: only what was read before.
    """
    state, previous = load_state(paths, record)
    if lines is None or state.done:
        return Progress(**state.progress) if state.progress else None
    _config_total(state, record)
    key = "stream"
    seen = state.files.get(key, [0, 0])[1]
    read = _read_stream(lines, budget_s)
    fresh = read[seen:] if len(read) >= seen else read
    state.files[key] = [0, len(read)]
    _read_log_text(state, "".join(fresh), time.time(), described_bars=record.command != "train")
    progress = _summary(state, done=done, training=record.command == "train")
    state.done, state.progress = done, as_dict(progress)
    save_state(paths, record.job_id, state, previous, touch=True)
    return progress


# A followed log gives what the job wrote at once, then blocks until it writes more: reading stops once the
# stream has been quiet this long (longer for its first line: the cluster has to open it), or at the budget.
FIRST_LINE_S = 1.0


QUIET_S = 0.3


def _read_stream(lines: Iterable[str], budget_s: float) -> list[str]:
    """The lines a stream gives before it goes quiet, within ``budget_s``."""
    read: list[str] = []
    finished = threading.Event()

    def drain() -> None:
        try:
            for line in lines:
                read.append(line)
        except Exception:
            pass  # a broken stream: what came so far is what there is
        finally:
            finished.set()

    threading.Thread(target=drain, name="oumi-jobs-progress-log", daemon=True).start()
    started = last_change = time.monotonic()
    count = 0
    while not finished.wait(0.05):
        now = time.monotonic()
        if len(read) != count:
            count, last_change = len(read), now
        quiet = QUIET_S if count else FIRST_LINE_S
        if now - started >= budget_s or now - last_change >= quiet:
            break
    return list(read)
