"""``rill batch``: many prompts from JSON lines (or plain lines), answered concurrently.

Only the parameter list lives here; ``rill.batch`` does the work.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from rill.commands import options as opt

HELP = (
    "Answer many prompts concurrently. INPUT (a file, or stdin when omitted or '-') holds JSON "
    'lines such as {"id": 1, "prompt": "..."} (or "messages"; optional "model", "system", '
    '"options" and "schema"); each finished item is one JSON line: the --format json object '
    'with "id" first. With -o FILE, ids already answered in FILE are skipped, so a stopped '
    "batch resumes."
)
EPILOG = (
    "Per-item fields win over the options. The request-field option is --option KEY=VALUE "
    "here (-o names the output file). The OpenRouter routing options (--provider ... "
    "--online) apply to every item, to its own model too. Exit status: 0 when every item "
    "succeeded, else the exit status of the first failed item in input order; 130/143 when "
    "interrupted."
)


def batch_command(
    ctx: typer.Context,
    input_file: Annotated[
        str | None,
        typer.Argument(metavar="INPUT", help="JSON lines file; '-' or nothing: stdin."),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs", "-j", metavar="N", help="Items answered at the same time.", min=1, max=512
        ),
    ] = 4,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write result lines to FILE, one per id (the latest); skip ids answered there.",
        ),
    ] = None,
    ordered: Annotated[
        bool, typer.Option("--ordered", help="Write results in input order, not as they finish.")
    ] = False,
    lines: Annotated[
        bool,
        typer.Option("--lines", help="INPUT is plain text: one prompt per line, id = line number."),
    ] = False,
    model: opt.Model = None,
    system: opt.System = None,
    template: opt.Template = None,
    param: opt.Param = None,
    prompt_prefix: Annotated[
        str | None,
        typer.Option(
            "--prompt-prefix",
            metavar="TEXT",
            help="Text put before every prompt, on a line of its own unless it ends in whitespace.",
        ),
    ] = None,
    temperature: opt.Temperature = None,
    max_tokens: opt.MaxTokens = None,
    reasoning_effort: opt.Effort = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            metavar="KEY=VALUE",
            help=opt.OPTION_HELP,
        ),
    ] = None,
    base_url: opt.BaseUrl = None,
    timeout: opt.Timeout = None,
    first_token_timeout: opt.FirstTokenTimeout = None,
    total_timeout: opt.TotalTimeout = None,
    retries: opt.Retries = None,
    no_history: opt.NoHistory = False,
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
    schema: opt.Schema = None,
    schema_multi: opt.SchemaMulti = None,
) -> None:
    from rill.batch import BatchArgs, run_batch
    from rill.commands.prompt import check_params
    from rill.input.prompting import parse_params

    check_params(ctx, param, template)
    if schema is not None and schema_multi is not None:
        ctx.fail("--schema asks for one object and --schema-multi for a list: use one of them")
    routing = opt.routing_flags(ctx.params)

    args = BatchArgs(
        input=input_file,
        jobs=jobs,
        output=output,
        ordered=ordered,
        lines=lines,
        flags=opt.setting_flags(ctx.params),
        reasoning_effort=reasoning_effort.value if reasoning_effort else None,
        options=list(option or []),
        no_history=no_history,
        template=template,
        params=parse_params(param or []),
        prompt_prefix=prompt_prefix,
        routing=routing,
        cache=cache,
        transport=(ctx.obj or {}).get("transport") if isinstance(ctx.obj, dict) else None,
        stdin=getattr(sys.stdin, "buffer", None),
        schema=schema if schema_multi is None else schema_multi,
        schema_multi=schema_multi is not None,
    )
    raise typer.Exit(run_batch(args))


def register(app: typer.Typer) -> None:
    app.command("batch", cls=opt.ParamCommand, help=HELP, epilog=EPILOG)(batch_command)
