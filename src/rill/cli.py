"""The ``rill`` command line: parse, wire, call one function, map the outcome to an exit code.

``rill [OPTIONS] [PROMPT]...`` is the ``ask`` command; ``RillGroup`` routes every command line
whose first word is not a subcommand to it, so ``rill "hi"`` and ``rill ask "hi"`` are the same
and ``rill -- history of rome`` sends "history of rome". Heavy modules (history commands, rich,
markdown) are imported inside the commands that need them, never for a plain piped prompt.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, TypeGuard

import typer

from rill import __version__
from rill.commands import options as opt
from rill.commands.checks import check_combinations, check_outputs, read_stdin
from rill.commands.group import GROUP_OPTIONS, AskCommand, RillGroup, err, subcommand_names
from rill.errors import ExitCode, RillError
from rill.output.formats import OutputFormat

# httpx imports its own command-line client (click, rich.table, pygments: about 50 ms) whenever
# click is installed, as it is beside the MCP SDK and uvicorn; rill never runs it. A missing
# entry makes that import fail, and httpx falls back to a stub: every command stays light.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


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
RillGroup.whole = app


@prompt_app.callback()
def _as_group() -> None:
    """Keeps prompt_app a group (typer collapses a one-command app), so RillGroup's routing and
    error handling apply to it exactly as to the whole app."""


def _version(value: bool) -> None:
    if value:
        from rill.commands.output import piped

        with piped():
            sys.stdout.write(f"rill {__version__}\n")
        raise typer.Exit()


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
        bool, opt.continue_chat("Continue the most recent chat, on its own model and server.")
    ] = False,
    chat: Annotated[
        str | None,
        opt.chat_id("Continue this chat (ID or unique prefix), on its own model and server."),
    ] = None,
    no_history: opt.NoHistory = False,
    temperature: opt.Temperature = None,
    max_tokens: opt.MaxTokens = None,
    reasoning_effort: opt.Effort = None,
    option: opt.Options = None,
    attach: opt.Attach = None,
    attach_type: opt.AttachType = None,
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
    color: opt.ColorWhen = None,
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
    tool: opt.Tool = None,
    mcp: opt.Mcp = None,
    yes: opt.Yes = False,
    max_tool_rounds: opt.MaxToolRounds = 10,
    schema: opt.Schema = None,
    schema_multi: opt.SchemaMulti = None,
    extract: Annotated[
        bool,
        typer.Option(
            "--extract",
            "-x",
            help="Write only the first fenced code block's contents, as it streams (text format).",
        ),
    ] = False,
    extract_last: Annotated[
        bool,
        typer.Option(
            "--extract-last", help="Write only the last fenced code block's contents, at the end."
        ),
    ] = False,
    markdown: opt.Markdown = None,
    show_reasoning: opt.ShowReasoning = None,
    raw: Annotated[
        bool,
        opt.switch(
            "--raw",
            "On a terminal, write the answer unchanged: no markdown, control sequences kept.",
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

    check_combinations(ctx, param=param, template=template, continue_=continue_, chat=chat)
    check_outputs(ctx, fmt, schema, schema_multi, extract, extract_last)
    words = list(prompt or [])
    attachments = opt.check_attach(list(attach or []), attach_type, words)
    routing = opt.routing_flags(ctx.params)
    args = PromptArgs(
        words=words,
        stdin_text=read_stdin(words, attachments),
        flags=opt.setting_flags(ctx.params),
        routing=routing,
        cache=bool(cache),
        fmt=fmt,
        continue_chat=continue_,
        chat=chat,
        no_history=no_history,
        reasoning_effort=reasoning_effort.value if reasoning_effort else None,
        options=list(option or []),
        attachments=attachments,
        attach_type=attach_type,
        stream=not no_stream,
        template=template,
        params=parse_params(param or []),
        dry_run=dry_run,
        tools=list(tool or []),
        mcp=list(mcp or []),
        yes=yes,
        max_tool_rounds=max_tool_rounds,
        schema=schema if schema_multi is None else schema_multi,
        schema_multi=schema_multi is not None,
        extract="last" if extract_last else "first" if extract else None,
        raw=raw,
        debug=debug,
        transport=(ctx.obj or {}).get("transport") if isinstance(ctx.obj, dict) else None,
    )
    raise typer.Exit(run_prompt(args))


for _target in (app, prompt_app):
    _target.command(
        "ask",
        cls=AskCommand,
        help="Send PROMPT (words, and stdin when it is not a terminal) and stream the answer.",
    )(ask)


def _register_subcommands() -> None:
    from rill.commands import (
        batch,
        chat,
        completion,
        config,
        fake,
        history,
        key,
        models,
        serve,
        templates,
        tools,
    )

    history.register(app)
    models.register(app)
    key.register(app)
    config.register(app)
    templates.register(app)
    tools.register(app)
    batch.register(app)
    chat.register(app)
    fake.register(app)
    serve.register(app)
    completion.register(app)


_register_subcommands()


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
    whole = (
        first in subcommand_names(app) or first in GROUP_OPTIONS or "_RILL_COMPLETE" in os.environ
    )
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
