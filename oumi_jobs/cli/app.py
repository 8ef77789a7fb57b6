"""The ``oumi-jobs`` command line's root: it composes the commands of each area and maps errors to exit codes.

Each area's commands live in their own module (jobs, cancel, clusters and
cost, registry, server) and follow one rule: parse, make one call into the
core, render through one :class:`~oumi_jobs.cli.output.Output`.  Every error
the core raises is turned into one line on stderr and its exit code here, in
:class:`_Group.invoke`; the exit codes of outcomes come from
:mod:`oumi_jobs.exits` and travel in each command's
:class:`~oumi_jobs.render.outcome.Outcome`.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from oumi_jobs import __version__
from oumi_jobs.cli import (
    cancel_cli,
    clusters_cli,
    events_cli,
    jobs_cli,
    notify_cli,
    output,
    registry_cli,
    retry_cli,
    sweeps_cli,
    ui_cli,
)
from oumi_jobs.cli.context import paths_of
from oumi_jobs.cli.server_cli import server_app
from oumi_jobs.errors import ExitCode, OumiJobsError
from oumi_jobs.server import forwarding

DEBUG_ENV = "OUMI_JOBS_DEBUG"


class _Group(TyperGroup):
    """Maps core errors to one line and an exit code, in one place."""

    def invoke(self, ctx: click.Context) -> Any:

        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except OumiJobsError as exc:
            if os.environ.get(DEBUG_ENV) == "1":
                traceback.print_exc()
            for detail in getattr(exc, "details", ()):  # each problem a pre-flight found, a line each
                output.error(detail)
            output.error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # The reader (e.g. `| head`) went away: stop quietly, as Unix tools
            # do.  stdout now points at /dev/null so the final flush cannot fail.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(ExitCode.FAILURE) from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV) == "1":
                raise
            output.error(f"internal error: {exc!r} (set {DEBUG_ENV}=1 for a traceback)")
            raise typer.Exit(ExitCode.FAILURE) from None


app = typer.Typer(
    cls=_Group,
    name="oumi-jobs",
    help="Submit, watch and cancel Oumi jobs on this machine or on any cloud oumi.launcher reaches.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"oumi-jobs {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Submit, watch and cancel Oumi jobs on this machine or on any cloud oumi.launcher reaches.

    Exit codes: 0 success, 1 failure, 2 usage error, 3 job not found or ambiguous,
    4 conflict, 5 cloud unreachable, 6 cancelled but processes survived, 7 `wait` timed out.
    """
    if ctx.invoked_subcommand != "server":
        # Cloud calls go to the warm server (started on the first one); local commands never make any.
        forwarding.install(paths_of(ctx), on_start=output.hint)


# The order of `--help`, as it has always been.
app.add_typer(server_app, name="server")
app.command()(jobs_cli.submit)
app.command()(jobs_cli.check)
app.command()(jobs_cli.status)
app.command()(jobs_cli.wait)
app.command("list")(jobs_cli.list_)
app.command()(jobs_cli.logs)
app.command()(registry_cli.prune)
app.command("import-registry")(registry_cli.import_registry)
app.add_typer(registry_cli.registry_app, name="registry")
app.command()(cancel_cli.cancel)
app.command("cancel-status")(cancel_cli.cancel_status)
app.command()(cancel_cli.cancellations)
app.command()(jobs_cli.plot)
app.command()(events_cli.events)
app.command()(retry_cli.retry)
app.command()(notify_cli.notifications)
app.add_typer(notify_cli.notify_app, name="notify")
app.command("clusters")(clusters_cli.clusters_)
app.command()(clusters_cli.stop)
app.command()(clusters_cli.down)
app.command()(clusters_cli.cost)
sweeps_cli.register(app)
app.command()(ui_cli.ui)


def main() -> None:
    app(prog_name="oumi-jobs")
