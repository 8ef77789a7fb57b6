"""The options and arguments commands share, declared once, with the checks of their values.

Every bad value is one line on stderr and exit 2: the checks raise the core's
:class:`~oumi_jobs.errors.UsageError`, which the root maps like any error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer

from oumi_jobs import bounds
from oumi_jobs.errors import UsageError


def job_ref(value: Any) -> Any:
    """A job id or prefix (or a list of them) must not be blank: ``""`` would be a prefix of every id."""
    for ref in value if isinstance(value, (list, tuple)) else [value]:
        if ref is not None and not ref.strip():
            raise UsageError("an empty job id names no job")
    return value


def count(option: str, low: int = 0, high: int = bounds.MAX_COUNT) -> Callable[[Optional[int]], Optional[int]]:
    """A whole number between ``low`` and ``high`` (None: not given)."""

    def check(value: Optional[int]) -> Optional[int]:
        return value if value is None else bounds.check_count(option, value, low=low, high=high)

    return check


def seconds(option: str, low: float = 0.0) -> Callable[[float], float]:
    """A number of seconds of at least ``low``."""

    def check(value: float) -> float:
        return bounds.check_seconds(option, value, low=low)  # nan and inf too, which click's ranges let through

    return check


JobArg = Annotated[str, typer.Argument(metavar="JOB", help="Job id, or a unique prefix of one.", callback=job_ref)]
OptionalJobArg = Annotated[
    Optional[str], typer.Argument(metavar="[JOB]", help="Job id, or a unique prefix of one.", callback=job_ref)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
WatchOpt = Annotated[bool, typer.Option("--watch", "-w", help="Refresh in place until it is done.")]
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet", help="Print only the essential value.")]
CloudOpt = Annotated[
    Optional[str], typer.Option("--cloud", help="Cloud to run on (default: the config's, else local).")
]
CloudTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--cloud-timeout",
        help=f"Seconds each cloud gets to answer (at least {bounds.MIN_CLOUD_TIMEOUT_S:g}).",
        callback=seconds("--cloud-timeout", bounds.MIN_CLOUD_TIMEOUT_S),
    ),
]
ClusterOpt = Annotated[Optional[str], typer.Option("--cluster", help="Cluster to run on.")]
# A job by its cloud identity (instead of JOB): jobs launched elsewhere too.
IdCloudOpt = Annotated[
    Optional[str], typer.Option("--cloud", help="With --cluster and --launcher-id: a job by its cloud identity.")
]
IdClusterOpt = Annotated[Optional[str], typer.Option("--cluster", help="The job's cluster (with --cloud).")]
LauncherIdOpt = Annotated[Optional[str], typer.Option("--launcher-id", help="The launcher's job id (with --cloud).")]
