"""The options and arguments commands share, declared once, with the checks of their values.

Every bad value is one line on stderr and exit 2: the checks raise the core's
:class:`~oumi_jobs.errors.UsageError`, which the root maps like any error.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer

from oumi_jobs import bounds
from oumi_jobs.errors import UsageError
from oumi_jobs.policy import PolicyTexts, parse_policy


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


# The options of what oumi-jobs does for a job while nobody watches, shared by `submit` and `sweep`: declared
# once here, checked once by the core's parse_policy, and handed to the command as one JobPolicy.
_POLICY_OPTIONS: dict[str, tuple[Any, Any]] = {
    "retries": (Annotated[Optional[int], typer.Option("--retries", help="Retry a failed or lost job up to N times.")], None),
    "retry_on": (Annotated[Optional[str], typer.Option(
        "--retry-on", help="Failure classes worth a retry, comma-separated "
        "(default preempted,lost,nccl,host_oom,stalled,killed).")], None),
    "retry_delay": (Annotated[Optional[str], typer.Option(
        "--retry-delay", help="Wait this long before a retry (default 10s).")], None),
    "stall_after": (Annotated[Optional[str], typer.Option(
        "--stall-after", help="Guard: the training step has not advanced for DURATION, or 'auto'.")], None),
    "max_duration": (Annotated[Optional[str], typer.Option(
        "--max-duration", help="Guard: the job has run longer than DURATION.")], None),
    "max_cost": (Annotated[Optional[float], typer.Option(
        "--max-cost", help="Guard: its cost so far, or so far plus ETA x price, passes USD.")], None),
    "nan_guard": (Annotated[bool, typer.Option(
        "--nan-guard", help="Guard: the loss or the gradient norm is NaN or infinite.")], False),
    "guard_action": (Annotated[Optional[str], typer.Option(
        "--guard-action", help="What a guard that fires does: stop (default), retry or alert.")], None),
    "notify": (Annotated[list[str], typer.Option(
        "--notify", help="Send the job's events to this URL: http(s):// (signed JSON) or an Apprise URL "
        "(slack://, ntfys://, mailto://, ...). Repeatable.")], []),
}  # fmt: skip


def with_policy(command: Callable[..., None]) -> Callable[..., None]:
    """The command, with the retry, guard and notification options added to its own, and their values given
    to it as one ``policy`` (a :class:`~oumi_jobs.policy.JobPolicy`) keyword."""
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "policy"]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        for name, (annotation, default) in _POLICY_OPTIONS.items()
    ]

    @functools.wraps(command)
    def with_options(*args: Any, **kwargs: Any) -> None:
        texts = PolicyTexts(**{name: kwargs.pop(name) for name in _POLICY_OPTIONS})
        command(*args, policy=parse_policy(texts), **kwargs)

    # Typer reads a command's options from its signature and type hints: these are the command's and ours.
    setattr(with_options, "__signature__", inspect.Signature([*own, *added]))  # noqa: B010
    with_options.__annotations__ = {p.name: p.annotation for p in (*own, *added)}
    return with_options
