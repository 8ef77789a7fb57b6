"""The dashboard's routes: the login, the pages and their live fragments, the static assets and ``/docs``.

Pages are rendered on the server from Jinja2 templates; htmx polls each page's
live fragment, and ``static/app.js`` draws the charts (uPlot) from
``GET /api/plot`` and sends the actions (Cancel, Retry, Cancel all) to the REST
API with the session's CSRF token.  Pages are left out of the OpenAPI schema;
the one JSON endpoint here, the login code ``oumi-jobs ui`` asks for, is in it.
Who may reach any of this over TCP is :mod:`oumi_jobs.dashboard.access`'s.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, get_args

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from oumi_jobs.dashboard import data
from oumi_jobs.dashboard.access import HOW_TO_LOG_IN, Refusal, refusal_page
from oumi_jobs.dashboard.sessions import SESSION_TTL_S, Session, Sessions, cookie_name
from oumi_jobs.errors import OumiJobsError
from oumi_jobs.paths import Paths
from oumi_jobs.render.base import encode_json
from oumi_jobs.render.server import login_code_document
from oumi_jobs.server.http_errors import http_status
from oumi_jobs.server.schemas import JobState, LoginCodeDocument, errors

HERE = Path(__file__).resolve().parent
SESSION_STATE = "dashboard_session"
# What a live fragment waits between two polls (htmx `every`): a page costs the server one small read each.
POLL_S = 2
# A cloud job's or sweep's live part asks its cloud each time (its state, its log's tail): less often.
CLOUD_POLL_S = 5
Text = Annotated[str | None, Query(max_length=128)]
Page = Annotated[int, Query(alias="page", ge=0, le=1_000_000)]


def _duration(seconds: float | None) -> str:
    """``3725`` as ``1h 2m 5s``: an ETA or a cancellation's time, read at a glance."""
    if seconds is None:
        return ""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h"] if hours else []
    parts += [f"{minutes}m"] if hours or minutes else []
    return " ".join([*parts, f"{secs}s"])


def _when(timestamp: str | None) -> str:
    """An ISO timestamp of the contract, to the second (its zone kept: the registry writes UTC)."""
    if not timestamp:
        return ""
    zone = "" if len(timestamp) <= 19 else (" UTC" if timestamp.endswith(("+00:00", "Z")) else f" {timestamp[-6:]}")
    return timestamp[:19].replace("T", " ") + zone


templates = Jinja2Templates(directory=str(HERE / "templates"))  # autoescaped, as Starlette sets it
templates.env.globals.update(
    poll_s=POLL_S, cloud_poll_s=CLOUD_POLL_S, state_of=lambda job: job.get("state") or "unknown"
)
templates.env.filters.update(duration=_duration, when=_when)


def install(app: FastAPI, paths: Paths, sessions: Sessions) -> None:
    """The dashboard on ``app``: its static assets, Swagger UI's, the login and the pages."""
    app.mount("/static/swagger", StaticFiles(directory=str(_swagger_ui_assets())), name="swagger")
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(_login_router(sessions))
    app.include_router(_page_router(paths))
    app.include_router(_fragment_router(paths))

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        answer = get_swagger_ui_html(
            openapi_url="/openapi.json", title="oumi-jobs REST API", swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css", swagger_favicon_url="/static/favicon.svg",
            swagger_ui_parameters={"validatorUrl": None},  # its default badge would ask validator.swagger.io
        )  # fmt: skip
        answer.headers["X-Frame-Options"] = "DENY"  # Swagger UI starts from an inline script: no CSP of the pages
        return answer


def _swagger_ui_assets() -> Path:
    """Swagger UI 5's files as the swagger-ui-py package ships them (5 reads OpenAPI 3.1, which FastAPI writes),
    found without importing the package (its own server adapters are of no use here)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is missing: pip install swagger-ui-py")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def _session(request: Request) -> Session | None:
    found: Session | None = request.scope.get("state", {}).get(SESSION_STATE)
    return found


# Every page: its own assets only (the browser itself then refuses anything else), never in a frame (no
# click on Cancel through another site's page), and no address sent on as a referrer.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    session = _session(request)
    context |= {"csrf_token": session.csrf_token if session else ""}
    return templates.TemplateResponse(request, template, context, status_code=status_code, headers=PAGE_HEADERS)


def page(request: Request, template: str, build: Callable[[], dict[str, Any]]) -> Response:
    """A whole page from what ``build`` reads; an error of the core (no such job...) as a page saying so, with
    the status the REST API would answer."""
    try:
        context = build()
    except OumiJobsError as exc:
        return render(request, "error.html", http_status(exc), message=str(exc))
    return render(request, template, **context)


def _login_router(sessions: Sessions) -> APIRouter:
    routes = APIRouter()

    @routes.post(
        "/api/ui/login-codes", tags=["dashboard"], summary="A one-time dashboard login code", status_code=201,
        response_model=LoginCodeDocument, responses=errors(),
        description="What `oumi-jobs ui` asks for: a code that opens one browser session at `/login?code=`, "
        "once, within `expires_in_s`. Kept in the server's memory only.",
    )  # fmt: skip
    def new_login_code() -> Response:
        document = login_code_document(sessions.new_code())
        return Response(encode_json(document), status_code=201, media_type="application/json")

    @routes.get("/login", include_in_schema=False)
    def login(request: Request, code: Annotated[str, Query(max_length=128)] = "") -> Response:
        session = sessions.redeem(code) if code else None
        if session is None:
            refusal = Refusal(401, f"This login code is used, expired or wrong: {HOW_TO_LOG_IN}.", True, "")
            return HTMLResponse(refusal_page(refusal), status_code=401)
        answer = RedirectResponse("/", status_code=303)
        answer.set_cookie(
            cookie_name(request.url.port or 0), session.session_id, max_age=int(SESSION_TTL_S), path="/",
            httponly=True, samesite="strict", secure=request.url.scheme == "https",
        )  # fmt: skip
        return answer

    return routes


def _page_router(paths: Paths) -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get("/")
    def jobs(
        request: Request, state: Text = None, cloud: Text = None, sweep: Text = None, page_no: Page = 0
    ) -> Response:
        query = data.JobsQuery(state, cloud, sweep, page_no)
        return page(request, "jobs.html", lambda: {"listing": data.jobs_page(paths, query), "states": _STATE_NAMES})

    @routes.get("/jobs/{job}")
    def job(request: Request, job: str) -> Response:
        return page(request, "job.html", lambda: {"view": data.job_page(paths, job)})

    @routes.get("/sweeps/{sweep}")
    def sweep(request: Request, sweep: str) -> Response:
        return page(
            request, "sweep.html", lambda: {"view": data.sweep_page(paths, sweep), "max_overlaid": data.MAX_OVERLAID}
        )

    @routes.get("/cancellations")
    def cancellations(request: Request, page_no: Page = 0) -> Response:
        def build() -> dict[str, Any]:
            rows, more = data.cancellations_page(paths, page_no)
            return {"rows": rows, "more": more, "page": page_no}

        return page(request, "cancellations.html", build)

    return routes


def _fragment_router(paths: Paths) -> APIRouter:
    """The live parts of each page, polled by htmx."""
    routes = APIRouter(prefix="/fragments", include_in_schema=False)

    @routes.get("/jobs")
    def jobs(
        request: Request, state: Text = None, cloud: Text = None, sweep: Text = None, page_no: Page = 0
    ) -> Response:
        listing = data.jobs_page(paths, data.JobsQuery(state, cloud, sweep, page_no))
        return render(request, "_jobs_rows.html", listing=listing)

    @routes.get("/jobs/{job}")
    def job(request: Request, job: str) -> Response:
        return render(request, "_job_live.html", view=data.job_page(paths, job))

    @routes.get("/sweeps/{sweep}")
    def sweep(request: Request, sweep: str) -> Response:
        return render(request, "_sweep_live.html", view=data.sweep_page(paths, sweep))

    return routes


_STATE_NAMES = get_args(JobState)
