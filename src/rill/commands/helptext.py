"""How the command line explains itself: the usage line, the footer naming every command, the
hint after a usage error, and the refusal of a command name typed after prompt options.

Imported only when one of them is needed (help, an error, a command-like prompt, Tab), never by a
plain ``rill "prompt"``.
"""

from __future__ import annotations

import shlex
from typing import Any

import typer

#: ``rill --help``'s usage line: the prompt command is the default, so both forms are shown.
USAGE = "[OPTIONS] [PROMPT]... | rill COMMAND [ARGS]..."


def commands_footer(app: typer.Typer) -> str:
    """Every command and subcommand, read from the registered commands (help shows it)."""
    parts = ["rill ask PROMPT (same as rill PROMPT)"]
    for info in app.registered_commands:
        name = info.name or getattr(info.callback, "__name__", "").replace("_", "-")
        if name != "ask" and not info.hidden:
            parts.append(f"rill {name}")
    for group in app.registered_groups:
        sub = group.typer_instance
        if sub is None or not isinstance(sub.info.name, str) or sub.info.hidden:
            continue
        names = [c.name for c in sub.registered_commands if c.name and not c.hidden]
        parts.append(f"rill {sub.info.name} {'|'.join(names)}")
    return f"Commands: {' · '.join(parts)}. Run rill COMMAND --help for each."


def write_footer(formatter: Any, app: typer.Typer) -> None:
    formatter.write_paragraph()
    with formatter.indentation():
        formatter.write_text(commands_footer(app))


def help_hint(ctx: Any) -> str:
    """`` (see rill usage --help)``: the help of the command that failed."""
    words = str(getattr(ctx, "command_path", "") or "rill").split()
    if words[1:2] == ["ask"]:  # the prompt command's help is rill --help
        words = ["rill"]
    return f" (see {' '.join(words)} --help)"


def first_word(command: Any, args: list[str]) -> int | None:
    """Where the prompt words start in ``args`` (None when there are none, or after ``--``)."""
    takes_value = {
        name
        for p in command.params
        if getattr(p, "param_type_name", "") == "option" and not p.is_flag and not p.count
        for name in p.opts
    }
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return None
        if arg.startswith("-") and arg != "-":
            i += 2 if arg in takes_value else 1
            continue
        return i
    return None


def refuse_command_as_prompt(ctx: Any, ask: Any, args: list[str], commands: set[str]) -> None:
    """``rill -m X history list``: options, then a command's name. Sending "history list" as a
    paid prompt is surely not what was meant, so say how to write either meaning (exit 2)."""
    at = first_word(ask, args)
    if not at or args[at] not in commands:  # at == 0: the command itself, handled elsewhere
        return
    word, options, words = args[at], args[:at], args[at:]
    dashes = shlex.join(["rill", *options, "--", *words])
    ask_form = shlex.join(["rill", "ask", *options, " ".join(words)])
    ctx.fail(
        f"{word!r} is a command, and options before it belong to the prompt: "
        f"to send {' '.join(words)!r} as a prompt, write {dashes} or {ask_form}; "
        f"to run rill {word}, give its options after its name"
    )


def option_items(command: Any, ctx: Any, incomplete: str, seen: set[str]) -> list[Any]:
    """Completion items for ``command``'s option names starting with ``incomplete``."""
    from typer._click.shell_completion import CompletionItem

    items = []
    for param in command.get_params(ctx):
        if getattr(param, "param_type_name", "") != "option" or getattr(param, "hidden", False):
            continue
        for name in [*param.opts, *param.secondary_opts]:
            if name.startswith(incomplete) and name not in seen:
                seen.add(name)
                items.append(CompletionItem(name, help=getattr(param, "help", None)))
    return items
