"""cancel's rules live in the service: which combinations of jobs, identity, --all and --down make sense.

The command line and the REST API both hand a :class:`CancelRequest` to the
same call; these check its rules directly, then that the command says the
very same lines and touches nothing when a request is refused.
"""

from __future__ import annotations

import json

import pytest

from oumi_jobs.cancel.request import CancelRequest, Scope, check, run
from oumi_jobs.errors import ExitCode, UsageError
from oumi_jobs.external import IDENTITY_USAGE, CloudIdentity
from oumi_jobs.paths import Paths

from .helpers import Cli

IDENTITY = {"cloud": "slurm", "cluster": "c1", "launcher_id": "7"}
IDENTITY_ARGS = ["--cloud", "slurm", "--cluster", "c1", "--launcher-id", "7"]

# Each refused combination, as a request and as the command's arguments, with the line it is refused with.
REFUSED = [
    (CancelRequest(all_jobs=True, **IDENTITY), ["--all", *IDENTITY_ARGS], "name a job by its identity or use --all, not both"),
    (CancelRequest(), [], "name the jobs to cancel, or use --all"),
    (CancelRequest(jobs=("job-a",), all_jobs=True), ["job-a", "--all"], "name jobs or use --all, not both"),
    (CancelRequest(jobs=("job-a", "job-b"), down=True), ["job-a", "job-b", "--down"], "cancel --down takes one job, by its id"),
    (CancelRequest(down=True, **IDENTITY), ["--down", *IDENTITY_ARGS], "cancel --down takes one job, by its id"),
    (CancelRequest(jobs=("job-a",), **IDENTITY), ["job-a", *IDENTITY_ARGS], IDENTITY_USAGE),
    (CancelRequest(cloud="slurm"), ["--cloud", "slurm"], IDENTITY_USAGE),
]  # fmt: skip


@pytest.mark.parametrize(("request_", "args", "message"), REFUSED, ids=[m for _, _, m in REFUSED])
def test_the_service_refuses_combinations_that_make_no_sense(request_: CancelRequest, args: list[str], message: str):
    with pytest.raises(UsageError) as refused:
        check(request_)
    assert str(refused.value) == message and refused.value.exit_code == ExitCode.USAGE


def test_a_checked_request_says_what_it_cancels() -> None:
    assert check(CancelRequest(jobs=("job-a",))) == check(CancelRequest(jobs=("job-a",), states=("running",)))
    assert (check(CancelRequest(jobs=("job-a",))).scope, check(CancelRequest(jobs=("job-a",))).job) == (
        Scope.ONE,
        "job-a",
    )
    by_identity = check(CancelRequest(**IDENTITY))
    assert by_identity.scope is Scope.ONE and by_identity.job == CloudIdentity("slurm", "c1", "7")
    assert check(CancelRequest(jobs=("job-a", "job-b"))).scope is Scope.SEVERAL
    assert check(CancelRequest(all_jobs=True, states=("pending",))).scope is Scope.SEVERAL
    assert (check(CancelRequest(jobs=("job-a",), down=True)).scope, check(CancelRequest(jobs=("job-a",), down=True)).job) == (
        Scope.THEN_DOWN,
        "job-a",
    )  # fmt: skip


def test_run_refuses_before_it_touches_the_registry(paths: Paths) -> None:
    with pytest.raises(UsageError, match="name jobs or use --all, not both"):
        run(paths, CancelRequest(jobs=("job-a",), all_jobs=True))
    assert not paths.registry_file.exists()


@pytest.mark.parametrize(("request_", "args", "message"), REFUSED, ids=[m for _, _, m in REFUSED])
def test_the_command_says_the_services_line_and_cancels_nothing(
    cli: Cli, request_: CancelRequest, args: list[str], message: str
) -> None:
    refused = cli("cancel", *args, "--json")
    assert refused.exit_code == ExitCode.USAGE and refused.stdout == ""
    assert refused.stderr.strip() == f"oumi-jobs: error: {message}"
    assert json.loads(cli("cancellations", "--json").stdout) == []
