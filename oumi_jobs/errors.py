"""The exception tree of oumi-jobs.

Core code raises these; the CLI turns each into one line on stderr and the
exit code it carries (SPEC "Exit codes"), in one place.
"""

from __future__ import annotations


class ExitCode:
    OK = 0
    FAILURE = 1
    USAGE = 2
    NOT_FOUND = 3
    CONFLICT = 4
    CLOUD_UNREACHABLE = 5
    SURVIVORS = 6
    TIMEOUT = 7  # `wait --timeout` passed before every job was done
    INTERRUPTED = 130  # 128 + SIGINT, as shells report a command ended by Ctrl-C


class OumiJobsError(Exception):
    """Base of every error oumi-jobs reports to its user."""

    exit_code: int = ExitCode.FAILURE


class UsageError(OumiJobsError):
    """Bad input: a missing or malformed config, an unknown cloud, a bad option value."""

    exit_code = ExitCode.USAGE


class PreflightError(UsageError):
    """A launch the pre-flight refused; ``details`` names each problem (one line each, before the message)."""

    def __init__(self, message: str, details: tuple[str, ...]) -> None:
        super().__init__(message)
        self.details = details


class JobNotFoundError(OumiJobsError):
    exit_code = ExitCode.NOT_FOUND


class AmbiguousJobError(OumiJobsError):
    exit_code = ExitCode.NOT_FOUND

    def __init__(self, prefix: str, candidates: list[str]) -> None:
        self.prefix = prefix
        self.candidates = candidates
        shown = ", ".join(candidates[:10])
        more = f" (and {len(candidates) - 10} more)" if len(candidates) > 10 else ""
        super().__init__(f"job prefix {prefix!r} is ambiguous; candidates: {shown}{more}")


class ConflictError(OumiJobsError):
    """The request contradicts the job's state (e.g. cancelling a finished job)."""

    exit_code = ExitCode.CONFLICT


class RegistryError(OumiJobsError):
    """The registry file cannot be read; it is left untouched."""

    exit_code = ExitCode.FAILURE


class CloudUnreachableError(OumiJobsError):
    exit_code = ExitCode.CLOUD_UNREACHABLE


class CloudTimeoutError(CloudUnreachableError):
    """The cloud (or the server that asks it) did not answer within the call's time limit."""


class ClusterNotFoundError(CloudUnreachableError):
    """The cloud answered, and has no cluster of that name.

    Typed (not told by its message) so a view can decide whether that means the
    cluster is gone (see ``cloud.facts.missing_cluster_is_gone``); a subclass of
    CloudUnreachableError so that callers that only need an answer stop as before.
    """

    def __init__(self, cloud: str, cluster: str) -> None:
        super().__init__(f"cluster {cluster!r} of cloud {cloud!r} not found")
        self.cloud = cloud
        self.cluster = cluster


class CloudCallError(CloudUnreachableError):
    """A call into a cloud raised: the cloud's own error, kept as its type's name and its message.

    Plain strings rather than the exception itself, so the error can cross a
    process boundary (an adapter that forwards calls to a server) and callers
    can still record the launcher's message word for word.
    """

    def __init__(self, message: str, *, error_type: str, error_message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.error_message = error_message


class CancelInterrupted(OumiJobsError):
    """Ctrl-C during a cancel this process owned: the message says who carries it on (a detached finisher),
    or that it was recorded failed because nobody could."""

    exit_code = ExitCode.INTERRUPTED


class WaitInterrupted(OumiJobsError):
    """Ctrl-C during ``wait``: the waiting stops; the jobs go on untouched."""

    exit_code = ExitCode.INTERRUPTED


class SideOutputError(OumiJobsError):
    """A side output (a metrics file) could not be written; the operation it reports on stands.

    Services catch it and report it as a warning with their result: a cancel
    that worked is still reported, with its own exit code.
    """
