"""``rill chat``: a conversation on a terminal. Only the parameter list lives here; ``rill.chat``
does the work (and is the only code that imports the line editor)."""

from __future__ import annotations

from typing import Annotated

import typer

from rill.commands import options as opt

HELP = (
    "Talk with a model on the terminal: each answer streams as a prompt's does. Enter sends; a "
    'paste is inserted, not sent; """ alone on a line starts and ends a multi-line message. '
    "Ctrl-C stops an answer (keeping what arrived), Ctrl-D or /exit leaves; /help lists the "
    "commands."
)
EPILOG = (
    "The conversation is one chat in history: rill chat -c (or --chat ID) resumes it and shows "
    'its last exchange, and rill -c "..." continues it from a script. stdin must be a terminal '
    "(exit 2 otherwise). Exit status: 0 on Ctrl-D or /exit; 143 on SIGTERM or SIGHUP."
)


def chat_command(
    ctx: typer.Context,
    model: opt.Model = None,
    system: opt.System = None,
    template: opt.Template = None,
    param: opt.Param = None,
    continue_: Annotated[
        bool, opt.continue_chat("Resume the most recent chat, showing where it was.")
    ] = False,
    chat: Annotated[str | None, opt.chat_id("Resume this chat (ID or unique prefix).")] = None,
    no_history: opt.NoHistory = False,
    temperature: opt.Temperature = None,
    max_tokens: opt.MaxTokens = None,
    reasoning_effort: opt.Effort = None,
    option: opt.Options = None,
    base_url: opt.BaseUrl = None,
    timeout: opt.Timeout = None,
    first_token_timeout: opt.FirstTokenTimeout = None,
    total_timeout: opt.TotalTimeout = None,
    retries: opt.Retries = None,
    color: opt.ColorWhen = None,
    markdown: opt.Markdown = None,
    show_reasoning: opt.ShowReasoning = None,
    raw: Annotated[
        bool, opt.switch("--raw", "Write answers unchanged: no markdown, control sequences kept.")
    ] = False,
) -> None:
    from rill.chat.session import ChatArgs, run_chat
    from rill.commands.prompt import check_params
    from rill.input.prompting import parse_params

    check_params(ctx, param, template)
    if continue_ and chat is not None:
        ctx.fail("-c resumes the most recent chat and --chat a given one: use one of them")
    args = ChatArgs(
        flags=dict(opt.setting_flags(ctx.params)),
        template=template,
        params=parse_params(param or []),
        continue_chat=continue_,
        chat=chat,
        no_history=no_history,
        reasoning_effort=reasoning_effort.value if reasoning_effort else None,
        options=list(option or []),
        raw=raw,
    )
    raise typer.Exit(run_chat(args))


def register(app: typer.Typer) -> None:
    app.command("chat", cls=opt.ParamCommand, help=HELP, epilog=EPILOG)(chat_command)
