"""``rill models``: the models a server offers, with context length and prices."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from rill.commands import options as opt
from rill.commands.output import piped, print_json, stdout_is_terminal, warn, write_tsv

HEADER = ("ID", "CONTEXT", "PROMPT $/M", "COMPLETION $/M")
#: On a terminal prices read as on OpenRouter's site: "$3/M input · $15/M output".
TERMINAL_HEADER = ("ID", "CONTEXT", "PRICE")


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
    free: Annotated[
        bool, typer.Option("--free", help="Show only models that cost nothing.")
    ] = False,
    supports: Annotated[
        list[str] | None,
        typer.Option(
            "--supports",
            metavar="tools|structured_outputs|reasoning|image|file|audio",
            help="Show only models that take this (repeatable: all of them).",
        ),
    ] = None,
    sort: Annotated[
        str,
        typer.Option(
            "--sort",
            metavar="price|context|name",
            help="Order: cheapest first, largest context first, or by ID (the default).",
        ),
    ] = "name",
    base_url: opt.BaseUrl = None,
) -> None:
    """List the models of the configured server (cached for an hour)."""
    from rill.commands.upstream import load_models
    from rill.config.models import FEATURES, SORTS, select_models, sort_models
    from rill.config.models import search as search_models
    from rill.config.settings import resolve_settings

    for feature in supports or ():
        if feature not in FEATURES:
            choices = ", ".join(FEATURES)
            raise typer.BadParameter(f"must be one of {choices}", param_hint="--supports")
    if sort not in SORTS:
        raise typer.BadParameter(f"must be one of {', '.join(SORTS)}", param_hint="--sort")
    transport = ctx.obj.get("transport") if isinstance(ctx.obj, dict) else None
    settings = resolve_settings({"base_url": base_url}, warn=warn)
    listing = load_models(settings, refresh=refresh, transport=transport, warn=warn)
    chosen = select_models(
        search_models(listing.models, search), free=free, features=supports or ()
    )
    models = sort_models(chosen, sort)
    if as_json:
        print_json(models)
        return
    _print_models(models)  # nothing matched: no output, and still exit 0


def _print_models(models: list[dict[str, Any]]) -> None:
    from rill.config.models import format_context, format_price, format_prices, model_row

    infos = [model_row(model) for model in models]
    if not stdout_is_terminal():  # numbers for scripts: USD per million tokens
        write_tsv(
            (
                info.id,
                format_context(info.context_length),
                format_price(info.prompt_price),
                format_price(info.completion_price),
            )
            for info in infos
        )
        return
    rows = [(i.id, format_context(i.context_length), format_prices(i)) for i in infos]
    from rich.table import Table
    from rich.text import Text

    from rill.commands.output import console
    from rill.terminal.safe import neutralise

    table = Table(box=None, pad_edge=False, highlight=False)
    table.add_column(TERMINAL_HEADER[0], overflow="fold")  # folds an ID, never cuts it
    table.add_column(TERMINAL_HEADER[1], justify="right", no_wrap=True)
    table.add_column(TERMINAL_HEADER[2], no_wrap=True)
    for row in rows:
        # Text: an ID is never read as markup; its control characters are shown, not obeyed.
        table.add_row(*(Text(neutralise(cell)) for cell in row))
    with piped():
        console().print(table)


def register(app: typer.Typer) -> None:
    app.command("models")(models_command)
