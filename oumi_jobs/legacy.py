"""Importing the JSON registry of oumi-jobs' predecessors: a list of job objects, in two shapes.

* **The Oumi job server** (the seeds): ``job_id, command, config_path, cloud,
  cluster_name, oumi_job_id, model_name, submit_time, output_dir``.  ``job_id``
  is the server's own id; ``oumi_job_id`` is the launcher's id of a cloud job.
* **oumi.mcp** (it ships in oumi 0.9, ``oumi/mcp/job_registry.py``; the file is
  ``~/.oumi/mcp/oumi-jobs.json``): no ``oumi_job_id``, and a ``log_dir``.  A
  cloud job's ``job_id`` *is* the launcher's id, replaced once ``launcher.up``
  returned; before that (or when the launch failed) it is the MCP's own
  ``{command}_{YYYYMMDD_HHMMSS}_{6 hex}``.  Launcher ids are numbered per
  cluster, so two clusters may both have a job ``1``: our id for such a job is
  made from its cloud, cluster and launcher id.  A local job's logs are the
  newest ``*_{job_id}.stdout``/``.stderr`` in its ``log_dir`` (oumi.mcp records
  it once the job ended; before, they are in ``job-logs/{job_id}`` beside the file).

Either may carry a legacy ``status`` key, which is dropped: status is read
live, never stored.  Importing again imports nothing twice (by id, and by
cloud identity for cloud jobs).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oumi_jobs.errors import UsageError
from oumi_jobs.events import log_event
from oumi_jobs.ids import slugify
from oumi_jobs.paths import Paths
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.timestamps import from_iso, to_iso

# oumi.mcp's make_job_id(): the id a cloud job has until launcher.up returns its launcher id.
_MCP_OWN_ID = re.compile(r"^[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*_\d{8}_\d{6}_[0-9a-f]{6}$")
# Where oumi.mcp keeps a local job's logs (oumi.mcp.constants.JOB_LOGS_DIR), beside its registry file.
_MCP_LOGS_FOLDER = "job-logs"


@dataclass(frozen=True)
class SkippedEntry:
    index: int
    job_id: str | None
    reason: str


@dataclass(frozen=True)
class ImportResult:
    imported: list[str]
    already_present: list[str]
    skipped: list[SkippedEntry]


def _text(entry: dict[str, Any], key: str) -> str | None:
    value = entry.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, (str, int)):
        raise ValueError(f"`{key}` must be a string")
    return str(value)


def _usable_id(job_id: str) -> bool:
    # Job ids name log folders and supervisor files: never a path.
    return "/" not in job_id and job_id not in {".", ".."}


def _submit_time(entry: dict[str, Any]) -> str:
    submit_time = _text(entry, "submit_time")
    if not submit_time:
        raise ValueError("missing `submit_time`")
    try:
        return to_iso(from_iso(submit_time))
    except ValueError:
        raise ValueError(f"`submit_time` {submit_time!r} is not an ISO 8601 time") from None


def cloud_job_id(cloud: str, cluster: str | None, launcher_job_id: str) -> str:
    """Our id for a cloud job oumi.mcp knew by its launcher id only: unique per cloud and cluster.

    A hash of the identity is added when making it safe as a file name changed
    it, so that two identities that slugify alike (``me@hpc`` and ``me-hpc``)
    still get two ids.
    """
    joined = "-".join(part for part in (cloud, cluster, launcher_job_id) if part)
    slug = slugify(joined)
    if slug == joined:
        return slug
    digest = hashlib.sha1("\0".join((cloud, cluster or "", launcher_job_id)).encode()).hexdigest()[:6]
    return f"{slug}-{digest}"


def _mcp_log_paths(entry: dict[str, Any], job_id: str, registry_file: Path) -> tuple[str | None, str | None]:
    """A local oumi.mcp job's log files, found as oumi.mcp's own get_log_paths() finds them."""
    recorded = _text(entry, "log_dir")
    folder = Path(recorded).expanduser() if recorded else registry_file.parent / _MCP_LOGS_FOLDER / job_id
    if not folder.is_dir():
        return None, None
    found: list[str | None] = []
    for suffix in ("stdout", "stderr"):
        matches = sorted(folder.glob(f"*_{job_id}.{suffix}")) or sorted(folder.glob(f"*.{suffix}"))
        found.append(str(matches[-1]) if matches else None)
    return found[0], found[1]


def _record_from_entry(entry: Any, registry_file: Path) -> JobRecord:
    if not isinstance(entry, dict):
        raise ValueError("entry is not an object")
    job_id = _text(entry, "job_id")
    if not job_id:
        raise ValueError("missing `job_id`")
    cloud = _text(entry, "cloud")
    if not cloud:
        raise ValueError("missing `cloud`")
    fields: dict[str, Any] = dict(
        cloud=cloud, submit_time=_submit_time(entry), command=_text(entry, "command"),
        config_path=_text(entry, "config_path"), cluster=_text(entry, "cluster_name"),
        model_name=_text(entry, "model_name"), output_dir=_text(entry, "output_dir"), source="import",
    )  # fmt: skip
    if "oumi_job_id" in entry:  # the job server's shape: its job_id is ours, oumi_job_id the launcher's
        launcher_job_id = _text(entry, "oumi_job_id")
    elif cloud != "local" and not _MCP_OWN_ID.match(job_id):  # oumi.mcp's cloud job: job_id is the launcher's
        launcher_job_id = job_id
        job_id = cloud_job_id(cloud, fields["cluster"], launcher_job_id)
    else:  # oumi.mcp's local job, or a cloud job whose launch never returned a launcher id
        launcher_job_id = None
        if cloud == "local":
            fields["stdout_path"], fields["stderr_path"] = _mcp_log_paths(entry, job_id, registry_file)
    if not _usable_id(job_id):
        raise ValueError("`job_id` is not a usable id")
    return JobRecord(job_id=job_id, launcher_job_id=launcher_job_id, **fields)


def _read_entries(file: Path) -> list[Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"registry file not found: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {file}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise UsageError(f"{file} is not valid JSON: {exc.msg} (line {exc.lineno})") from exc
    if isinstance(data, dict) and isinstance(data.get("jobs"), list):
        data = data["jobs"]
    if not isinstance(data, list):
        raise UsageError(f"{file} is not a job-server registry (expected a JSON list of jobs)")
    return data


def import_registry(paths: Paths, file: Path) -> ImportResult:
    """Import a legacy JSON registry; idempotent (present ids are left as they are)."""
    records: list[JobRecord] = []
    skipped: list[SkippedEntry] = []
    seen: set[str] = set()
    for index, entry in enumerate(_read_entries(file)):
        job_id = entry.get("job_id") if isinstance(entry, dict) else None
        try:
            record = _record_from_entry(entry, file)
        except ValueError as exc:
            skipped.append(SkippedEntry(index, job_id if isinstance(job_id, str) else None, str(exc)))
            continue
        if record.job_id in seen:
            skipped.append(SkippedEntry(index, record.job_id, "duplicate `job_id` in the file"))
            continue
        seen.add(record.job_id)
        records.append(record)
    with Registry.open(paths) as registry:
        inserted = registry.add_many_if_absent(records)
    present = [r.job_id for r in records if r.job_id not in set(inserted)]
    log_event(paths, "import", file=str(file), imported=len(inserted), present=len(present), skipped=len(skipped))
    return ImportResult(inserted, present, skipped)
