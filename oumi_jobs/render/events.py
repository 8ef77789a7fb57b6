"""The documents of a job's timeline (``events JOB``): one object per event, the kind's own keys beside the common ones."""

from __future__ import annotations

from typing import Any

from oumi_jobs.render.base import SCHEMA_VERSION
from oumi_jobs.timeline import Event, Timeline


def event_document(job_id: str, event: Event) -> dict[str, Any]:
    """An event: ``schema_version``, ``event_id`` (null for what is read from the job's records), ``job_id``,
    ``attempt``, ``at``, ``kind``, then its kind's keys (a guard's ``guard``, ``observed``, ``limit``, ``action``)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": event.event_id,
        "job_id": job_id,
        "attempt": event.attempt,
        "at": event.at,
        "kind": event.kind,
        **event.detail,
    }


def timeline_documents(timeline: Timeline) -> list[dict[str, Any]]:
    return [event_document(timeline.job_id, event) for event in timeline.events]
