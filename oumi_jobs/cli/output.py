"""The one place a command's output goes: :class:`Output`, the sink.

A command builds one ``Output`` from its ``--json`` / ``-q`` flags and hands
it what it has to say; the sink decides what each mode shows, so commands
never branch on the format:

* human: rich tables and panels (:mod:`oumi_jobs.cli.render`) on stdout, live
  displays where stdout is a terminal, hints on stderr;
* ``--json``: one versioned document (:mod:`oumi_jobs.render`) on stdout,
  nothing else there;
* ``-q``: only the essential value (a job id).

Warnings and errors go to stderr in every mode, as plain lines scripts can
read.  rich is imported only when something is rendered for a person, so
``--json`` and ``-q`` never load it (``list --json`` over 10,000 jobs depends
on that).  rich drops colour when stdout is not a terminal or ``NO_COLOR``
is set; live displays check both themselves (``live.animated``), since rich
would still animate under ``NO_COLOR``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

from oumi_jobs.render.outcome import Encoded, EncodedDocument, Outcome

if TYPE_CHECKING:
    from rich.console import Console

T = TypeVar("T")


class Mode(str, Enum):
    HUMAN = "human"
    JSON = "json"
    QUIET = "quiet"


class Output:
    """A command's output sink; the mode is decided once, when it is made."""

    def __init__(self, mode: Mode = Mode.HUMAN) -> None:
        self.mode = mode

    @classmethod
    def from_flags(cls, *, as_json: bool = False, quiet: bool = False) -> Output:
        """The sink for a command's ``--json`` and ``-q``; ``--json`` wins, as stdout must stay one document."""
        return cls(Mode.JSON if as_json else Mode.QUIET if quiet else Mode.HUMAN)

    @property
    def live(self) -> bool:
        """Whether live displays (spinners, views refreshed in place) may show: a person reads."""
        return self.mode is Mode.HUMAN

    def result(self, document: Any, *, human: Callable[[], object] | None = None) -> None:
        """What the command found or did.

        ``--json``: ``document`` on stdout; pass a function that builds it when
        building it costs what the other modes should not pay (reading a whole
        log, 10,000 job documents).  Human: ``human()``, which renders it for a
        person (None: nothing more to show, e.g. a live view already did).
        ``-q``: nothing (see :meth:`value`).
        """
        if self.mode is Mode.JSON and isinstance(document, Encoded):
            print_json_texts(document.texts)
        elif self.mode is Mode.JSON and isinstance(document, EncodedDocument):
            print_json_text(document.text)
        elif self.mode is Mode.JSON:
            print_json(document() if callable(document) else document)
        elif self.mode is Mode.HUMAN and human is not None:
            human()

    def outcome(
        self,
        outcome: Outcome,
        *,
        human: Callable[[], object] | None = None,
        human_notes: Callable[[], object] | None = None,
    ) -> int:
        """A command's whole result: its document (or ``human()``), then its warnings, the errors that explain
        its exit and the clouds that did not answer (``human_notes()`` shows those to a person, when given).
        Returns the exit code, for the command to exit with."""
        self.result(outcome.document, human=human)
        for warning in dict.fromkeys(outcome.warnings):
            self.warn(warning)
        for message in outcome.errors:
            self.error(message)
        self.notes(outcome.notes, human=human_notes)
        return outcome.exit_code

    def value(self, text: str) -> None:
        """The essential value (a new job's id) as a line on stdout, for a person and for ``-q``.

        Nothing under ``--json``: its document carries the same value.
        """
        if self.mode is not Mode.JSON:
            print_line(text)

    def follow(self, items: Iterator[T], *, human: Callable[[Iterator[T]], T]) -> T:
        """Follow ``items`` (a job's views, a cancellation's records) to the last, which is returned.

        A person watches them come through ``human`` (a live display); under
        ``--json`` and ``-q`` they are read without showing anything, so that
        only the final result is printed.
        """
        if self.mode is Mode.HUMAN:
            return human(items)
        *_, last = items
        return last

    def notes(self, messages: Iterable[str], *, human: Callable[[], object] | None = None) -> None:
        """Lines on stderr that go with the result in every mode (e.g. clouds that did not answer).

        For a person ``human()``, when given, shows them instead (a table with
        a row for each cloud, say); otherwise each is a hint.
        """
        if self.mode is not Mode.HUMAN:
            for message in messages:
                print_stderr(message)
        elif human is not None:
            human()
        else:
            for message in messages:
                hint(message)

    def hint(self, message: str) -> None:
        """Advice for a person (how to follow a new job): stderr, and only in human mode."""
        if self.mode is Mode.HUMAN:
            hint(message)

    def warn(self, message: str) -> None:
        """Something worth knowing while the operation goes on: stderr, every mode."""
        warn(message)

    def error(self, message: str) -> None:
        """What went wrong: one plain line on stderr, every mode."""
        error(message)


def typed_back(expected: str, question: str) -> bool | None:
    """Ask a person at a terminal to type ``expected`` back (the prompt on stderr); whether they did.

    None where no one can be asked (stdin is not a terminal): the caller then
    needs its ``--yes``.  Ctrl-D answers no.
    """
    if not sys.stdin.isatty():
        return None
    sys.stderr.write(f"{question}\nType {expected!r} to confirm: ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip() == expected


# -- the streams the sink writes to, also used by render and live -------------
def print_json(document: Any) -> None:
    """Indented for a person at a terminal, one compact line for pipes; UTF-8 either way.

    orjson (which SkyPilot already brings) encodes `list --json` over 10,000
    jobs in about 15 ms where the standard library takes 60-80 ms.
    """
    try:
        import orjson
    except ImportError:  # the standard library says the same, more slowly
        indent = 2 if sys.stdout.isatty() else None
        separators = None if indent else (",", ":")
        text = json.dumps(document, indent=indent, ensure_ascii=False, separators=separators)
        sys.stdout.write(text + "\n")
    else:
        options = orjson.OPT_APPEND_NEWLINE | (orjson.OPT_INDENT_2 if sys.stdout.isatty() else 0)
        encoded = orjson.dumps(document, option=options)
        binary = getattr(sys.stdout, "buffer", None)
        if binary is None:  # a text-only stream (an embedding application's)
            sys.stdout.write(encoded.decode())
        else:
            sys.stdout.flush()  # what was written as text goes first
            binary.write(encoded)
    sys.stdout.flush()


def print_json_texts(texts: list[str]) -> None:
    """An array of JSON texts: joined as they are for pipes; decoded and indented for a person at a terminal."""
    if sys.stdout.isatty():
        print_json([json.loads(text) for text in texts])
        return
    # Written piece by piece through the stream's buffer: megabytes of documents are never joined, nor encoded,
    # as one string (list --json over 10,000 jobs).
    sys.stdout.write("[")
    sys.stdout.writelines(_separated(texts))
    sys.stdout.write("]\n")
    sys.stdout.flush()


def _separated(texts: list[str]) -> Iterator[str]:
    for index, text in enumerate(texts):
        if index:
            yield ","
        yield text


def print_json_text(text: str) -> None:
    """One JSON text: as it is for pipes; decoded and indented for a person at a terminal."""
    if sys.stdout.isatty():
        print_json(json.loads(text))
        return
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def print_line(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def print_stderr(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def error(message: str) -> None:
    """One line on stderr (plain, so scripts can read it)."""
    print_stderr(f"oumi-jobs: error: {message}")


def warn(message: str) -> None:
    """A warning on stderr: the operation goes on."""
    print_stderr(f"oumi-jobs: warning: {message}")


def hint(message: str) -> None:
    """A line for a person on stderr, dimmed at a terminal."""
    if sys.stderr.isatty():
        console(stderr=True).print(f"[dim]{message}[/dim]")
    else:
        print_stderr(message)


def console(*, stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr); the first call imports rich."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped into grep or a file, lines should not be cut at 80 columns.
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 240
    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=width)


def animated(out: Console) -> bool:
    """Whether ``out`` may show displays refreshed in place: a terminal, and no ``NO_COLOR``.

    rich drops colour for ``NO_COLOR`` itself but would still spin and redraw;
    no-color.org: set to anything but the empty string.
    """
    return out.is_terminal and not os.environ.get("NO_COLOR")
