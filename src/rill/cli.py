"""The ``rill`` command line: parse, wire, call one function, map the outcome to an exit code.

``rill [OPTIONS] [PROMPT]...`` is the ``ask`` command; ``RillGroup`` routes every command line
whose first word is not a subcommand to it, so ``rill "hi"`` and ``rill ask "hi"`` are the same
and ``rill -- history of rome`` sends "history of rome". Heavy modules (history commands, rich,
markdown) are imported inside the commands that need them, never for a plain piped prompt.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any, TypeGuard

import typer
from typer.core import TyperGroup

from rill import __version__
from rill.commands import options as opt
from rill.commands.completion import add_completers, complete_chat
from rill.errors import ExitCode, RillError, UsageError
from rill.output.formats import OutputFormat

#: Options that belong to the command group itself rather than to the prompt.
GROUP_OPTIONS = frozenset({"--install-completion", "--show-completion"})


class RillGroup(TyperGroup):
    """A group whose default command is ``ask``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] == "ask":
            return super().parse_args(ctx, ["ask", *opt.pair_params(args[1:])])
        if args and (args[0] in self.commands or args[0] in GROUP_OPTIONS):
            return super().parse_args(ctx, args)
        if not args and ctx.resilient_parsing:  # completing the first word: offer commands
            return super().parse_args(ctx, args)
        routed = opt.pair_params(args)
        # "ask" is left out: `rill -m X ask me` sends "ask me", a prompt more often than not.
        commands = _subcommand_names() - {"ask"}
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

        write_footer(formatter, app)

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

        write_footer(formatter, app)


def _new_app() -> typer.Typer:
    return typer.Typer(
        cls=RillGroup,
        name="rill",
        help="Stream LLM completions from OpenRouter or any OpenAI-compatible server.",
        no_args_is_help=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


#: The whole command line: every subcommand (completion, help, tests and the man page use it).
app = _new_app()
#: Only the prompt command: a plain `rill "prompt"` skips building every subcommand's options
#: (~9 ms of each call's start-up, bench/run.py).
prompt_app = _new_app()


@prompt_app.callback()
def _as_group() -> None:
    """Keeps prompt_app a group (typer collapses a one-command app), so RillGroup's routing and
    error handling apply to it exactly as to the whole app."""


def err(message: str, secret: str | None = None) -> None:
    """One line on stderr, prefixed with the program name, never carrying the key nor the
    credentials of a URL."""
    from rill.env import isatty
    from rill.output.diagnostics import note_line, write_line
    from rill.stream.protocol import redact
    from rill.urls import display_urls

    text = display_urls(redact(message, secret or os.environ.get("OPENROUTER_API_KEY")))
    write_line(sys.stderr, note_line(text, tty=isatty(sys.stderr)))


def _version(value: bool) -> None:
    if value:
        from rill.commands.output import piped

        with piped():
            sys.stdout.write(f"rill {__version__}\n")
        raise typer.Exit()


def _read_stdin(words: list[str]) -> str | None:
    stdin = sys.stdin
    if stdin is None:
        return None
    try:
        if stdin.isatty() and words != ["-"]:
            return None
    except ValueError:  # closed
        return None
    data = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode()
    return data.decode("utf-8", errors="replace") if data else None


def ask(
    ctx: typer.Context,
    prompt: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="PROMPT...", help="Prompt words, joined with spaces; '-' reads stdin only."
        ),
    ] = None,
    model: opt.Model = None,
    system: opt.System = None,
    fmt: Annotated[
        OutputFormat,
        typer.Option("--format", "-f", metavar=opt.choices(OutputFormat), help="Output format."),
    ] = OutputFormat.text,
    continue_: Annotated[
        bool,
        typer.Option(
            "--continue", "-c", help="Continue the most recent chat, on its own model and server."
        ),
    ] = False,
    chat: Annotated[
        str | None,
        typer.Option(
            "--chat",
            metavar="ID",
            help="Continue this chat (ID or unique prefix), on its own model and server.",
            autocompletion=complete_chat,
        ),
    ] = None,
    no_history: opt.NoHistory = False,
    temperature: opt.Temperature = None,
    max_tokens: opt.MaxTokens = None,
    reasoning_effort: opt.Effort = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", metavar="KEY=VALUE", help=opt.OPTION_HELP),
    ] = None,
    base_url: opt.BaseUrl = None,
    timeout: opt.Timeout = None,
    connect_timeout: Annotated[
        float | None,
        typer.Option(
            "--connect-timeout",
            metavar="SECONDS",
            help="Connect timeout in seconds.",
            click_type=opt.SECONDS,
        ),
    ] = None,
    first_token_timeout: opt.FirstTokenTimeout = None,
    total_timeout: opt.TotalTimeout = None,
    retries: opt.Retries = None,
    stats: Annotated[
        bool | None, typer.Option("--stats", help="Print a timing/usage line on stderr.")
    ] = None,
    color: Annotated[
        opt.Color | None,
        typer.Option("--color", metavar=opt.choices(opt.Color), help="When to use colour."),
    ] = None,
    no_stream: Annotated[
        bool, typer.Option("--no-stream", help="Ask for the whole answer at once.")
    ] = False,
    template: opt.Template = None,
    param: opt.Param = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print the request (key redacted); send nothing. Needs no key."
        ),
    ] = False,
    provider: opt.Provider = None,
    only: opt.Only = None,
    ignore: opt.Ignore = None,
    sort: opt.Sort = None,
    no_fallbacks: opt.NoFallbacks = False,
    zdr: opt.Zdr = False,
    deny_data_collection: opt.DenyDataCollection = False,
    fallback: opt.Fallback = None,
    online: opt.Online = False,
    cache: opt.Cache = False,
    markdown: Annotated[
        bool | None,
        typer.Option("--markdown/--no-markdown", help="Render markdown on a terminal."),
    ] = None,
    show_reasoning: Annotated[
        bool | None,
        typer.Option(
            "--show-reasoning/--hide-reasoning", help="Show reasoning dimmed on a terminal."
        ),
    ] = None,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw",
            help="On a terminal, write the answer unchanged: no markdown, control sequences kept.",
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show internal details on errors.")
    ] = False,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = None,
) -> None:
    from rill.commands.prompt import PromptArgs, run_prompt
    from rill.input.prompting import parse_params
    from rill.input.routing import make_flags

    _check_combinations(ctx, param=param, template=template, continue_=continue_, chat=chat)
    words = list(prompt or [])
    routing = make_flags(
        provider=provider,
        only=only,
        ignore=ignore,
        sort=sort,
        no_fallbacks=no_fallbacks,
        zdr=zdr,
        deny_data_collection=deny_data_collection,
        fallback=fallback,
        online=online,
    )
    args = PromptArgs(
        words=words,
        stdin_text=_read_stdin(words),
        flags={
            "model": model,
            "system": system,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "base_url": base_url,
            "timeout": timeout,
            "connect_timeout": connect_timeout,
            "first_token_timeout": first_token_timeout,
            "total_timeout": total_timeout,
            "retries": retries,
            "stats": stats,
            "color": color.value if color else None,
            "markdown": markdown,
            "show_reasoning": show_reasoning,
        },
        routing=routing,
        cache=bool(cache),
        fmt=fmt,
        continue_chat=continue_,
        chat=chat,
        no_history=no_history,
        reasoning_effort=reasoning_effort.value if reasoning_effort else None,
        options=list(option or []),
        stream=not no_stream,
        template=template,
        params=parse_params(param or []),
        dry_run=dry_run,
        raw=raw,
        debug=debug,
        transport=(ctx.obj or {}).get("transport") if isinstance(ctx.obj, dict) else None,
    )
    raise typer.Exit(run_prompt(args))


def _check_combinations(
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


for _target in (app, prompt_app):
    _target.command(
        "ask",
        cls=AskCommand,
        help="Send PROMPT (words, and stdin when it is not a terminal) and stream the answer.",
    )(ask)


def _register_subcommands() -> None:
    from rill.commands import (
        batch,
        completion,
        config,
        fake,
        history,
        key,
        models,
        serve,
        templates,
    )

    history.register(app)
    models.register(app)
    key.register(app)
    config.register(app)
    templates.register(app)
    batch.register(app)
    fake.register(app)
    serve.register(app)
    completion.register(app)


_register_subcommands()


def _subcommand_names() -> set[str]:
    names = {info.name for info in app.registered_commands if isinstance(info.name, str)}
    for group in app.registered_groups:
        name = group.typer_instance.info.name if group.typer_instance else None
        if isinstance(name, str):
            names.add(name)
    return names


def _output_failed(exc: Exception) -> TypeGuard[OSError]:
    """An error of writing the output (help text to a full disk): no file named, an errno that
    only a write gives."""
    import errno

    return (
        isinstance(exc, OSError)
        and exc.filename is None
        and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)
    )


def main() -> None:
    """Entry point of the ``rill`` command and ``python -m rill``."""
    debug = "--debug" in sys.argv or bool(os.environ.get("RILL_DEBUG"))
    first = sys.argv[1] if len(sys.argv) > 1 else None
    whole = first in _subcommand_names() or first in GROUP_OPTIONS or "_RILL_COMPLETE" in os.environ
    try:
        (app if whole else prompt_app)(prog_name="rill")
    except RillError as exc:
        err(exc.message)
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception as exc:  # noqa: BLE001 - the last line of defence: a bug, shown briefly
        if _output_failed(exc):  # help or usage text to a full disk
            from rill.process import silence_stdout

            silence_stdout()
            err(f"cannot write the output: {exc.strerror or exc}")
            sys.exit(int(ExitCode.OUTPUT))
        if debug:
            raise
        err(f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)")
        sys.exit(int(ExitCode.INTERNAL))
