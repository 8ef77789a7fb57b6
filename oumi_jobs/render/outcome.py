"""The envelope of a command's result: what it needs besides its data, rendered once for every mode.

A command's data becomes its document; beside it go warnings (side outputs
that failed), errors that explain a non-zero exit (a job already ended:
nothing to cancel), the clouds that did not answer, and the exit code.  The
command line renders an :class:`Outcome` in one place
(:meth:`oumi_jobs.cli.output.Output.outcome`) for a person, for ``--json`` and
for ``-q``; the REST API sends the same document with the exit code in a header.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from oumi_jobs.errors import ExitCode


@dataclass(frozen=True)
class Encoded:
    """An array of documents already encoded as JSON texts (the lean ``list --json``): printed as they are."""

    texts: list[str]


@dataclass(frozen=True)
class EncodedDocument:
    """One document already encoded as JSON text (a sweep with thousands of children): printed as it is."""

    text: str


@dataclass(frozen=True)
class Outcome:
    """``document``: the JSON result, or a function that builds it (when building it costs what the human and
    quiet modes should not pay); None where ``--json`` prints nothing more."""

    document: Any | Callable[[], Any]
    warnings: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    unreachable: Mapping[str, str] = field(default_factory=dict)  # cloud -> why it did not answer
    exit_code: int = ExitCode.OK

    def built(self) -> Any:
        """The document itself."""
        return self.document() if callable(self.document) else self.document

    @property
    def notes(self) -> list[str]:
        """The clouds that did not answer, a line each, in the order of their names."""
        return [f"{name}: {reason}" for name, reason in sorted(self.unreachable.items())]


def asked_cloud_exit(unreachable: Mapping[str, str], asked: str | None) -> int:
    """A cloud asked for by name that did not answer is the command's failure (exit 5); others are notes."""
    return ExitCode.CLOUD_UNREACHABLE if asked is not None and asked in unreachable else ExitCode.OK
