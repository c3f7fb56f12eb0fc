"""``rill models``: the models a server offers, with context length and prices."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from rill.commands.output import stdout_is_terminal, warn, write_json

HEADER = ("ID", "CONTEXT", "PROMPT $/M", "COMPLETION $/M")


@contextmanager
def exit_on_error() -> Iterator[None]:
    """Show a ``RillError`` as one line on stderr and exit with its code.

    The entry point does the same for every command; doing it here as well keeps the exit codes
    right when the app is invoked in-process (``typer.testing.CliRunner``).
    """
    from rill.errors import APIError, RillError
    from rill.protocol import redact

    try:
        yield
    except RillError as exc:
        import os

        message = redact(exc.message, os.environ.get("OPENROUTER_API_KEY"))
        status = exc.status if isinstance(exc, APIError) else None
        suffix = f" (HTTP {status})" if status and status != 200 else ""
        warn(f"{message}{suffix}")
        raise typer.Exit(int(exc.exit_code)) from None


def models_command(
    ctx: typer.Context,
    search: Annotated[
        str | None,
        typer.Option(
            "--search", metavar="TEXT", help="Show only models whose ID or name contains TEXT."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the model objects as a JSON list.")
    ] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Fetch the list even when the cache is fresh.")
    ] = False,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", metavar="URL", help="OpenAI-compatible API base URL."),
    ] = None,
) -> None:
    """List the models of the configured server (cached for an hour)."""
    from rill.models import load_models
    from rill.models import search as search_models
    from rill.settings import resolve_settings

    transport = ctx.obj.get("transport") if isinstance(ctx.obj, dict) else None
    with exit_on_error():
        settings = resolve_settings({"base_url": base_url}, warn=warn)
        listing = load_models(settings, refresh=refresh, transport=transport, warn=warn)
    models = sorted(search_models(listing.models, search), key=lambda m: str(m.get("id")))
    if as_json:
        write_json(models)
        return
    _print_models(models)
    if not models and search:
        raise typer.Exit(1)  # like grep: nothing matched


def write_tsv(rows: Sequence[tuple[str, ...]]) -> None:
    """Tab-separated rows for a pipe; a tab, newline or control character inside a cell (a
    hostile server's ID, say) becomes a space, so each row stays one line of whole cells."""
    import re
    import sys

    unsafe = re.compile(r"[\x00-\x1f\x7f-\x9f]")
    lines = ("\t".join(unsafe.sub(" ", cell) for cell in row) + "\n" for row in rows)
    sys.stdout.write("".join(lines))
    sys.stdout.flush()


def _print_models(models: list[dict[str, Any]]) -> None:
    from rill.models import format_context, format_price, model_row

    rows = []
    for model in models:
        info = model_row(model)
        rows.append(
            (
                info.id,
                format_context(info.context_length),
                format_price(info.prompt_price),
                format_price(info.completion_price),
            )
        )
    if not stdout_is_terminal():
        write_tsv(rows)
        return
    from rich.table import Table
    from rich.text import Text

    from rill.commands.output import console

    table = Table(box=None, pad_edge=False, highlight=False)
    table.add_column(HEADER[0], overflow="fold")  # a narrow terminal folds an ID, never cuts it
    for title in HEADER[1:]:
        table.add_column(title, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # Text: an ID is never read as markup
    console().print(table)


def register(app: typer.Typer) -> None:
    app.command("models")(models_command)
