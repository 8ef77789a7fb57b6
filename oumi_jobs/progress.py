"""How far along a job is: step, total, loss, rate and ETA, read live from the files the job writes.

Nothing here is stored as truth.  A local job's progress is read from its
output dir (Oumi's ``metrics_rank*.jsonl``, one JSON object per logging step,
and ``trainer_state.json``) and from its logs (the trainer's tqdm ``N/M``
bars, and the metrics Python prints as dict lines), which are the fallback
and the only source of a cloud job (its launcher's log stream).

Reading is incremental: a small cache file per job (under ``paths.cache_dir``,
replaced atomically) keeps the offsets read so far and the last values
parsed, so a running job costs only what it wrote since the last look, and a
job read after it ended is never read again (``list`` over thousands of
finished jobs reads one small file each).  The cache is only a cache: losing
it costs a re-read, and a file that was replaced or truncated is read anew.
"""

from __future__ import annotations

import ast
import json
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from oumi_jobs.errors import OumiJobsError, UsageError
from oumi_jobs.paths import Paths, open_private_file
from oumi_jobs.store.registry import JobRecord
from oumi_jobs.timestamps import from_epoch

CACHE_VERSION = 1
# A first look at a big log reads only its end: progress needs the latest lines, not the history.
_FIRST_READ_CAP = 8 * 1024 * 1024
_METRICS_GLOB = re.compile(r"^metrics_rank(\d+)\.jsonl$")
# tqdm's bar: `  40%|████      | 2/5 [00:01<00:01, 2.01it/s]` (or `s/it`, or `?it/s` at first).
_TQDM = re.compile(r"(\d+)/(\d+) \[[\d:]+<[\d:?]+,\s*([\d.]+|\?)\s*(it/s|s/it)")
_BAR_PREFIX = re.compile(r"\s*\d{1,3}%\|[^|]*\|\s*$")
_MAX_DICT_LINE = 8192
_LOSS_KEYS = ("loss", "train_loss", "eval_loss")


@dataclass(frozen=True)
class Progress:
    """A job's progress as read now; each value None where unknown (the JSON ``progress`` object)."""

    step: int | None = None
    total_steps: int | None = None
    fraction: float | None = None  # step / total_steps, 0..1
    epoch: float | None = None
    loss: float | None = None  # the latest training loss logged
    eta_s: float | None = None  # seconds left at the current rate; None when done or unknown
    rate: float | None = None  # steps per second
    source: str | None = None  # "metrics" (the output dir) or "logs" (tqdm and metric lines)
    as_of: str | None = None  # when the newest data read was written


@dataclass(frozen=True)
class MetricSeries:
    """One metric of one job over its steps, and every metric the job has logged."""

    job_id: str
    metric: str
    steps: tuple[float, ...]
    values: tuple[float, ...]
    metrics: tuple[str, ...]
    source: str | None


def _as_dict(progress: Progress | None) -> dict[str, Any] | None:
    """As the cache keeps it: documents.progress_document's very dictionary."""
    return None if progress is None else asdict(progress)


# -- parsing ---------------------------------------------------------------------------
def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer past a float's range
        return None
    return number if number == number and abs(number) != float("inf") else None


def _numeric(entry: Mapping[str, Any], *, text_too: bool = False) -> dict[str, float]:
    """The numeric values of a logged entry (the trainer prints them as text on stdout: ``'loss': '3.153'``)."""
    found = {}
    for key, value in entry.items():
        if text_too and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                continue
        if (number := _number(value)) is not None:
            found[str(key)] = number
    return found


def parse_tqdm(segment: str) -> tuple[int, int, float | None, str] | None:
    """``(n, total, steps per second, description)`` of one tqdm bar, else None."""
    match, start = None, 0
    for found in _TQDM.finditer(segment):  # the last bar of a segment is the current one
        start = match.end() if match is not None else 0
        match = found
    if match is None:
        return None
    n, total = int(match.group(1)), int(match.group(2))
    raw, unit = match.group(3), match.group(4)
    try:
        speed = float(raw)
    except ValueError:  # `?` before the first step, or not a number
        speed = 0.0
    rate = None
    if speed > 0:
        rate = speed if unit == "it/s" else 1.0 / speed
    prefix = _BAR_PREFIX.sub("", segment[start : match.start()]).strip().lstrip("]").strip().rstrip(":").strip()
    return n, total, rate, prefix


def parse_metric_line(line: str) -> dict[str, float] | None:
    """The numeric values of a metrics line Python printed (``{'loss': 2.9, 'epoch': 0.1}``) or JSON, else None."""
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")) or len(text) > _MAX_DICT_LINE:
        return None
    try:
        value = json.loads(text) if '"' in text[:3] else ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):  # TypeError: `{[1]: 2}`
        return None
    if not isinstance(value, dict):
        return None
    numbers = _numeric(value, text_too=True)
    return numbers if any(k in numbers for k in (*_LOSS_KEYS, "learning_rate", "step")) else None


# -- the incremental state of one job ---------------------------------------------------
@dataclass
class _State:
    """What has been read of one job so far (the cache file's content)."""

    # Which job it was read for: a job id can be used again (``--name`` after a prune); its submit time tells.
    submitted: str = ""
    done: bool = False
    config_total: int | None = None
    config_read: bool = False
    files: dict[str, list[int]] = field(default_factory=dict)  # path -> [inode, offset]
    ranks: dict[str, dict[str, float]] = field(default_factory=dict)  # rank -> latest step/loss/epoch/mtime
    trainer: dict[str, float] = field(default_factory=dict)
    bars: dict[str, list[float | None]] = field(default_factory=dict)  # total -> [n, rate, mtime]
    logged: dict[str, float] = field(default_factory=dict)  # latest metric line of the logs
    samples: list[list[float]] = field(default_factory=list)  # [step, mtime]: the first and the latest
    progress: dict[str, Any] | None = None

    @classmethod
    def load(cls, text: bytes) -> _State:
        data = _loads(text)
        if not isinstance(data, dict) or data.pop("v", None) != CACHE_VERSION:
            return cls()
        try:
            return cls(**data)
        except TypeError:
            return cls()

    def dump(self) -> bytes:
        if self.done:  # read after the job ended: never read again, so only the result is kept
            final = {"v": CACHE_VERSION, "submitted": self.submitted, "done": True, "progress": self.progress}
            return json.dumps(final).encode()
        return json.dumps({"v": CACHE_VERSION, **asdict(self)}, separators=(",", ":")).encode()


def _loads(text: bytes) -> Any:
    try:
        import orjson  # several times faster on the thousand small files of a `list`
    except ImportError:
        return json.loads(text)
    return orjson.loads(text)


def _cache_file(paths: Paths, job_id: str) -> Path:
    return paths.cache_dir / "progress" / f"{job_id}.json"


def _load_state(paths: Paths, record: JobRecord) -> tuple[_State, bytes]:
    """What was read of this job before, and the cache file's bytes; nothing where the cache is missing,
    unreadable or of an earlier job of the same id."""
    raw = b""
    try:
        raw = _cache_file(paths, record.job_id).read_bytes()
        state = _State.load(raw)
    except (OSError, ValueError):  # orjson's JSONDecodeError is a ValueError too
        state = _State()
    return (state if state.submitted == record.submit_time else _State(submitted=record.submit_time)), raw


def forget(paths: Paths, job_ids: Iterable[str]) -> None:
    """Remove what was read of these jobs (``prune``: they are gone from the registry)."""
    gone = set(job_ids)
    for job_id in gone:
        try:
            _cache_file(paths, job_id).unlink(missing_ok=True)
        except OSError:
            pass
    index = _final_index(paths)
    kept = [line for line in _index_lines(index) if _index_entry(line)[0] not in gone]
    partial = index.with_name(f".{index.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = open_private_file(partial, os.O_WRONLY)
        with os.fdopen(fd, "wb") as handle:
            handle.write(b"".join(kept))
        os.replace(partial, index)
    except (OSError, OumiJobsError):
        partial.unlink(missing_ok=True)  # a longer index costs only its reading: the per-job files are gone


# The final progress of every job read after it ended, a line each, so that the lean `list --json` reads one
# file for thousands of finished jobs rather than a file each.  Appended to (a line is one write); the per-job
# files stay the source for a job whose line is missing or torn.
FINAL_INDEX = "final.jsonl"


def _final_index(paths: Paths) -> Path:
    return paths.cache_dir / "progress" / FINAL_INDEX


def _index_lines(index: Path) -> list[bytes]:
    try:
        return index.read_bytes().splitlines(keepends=True)
    except OSError:
        return []


def _index_entry(line: bytes) -> tuple[str | None, Any]:
    """``(job id, entry)`` of one index line; ``(None, None)`` for a torn or foreign one."""
    try:
        entry = _loads(line)
    except ValueError:
        return None, None
    return (entry.get("job"), entry) if isinstance(entry, dict) else (None, None)


def _append_final(paths: Paths, job_id: str, state: _State) -> None:
    line = json.dumps({"job": job_id, "submitted": state.submitted, "progress": state.progress}) + "\n"
    try:
        fd = open_private_file(_final_index(paths))
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except (OSError, OumiJobsError):
        pass  # the per-job file still says it


_checked_folders: set[Path] = set()


def _save_state(paths: Paths, job_id: str, state: _State, previous: bytes, *, touch: bool = False) -> None:
    """Keep what was read for next time, replaced atomically (a rename), not synced: losing a cache file to a
    crash costs only a re-read.  A cache that cannot be written costs the same.  Unchanged (a job that
    wrote nothing since ``previous`` was read): not written at all, only its time set anew with ``touch``
    (a cloud job's: when its log was last read, see :func:`cloud_log_age`)."""
    data = state.dump()
    if data == previous and (previous or not touch):
        if touch:
            try:
                os.utime(paths.cache_dir / "progress" / f"{job_id}.json")
            except OSError:
                pass
        return
    folder = paths.cache_dir / "progress"
    partial = folder / f".{job_id}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        if folder not in _checked_folders:
            paths.private_dir(folder)
            _checked_folders.add(folder)
        fd = open_private_file(partial, os.O_WRONLY)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(partial, folder / f"{job_id}.json")
    except (OSError, OumiJobsError):
        partial.unlink(missing_ok=True)
        return
    if state.done:
        _append_final(paths, job_id, state)


def _read_new(state: _State, path: Path, *, cap: int = _FIRST_READ_CAP) -> tuple[str, str, float, bool] | None:
    """What ``path`` got since the last read: its complete lines, the line still being written after them, its
    mtime, and whether it was read anew from its start (replaced or truncated since); None when nothing new.

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
        inode, offset = state.files.get(key, [info.st_ino, 0])
        anew = inode != info.st_ino or info.st_size < offset
        if anew:
            offset = 0
        if offset == 0 and info.st_size > cap:
            offset = info.st_size - cap
        if info.st_size == offset:
            return None
        handle.seek(offset)
        data = handle.read(info.st_size - offset)
    end = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
    state.files[key] = [info.st_ino, offset + end]
    text, rest = (data[:end].decode("utf-8", errors="replace"), data[end:].decode("utf-8", errors="replace"))
    return text, rest, info.st_mtime, anew


def _read_metrics(state: _State, output_dir: Path) -> None:
    """Every rank's metrics file; the latest step, loss and epoch of each rank."""
    try:
        names = [e.name for e in os.scandir(output_dir) if _METRICS_GLOB.match(e.name)]
    except OSError:
        return
    for name in names:
        rank = str(int(_METRICS_GLOB.match(name).group(1)))  # type: ignore[union-attr]
        got = _read_new(state, output_dir / name)
        if got is None:
            continue
        text, _, mtime, anew = got
        if anew:  # a new run wrote the file afresh: what the old one said is gone
            state.ranks.pop(rank, None)
            state.samples = []
        newest: dict[str, float] = {}
        for line in reversed(text.splitlines()):  # newest first: a long file is read back only to its last loss
            if (entry := _json_line(line)) is not None:
                _fill_missing(newest, entry)
                if all(key in newest for key in _LATEST_KEYS):
                    break
        latest = state.ranks.setdefault(rank, {})
        if newest:
            latest.update(newest, mtime=mtime)
        if "step" in latest:
            _sample(state, latest["step"], mtime)


def _json_line(line: str) -> dict[str, float] | None:
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return None  # a torn or foreign line
    return _numeric(value) if isinstance(value, dict) else None


_LATEST_KEYS = ("step", "epoch", "loss")


def _fill_missing(newest: dict[str, float], entry: Mapping[str, float]) -> None:
    """Fold an older entry into the newest values found so far (read newest first): only what is still missing."""
    older: dict[str, float] = {}
    _merge_entry(older, entry)
    for key, value in older.items():
        newest.setdefault(key, value)


def _merge_entry(latest: dict[str, float], entry: Mapping[str, float]) -> None:
    """Fold one logged entry into the latest values: step, epoch, the training loss and the end's rate."""
    step = entry.get("step", entry.get("global_step"))
    if step is not None:
        latest["step"] = step
    for key in ("epoch", "loss", "train_steps_per_second"):
        if key in entry:
            latest[key] = entry[key]


def _sample(state: _State, step: float, mtime: float) -> None:
    """Keep the first and the latest (step, time written) seen, whose slope is the rate."""
    point = [step, mtime]
    if not state.samples:
        state.samples = [point]
    elif point[0] > state.samples[-1][0]:
        state.samples = [state.samples[0], point]


def _read_trainer_state(state: _State, output_dir: Path) -> None:
    """``trainer_state.json``: rewritten whole at each checkpoint and at the end; read when it changed."""
    path = output_dir / "trainer_state.json"
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        return
    if not stat.S_ISREG(info.st_mode) or state.trainer.get("mtime") == info.st_mtime:
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
            _merge_entry(latest, _numeric(entry))
    for key, ours in (("global_step", "step"), ("max_steps", "max_steps"), ("epoch", "epoch")):
        if (value := _number(data.get(key))) is not None:
            latest[ours] = value
    state.trainer = latest


_SEGMENTS = re.compile(r"[\r\n]")
# Read back from a log's end: bars for this many segments past the newest one (evaluation bars come between
# the training bar's redraws), metric lines until the newest of each is found or this many times further.
_BAR_LOOKBACK = 100
_LINE_LOOKBACK = 200


def _read_log_text(state: _State, text: str, mtime: float, *, described_bars: bool) -> None:
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
            _fill_missing(logged, entry)
        if not in_window and (all(k in logged for k in _LATEST_KEYS) or since_bar > _LINE_LOOKBACK * _BAR_LOOKBACK):
            break
    for total, latest in reversed(bars.items()):  # oldest first, so the newest stay when old ones are dropped
        state.bars.pop(total, None)
        state.bars[total] = latest
    while len(state.bars) > 8:  # evaluation bars come and go: keep the latest few
        del state.bars[next(iter(state.bars))]
    if logged:
        state.logged.update(logged, mtime=mtime)


def _read_logs(state: _State, record: JobRecord) -> None:
    for log in (record.stderr_path, record.stdout_path):
        if log and (got := _read_new(state, Path(log))) is not None:
            text, rest, mtime, _ = got
            _read_log_text(state, text + rest, mtime, described_bars=record.command != "train")


def _config_total(state: _State, record: JobRecord) -> None:
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


# -- putting it together -----------------------------------------------------------------
def _output_dir(record: JobRecord) -> Path | None:
    if not record.output_dir:
        return None
    path = Path(record.output_dir).expanduser()
    if not path.is_absolute() and record.workdir:
        path = Path(record.workdir) / path
    return path


def _summary(state: _State, *, done: bool, training: bool) -> Progress | None:
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


def _chosen_bar(state: _State, total: int | None, *, training: bool) -> tuple[int, list[float | None]] | None:
    """Training: the trainer's bar, as long as the known total, else the longest (evaluation bars are shorter).
    Other commands (evaluate, infer): the bar drawn last, whatever its description (what runs now)."""
    if not state.bars:
        return None
    if total is not None and str(total) in state.bars:
        return total, state.bars[str(total)]
    chosen = max(state.bars, key=int) if training else next(reversed(state.bars))
    return int(chosen), state.bars[chosen]


def _rate(
    state: _State, bar: tuple[int, list[float | None]] | None, metrics: Mapping[str, float], *, done: bool
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


def local_progress(paths: Paths, record: JobRecord, *, done: bool) -> Progress | None:
    """A local job's progress; a job already read after it ended is not read again."""
    state, previous = _load_state(paths, record)
    if state.done:
        return Progress(**state.progress) if state.progress else None
    _config_total(state, record)
    output_dir = _output_dir(record)
    if output_dir is not None:
        _read_metrics(state, output_dir)
        _read_trainer_state(state, output_dir)
    _read_logs(state, record)
    progress = _summary(state, done=done, training=record.command == "train")
    state.done, state.progress = done, _as_dict(progress)
    _save_state(paths, record.job_id, state, previous)
    return progress


def cached_documents(
    paths: Paths, jobs: Iterable[tuple[str, str | None]]
) -> dict[str, tuple[bool, dict[str, Any] | None]]:
    """For each ``(job id, submit time)``: ``(final, progress document)`` as last read, final when read after
    the job ended; ``(False, None)`` where not read, or read for an earlier job of that id.

    The lean ``list --json`` asks this of every finished job, so it reads the
    small files directly, without building a state for each.
    """
    folder = os.path.join(paths.cache_dir, "progress")
    try:
        cached = set(os.listdir(folder))  # one read of the folder, not a failed open per job never read
    except OSError:
        cached = set()
    final: dict[str, Any] = {}
    for line in _index_lines(_final_index(paths)) if FINAL_INDEX in cached else ():
        job, entry = _index_entry(line)
        if job is not None:
            final[job] = entry  # the last line of a job wins
    found: dict[str, tuple[bool, dict[str, Any] | None]] = {}
    for job_id, submitted in jobs:
        entry = final.get(job_id)
        if entry is not None and entry.get("submitted") == submitted:
            found[job_id] = (True, entry.get("progress"))
            continue
        if job_id + ".json" not in cached:
            found[job_id] = (False, None)
            continue
        try:
            with open(os.path.join(folder, job_id + ".json"), "rb") as handle:
                data = _loads(handle.read())
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict) and data.get("v") == CACHE_VERSION and data.get("submitted") == submitted:
            found[job_id] = (data.get("done") is True, data.get("progress"))
        else:
            found[job_id] = (False, None)
    return found


def cloud_progress(
    paths: Paths, record: JobRecord, lines: Iterable[str] | None, *, done: bool, budget_s: float
) -> Progress | None:
    """A cloud job's progress from its log stream, read for at most ``budget_s``; None where never read.

    The stream starts at the log's beginning each time: the lines counted last
    time are skipped, not parsed again.  ``lines`` None: only what was read before.
    """
    state, previous = _load_state(paths, record)
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
    state.done, state.progress = done, _as_dict(progress)
    _save_state(paths, record.job_id, state, previous, touch=True)
    return progress


def cloud_log_age(paths: Paths, job_id: str) -> float | None:
    """Seconds since a cloud job's log stream was last read for its progress; None: never."""
    try:
        return max(0.0, time.time() - os.stat(paths.cache_dir / "progress" / f"{job_id}.json").st_mtime)
    except OSError:
        return None


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


# -- series for plots --------------------------------------------------------------------
def read_series(record: JobRecord) -> tuple[dict[str, list[tuple[float, float]]], str | None]:
    """Every metric a local job logged, as (step, value) points, and where they were read: rank 0's metrics
    file or trainer_state.json (``metrics``), else the metric lines of its stdout log (``logs``)."""
    output_dir = _output_dir(record) if record.is_local else None
    entries: list[dict[str, float]] = []
    source = None
    if output_dir is not None:
        entries, source = _metrics_entries(output_dir), "metrics"
    if not entries and record.stdout_path and record.is_local:
        entries, source = _logged_entries(Path(record.stdout_path)), "logs"
    series: dict[str, list[tuple[float, float]]] = {}
    for index, entry in enumerate(entries, 1):
        x = entry.get("step", entry.get("global_step", float(index)))
        for name, value in entry.items():
            if name not in ("step", "global_step"):
                series.setdefault(name, []).append((x, value))
    return series, source if entries else None


def _metrics_entries(output_dir: Path) -> list[dict[str, float]]:
    try:
        ranks = sorted(int(m.group(1)) for e in os.scandir(output_dir) if (m := _METRICS_GLOB.match(e.name)))
    except OSError:
        ranks = []
    if ranks:
        text = _read_text(output_dir / f"metrics_rank{ranks[0]:04}.jsonl")
        return [e for line in text.splitlines() if (e := _json_line(line)) is not None]
    try:
        data = json.loads(_read_text(output_dir / "trainer_state.json") or "{}")
    except (ValueError, RecursionError):
        return []
    history = data.get("log_history") if isinstance(data, dict) else None
    return [_numeric(e) for e in history if isinstance(e, dict)] if isinstance(history, list) else []


def _logged_entries(path: Path) -> list[dict[str, float]]:
    text = _read_text(path)
    return [e for line in text.splitlines() if line.startswith("{") and (e := parse_metric_line(line)) is not None]


def _read_text(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as handle:
        return handle.read().decode("utf-8", errors="replace")


def select_series(
    job_id: str, series: Mapping[str, list[tuple[float, float]]], metric: str, source: str | None = None
) -> MetricSeries:
    """One metric of ``series``; an unknown one is a usage error naming those the job has."""
    if metric not in series:
        have = ", ".join(sorted(series)) or "none yet"
        raise UsageError(f"job {job_id} has no metric {metric!r}; its metrics: {have}")
    points = series[metric]
    return MetricSeries(
        job_id, metric, tuple(x for x, _ in points), tuple(y for _, y in points), tuple(sorted(series)), source
    )
