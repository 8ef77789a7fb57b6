"""``oumi-jobs server ...``: start, stop, look at and run this environment's warm server."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from oumi_jobs import bounds
from oumi_jobs.cli import render
from oumi_jobs.cli.context import paths_of
from oumi_jobs.cli.options import JsonOpt
from oumi_jobs.cli.output import Output
from oumi_jobs.errors import ExitCode
from oumi_jobs.render.server import running_document, started_document, stopped_document
from oumi_jobs.server import lifecycle
from oumi_jobs.server.activity import DEFAULT_IDLE_TIMEOUT_S, ServeOptions
from oumi_jobs.server.location import ServerFiles, read_or_create_token

server_app = typer.Typer(
    cls=TyperGroup,
    help="The warm per-user server: keeps oumi.launcher imported so cloud commands take milliseconds, "
    "and serves the REST API.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

HostOpt = Annotated[
    Optional[str], typer.Option("--host", help="Also serve TCP on this address (bearer token required).")
]
PortOpt = Annotated[Optional[int], typer.Option("--port", help="TCP port (default: a free one).", min=0, max=65535)]
RemoteOpt = Annotated[
    bool, typer.Option("--allow-remote", help="Allow a --host that is not a loopback address, with TLS (warned).")
]
InsecureOpt = Annotated[
    bool,
    typer.Option(
        "--allow-insecure-remote", help="Allow a non-loopback --host without TLS: the token crosses in clear."
    ),
]
CertOpt = Annotated[Optional[str], typer.Option("--tls-cert", help="Serve TCP over TLS with this certificate (PEM).")]
KeyOpt = Annotated[Optional[str], typer.Option("--tls-key", help="The private key of --tls-cert (PEM).")]


def _idle(value: float) -> float:
    return bounds.check_seconds("--idle-timeout", value, low=0.0)


IdleOpt = Annotated[
    float,
    typer.Option("--idle-timeout", help="Exit after this many seconds without requests (0: never).", callback=_idle),
]


@server_app.command("start")
def server_start(
    ctx: typer.Context,
    host: HostOpt = None,
    port: PortOpt = None,
    allow_remote: RemoteOpt = False,
    idle_timeout: IdleOpt = DEFAULT_IDLE_TIMEOUT_S,
    as_json: JsonOpt = False,
    tls_cert: CertOpt = None,
    tls_key: KeyOpt = None,
    allow_insecure_remote: InsecureOpt = False,
) -> None:
    """Start the server in the background; returns once it answers (exit 4 if one already runs)."""
    out = Output.from_flags(as_json=as_json)
    options = ServeOptions(host, port, allow_remote, idle_timeout, tls_cert, tls_key, allow_insecure_remote)
    record = lifecycle.start(paths_of(ctx), options)
    out.result(started_document(record), human=lambda: render.print_server_started(record.pid, record.address))


@server_app.command("run")
def server_run(
    ctx: typer.Context,
    host: HostOpt = None,
    port: PortOpt = None,
    allow_remote: RemoteOpt = False,
    idle_timeout: Annotated[
        float,
        typer.Option(
            "--idle-timeout",
            help="Exit after this many seconds without requests (0: never, the default "
            "here: a service manager restarts what exits).",
            callback=_idle,
        ),
    ] = 0.0,  # fmt: skip
    tls_cert: CertOpt = None,
    tls_key: KeyOpt = None,
    allow_insecure_remote: InsecureOpt = False,
) -> None:
    """Run the server in the foreground, logging to stderr (for systemd and containers); Ctrl-C stops it."""
    options = ServeOptions(host, port, allow_remote, idle_timeout, tls_cert, tls_key, allow_insecure_remote)
    lifecycle.run_foreground(paths_of(ctx), options)


@server_app.command("stop")
def server_stop(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Stop the server (requests under way get 10 s to end); nothing to do when none runs."""
    out = Output.from_flags(as_json=as_json)
    result = lifecycle.stop(paths_of(ctx))
    out.result(stopped_document(result), human=lambda: render.print_server_stopped(result.pid, result.how))


@server_app.command("status")
def server_status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The server's pid, version, uptime, address, idle timeout, clouds, requests and memory (exit 1: none)."""
    out = Output.from_flags(as_json=as_json)
    status = lifecycle.status(paths_of(ctx))
    document = running_document(status)
    if status is None:
        out.result(document, human=None)
        out.error("the oumi-jobs server is not running (a cloud command starts it; so does `oumi-jobs server start`)")
        raise typer.Exit(ExitCode.FAILURE)
    out.result(document, human=lambda: render.print_server_status(document))


@server_app.command("token")
def server_token(
    ctx: typer.Context,
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Replace it: clients holding the old one are refused.")
    ] = False,
) -> None:
    """Print the bearer token TCP clients send (created on first use, a 0600 file in the state dir)."""
    token = read_or_create_token(ServerFiles.for_env(paths_of(ctx)), rotate=rotate)
    Output.from_flags().value(token)
