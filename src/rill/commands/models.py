"""``rill models``: the models a server offers, with context length and prices."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from rill.commands import options as opt
from rill.commands.output import piped, stdout_is_terminal, warn, write_json, write_tsv

HEADER = ("ID", "CONTEXT", "PROMPT $/M", "COMPLETION $/M")


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
    base_url: opt.BaseUrl = None,
) -> None:
    """List the models of the configured server (cached for an hour)."""
    from rill.config.models import load_models
    from rill.config.models import search as search_models
    from rill.config.settings import resolve_settings

    transport = ctx.obj.get("transport") if isinstance(ctx.obj, dict) else None
    settings = resolve_settings({"base_url": base_url}, warn=warn)
    listing = load_models(settings, refresh=refresh, transport=transport, warn=warn)
    models = sorted(search_models(listing.models, search), key=lambda m: str(m.get("id")))
    if as_json:
        write_json(models)
        return
    _print_models(models)  # nothing matched: no output, and still exit 0


def _print_models(models: list[dict[str, Any]]) -> None:
    from rill.config.models import format_context, format_price, model_row

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
    from rill.terminal.safe import neutralise

    table = Table(box=None, pad_edge=False, highlight=False)
    table.add_column(HEADER[0], overflow="fold")  # a narrow terminal folds an ID, never cuts it
    for title in HEADER[1:]:
        table.add_column(title, justify="right", no_wrap=True)
    for row in rows:
        # Text: an ID is never read as markup; its control characters are shown, not obeyed.
        table.add_row(*(Text(neutralise(cell)) for cell in row))
    with piped():
        console().print(table)


def register(app: typer.Typer) -> None:
    app.command("models")(models_command)
