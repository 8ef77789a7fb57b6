"""The dashboard (``oumi-jobs ui``) in a real browser: Debian's chromium, driven by Playwright for Python.

One server (started by ``oumi-jobs ui`` itself) and one browser for the module,
with a fresh ``OUMI_JOBS_HOME``; one logged-in page whose every request is
recorded, so the last test can say none left the machine.  Playwright's own
browser download cannot work here: the system's ``chromium`` is launched by
path.  Without it (or without playwright) these tests skip with the install
line; under ``CI=true`` they fail instead.  Screenshots of the jobs page and of
a job page go to ``$OUMI_JOBS_SCREENSHOTS`` (default ``build/screenshots/``).
"""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from oumi_jobs.dashboard.access import browser_refusal, refusal_page
from oumi_jobs.dashboard.sessions import CODE_TTL_S, Sessions, cookie_name
from oumi_jobs.local.procs import is_alive
from oumi_jobs.paths import Paths
from oumi_jobs.server import lifecycle
from oumi_jobs.store.registry import Registry

from .helpers import Cli, end_jobs_of, end_servers_of, hermetic, submit_id, train_config, wait_until

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium")
INSTALL = "apt-get install -y --no-install-recommends chromium && pip install playwright"
SCREENSHOTS = Path(os.environ.get("OUMI_JOBS_SCREENSHOTS") or REPO / "build" / "screenshots")
TRAIN_STEPS = 40


def _missing(what: str) -> None:
    message = f"the dashboard tests need {what}: {INSTALL}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Dash:
    """The module's server, as ``oumi-jobs ui`` left it, and the CLI of its home."""

    paths: Paths
    cli: Cli
    base: str
    folder: Path

    def login_url(self) -> str:
        document: dict[str, Any] = self.cli.json("ui", "--no-browser")
        assert document["opened"] is False and document["url"].startswith(self.base + "/login?code=")
        return str(document["url"])

    def config(self, name: str, run: str) -> str:
        path = self.folder / f"{name}.yaml"
        path.write_text(f"run: |\n{textwrap.indent(textwrap.dedent(run).strip(), '  ')}\n")
        return str(path)

    @property
    def port(self) -> int:
        port = urlsplit(self.base).port
        assert port is not None
        return port


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dash]:
    folder = tmp_path_factory.mktemp("dashboard")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OUMI_JOBS_HOME", str(folder / "home"))
        paths = Paths.from_env()
        cli = Cli()
        try:
            document = cli.json("ui", "--no-browser")
            base = document["url"].split("/login?", 1)[0]
            assert urlsplit(base).hostname == "127.0.0.1" and document["restarted"] is False
            yield Dash(paths, cli, base, folder)
        finally:
            end_jobs_of(paths)
            lifecycle.stop(paths)
            end_servers_of(paths)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright")
    if CHROMIUM is None:
        _missing("Debian's chromium")
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def requests_seen() -> list[str]:
    return []


@pytest.fixture(scope="module")
def page(browser: Any, dash: Dash, requests_seen: list[str]) -> Iterator[Any]:
    """A logged-in page; every request any of its pages makes is recorded."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.on("request", lambda request: requests_seen.append(request.url))
    opened = context.new_page()
    answer = opened.goto(dash.login_url())
    assert answer is not None and answer.status == 200 and opened.url == dash.base + "/"
    yield opened
    context.close()


@pytest.fixture(scope="module")
def sleeper(dash: Dash) -> str:
    """A job that runs until it is cancelled (by the Cancel test), in a local queue of its own."""
    job_id = submit_id(dash.cli, dash.config("sleeper", "echo started; sleep 600"), "--cluster", "sleeper")
    wait_until(lambda: dash.cli.json("status", job_id)["state"] == "running", timeout=30)
    return job_id


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_a_login_code_works_once_for_five_minutes() -> None:
    now = [1000.0]
    sessions = Sessions(clock=lambda: now[0])
    code = sessions.new_code()
    assert code.expires_at == 1000.0 + CODE_TTL_S
    session = sessions.redeem(code.code)
    assert session is not None and sessions.find(session.session_id) == session
    assert sessions.redeem(code.code) is None  # used
    late = sessions.new_code()
    now[0] += CODE_TTL_S + 1
    assert sessions.redeem(late.code) is None  # expired
    assert sessions.redeem("a-code-never-made") is None and sessions.find("nope") is None


def _scope(path: str = "/", method: str = "GET", host: str = "127.0.0.1:8000", **headers: str) -> dict[str, Any]:
    sent = [(b"host", host.encode())] + [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return {"type": "http", "server": ("127.0.0.1", 8000), "path": path, "method": method, "headers": sent}


def test_the_guard_lets_a_browser_in_only_with_a_loopback_host_a_session_and_its_csrf_token() -> None:
    """The rules of dashboard/access.py on their own (the browser tests below show them end to end)."""
    sessions = Sessions()
    session = sessions.redeem(sessions.new_code().code)
    assert session is not None
    cookie = f"other=1; {cookie_name(8000)}={session.session_id}"
    assert browser_refusal(_scope(cookie=cookie), sessions) == (session, None)
    assert browser_refusal(_scope(host="localhost:8000", cookie=cookie), sessions)[1] is None
    assert browser_refusal(_scope(host="[::1]:8000", cookie=cookie), sessions)[1] is None
    for host in ("evil.example:8000", "127.0.0.1:8001", "127.0.0.1", "localhost.evil.example:8000", ""):
        refused = browser_refusal(_scope(host=host, cookie=cookie), sessions)[1]
        assert refused is not None and refused.status == 403, host
    assert browser_refusal(_scope("/login"), sessions) == (None, None)  # open: the code is checked there
    assert browser_refusal(_scope("/static/app.css"), sessions) == (None, None)
    page = browser_refusal(_scope(accept="text/html,*/*"), sessions)[1]
    api = browser_refusal(_scope("/api/jobs"), sessions)[1]
    assert page is not None and (page.status, page.page) == (401, True) and "oumi-jobs ui" in refusal_page(page)
    assert api is not None and (api.status, api.page) == (401, False)
    assert browser_refusal(_scope(cookie=f"{cookie_name(8000)}=forged"), sessions)[1] is not None
    assert browser_refusal(_scope(cookie=f"{cookie_name(8001)}={session.session_id}"), sessions)[1] is not None
    post = _scope("/api/jobs/x/cancel", "POST", cookie=cookie)
    assert browser_refusal(post, sessions)[1].status == 403  # type: ignore[union-attr]
    post["headers"].append((b"x-csrf-token", b"wrong"))
    assert browser_refusal(post, sessions)[1].status == 403  # type: ignore[union-attr]
    post["headers"][-1] = (b"x-csrf-token", session.csrf_token.encode())
    assert browser_refusal(post, sessions) == (session, None)


def test_a_login_link_opens_a_strict_httponly_session_once(browser: Any, dash: Dash) -> None:
    url = dash.login_url()
    first = browser.new_context()
    landed = first.new_page()
    answer = landed.goto(url)
    assert answer.status == 200 and landed.url == dash.base + "/"
    assert "default-src 'self'" in answer.headers["content-security-policy"]  # the browser refuses other hosts too
    _expect()(landed.get_by_role("heading", name="Jobs")).to_be_visible()
    (cookie,) = first.cookies()
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["domain"] == "127.0.0.1"
    assert cookie["name"] == cookie_name(dash.port)  # one per server: 127.0.0.1's cookies go to all its ports
    first.close()
    second = browser.new_context()
    again = second.new_page()
    answer = again.goto(url)
    assert answer.status == 401 and "used, expired or wrong" in again.content()
    assert second.cookies() == []
    second.close()


def test_without_a_session_pages_answer_401_with_no_job_data(browser: Any, dash: Dash, sleeper: str) -> None:
    context = browser.new_context()
    stranger = context.new_page()
    for path in ("/", f"/jobs/{sleeper}", f"/fragments/jobs/{sleeper}", "/cancellations", "/docs"):
        answer = stranger.goto(dash.base + path)
        html = stranger.content()
        assert answer.status == 401, path
        assert sleeper not in html and "oumi-jobs ui" in html, path
    api = context.request.get(f"{dash.base}/api/jobs/{sleeper}")
    assert api.status == 401 and sleeper not in api.text()
    context.close()


def test_a_foreign_host_is_refused_and_the_bearer_token_still_works(page: Any, dash: Dash, sleeper: str) -> None:
    (cookie,) = page.context.cookies()
    session = {"Cookie": f"{cookie['name']}={cookie['value']}", "Accept": "text/html"}
    with httpx.Client(base_url=dash.base) as client:
        assert client.get("/", headers={**session, "Host": f"localhost:{dash.port}"}).status_code == 200
        for host in (f"attacker.example:{dash.port}", f"127.0.0.1:{dash.port + 1}", "127.0.0.1"):
            refused = client.get("/", headers={**session, "Host": host})
            assert refused.status_code == 403 and sleeper not in refused.text, host
        token = dash.cli("server", "token").stdout.strip()
        rest = client.get(f"/api/jobs/{sleeper}", headers={"Authorization": f"Bearer {token}"})
        assert rest.status_code == 200 and rest.json()["job_id"] == sleeper


def test_a_post_without_the_csrf_token_is_refused_and_the_job_keeps_running(
    page: Any, dash: Dash, sleeper: str
) -> None:
    url = f"{dash.base}/api/jobs/{sleeper}/cancel"
    for headers in ({}, {"X-CSRF-Token": "not-the-token"}):
        answer = page.request.post(url, data="{}", headers={"Content-Type": "application/json", **headers})
        assert answer.status == 403 and "CSRF" in answer.text()
    assert dash.cli.json("status", sleeper)["state"] == "running"
    assert dash.cli.json("cancellations") == []


def test_a_job_submitted_with_the_cli_appears_and_succeeds_without_a_reload(page: Any, dash: Dash) -> None:
    page.goto(dash.base + "/")
    page.evaluate("window.notReloaded = true")
    job_id = submit_id(dash.cli, dash.config("short", "echo hello; sleep 3"))
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    _expect()(row).to_be_visible(timeout=20_000)
    _expect()(row).to_have_attribute("data-state", "succeeded", timeout=60_000)
    _expect()(row.locator(".state")).to_have_text("succeeded")  # spelled out, not only coloured
    assert page.evaluate("window.notReloaded") is True
    _screenshot(page, "jobs")
    page.emulate_media(color_scheme="dark")
    _screenshot(page, "jobs-dark")
    page.emulate_media(color_scheme="light")


def test_cancel_with_confirm_cancels_a_running_job_and_leaves_no_process(page: Any, dash: Dash, sleeper: str) -> None:
    page.goto(f"{dash.base}/jobs/{sleeper}")
    _expect()(page.locator("#job-live")).to_have_attribute("data-state", "running")
    _expect()(page.locator('pre[data-log="stdout"]')).to_contain_text("started")
    page.get_by_role("button", name="Cancel", exact=True).click()
    page.get_by_role("button", name="Confirm").click()
    wait_until(lambda: dash.cli.json("status", sleeper)["state"] == "cancelled", timeout=60)
    assert "cancelled" in dash.cli("status", sleeper).stdout
    with Registry.open(dash.paths) as registry:
        record = registry.get(sleeper)
    assert record is not None and not is_alive(record.pid, record.process_start_time, record.boot_id)
    _expect()(page.locator("#job-live")).to_have_attribute("data-state", "cancelled", timeout=20_000)
    _expect()(page.locator(".cancellation .steps li").first).to_be_visible()
    _expect()(page.locator('#events li[data-kind="submitted"]')).to_be_visible()  # the job's timeline


def test_retry_on_a_failed_job_then_the_cli_shows_attempt_2(page: Any, dash: Dash) -> None:
    job_id = submit_id(dash.cli, dash.config("fails", "echo failing; exit 3"))
    wait_until(lambda: dash.cli.json("status", job_id)["state"] == "failed", timeout=30)
    page.goto(f"{dash.base}/jobs/{job_id}")
    page.get_by_role("button", name="Retry").click()
    page.get_by_role("button", name="Confirm").click()
    wait_until(lambda: dash.cli.json("status", job_id).get("attempt") == 2, timeout=30)
    assert "attempt 2" in dash.cli("status", job_id).stdout


def test_a_sweep_page_counts_compares_and_overlays_its_children(page: Any, dash: Dash) -> None:
    config = dash.config("sweep", "echo child $N")
    created = dash.cli("sweep", config, "--set", "envs.N=1,2", "--name", "two", "-q")
    assert created.exit_code == 0, created.output
    sweep_id = created.stdout.strip()
    page.goto(f"{dash.base}/sweeps/{sweep_id}")
    _expect()(page.locator("#sweep-live")).to_have_attribute("data-done", "true", timeout=60_000)
    _expect()(page.locator(".compare tbody tr[data-state=succeeded]")).to_have_count(2)
    _expect()(page.get_by_role("button", name="Cancel all")).to_be_disabled()
    assert len(page.locator('.chart[data-metric="loss"]').get_attribute("data-jobs").split(",")) == 2
    page.goto(f"{dash.base}/?sweep={sweep_id}")
    _expect()(page.locator("tr.group")).to_contain_text(sweep_id)
    _expect()(page.locator("tr[data-job-id]")).to_have_count(2)


def test_cancel_all_with_confirm_cancels_a_running_sweep(page: Any, dash: Dash) -> None:
    config = dash.config("long-sweep", "echo child $N; sleep 600")
    created = dash.cli("sweep", config, "--set", "envs.N=1,2,3", "--cluster", "long-sweep", "-q")
    assert created.exit_code == 0, created.output
    sweep_id = created.stdout.strip()
    wait_until(lambda: dash.cli.json("status", sweep_id)["counts"].get("running") == 1, timeout=30)
    page.goto(f"{dash.base}/sweeps/{sweep_id}")
    page.get_by_role("button", name="Cancel all").click()
    page.get_by_role("button", name="Confirm").click()
    wait_until(lambda: dash.cli.json("status", sweep_id)["counts"] == {"cancelled": 3}, timeout=60)
    _expect()(page.locator("#sweep-live")).to_have_attribute("data-done", "true", timeout=20_000)


@pytest.mark.slow
def test_a_real_tiny_oumi_train_draws_its_loss_progress_and_log_tail(
    page: Any,
    dash: Dash,
    tiny: Path,
) -> None:
    here = dash.folder / "train"
    here.mkdir()
    job_id = submit_id(dash.cli, str(train_config(tiny, here, TRAIN_STEPS)), *hermetic(here))
    page.goto(f"{dash.base}/jobs/{job_id}")
    live = page.locator("#job-live")
    _expect()(live).to_have_attribute("data-done", "true", timeout=280_000)
    final = dash.cli.json("status", job_id)
    assert final["state"] == "succeeded", Path(final["stderr_path"]).read_text(errors="replace")[-2000:]
    assert live.get_attribute("data-state") == "succeeded"
    loss = page.locator('.chart[data-metric="loss"]')
    _expect()(loss).to_have_attribute("data-points", str(TRAIN_STEPS), timeout=20_000)
    _expect()(loss.locator("canvas")).to_be_visible()
    other = page.locator('#other-metrics .chart[data-metric="learning_rate"]')
    _expect()(other).to_have_attribute("data-points", str(TRAIN_STEPS), timeout=20_000)
    _expect()(page.locator("[data-progress]")).to_have_attribute("data-progress", "1.0000")
    _expect()(page.locator("[data-progress-text]")).to_contain_text(f"step {TRAIN_STEPS}/{TRAIN_STEPS}")
    logs = page.locator("pre[data-log]").all_inner_texts()
    assert any(text.strip() for text in logs), logs
    _screenshot(page, "job")


def test_every_request_the_pages_made_stayed_on_this_machine(page: Any, dash: Dash, requests_seen: list[str]) -> None:
    page.goto(dash.base + "/docs")
    _expect()(page.locator(".swagger-ui .info .title")).to_contain_text("oumi-jobs", timeout=30_000)
    page.goto(dash.base + "/cancellations")
    _expect()(page.locator("tr[data-cancellation-id]").first).to_be_visible()
    missing = page.goto(dash.base + "/jobs/job-never-made")
    assert missing.status == 404 and "job-never-made" in page.locator("main").inner_text()
    hosts = {urlsplit(url).hostname for url in requests_seen if not url.startswith(("data:", "blob:"))}
    assert hosts == {"127.0.0.1"}, sorted(url for url in requests_seen if urlsplit(url).hostname != "127.0.0.1")
    assert any("/static/swagger/swagger-ui-bundle.js" in url for url in requests_seen)
    assert any("/static/vendor/uplot/" in url for url in requests_seen)
    assert any("/fragments/jobs" in url for url in requests_seen)  # the live updates were polled


def test_ui_restarts_a_server_without_tcp_and_reuses_one_with_it(cli: Cli, paths: Paths) -> None:
    started = cli.json("server", "start")
    assert started["transport"] == "unix"
    first = cli.json("ui", "--no-browser")
    assert first["restarted"] is True and first["pid"] != started["pid"] and first["opened"] is False
    assert cli.json("server", "status")["transport"] == "tcp"
    again = cli.json("ui", "--no-browser")
    assert (again["restarted"], again["pid"], again["address"]) == (False, first["pid"], first["address"])
    assert again["url"] != first["url"]  # a new code each time
    with httpx.Client() as client:
        assert client.get(again["url"], follow_redirects=False).status_code == 303
        assert client.get(again["url"], follow_redirects=False).status_code == 401
