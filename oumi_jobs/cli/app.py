"""The ``oumi-jobs`` command line's root: it composes the commands of each area and maps errors to exit codes.

Each area's commands live in their own module (jobs, list, cancel, clusters
and cost, registry, server, sweeps, events), named in :data:`COMMANDS` and
imported when their command runs, and follow one rule: parse, make one call
into the core, render through one :class:`~oumi_jobs.cli.output.Output`.  Every error
the core raises is turned into one line on stderr and its exit code here, in
:class:`_Group.invoke`; the exit codes of outcomes come from
:mod:`oumi_jobs.exits` and travel in each command's
:class:`~oumi_jobs.render.outcome.Outcome`.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Iterator, Mapping, MutableMapping
from functools import partial
from typing import Annotated, Any

import click
import typer
import typer.main
from click.utils import make_default_short_help
from typer.core import TyperGroup

from oumi_jobs import __version__
from oumi_jobs.cli import output
from oumi_jobs.cli.context import paths_of
from oumi_jobs.cloud import adapter
from oumi_jobs.cloud.adapter import CloudAdapter
from oumi_jobs.errors import ExitCode, OumiJobsError
from oumi_jobs.paths import Paths

DEBUG_ENV = "OUMI_JOBS_DEBUG"


# Every command, in the order of `--help` (as it has always been): where its function, or its group's
# Typer, lives.  A command's module is imported when that command is asked for (`--help` asks for all):
# importing every area's module and building each of its commands' options would cost `list --json` more
# than its query (bench/bench_local.py), so this table is the one place the root names its areas' modules
# as text instead of importing them.
COMMANDS: dict[str, str] = {
    "submit": "jobs_cli:submit",
    "check": "jobs_cli:check",
    "status": "jobs_cli:status",
    "wait": "jobs_cli:wait",
    "list": "list_cli:list_",
    "logs": "jobs_cli:logs",
    "prune": "registry_cli:prune",
    "import-registry": "registry_cli:import_registry",
    "cancel": "cancel_cli:cancel",
    "cancel-status": "cancel_cli:cancel_status",
    "cancellations": "cancel_cli:cancellations",
    "plot": "jobs_cli:plot",
    "events": "events_cli:events",
    "retry": "retry_cli:retry",
    "notifications": "notify_cli:notifications",
    "clusters": "clusters_cli:clusters_",
    "stop": "clusters_cli:stop",
    "down": "clusters_cli:down",
    "cost": "clusters_cli:cost",
    "sweep": "sweeps_cli:sweep",
    "sweeps": "sweeps_cli:sweeps",
    "compare": "sweeps_cli:compare",
    "ui": "ui_cli:ui",
    "server": "server_cli:server_app",
    "registry": "registry_cli:registry_app",
    "notify": "notify_cli:notify_app",
}


# What `oumi-jobs --help` says of each command: its help up to the first blank line.  Listing the commands
# from here imports none of their modules (building every command cost --help more than the rest of it);
# tests/test_cli_help.py checks each line against its command's own help.
SUMMARIES: dict[str, str] = {
    "submit": "Start a job. Prints its id.",
    "check": "Check a config with oumi's own config classes: exit 0 when clean, 2 with a line per problem.",
    "status": "Live state of one job, by id or by its cloud identity (jobs launched elsewhere too).",
    "wait": "Wait until every job is done. Exit 0 if all succeeded, 1 if any failed or was lost, else 4 if any was cancelled, else 7 if --timeout passed first.",
    "list": "All registered jobs, newest first, with their live states; clouds are asked in parallel.",
    "logs": "Print a job's output (by id, or by its cloud identity: jobs launched elsewhere too).",
    "prune": "Remove old registry entries of finished jobs (safe from cron).",
    "import-registry": "Import the JSON registry of the Oumi job server (its `status` keys are dropped).",
    "cancel": "Cancel jobs: graceful signal to the whole process tree, then SIGKILL; verified before reported.",
    "cancel-status": "The latest cancellation of a job, step by step.",
    "cancellations": "History of cancellations, newest first.",
    "plot": "Plot jobs' metrics (loss, learning_rate, ...) over their steps, in the terminal or as an image.",
    "events": "A job's timeline: submitted, each attempt's start and end, guards, retries, cancellations, notifications.",
    "retry": "Start the next attempt of an ended job (any ended state), with the same id; exit 4 while it is not done.",
    "notifications": "Notification deliveries, newest first (URLs shown with their credentials redacted).",
    "clusters": "The clusters of the clouds with jobs here: state, our jobs there, price, autostop.",
    "stop": "Stop a cluster (launcher.stop): refused while our jobs run there, unless --cancel-jobs.",
    "down": "Tear a cluster down (launcher.down): refused while our jobs run there, unless --cancel-jobs.",
    "cost": "Estimated cost of the cloud jobs launched here: each cluster's price times the time its job ran.",
    "sweep": "Many jobs from one config: every combination of the --set values (or --zip, or --values FILE).",
    "sweeps": "The sweeps, newest first: id, name, size, counts by state.",
    "compare": "One row per child: its overrides, state, and the last and best value of --metric, best first.",
    "ui": "Open the dashboard: the server listens on 127.0.0.1, and a login link that works once, for 5 minutes.",
    "server": "The warm per-user server: keeps oumi.launcher imported so cloud commands take milliseconds, and serves the REST API.",
    "registry": "Check the registry; recover a damaged one (never done automatically).",
    "notify": "Notifications: send a test event to a URL.",
}


def load_command(name: str, where: str) -> click.Command:
    """The click command of ``where`` (``module:function`` or ``module:typer_app`` under ``oumi_jobs.cli``),
    built as the root used to build each of its commands: under a parent of the root's settings."""
    module, _, attribute = where.partition(":")
    target = getattr(importlib.import_module(f"oumi_jobs.cli.{module}"), attribute)
    parent = typer.Typer(rich_markup_mode=None, pretty_exceptions_enable=False, add_completion=False)
    if isinstance(target, typer.Typer):
        parent.add_typer(target, name=name)
    else:
        parent.command(name)(target)
    return typer.main.get_group(parent).commands[name]


class _LazyCommands(MutableMapping[str, click.Command]):
    """The root's commands by name, each built the first time it is looked up."""

    def __init__(self, table: Mapping[str, str]) -> None:
        self._table = dict(table)
        self._built: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._built:
            self._built[name] = load_command(name, self._table[name])
        return self._built[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._built[name] = command
        self._table.setdefault(name, "")

    def __delitem__(self, name: str) -> None:
        del self._table[name]
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, name: object) -> bool:
        return name in self._table


class _Group(TyperGroup):
    """The root: its commands built when asked for; maps core errors to one line and an exit code, in one place."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = _LazyCommands(COMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and what each does, as click lists them, from :data:`SUMMARIES`: none is built."""
        limit = formatter.width - 6 - max(len(name) for name in self.commands)
        rows = [(name, make_default_short_help(SUMMARIES[name], limit).strip()) for name in self.commands]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

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
        # Cloud calls go to the warm server (started on the first one); local commands never make any, nor
        # import its client.
        adapter.use_lazily(partial(_forwarding, paths_of(ctx)))


def _forwarding(paths: Paths) -> CloudAdapter | None:
    # lazy import: the warm server's client (http, ssl, its lifecycle) only once a command asks a cloud
    from oumi_jobs.server import forwarding

    return forwarding.adapter_for(paths, on_start=output.hint)


def main() -> None:
    app(prog_name="oumi-jobs")
