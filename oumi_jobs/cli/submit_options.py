"""The options ``submit`` and ``sweep`` share: a cloud launch's, the checks', and what oumi-jobs does for a
job while nobody watches.

Apart from :mod:`oumi_jobs.cli.options` (the options every command shares), so that a command without
them (``list --json`` over thousands of jobs) does not import the policy and the failure classes it names.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer

from oumi_jobs import bounds
from oumi_jobs.cli.options import count
from oumi_jobs.policy import PolicyTexts, parse_policy

GpusOpt = Annotated[
    Optional[str], typer.Option("--gpus", help="Accelerators per node of a cloud job, TYPE[:COUNT] (e.g. A100:8).")
]
NodesOpt = Annotated[
    Optional[int], typer.Option("--nodes", help="Nodes of a cloud job.", callback=count("--nodes", 1, bounds.MAX_NODES))
]
AutostopOpt = Annotated[
    Optional[str],
    typer.Option("--autostop", help="Stop the cluster after it has been idle this long, e.g. 30m (SkyPilot)."),
]
DownOpt = Annotated[
    bool, typer.Option("--down", help="Tear the cluster down when it goes idle after the job (SkyPilot).")
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Print what would run and run the checks; register and start nothing.")
]
NoPreflightOpt = Annotated[
    bool, typer.Option("--no-preflight", help="Launch a cloud job without the blocking pre-flight checks.")
]

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
