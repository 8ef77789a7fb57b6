"""The REST API of sweeps: the sweep commands over HTTP, answering with the documents of ``--json``.

``GET /api/sweeps`` (``sweeps``), ``GET /api/sweeps/{sweep}`` (``status SWEEP``),
``POST /api/sweeps`` (``sweep``) and ``POST /api/sweeps/{sweep}/cancel``
(``cancel SWEEP``).  As in :mod:`oumi_jobs.server.rest`: one call into the
core each, the document :mod:`oumi_jobs.render.sweeps` builds, errors
mapped in :mod:`oumi_jobs.server.http_errors`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Body
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel, Field

from oumi_jobs.cancel.service import CancelOptions
from oumi_jobs.errors import UsageError
from oumi_jobs.exits import sweep_cancel_exit_code
from oumi_jobs.paths import Paths
from oumi_jobs.render.sweeps import (
    sweep_cancel_document,
    sweep_document,
    sweep_document_text,
    sweep_summary_document,
)
from oumi_jobs.server.rest import EXIT_CODE_HEADER, JSON, URL_TEXT, document, policy_of
from oumi_jobs.server.schemas import (
    NOT_BLANK,
    CancelBody,
    CancellationDocument,
    JobDocument,
    JobState,
    SubmitBody,
    errors,
)
from oumi_jobs.submitting import SubmitRequest
from oumi_jobs.sweeps import service
from oumi_jobs.sweeps.expand import MAX_CHILDREN

_TEXT = 4096
SweepRef = Annotated[
    str, PathParam(pattern=NOT_BLANK, max_length=URL_TEXT, description="A sweep id (sw-...), or a unique prefix.")
]


class SweepBody(SubmitBody):
    """``oumi-jobs sweep``'s argument and options: ``submit``'s, and the values of the children."""

    sets: list[str] = Field(default_factory=list, max_length=64, description="PATH=V1,V2,... (`--set`), each.")
    zip: bool = Field(default=False, description="Pair the `sets` lists position by position (`--zip`).")
    values: str | None = Field(
        default=None, max_length=_TEXT, description="A YAML/JSON file of {path: value} mappings (`--values`)."
    )


class SweepSummaryDocument(BaseModel):
    """A sweep in ``sweeps --json``: its counts by state, without its children."""

    schema_version: int
    sweep_id: str
    name: str
    config_path: str
    cloud: str
    cluster: str | None
    size: int = Field(ge=1, le=MAX_CHILDREN)
    parallel: int
    submit_time: str
    counts: dict[JobState, int] = Field(description="How many children are in each state.")
    done: bool


class SweepDocument(SweepSummaryDocument):
    """A sweep, as ``status SWEEP --json`` prints it: each child's job document, in order."""

    children: list[JobDocument]


class SweepCancelDocument(BaseModel):
    """``cancel SWEEP --json``: the children ended before they started, and each other child's cancellation."""

    schema_version: int
    sweep_id: str
    cancelled_before_start: list[str]
    cancellations: list[CancellationDocument]


def router(paths: Paths) -> APIRouter:
    routes = APIRouter(prefix="/api")
    _read_routes(routes, paths)
    _write_routes(routes, paths)
    return routes


def _read_routes(routes: APIRouter, paths: Paths) -> None:
    @routes.get(
        "/sweeps", tags=["sweeps"], summary="List sweeps", response_model=list[SweepSummaryDocument],
        responses=errors(409), description="`oumi-jobs sweeps --json`: every sweep, newest first, with its counts.",
    )  # fmt: skip
    def list_sweeps() -> Response:
        return document([sweep_summary_document(s) for s in service.list_sweeps(paths)])

    @routes.get(
        "/sweeps/{sweep}", tags=["sweeps"], summary="A sweep's live status", response_model=SweepDocument,
        responses=errors(400, 404, 409, 422, 503, 504),
        description="`oumi-jobs status SWEEP --json`: the counts by state, and every child's job document.",
    )  # fmt: skip
    def get_sweep(sweep: SweepRef) -> Response:
        return Response(sweep_document_text(service.sweep_documents(paths, sweep)), media_type=JSON)


def sweep_request(body: SweepBody) -> service.SweepRequest:
    """The core's request for ``body``: relative paths resolved against ``cwd`` (or the config's folder)."""
    if "\0" in body.config or (body.values is not None and "\0" in body.values):
        raise UsageError("a path contains a NUL byte")
    if body.cwd is not None:
        if "\0" in body.cwd or not Path(body.cwd).is_absolute() or not Path(body.cwd).is_dir():
            raise UsageError(f"cwd must be an absolute directory, not {body.cwd!r}")
        cwd = Path(body.cwd)
    elif Path(body.config).is_absolute():
        cwd = Path(body.config).parent
    else:
        raise UsageError(f"the config path {body.config!r} is relative: give cwd, the absolute directory it is in")
    child = SubmitRequest(
        config=body.config, cloud=body.cloud, cluster=body.cluster, name=body.name, command=body.command,
        env=tuple(body.env), workdir=body.workdir, after=tuple(body.after), gpus=body.gpus, nodes=body.nodes,
        cwd=cwd, policy=policy_of(body),
    )  # fmt: skip
    return service.SweepRequest(
        child, sets=tuple(body.sets), zip_values=body.zip, values_file=body.values, parallel=body.parallel
    )


def _write_routes(routes: APIRouter, paths: Paths) -> None:
    @routes.post(
        "/sweeps", tags=["sweeps"], summary="Submit a sweep", status_code=201, response_model=SweepDocument,
        responses=errors(400, 404, 409, 413, 422, 503),
        description="`oumi-jobs sweep --json`: register every child in one transaction and start the first "
        "`parallel` of them; the others start as slots free.",
    )  # fmt: skip
    def submit_sweep(body: SweepBody) -> Response:
        status = service.create_sweep(paths, sweep_request(body))
        return document(sweep_document(status), 201, headers={"Location": f"/api/sweeps/{status.sweep.sweep_id}"})

    @routes.post(
        "/sweeps/{sweep}/cancel", tags=["sweeps"], summary="Cancel a sweep", response_model=SweepCancelDocument,
        responses=errors(400, 404, 409, 413, 422, 503),
        description="`oumi-jobs cancel SWEEP --json`: the children no process has taken yet are cancelled in one "
        f"step, the others in parallel, each verified. `{EXIT_CODE_HEADER}` is the command's exit code; a sweep "
        "with every child done answers 409.",
    )  # fmt: skip
    def cancel_sweep(sweep: SweepRef, body: Annotated[CancelBody | None, Body()] = None) -> Response:
        given = body or CancelBody()
        options = CancelOptions(
            force=given.force, timeout_s=given.timeout_s, signal=given.signal, reason=given.reason, wait=given.wait,
            cascade=False, cloud_timeout_s=given.cloud_timeout_s,
        )  # fmt: skip
        result = service.cancel_sweep(paths, sweep, options)
        headers = {EXIT_CODE_HEADER: str(sweep_cancel_exit_code(result.outcomes))}
        return document(sweep_cancel_document(result), 200, headers)
