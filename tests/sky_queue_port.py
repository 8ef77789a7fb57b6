"""A SkyPilot API server plugin that moves the server's request queue off its fixed port.

SkyPilot 0.12's API server opens its request queue's manager on loopback port
50011 whatever ``--port`` says, so a second server on one machine (a user's
own, lingering, and the one tests/test_skypilot.py starts) fails with "port
50011 is already in use".  Its plugin interface may register a queue backend
factory: this one is SkyPilot's own multiprocessing queue, on the port the
test names.  The test's private HOME loads it (``~/.sky/plugins.yaml``) in
every process of that server: the main one and its executors.
"""

from __future__ import annotations

from typing import Any

from sky.server import plugins
from sky.server.requests.queues import base as queue_base


class QueueOnPort(plugins.BasePlugin):
    def __init__(self, port: int) -> None:
        self.port = int(port)

    def install(self, extension_context: Any) -> None:
        extension_context.register_queue_backend_factory(queue_base.MultiprocessingQueueFactory(port=self.port))
