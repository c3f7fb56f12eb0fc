"""The ``rill`` command group: ``ask`` as its default command, and the one place where a
command's ``RillError`` or a bad command line becomes its one ``rill:`` line and exit code."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from rill.commands import options as opt
from rill.commands.completion import add_completers
from rill.errors import ExitCode, RillError

#: Options that belong to the command group itself rather than to the prompt.
GROUP_OPTIONS = frozenset({"--install-completion", "--show-completion"})


class RillGroup(TyperGroup):
    """A group whose default command is ``ask``."""

    whole: Any = None
    """The whole command line's Typer app (``rill.cli.app``): its commands are the words that
    are never a prompt, and its help footer lists them."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] == "ask":
            return super().parse_args(ctx, ["ask", *opt.pair_params(args[1:])])
        if args and (args[0] in self.commands or args[0] in GROUP_OPTIONS):
            return super().parse_args(ctx, args)
        if not args and ctx.resilient_parsing:  # completing the first word: offer commands
            return super().parse_args(ctx, args)
        routed = opt.pair_params(args)
        # "ask" is left out: `rill -m X ask me` sends "ask me", a prompt more often than not.
        commands = subcommand_names(self.whole) - {"ask"}
        if not ctx.resilient_parsing and not commands.isdisjoint(routed):
            from rill.commands.helptext import refuse_command_as_prompt

            refuse_command_as_prompt(ctx, self.commands["ask"], routed, commands)
        return super().parse_args(ctx, ["ask", *routed])

    def shell_complete(self, ctx: Any, incomplete: str) -> list[Any]:
        """``rill --<Tab>``: the prompt command's options too, since it is the default."""
        results = super().shell_complete(ctx, incomplete)
        ask = self.commands.get("ask")
        if ask is None or not incomplete.startswith("-"):
            return results
        from rill.commands.helptext import option_items

        return results + option_items(ask, ctx, incomplete, {item.value for item in results})

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        from rill.commands.helptext import write_footer

        write_footer(formatter, RillGroup.whole)

    def main(  # type: ignore[override]  # same parameters, narrowed to what rill passes
        self,
        args: list[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Bad flags and arguments get one line on stderr and exit 2, like every other error."""
        if os.environ.get(complete_var or "_RILL_COMPLETE"):
            add_completers(self)
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.Abort:
            sys.exit(int(ExitCode.INTERNAL))
        except Exception as exc:
            # Click's usage errors (vendored by typer, so matched by shape, not by class).
            message = getattr(exc, "format_message", None)
            exit_code = getattr(exc, "exit_code", None)
            if message is None or not isinstance(exit_code, int):
                raise
            if type(exc).__name__ == "NoArgsIsHelpError":  # `rill history`: the help is the answer
                sys.stderr.write(message() + "\n")
            else:
                hint = ""
                if exit_code == ExitCode.USAGE:
                    from rill.commands.helptext import help_hint

                    hint = help_hint(getattr(exc, "ctx", None))
                err(f"{message()}{hint}")
            sys.exit(exit_code)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: Any) -> Any:
        # Every command's RillError becomes its one-line message and exit code here, so the
        # behaviour is the same under `rill`, `python -m rill` and typer's CliRunner.
        try:
            return super().invoke(ctx)
        except RillError as exc:
            status = getattr(exc, "status", None)
            err(exc.message + (f" (HTTP {status})" if status and status != 200 else ""))
            raise typer.Exit(int(exc.exit_code)) from None


class AskCommand(opt.Command):
    """The prompt command: its help is ``rill --help``, so it shows how rill is called."""

    def format_usage(self, ctx: Any, formatter: Any) -> None:
        from rill.commands.helptext import USAGE

        formatter.write_usage("rill", USAGE)

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        from rill.commands.helptext import write_footer

        write_footer(formatter, RillGroup.whole)


def err(message: str, secret: str | None = None) -> None:
    """One line on stderr, prefixed with the program name, never carrying the key nor the
    credentials of a URL."""
    from rill.env import isatty
    from rill.output.diagnostics import note_line, write_line
    from rill.stream.protocol import redact
    from rill.urls import display_urls

    text = display_urls(redact(message, secret or os.environ.get("OPENROUTER_API_KEY")))
    write_line(sys.stderr, note_line(text, tty=isatty(sys.stderr)))


def subcommand_names(app: Any) -> set[str]:
    """The names of ``app``'s commands and command groups."""
    names = {info.name for info in app.registered_commands if isinstance(info.name, str)}
    for group in app.registered_groups:
        name = group.typer_instance.info.name if group.typer_instance else None
        if isinstance(name, str):
            names.add(name)
    return names
