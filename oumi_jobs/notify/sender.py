"""Sending notifications: the detached sender of a job's pending notifications, and ``notify test``.

:func:`oumi_jobs.notify.emission.emit` records the notifications and starts this
module's :func:`main` for the job in a process of its own (the caller never
waits).  The sender claims the job's pending rows (one live sender per row:
a second one finds nothing to claim and ends), sends each, and tries a failed
one again after each gap of the backoff (about a minute in all, see
:mod:`oumi_jobs.notify.config`), then records it ``failed`` with its error.

A plain ``http(s)://`` URL gets a POST of the event document, signed with
HMAC-SHA256 when a secret is set; any other URL is Apprise's (imported only
then).  Every error is recorded with the URL's credentials redacted.

This module renders the event document, as the command line and the REST
server render theirs: it is a front end, whose reader is a webhook.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from oumi_jobs.errors import OumiJobsError
from oumi_jobs.notify.config import NotifyConfig, load_config
from oumi_jobs.notify.redact import PLAIN_SCHEMES, scrub, shown
from oumi_jobs.paths import Paths
from oumi_jobs.render.notifications import event_document
from oumi_jobs.states import State
from oumi_jobs.store.cancellations import identify_self
from oumi_jobs.store.notifications import NotificationRecord
from oumi_jobs.store.registry import Registry
from oumi_jobs.timestamps import from_epoch, from_iso, now, now_iso
from oumi_jobs.views import JobView, view_of

# A receiver gets this long to answer each try: a slow one costs the sender, never the job.
TIMEOUT_S = 5.0
MAX_ERROR_CHARS = 500


class DeliveryError(OumiJobsError):
    """A notification could not be delivered (the message names the URL redacted)."""


@dataclass(frozen=True)
class Message:
    event: str
    body: bytes  # the event document, as POSTed to a plain http(s) URL
    title: str  # what a chat or mail URL shows
    text: str


def main(argv: list[str] | None = None) -> int:
    paths, job_id = Paths.parse_helper_argv("oumi-jobs-notify", "job_id", argv)
    deliver_pending(paths, job_id)
    return 0


def deliver_pending(paths: Paths, job_id: str) -> None:
    """Send the job's pending notifications this process can claim, each until sent or out of tries."""
    with Registry.open(paths) as registry:
        claimed = registry.claim_notifications(job_id, identify_self())
        messages: dict[int, Message | str] = {row.notification_id: _message_or_error(registry, row) for row in claimed}
    try:
        config = load_config(paths)
    except OumiJobsError as exc:  # a broken config.toml: nothing is sent unsigned by mistake
        messages = dict.fromkeys(messages, str(exc))
        config = NotifyConfig()
    due = {row.notification_id: (row, _due_in(row.next_try_at)) for row in claimed}
    tries = {row.notification_id: row.attempts for row in claimed}
    while due:
        notification_id, (row, when) = min(due.items(), key=lambda item: item[1][1])
        time.sleep(max(0.0, when - time.monotonic()))
        tries[notification_id] += 1
        message = messages[notification_id]
        try:
            if isinstance(message, str):
                _record(paths, row, "failed", message, 0.0)
                del due[notification_id]
                continue
            refined = send(row.url, message, config)
        except DeliveryError as exc:
            left = tries[notification_id] <= len(config.backoff_s)
            gap = config.backoff_s[tries[notification_id] - 1] if left else 0.0
            _record(paths, row, "pending" if left else "failed", str(exc), gap)
            if left:
                due[notification_id] = (row, time.monotonic() + gap)
            else:
                del due[notification_id]
            continue
        _record(paths, row, "sent", None, 0.0, refined)
        del due[notification_id]


def _message_or_error(registry: Registry, row: NotificationRecord) -> Message | str:
    """The row's message, or why it cannot be built (a record written by a newer release, say)."""
    try:
        return message_of(registry, row)
    except (KeyError, TypeError, ValueError, OumiJobsError) as exc:
        return f"cannot build the message: {exc}"


def _due_in(next_try_at: str) -> float:
    return time.monotonic() + max(0.0, (from_iso(next_try_at) - now()).total_seconds())


def _record(
    paths: Paths, row: NotificationRecord, status: str, error: str | None, gap: float, refined: str | None = None
) -> None:
    at = now_iso()
    next_try = now().timestamp() + gap
    with Registry.open(paths) as registry:
        registry.record_try(
            row.notification_id, status=status, last_error=error[:MAX_ERROR_CHARS] if error else None,
            sent_at=at if status == "sent" else None,
            next_try_at=from_epoch(next_try), shown_url=refined,
        )  # fmt: skip


def message_of(registry: Registry, row: NotificationRecord) -> Message:
    """The message of a stored notification: its job as the emitter saw it (else as the registry has it)."""
    record = registry.get(row.job_id)
    seen: dict[str, Any] | None = row.document.get("seen")
    view: JobView | None = None
    if record is not None:
        view = view_of(record)
        if seen is not None:
            view = JobView(record, State(seen["state"]), seen.get("status"), seen.get("detail"),
                           seen.get("as_of") or view.as_of, bool(seen.get("external")))  # fmt: skip
    detail: dict[str, Any] = row.document.get("detail") or {}
    at = row.document.get("at") or row.created_at
    return build_message(row.event, at, view, detail, row.attempt, subject=row.job_id)


def build_message(
    event: str, at: str, view: JobView | None, detail: dict[str, Any], attempt: int = 1, *, subject: str
) -> Message:
    document = event_document(event, at, view, detail, attempt)
    body = json.dumps(document, separators=(",", ":"), default=str).encode()
    name = view.record.name if view is not None and view.record.name else None
    title = f"oumi-jobs: {subject} {event}" if subject != "oumi-jobs" else f"oumi-jobs: {event}"
    facts = [f"{key}={value}" for key, value in detail.items() if value not in (None, "", [], {})]
    if view is not None and view.failure is not None:
        facts.append(f"failure={view.failure.failure_class}")
    text = f"{name or subject} {event}" + (f" ({', '.join(facts)})" if facts else "")
    return Message(event, body, title, text)


def send(url: str, message: Message, config: NotifyConfig) -> str | None:
    """Deliver one message to ``url`` now (one try); the URL's redacted form as Apprise shows it, if it was
    Apprise's.  :class:`DeliveryError` with the reason, the URL redacted, when it was not delivered."""
    try:
        if urlsplit(url).scheme.lower() in PLAIN_SCHEMES:
            _post(url, message, config.secret)
            return None
        return _apprise(url, message)
    except DeliveryError as exc:
        raise DeliveryError(scrub(str(exc), url)) from None
    except (OSError, ValueError) as exc:  # a connection refused, a timeout, a URL it cannot read
        reason = getattr(exc, "reason", None) or exc  # urllib wraps the socket's error
        raise DeliveryError(scrub(f"{shown(url)}: {reason}", url)) from None


def _post(url: str, message: Message, secret: str | None) -> None:
    parts = urlsplit(url)
    headers = {"Content-Type": "application/json", "X-Oumi-Jobs-Event": message.event,
               "User-Agent": "oumi-jobs"}  # fmt: skip
    if secret:
        digest = hmac.new(secret.encode(), message.body, hashlib.sha256).hexdigest()
        headers["X-Oumi-Jobs-Signature"] = f"sha256={digest}"
    if parts.username is not None:  # urllib reads no credentials from a URL: basic auth, as a browser would
        credentials = f"{parts.username}:{parts.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode()
        host = parts.netloc.rpartition("@")[2]
        url = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    request = urllib.request.Request(url, data=message.body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            response.read(1024)
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"{shown(url)} answered HTTP {exc.code} {exc.reason}") from None


def _apprise(url: str, message: Message) -> str:
    import apprise  # slowish to import: only for a URL that needs it

    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        raise DeliveryError(f"{shown(url)} is not a URL Apprise can send to")
    refined = str(plugin.url(privacy=True)).partition("?")[0]  # type: ignore[no-untyped-call]
    notifier = apprise.Apprise()
    notifier.add(plugin)
    with apprise.LogCapture(level=apprise.logging.WARNING, fmt="%(message)s") as captured:  # type: ignore[no-untyped-call]
        delivered = notifier.notify(title=message.title, body=message.text, notify_type=_apprise_type(message.event))
    if not delivered:
        said = " ".join(captured.getvalue().split())[-MAX_ERROR_CHARS:]
        raise DeliveryError(f"{refined}: not delivered" + (f": {said}" if said else ""))
    return refined


def _apprise_type(event: str) -> str:
    if event in ("failed", "lost", "guard"):
        return "failure"
    if event in ("succeeded", "sweep_done"):
        return "success"
    return "warning" if event in ("cancelled", "retrying") else "info"


def send_test(paths: Paths, url: str) -> str:
    """``notify test URL``: a test event sent now, once; the URL as shown.  :class:`DeliveryError` if not sent."""
    config = load_config(paths)
    message = build_message("test", now_iso(), None, {"message": "a test notification from oumi-jobs"},
                            subject="oumi-jobs")  # fmt: skip
    refined = send(url, message, config)
    return refined or shown(url)
