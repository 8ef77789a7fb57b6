"""``list --json`` and ``GET /api/jobs``: the lean listing's documents as JSON texts, never decoded again."""

from __future__ import annotations

from oumi_jobs.listing import JobDocuments
from oumi_jobs.render.base import encode_json, job_document
from oumi_jobs.views import JobView


def lean_texts(report: JobDocuments) -> list[str]:
    """The JSON texts of the listing, in order: a view's job document encoded; a finished local job's document,
    which the store built as JSON text without its last key, ``progress`` (see :func:`job_document`), closed
    with the progress object the cache keeps (:func:`~oumi_jobs.render.base.progress_document`'s very
    dictionary).  Thousands of such documents are joined as texts: decoding and encoding them again would
    cost more than the rest of the command."""
    texts = []
    for item in report.listed:
        if isinstance(item, JobView):
            texts.append(encode_json(job_document(item)))
        else:
            job_id, document = item
            texts.append(document[:-1] + ',"progress":' + encode_json(report.progress.get(job_id)) + "}")
    return texts
