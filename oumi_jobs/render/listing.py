"""``list --json`` and ``GET /api/jobs``: the lean listing's documents as JSON texts, never decoded again."""

from __future__ import annotations

from oumi_jobs.listing import JobDocuments
from oumi_jobs.render.base import encode_json, job_document
from oumi_jobs.views import JobView


def lean_texts(report: JobDocuments) -> list[str]:
    """The JSON texts of the listing, in order: a view's job document encoded; a finished local job's
    document as the store built it, whole (see :func:`job_document`).  Thousands of such documents are
    joined as texts: decoding and encoding them again would cost more than the rest of the command."""
    return [encode_json(job_document(item)) if isinstance(item, JobView) else item.text for item in report.listed]
