"""The prompt command's checks of its own command line, before anything is read or sent:
options that would do nothing or contradict each other, and whether stdin is prompt text."""

from __future__ import annotations

import sys
from typing import Any

from rill.commands import options as opt
from rill.errors import UsageError
from rill.output.formats import OutputFormat


def read_stdin(words: list[str], attach: list[str]) -> str | None:
    """The prompt's stdin text: None on a terminal (unless the prompt is ``-``), for ``-a -``
    (stdin is then the attached file), or when it is closed or empty."""
    stdin = sys.stdin
    if stdin is None or opt.attaches_stdin(attach):  # `-a -`: stdin is the attached file
        return None
    try:
        if stdin.isatty() and words != ["-"]:
            return None
    except ValueError:  # closed
        return None
    data = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode()
    return data.decode("utf-8", errors="replace") if data else None


def check_combinations(
    ctx: Any, *, param: list[str] | None, template: str | None, continue_: bool, chat: str | None
) -> None:
    """Options that would silently do nothing, or contradict each other, are usage errors."""
    from rill.commands.prompt import check_params

    check_params(ctx, param, template)
    if continue_ and chat is not None:
        ctx.fail("-c continues the most recent chat and --chat a given one: use one of them")
    if continue_:
        from rill.config.settings import resolve_paths
        from rill.history import HistoryStore

        if HistoryStore(resolve_paths().history_dir, read_only=True).last_chat_id() is None:
            raise UsageError("no chat to continue yet: start one with rill PROMPT")


def check_outputs(
    ctx: Any,
    fmt: OutputFormat,
    schema: str | None,
    schema_multi: str | None,
    extract: bool,
    extract_last: bool,
) -> None:
    """``--schema`` and ``--schema-multi`` ask for one shape; ``-x`` writes text."""
    if schema is not None and schema_multi is not None:
        ctx.fail("--schema asks for one object and --schema-multi for a list: use one of them")
    if extract and extract_last:
        ctx.fail("-x writes the first code block and --extract-last the last: use one of them")
    if (extract or extract_last) and fmt is not OutputFormat.text:
        name = "-x" if extract else "--extract-last"
        ctx.fail(f"{name} writes a code block as text: it cannot be combined with -f {fmt.value}")
