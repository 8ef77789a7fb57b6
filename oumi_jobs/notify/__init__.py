"""Notifications: a job's events sent to the URLs of its ``--notify`` and of ``config.toml``.

:func:`emit` records them (once per job, attempt, event and URL) and starts
their delivery in a detached sender (:mod:`oumi_jobs.notify.sender`);
:mod:`oumi_jobs.notify.redact` shows URLs without their credentials.
"""

from oumi_jobs.notify.config import EVENTS
from oumi_jobs.notify.emission import Seen, emit

__all__ = ["EVENTS", "Seen", "emit"]
