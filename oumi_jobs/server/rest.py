"""The REST API: the command line's services over HTTP, answering with the documents of ``--json``.

Each endpoint makes one call into the library (:mod:`oumi_jobs.api`) and
answers with the document the rendering layer (:mod:`oumi_jobs.render`) builds for it: one
contract, one ``schema_version``.  Endpoints are plain ``def`` (FastAPI runs
them in its thread pool: the core is synchronous); errors are the core's
own exceptions, made HTTP answers in :mod:`oumi_jobs.server.http_errors`.
Nothing here runs a shell: a submit names a config by path, as ``submit`` does.

Where the command line would exit non-zero with a document (a cancel that
left survivors, a cloud asked alone that could not be read), the answer
carries that exit code in ``X-Oumi-Jobs-Exit-Code``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Body, Query
from fastapi import Path as PathParam
from fastapi.responses import Response, StreamingResponse
from pydantic import StringConstraints

from oumi_jobs import api, bounds
from oumi_jobs.cloud.adapter import DEFAULT_CLOUD_TIMEOUT_S
from oumi_jobs.errors import CloudTimeoutError, UsageError
from oumi_jobs.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from oumi_jobs.paths import Paths
from oumi_jobs.policy import MAX_RETRIES
from oumi_jobs.render.base import encode_json, json_array
from oumi_jobs.render.listing import lean_texts
from oumi_jobs.server.schemas import (
    NOT_BLANK,
    STATES_PATTERN,
    CancelBody,
    CancellationDocument,
    CancellationState,
    EventDocument,
    JobDocument,
    NotificationDocument,
    NotificationState,
    PlotDocument,
    SubmitBody,
    SubmitDocument,
    errors,
    job_links,
)
from oumi_jobs.states import State

EXIT_CODE_HEADER = "X-Oumi-Jobs-Exit-Code"
UNREACHABLE_HEADER = "X-Oumi-Jobs-Unreachable"
JSON = "application/json"
# The registry's part of a listing, on top of the clouds' time limit: reading and encoding the jobs.
LOCAL_GRACE_S = 2.0
T = TypeVar("T")

CloudTimeout = Annotated[
    float,
    Query(ge=bounds.MIN_CLOUD_TIMEOUT_S, le=bounds.MAX_SECONDS, allow_inf_nan=False,
          description="Seconds each cloud gets to answer."),
]  # fmt: skip
# A request's line and headers must fit in uvicorn's 16 KiB, and a character may take 12 bytes in a URL (4 bytes
# of UTF-8, percent-encoded): so an id, a cloud, a cluster or an age is at most 128 characters (a name is at
# most 64), and `state` at most one item per state, each at most all their names (the worst listing: 13 KiB).
URL_TEXT = 128
JobRef = Annotated[
    str, PathParam(pattern=NOT_BLANK, max_length=URL_TEXT, description="A job id, or a unique prefix of one.")
]
Name = Annotated[str, StringConstraints(pattern=NOT_BLANK, max_length=URL_TEXT)]  # a cloud, a cluster, an id, an age
StateNames = Annotated[str, StringConstraints(pattern=STATES_PATTERN, max_length=len(",".join(State)))]


def router(paths: Paths) -> APIRouter:
    """Every REST route: ``/api/...`` and ``/metrics``."""
    routes = APIRouter()
    jobs = APIRouter(prefix="/api")
    _job_routes(jobs, paths)
    _status_route(jobs, paths)
    _submit_route(jobs, paths)
    _log_route(jobs, paths)
    _plot_route(jobs, paths)
    _cancel_routes(jobs, paths)
    _events_route(jobs, paths)
    _notifications_route(jobs, paths)
    _retry_route(jobs, paths)
    routes.include_router(jobs)
    _metrics_route(routes, paths)
    return routes


def document(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A document as its JSON text, exactly as built (FastAPI does not re-validate a ``Response``)."""
    return Response(encode_json(body), status_code=status_code, media_type=JSON, headers=headers)


def _job_routes(routes: APIRouter, paths: Paths) -> None:
    @routes.get(
        "/jobs", tags=["jobs"], summary="List jobs", response_model=list[JobDocument],
        responses=errors(400, 422, 503, 504, also={200: {"description": "The jobs.", "links": job_links("/0/job_id")}}),
        description="`oumi-jobs list --json`: registered jobs, newest first (one cluster: in queue order), with "
        f"their live states; clouds are asked in parallel. Clouds that could not be read are named in "
        f"`{UNREACHABLE_HEADER}` (their jobs show `unknown` with the reason). The answer comes within "
        "`cloud_timeout_s` (loading the launcher, on a server's first cloud request, counts): else 504.",
    )  # fmt: skip
    def list_jobs(
        cloud: Annotated[Name | None, Query(description="Only jobs of this cloud.")] = None,
        cluster: Annotated[Name | None, Query(description="Only this cluster's jobs, in queue order.")] = None,
        state: Annotated[
            list[StateNames],
            Query(max_length=len(State), description="Only jobs in these states (repeatable, or comma-separated)."),
        ] = [],  # noqa: B006
        since: Annotated[Name | None, Query(description="Submitted since an age (2h, 7d) or a date.")] = None,
        limit: Annotated[int | None, Query(ge=0, le=bounds.MAX_COUNT, description="At most this many.")] = None,
        local_only: Annotated[bool, Query(description="Ask no cloud.")] = False,
        all_clouds: Annotated[bool, Query(description="Ask every enabled cloud.")] = False,
        cloud_timeout_s: CloudTimeout = DEFAULT_CLOUD_TIMEOUT_S,
    ) -> Response:
        states = api.parse_states(state)

        def listed() -> api.JobDocuments:
            return api.list_job_documents(
                paths, cloud=cloud, cluster=cluster, states=states, since=since, limit=limit,
                local_only=local_only, all_clouds=all_clouds, cloud_timeout_s=cloud_timeout_s,
            )  # fmt: skip

        report = listed() if local_only else within(cloud_timeout_s, "the clouds", listed)
        headers = {}
        if report.unreachable:
            headers[UNREACHABLE_HEADER] = ",".join(sorted(report.unreachable))
            if cloud in report.unreachable:
                headers[EXIT_CODE_HEADER] = str(api.ExitCode.CLOUD_UNREACHABLE)
        return Response(json_array(lean_texts(report)), media_type=JSON, headers=headers)


def _status_route(routes: APIRouter, paths: Paths) -> None:
    @routes.get(
        "/jobs/{job}", tags=["jobs"], summary="A job's live status", response_model=JobDocument,
        responses=errors(400, 404, 409, 422, 503, 504, also={
            200: {"description": "The job.", "links": job_links("/job_id", only=("JobLogs", "CancelJob"))}}),
        description="`oumi-jobs status --json`. `job` is a job id or a unique prefix of one; with `cloud` and "
        "`cluster` it is the launcher's job id on that cluster (jobs launched elsewhere too: `external`).",
    )  # fmt: skip
    def get_job(
        job: JobRef,
        cloud: Annotated[Name | None, Query(description="With `cluster`: `job` is a launcher job id.")] = None,
        cluster: Annotated[Name | None, Query(description="The job's cluster (with `cloud`).")] = None,
        cloud_timeout_s: CloudTimeout = DEFAULT_CLOUD_TIMEOUT_S,
    ) -> Response:
        if cloud is None and cluster is None:
            return document(api.job_document(api.get_status(paths, job, cloud_timeout_s=cloud_timeout_s)))
        if cloud is None or cluster is None:
            raise UsageError("a job by its cloud identity needs both cloud and cluster")
        view = api.status_by_identity(paths, cloud, cluster, job, cloud_timeout_s=cloud_timeout_s)
        return document(api.job_document(view))


def within(timeout_s: float, what: str, call: Callable[[], T]) -> T:
    """``call``'s result, or CloudTimeoutError (a 504) once ``timeout_s`` (and LOCAL_GRACE_S) passed.

    The cloud timeout bounds each cloud's answer, not the launcher's import before it (10-20 s on a server's
    first cloud request) nor the survey of enabled clouds: an HTTP client is owed the limit it asked for.
    What is left of the call runs on in a daemon thread, and its answer is dropped.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # raised again in the request's thread, below
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=f"oumi-jobs asking {what}", daemon=True)
    thread.start()
    thread.join(timeout_s + LOCAL_GRACE_S)
    if thread.is_alive():
        raise CloudTimeoutError(f"{what} did not answer within {timeout_s:g} s")
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value


def submit_request(body: SubmitBody) -> api.SubmitRequest:
    """The library's request for ``body``: never resolved against the server's own directory."""
    if "\0" in body.config:
        raise UsageError("the config path contains a NUL byte")
    if body.cwd is not None:
        if "\0" in body.cwd or not Path(body.cwd).is_absolute():
            raise UsageError(f"cwd must be an absolute directory, not {body.cwd!r}")
        cwd = Path(body.cwd)
        if not cwd.is_dir():
            raise UsageError(f"cwd {body.cwd} is not a directory")
    elif Path(body.config).is_absolute():
        cwd = Path(body.config).parent  # what `submit` run in the config's folder would do
    else:
        raise UsageError(f"the config path {body.config!r} is relative: give cwd, the absolute directory it is in")
    return api.SubmitRequest(
        config=body.config, cwd=cwd, cloud=body.cloud, cluster=body.cluster, name=body.name, command=body.command,
        env=tuple(body.env), workdir=body.workdir, after=tuple(body.after), parallel=body.parallel, gpus=body.gpus,
        nodes=body.nodes, policy=policy_of(body),
    )  # fmt: skip


def policy_of(body: SubmitBody) -> api.JobPolicy:
    """The job's retries, guards and notifications, by the command line's rules."""
    return api.parse_policy(api.PolicyTexts(
        retries=body.retries, retry_on=body.retry_on, retry_delay=body.retry_delay, stall_after=body.stall_after,
        max_duration=body.max_duration, max_cost=body.max_cost, nan_guard=body.nan_guard,
        guard_action=body.guard_action, notify=tuple(body.notify),
    ))  # fmt: skip


def _submit_route(routes: APIRouter, paths: Paths) -> None:
    @routes.post(
        "/jobs", tags=["jobs"], summary="Submit a job", status_code=201, response_model=SubmitDocument,
        responses=errors(400, 404, 409, 413, 422, 503, also={
            201: {"description": "Submitted.", "links": job_links("/job_id")}}),
        description="`oumi-jobs submit --json`: register the job and start it (a cloud job's launch goes on in a "
        "detached process). The job's environment is the server's plus `env`.",
    )  # fmt: skip
    def submit(body: SubmitBody) -> Response:
        submitted = api.submit(paths, submit_request(body))
        answer = api.job_document(submitted.view) | {"warnings": list(submitted.warnings)}
        return document(answer, 201, headers={"Location": f"/api/jobs/{submitted.job_id}"})


def _log_route(routes: APIRouter, paths: Paths) -> None:
    @routes.get(
        "/jobs/{job}/logs", tags=["logs"], summary="A job's log, streamed", response_class=StreamingResponse,
        responses=errors(400, 404, 409, 422, 503, also={200: {"content": {"text/plain": {}},
                                                                 "description": "The log's text as it is read."}}),
        description="`oumi-jobs logs`: the log's text in chunks; with `follow`, until the job is done.",
    )  # fmt: skip
    def logs(
        job: JobRef,
        stream: Annotated[Literal["stdout", "stderr"], Query(description="Which of a local job's logs.")] = "stdout",
        tail: Annotated[int | None, Query(ge=0, le=bounds.MAX_COUNT, description="Only the last N lines.")] = None,
        follow: Annotated[bool, Query(description="Keep streaming until the job is done.")] = False,
        attempt: Annotated[
            int | None, Query(ge=1, le=MAX_RETRIES + 1, description="That attempt's log (default: the latest).")
        ] = None,
    ) -> StreamingResponse:
        stderr = stream == "stderr"
        # Not found, ambiguous, no such attempt: before the answer starts.
        job_id, path = api.log_path(paths, job, stderr=stderr, attempt=attempt)
        chunks = api.read_log(paths, job_id, stderr=stderr, tail=tail, follow=follow, heartbeat=True, attempt=attempt)
        # A cloud job's stream is opened (or refused, e.g. --stderr) before the answer starts, too.
        first = next(chunks, "") if path is None else ""
        return StreamingResponse(_encoded(first, chunks), media_type="text/plain; charset=utf-8",
                                 headers={"X-Oumi-Jobs-Job-Id": job_id})  # fmt: skip


def _plot_route(routes: APIRouter, paths: Paths) -> None:
    @routes.get(
        "/plot", tags=["logs"], summary="Metrics of jobs over their steps", response_model=PlotDocument,
        responses=errors(400, 404, 409, 422),
        description="`oumi-jobs plot --json` of local jobs (the dashboard's charts): each metric (default `loss`) "
        "of each job. A job still running that has logged nothing yet has an empty series; a metric a finished "
        "job never logged is a 400 naming those it has.",
    )  # fmt: skip
    def plot(
        job: Annotated[list[Name], Query(min_length=1, max_length=64, description="Job ids or unique prefixes.")],
        metric: Annotated[list[Name], Query(max_length=16, description="Metrics (repeatable; default `loss`).")] = [],  # noqa: B006
    ) -> Response:
        return document(api.plot_document(api.read_plot(paths, job, metric, waiting=True)))


def _encoded(first: str, chunks: Iterator[str]) -> Iterator[bytes]:
    """The chunks as UTF-8; the empty ones (heartbeats while following) let Starlette notice a client gone."""
    if first:
        yield first.encode()
    for chunk in chunks:
        yield chunk.encode()


def _cancel_routes(routes: APIRouter, paths: Paths) -> None:
    @routes.post(
        "/jobs/{job}/cancel", tags=["cancellations"], summary="Cancel a job", response_model=CancellationDocument,
        responses=errors(400, 404, 409, 413, 422, 503, also={
            200: {"description": "Cancelled, or nothing to cancel.",
                  "links": job_links("/job_id", only=("CancellationStatus",))},
            202: {"model": CancellationDocument, "description": "Signalled; a detached helper finishes the cancel.",
                  "links": job_links("/job_id", only=("CancellationStatus",))}}),
        description="`oumi-jobs cancel --json` of one job. 200 once verified; 202 with `wait` false. A job "
        f"already finished answers 200 with status `not_needed`; `{EXIT_CODE_HEADER}` is the command's exit code.",
    )  # fmt: skip
    def cancel(job: JobRef, body: Annotated[CancelBody | None, Body()] = None) -> Response:
        options = body or CancelBody()
        request = api.CancelRequest(jobs=(job,), options=api.CancelOptions(
            force=options.force, timeout_s=options.timeout_s, signal=options.signal, reason=options.reason,
            wait=options.wait, cascade=options.cascade, cloud_timeout_s=options.cloud_timeout_s,
        ))  # fmt: skip
        outcome = api.cancel_outcome(api.run_cancel(paths, request))  # the command line's rules and exit code
        headers = {EXIT_CODE_HEADER: str(outcome.exit_code)}
        return document(outcome.built(), 200 if options.wait else 202, headers)

    @routes.get(
        "/jobs/{job}/cancellation-status", tags=["cancellations"], summary="A job's latest cancellation",
        response_model=CancellationDocument, responses=errors(404, 409, 422, also={
            200: {"description": "The cancellation.", "links": job_links("/job_id", only=("JobStatus",))}}),
        description="`oumi-jobs cancel-status --json`, step by step.",
    )  # fmt: skip
    def cancellation_status(job: JobRef) -> Response:
        return document(api.cancellation_document(api.cancellation_status(paths, job)))

    @routes.get(
        "/cancellations", tags=["cancellations"], summary="Cancellation history",
        response_model=list[CancellationDocument], responses=errors(400, 409, 422),
        description="`oumi-jobs cancellations --json`, newest first.",
    )  # fmt: skip
    def cancellations(
        limit: Annotated[int, Query(ge=0, le=bounds.MAX_COUNT, description="At most this many.")] = 20,
        offset: Annotated[int, Query(ge=0, le=bounds.MAX_COUNT, description="Skip this many first.")] = 0,
        job_id: Annotated[Name | None, Query(description="Only this job's (an id or unique prefix).")] = None,
        status: Annotated[CancellationState | None, Query(description="Only cancellations with this status.")] = None,
    ) -> Response:
        records = api.cancellation_history(paths, limit=limit, offset=offset, job=job_id, status=status)
        return Response(json_array(encode_json(api.cancellation_document(r)) for r in records), media_type=JSON)


def _events_route(routes: APIRouter, paths: Paths) -> None:
    @routes.get(
        "/jobs/{job}/events", tags=["jobs"], summary="A job's timeline", response_model=list[EventDocument],
        responses=errors(404, 409, 422, also={200: {"description": "Its events, oldest first."}}),
        description="`oumi-jobs events --json`: submitted, each attempt's start and end, guards, retries, "
        "cancellations and notifications.",
    )  # fmt: skip
    def events(job: JobRef) -> Response:
        return document(api.timeline_documents(api.timeline(paths, job)))


def _notifications_route(routes: APIRouter, paths: Paths) -> None:
    @routes.get(
        "/notifications", tags=["notifications"], summary="Notification deliveries",
        response_model=list[NotificationDocument], responses=errors(400, 404, 409, 422),
        description="`oumi-jobs notifications --json`, newest first; URLs with their credentials redacted.",
    )  # fmt: skip
    def notifications(
        limit: Annotated[int, Query(ge=0, le=bounds.MAX_COUNT, description="At most this many.")] = 20,
        offset: Annotated[int, Query(ge=0, le=bounds.MAX_COUNT, description="Skip this many first.")] = 0,
        job_id: Annotated[
            Name | None, Query(description="Only this job's (an id or unique prefix) or sweep's.")
        ] = None,
        status: Annotated[NotificationState | None, Query(description="Only notifications with this status.")] = None,
    ) -> Response:
        records = api.notification_history(paths, limit=limit, offset=offset, job=job_id, status=status)
        return Response(json_array(encode_json(api.notification_document(r)) for r in records), media_type=JSON)


def _retry_route(routes: APIRouter, paths: Paths) -> None:
    @routes.post(
        "/jobs/{job}/retry", tags=["jobs"], summary="Retry an ended job", response_model=JobDocument,
        responses=errors(404, 409, 422, 503, also={
            202: {"model": JobDocument, "description": "Its next attempt is starting.",
                  "links": job_links("/job_id", only=("JobStatus", "JobLogs", "CancelJob"))}}),
        status_code=202,
        description="`oumi-jobs retry --json`: the next attempt of an ended job (any ended state), with the "
        "same id. A job not done: 409.",
    )  # fmt: skip
    def retry(job: JobRef) -> Response:
        return document(api.job_document(api.retry(paths, job)), 202)


def _metrics_route(routes: APIRouter, paths: Paths) -> None:
    @routes.get(
        "/metrics", tags=["metrics"], summary="Prometheus metrics", response_class=Response,
        responses=errors(also={200: {"content": {"text/plain": {}}, "description": "Prometheus text format 0.0.4."}}),
        description="The metrics of `metrics.prom` (README \"Metrics\"), computed at each scrape.",
    )  # fmt: skip
    def metrics() -> Response:
        return Response(api.metrics_text(paths), media_type=METRICS_CONTENT_TYPE)
