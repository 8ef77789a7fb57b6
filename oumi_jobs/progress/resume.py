"""Whether a retried training resumed: from its checkpoint folders and its attempts' own metrics lines.

When an attempt after the first starts, its supervisor notes the newest
``checkpoint-N`` folder in the job's output folder (what Oumi's
``try_resume_from_last_checkpoint`` loads).  Once the attempt has logged a
step, its first step says whether it resumed: a resumed attempt logs steps
after its checkpoint's, one from scratch starts again at step 1.  Then:

* ``resumed_from_step``: the checkpoint's step when it resumed, 0 when it
  started from scratch;
* ``first_step``: the first step it logged (its own lines: progress.starts);
* ``redone_steps``: steps trained twice, the last step the attempt before it
  logged minus ``resumed_from_step``, never negative;
* ``warning``: it started from scratch although a checkpoint existed.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from oumi_jobs.progress import starts
from oumi_jobs.progress.reading import job_output_dir
from oumi_jobs.progress.series import own_entries
from oumi_jobs.store.registry import JobRecord

CHECKPOINT = re.compile(r"checkpoint-(\d+)")


def newest_checkpoint(output_dir: Path | None) -> int | None:
    """The step of the newest ``checkpoint-N`` folder in ``output_dir`` (None: none there)."""
    if output_dir is None:
        return None
    try:
        steps = [int(m.group(1)) for e in os.scandir(output_dir) if (m := CHECKPOINT.fullmatch(e.name)) and e.is_dir()]
    except OSError:
        return None
    return max(steps, default=None)


def at_start(record: JobRecord) -> str | None:
    """The resume check of an attempt about to start (JSON text for the ``resume`` column): the checkpoint it
    should resume from; None where there is nothing to check (a first attempt, or not a training)."""
    if record.attempt <= 1 or record.command != "train":
        return None
    return _encode({"checkpoint": newest_checkpoint(job_output_dir(record))})


def attempt_steps(record: JobRecord, attempt: int) -> list[int]:
    """The steps an attempt logged, in order, from its own lines of the metrics files."""
    measured = starts.attempts(record.metrics_start).get(attempt)
    output_dir = job_output_dir(record)
    if not measured or output_dir is None:
        return []
    own = starts.OwnLines(measured.get("start", {}), measured.get("end"))
    steps = (entry.get("step", entry.get("global_step")) for entry in own_entries(output_dir, own))
    return [int(step) for step in steps if step is not None]


def checked(record: JobRecord) -> str | None:
    """The attempt's resume check completed from its first logged step (JSON text), or None while it has
    logged none (or there is nothing to check)."""
    noted: dict[str, Any] = json.loads(record.resume) if record.resume else {}
    if "checkpoint" not in noted or noted.get("first_step") is not None:
        return None
    steps = attempt_steps(record, record.attempt)
    if not steps:
        return None
    first, checkpoint = steps[0], noted["checkpoint"]
    resumed = checkpoint is not None and first > checkpoint
    resumed_from = checkpoint if resumed else 0
    before = attempt_steps(record, record.attempt - 1)
    redone = max(before[-1] - resumed_from, 0) if before else None
    warning = None
    if checkpoint is not None and not resumed:
        warning = f"attempt {record.attempt} started from scratch although checkpoint-{checkpoint} existed"
    return _encode(
        noted | {"resumed_from_step": resumed_from, "first_step": first, "redone_steps": redone, "warning": warning}
    )


def _encode(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))
