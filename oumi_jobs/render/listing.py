"""``list --json`` and ``GET /api/jobs``: the lean listing's documents as JSON texts, never decoded again."""

from __future__ import annotations

from oumi_jobs.listing import JobDocuments, LeanDocument


def lean_texts(report: JobDocuments) -> list[str]:
    """The JSON texts of the listing, in order: a view's job document encoded; a finished local job's
    document as the store built it, whole (see :func:`job_document`).  Thousands of such documents are
    joined as texts: decoding and encoding them again would cost more than the rest of the command."""
    if all(isinstance(item, LeanDocument) for item in report.listed):
        return [item.text for item in report.listed if isinstance(item, LeanDocument)]
    # lazy import: the job object built from a view (and the views, failures and progress beneath it), only
    # when the listing has a job the store did not build the document of
    from oumi_jobs.render.base import encode_json, job_document

    return [item.text if isinstance(item, LeanDocument) else encode_json(job_document(item)) for item in report.listed]
