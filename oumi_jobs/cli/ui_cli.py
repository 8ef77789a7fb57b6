"""``oumi-jobs ui``: the dashboard's one-time login link, printed or opened in a browser."""

from __future__ import annotations

import os
import sys
import webbrowser
from typing import Annotated, Optional

import typer

from oumi_jobs.cli import render
from oumi_jobs.cli.context import paths_of
from oumi_jobs.cli.options import JsonOpt
from oumi_jobs.cli.output import Output
from oumi_jobs.dashboard.launch import login_link
from oumi_jobs.render.server import ui_document


def ui(
    ctx: typer.Context,
    port: Annotated[
        Optional[int],
        typer.Option("--port", help="The server's loopback TCP port (default: a free one).", min=1, max=65535),
    ] = None,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Print the link; open no browser.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Open the dashboard: the server listens on 127.0.0.1, and a login link that works once, for 5 minutes."""
    out = Output.from_flags(as_json=as_json)
    link = login_link(paths_of(ctx), port=port, on_start=out.hint)
    opened = not no_browser and _has_a_display() and webbrowser.open(link.url)
    out.result(ui_document(link, opened), human=lambda: render.print_ui_link(link.url, opened))


def _has_a_display() -> bool:
    """Whether a graphical browser can open here: without one, Python's webbrowser would start a text browser
    in this very terminal (over ssh, say), and the printed link is what the user needs."""
    return sys.platform == "darwin" or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
