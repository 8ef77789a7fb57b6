"""Importing the JSON registry of the Oumi job server (oumi-mcp).

That file is a list of objects with ``job_id, command, config_path, cloud,
cluster_name, oumi_job_id, model_name, submit_time, output_dir`` and possibly a
legacy ``status`` key, which is dropped: status is read live, never stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oumi_jobs.errors import UsageError
from oumi_jobs.events import log_event
from oumi_jobs.paths import Paths
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.timestamps import from_iso, to_iso


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


def _record_from_entry(entry: Any) -> JobRecord:
    if not isinstance(entry, dict):
        raise ValueError("entry is not an object")
    job_id = _text(entry, "job_id")
    if not job_id:
        raise ValueError("missing `job_id`")
    if "/" in job_id or job_id in {".", ".."}:
        raise ValueError("`job_id` is not a usable id")
    cloud = _text(entry, "cloud")
    if not cloud:
        raise ValueError("missing `cloud`")
    submit_time = _text(entry, "submit_time")
    if not submit_time:
        raise ValueError("missing `submit_time`")
    try:
        submit_time = to_iso(from_iso(submit_time))
    except ValueError:
        raise ValueError(f"`submit_time` {submit_time!r} is not an ISO 8601 time") from None
    return JobRecord(
        job_id=job_id,
        cloud=cloud,
        submit_time=submit_time,
        command=_text(entry, "command"),
        config_path=_text(entry, "config_path"),
        cluster=_text(entry, "cluster_name"),
        launcher_job_id=_text(entry, "oumi_job_id"),
        model_name=_text(entry, "model_name"),
        output_dir=_text(entry, "output_dir"),
        source="import",
    )


def import_registry(paths: Paths, file: Path) -> ImportResult:
    """Import a legacy JSON registry; idempotent (present ids are left as they are)."""
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
    records: list[JobRecord] = []
    skipped: list[SkippedEntry] = []
    seen: set[str] = set()
    for index, entry in enumerate(data):
        job_id = entry.get("job_id") if isinstance(entry, dict) else None
        try:
            record = _record_from_entry(entry)
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
