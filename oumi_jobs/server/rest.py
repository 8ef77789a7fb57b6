"""The REST API: the command line's services over HTTP, answering with the documents of ``--json``."""

from __future__ import annotations

from fastapi import APIRouter

from oumi_jobs.paths import Paths


def router(paths: Paths) -> APIRouter:
    routes = APIRouter(prefix="/api", tags=["jobs"])
    return routes
