"""Small output helpers shared by the subcommands (never used by the streaming path).

Every writer here ends the command quietly with exit 141 when stdout is closed early
(``rill history export | head -c 100``), as the prompt command does: no traceback, no exit 1.
A stdout that cannot be written (a full disk, ``> /dev/full``) is one line and exit 74.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer

from rill.values import compact_json, pretty_json

# C0 and C1 control characters, tab and newline included: one cell stays one cell of one line.
_UNSAFE_CELL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@contextmanager
def piped() -> Iterator[None]:
    """Write to stdout inside this block; a closed pipe becomes a quiet exit 141, any other
    write failure an ``OutputError`` (exit 74)."""
    from rill.process import silence_stdout

    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        from rill.errors import ExitCode

        silence_stdout()  # the interpreter's last flush must not fail again, loudly
        raise typer.Exit(int(ExitCode.BROKEN_PIPE)) from None
    except OSError as exc:
        from rill.errors import OutputError

        silence_stdout()
        raise OutputError(f"cannot write the output: {exc.strerror or exc}") from None


def print_json(obj: Any, *, lines: bool = False) -> None:
    """Pretty JSON for ``--json`` (or one compact line per item with ``lines``)."""
    with piped():
        if lines:
            for item in obj:
                sys.stdout.write(compact_json(item) + "\n")
        else:
            sys.stdout.write(pretty_json(obj) + "\n")


def tsv_cell(value: Any) -> str:
    """A table cell for tab-separated output: tabs, newlines and other control characters (a
    chat title, a hostile server's model ID) become spaces, so each row stays one line."""
    return _UNSAFE_CELL.sub(" ", str(value))


def write_tsv(rows: Iterable[Sequence[Any]]) -> None:
    """Tab-separated rows for a pipe, one line each (see ``tsv_cell``)."""
    with piped():
        for row in rows:
            sys.stdout.write("\t".join(tsv_cell(cell) for cell in row) + "\n")


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table: aligned columns under ``header`` on a terminal, tab-separated rows otherwise."""
    if not stdout_is_terminal():
        write_tsv(rows)
        return
    from rich.table import Table
    from rich.text import Text

    from rill.terminal.safe import neutralise

    table = Table(*header, box=None, pad_edge=False, highlight=False)
    for row in rows:
        # Text, not str: a chat title like "[/x]" must not be read as rich markup; and an escape
        # sequence in one is shown, not obeyed.
        table.add_row(*(Text(neutralise(str(cell))) for cell in row), end_section=False)
    with piped():
        console().print(table)


def stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def console(stderr: bool = False) -> Any:
    """A rich console with rill's colour policy (imported only when a table is shown).

    rich's own NO_COLOR handling drops colours but keeps bold and dim; NO_COLOR here means no
    escape sequence at all, so without colour the console gets no colour system.
    """
    from rich.console import Console

    from rill.terminal.color import color_enabled

    color = color_enabled(sys.stderr if stderr else sys.stdout)
    return Console(
        stderr=stderr,
        highlight=False,
        soft_wrap=False,
        color_system="auto" if color else None,
    )


def warn(message: str) -> None:
    from rill.urls import display_urls

    sys.stderr.write(f"rill: {display_urls(message)}\n")
    sys.stderr.flush()
