"""``rill templates list|show|edit|path``: the prompt templates used with ``rill -t NAME``.

A template is ``templates/NAME.toml`` in the config folder, with the keys ``system``, ``prompt``
(``{{name}}`` placeholders filled from ``-p NAME VALUE``), ``model`` and an ``[options]`` table;
``rill.input.prompting`` reads and applies them. ``edit`` starts a missing template from a commented
skeleton and removes it again when the editor leaves the skeleton untouched.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from rill.commands import options as opt
from rill.commands.completion import complete_template
from rill.commands.output import piped, stdout_is_terminal, warn, write_tsv

templates_app = typer.Typer(
    name="templates",
    help="List, show and edit prompt templates (use one with rill -t NAME).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

NameArg = Annotated[
    str,
    typer.Argument(
        metavar="NAME",
        help="Template name (templates/NAME.toml).",
        autocompletion=complete_template,
    ),
]

SKELETON = '''\
# rill template "@NAME@": use it with  rill -t @NAME@ [-p KEY VALUE]... [PROMPT]
#
# prompt     The text sent. {{key}} placeholders take their values from -p KEY VALUE;
#            prompt words and stdin, when given, follow it after a blank line.
# system     A system prompt (placeholders work here too); -s on the command line wins.
# model      A model ID or alias; -m on the command line wins.
# [options]  Extra request fields, as with -o KEY=VALUE.
#
# Remove the leading "# " from the lines you want, for example:
#
# system = "You are a careful editor. Answer in {{language}}."
# prompt = """
# Fix the grammar of the text below and keep its meaning and tone."""
# model = "openai/gpt-4o-mini"
#
# [options]
# temperature = 0.2
'''


def _templates_dir() -> Path:
    from rill.config.settings import resolve_paths

    return resolve_paths().templates_dir


def _path(name: str) -> Path:
    from rill.input.prompting import template_path

    return template_path(_templates_dir(), name)


def skeleton(name: str) -> str:
    return SKELETON.replace("@NAME@", name)


@templates_app.command("list", cls=opt.Command)
def templates_list() -> None:
    """List templates: name, model and placeholders."""
    from rill.errors import RillError
    from rill.input.prompting import load_template

    folder = _templates_dir()
    names = sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []
    rows = []
    for name in names:
        try:
            template = load_template(folder, name)
        except RillError as exc:
            warn(exc.message)
            rows.append((name, "-", "-"))
            continue
        rows.append((name, template.model or "-", " ".join(template.placeholders()) or "-"))
    if not stdout_is_terminal():
        write_tsv(rows)
        return
    from rich.table import Table
    from rich.text import Text

    from rill.commands.output import console

    table = Table("NAME", "MODEL", "PLACEHOLDERS", box=None, pad_edge=False, highlight=False)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    with piped():
        console().print(table)


@templates_app.command("show", cls=opt.Command)
def templates_show(name: NameArg) -> None:
    """Print a template file as it is."""
    from rill.errors import UsageError

    path = _path(name)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no template named {name!r} (looked for {path})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read template {path}: {exc}") from None
    with piped():
        sys.stdout.write(text)


@templates_app.command("edit", cls=opt.Command)
def templates_edit(name: NameArg) -> None:
    """Open a template in $VISUAL or $EDITOR (default vi), creating it if missing."""
    from rill.input.prompting import load_template

    path = _path(name)
    created = not path.exists()
    if created:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(skeleton(name), encoding="utf-8")
    status = _run_editor(path)
    if status != 0:
        warn(f"the editor exited with status {status}; {path} is as the editor left it")
        raise typer.Exit(1)
    if created and path.read_text(encoding="utf-8") == skeleton(name):
        path.unlink()
        warn(f"template {name!r} not saved: the skeleton was left unchanged")
        return
    load_template(path.parent, name)  # report a broken file now, not at the next run


def _run_editor(path: Path) -> int:
    import os
    import shlex
    import subprocess

    from rill.errors import ConfigError

    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        command = shlex.split(editor) or ["vi"]
    except ValueError as exc:
        raise ConfigError(f"cannot parse the editor command {editor!r}: {exc}") from None
    try:
        return subprocess.run([*command, str(path)], check=False).returncode
    except OSError as exc:
        raise ConfigError(f"cannot run the editor {editor!r}: {exc.strerror or exc}") from None


@templates_app.command("path", cls=opt.Command)
def templates_path(
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="NAME",
            help="Print this template's file instead.",
            autocompletion=complete_template,
        ),
    ] = None,
) -> None:
    """Print the templates folder, or the file of template NAME."""
    path = _path(name) if name is not None else _templates_dir()
    with piped():
        typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.add_typer(templates_app)
