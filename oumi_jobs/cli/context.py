"""What every command reads from its click context: the profile's :class:`Paths`, made once per invocation."""

from __future__ import annotations

import click

from oumi_jobs.paths import Paths


def paths_of(ctx: click.Context) -> Paths:
    root = ctx.find_root()
    if root.obj is None:
        root.obj = Paths.from_env()
    paths: Paths = root.obj  # click types obj as Any
    return paths
