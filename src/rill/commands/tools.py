"""``rill tools list|show NAME|run NAME JSON``: the tools declared in ``tools/NAME.toml``.

``run`` is how a user tries a tool without a model: the arguments are checked against the
tool's schema (exit 2 when they do not match) and the command runs exactly as it would for a
model's call (JSON on stdin, the same time limit and output cap); its text goes to stdout and
rill exits with the command's exit code (124 when it timed out).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from rill.commands import options as opt
from rill.commands.completion import complete_tool
from rill.commands.output import piped, print_json, print_table, warn

tools_app = typer.Typer(
    name="tools",
    help="List, show and try the tools a model may call (use them with rill --tool NAME).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

NameArg = Annotated[
    str,
    typer.Argument(
        metavar="NAME", help="Tool name (tools/NAME.toml).", autocompletion=complete_tool
    ),
]


def _folder() -> Path:
    from rill.config.settings import resolve_paths
    from rill.tools.definitions import tools_dir

    return tools_dir(resolve_paths().config_dir)


@tools_app.command("list", cls=opt.Command)
def tools_list(as_json: opt.Json = False) -> None:
    """List the declared tools: name, command and description."""
    from rill.errors import RillError
    from rill.tools.definitions import load_tool, tool_names

    folder = _folder()
    rows: list[tuple[str, str, str]] = []
    found = []
    for name in tool_names(folder):
        try:
            tool = load_tool(folder, name)
        except RillError as exc:
            warn(exc.message)
            rows.append((name, "-", "(invalid)"))
            continue
        found.append(tool.as_dict())
        rows.append((name, " ".join(tool.command), tool.description or "-"))
    if as_json:
        print_json(found)
    else:
        print_table(("NAME", "COMMAND", "DESCRIPTION"), rows)


@tools_app.command("show", cls=opt.Command)
def tools_show(name: NameArg) -> None:
    """Print a tool's definition as JSON (as checked: an unknown or invalid tool is exit 2)."""
    from rill.tools.definitions import load_tool

    print_json(load_tool(_folder(), name).as_dict())


@tools_app.command("run", cls=opt.Command)
def tools_run(
    name: NameArg,
    arguments: Annotated[
        str, typer.Argument(metavar="JSON", help="The call's arguments, a JSON object.")
    ] = "{}",
) -> None:
    """Run a tool as a model's call would (no model, no consent asked): its output on stdout,
    its exit code as rill's."""
    from rill.errors import UsageError
    from rill.output.diagnostics import note_line, write_line
    from rill.tools.definitions import check_arguments, load_tool
    from rill.tools.run import Execution

    tool = load_tool(_folder(), name)
    checked, invalid = check_arguments(tool, arguments)
    if checked is None:
        raise UsageError(f"tool {name!r}: {invalid}")
    result = Execution().run(tool, checked, "call_manual")
    with piped():
        sys.stdout.write(result.content)
        if result.content and not result.content.endswith("\n"):
            sys.stdout.write("\n")
    if result.exit_code:
        from rill.commands.toolrun import summary

        tty = sys.stderr.isatty()
        write_line(sys.stderr, note_line(summary(result), tty=tty))
    raise typer.Exit(result.exit_code or 0)


def register(app: typer.Typer) -> None:
    app.add_typer(tools_app)
