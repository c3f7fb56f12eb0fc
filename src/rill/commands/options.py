"""Options shared by several commands, declared once: their help text lives only here."""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from typer._click.types import FloatParamType, FloatRange
from typer.core import TyperCommand

from rill.commands.completion import (
    complete_chat,
    complete_mcp,
    complete_model,
    complete_template,
    complete_tool,
)
from rill.errors import UsageError

if TYPE_CHECKING:
    from rill.config.settings import SettingFlags
    from rill.input.routing import RoutingFlags


class Command(TyperCommand):
    """A command whose usage line names its arguments as its help lists them: ``NAME`` when
    required, ``[NAME]`` when optional, ``NAME...`` when repeated (not typer's ``{name}``)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if getattr(param, "param_type_name", "") != "argument":
                pieces.extend(param.get_usage_pieces(ctx))
                continue
            name = str(param.metavar or param.name).upper().strip("[]{}").removesuffix("...")
            name += "..." if param.nargs == -1 else ""
            pieces.append(name if param.required else f"[{name}]")
        return pieces


class ParamCommand(Command):
    """A command whose ``-p KEY VALUE`` (two words) means ``--param KEY=VALUE``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return list(super().parse_args(ctx, pair_params(args)))


def pair_params(args: list[str]) -> list[str]:
    """``-p KEY VALUE`` → ``--param KEY=VALUE`` (a two-value option that may repeat).

    ``-p KEY=VALUE`` is accepted as it is. Nothing after ``--`` is touched.
    """
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out.extend(args[i:])
            break
        if arg in ("-p", "--param") and i + 1 < len(args):
            key = args[i + 1]
            if "=" in key or i + 2 >= len(args):
                out += ["--param", key]
                i += 2
            else:
                out += ["--param", f"{key}={args[i + 2]}"]
                i += 3
            continue
        out.append(arg)
        i += 1
    return out


class ReasoningEffort(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"


class Color(StrEnum):
    auto = "auto"
    always = "always"
    never = "never"


def choices(enum: type[StrEnum]) -> str:
    """An option's value placeholder that lists its choices: ``auto|always|never``."""
    return "|".join(member.value for member in enum)


def switch(name: str, help: str) -> Any:
    """A flag that is off unless given."""
    return typer.Option(name, help=help)


def repeated(name: str, help: str, metavar: str = "NAME", **extra: Any) -> Any:
    """An option that may be given many times (a list, None when never given)."""
    return typer.Option(name, metavar=metavar, help=help, **extra)


def continue_chat(help: str) -> Any:
    """``--continue``/``-c``: the prompt command continues the most recent chat, ``rill chat``
    resumes it; each says so in its own help."""
    return typer.Option("--continue", "-c", help=help)


def chat_id(help: str) -> Any:
    """``--chat ID`` (completed from history): a given chat, as ``--continue`` the latest."""
    return typer.Option("--chat", metavar="ID", help=help, autocompletion=complete_chat)


class FiniteFloat(FloatParamType):
    """A number option's type: a finite number. ``nan`` and ``inf`` read as floats, but no
    JSON request can carry them and no time limit means anything with them."""

    name = "number"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class FiniteRange(FloatRange):
    """A finite number within a range (shown in the help, as ``[x>=0]``)."""

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        return super().convert(NUMBER.convert(value, param, ctx), param, ctx)


NUMBER = FiniteFloat()
#: Time limits in seconds (0: none).
SECONDS = FiniteRange(min=0)

#: --option's help: the flag's short form differs (``ask`` has -o, ``batch`` uses -o for output).
OPTION_HELP = "Extra request field KEY=VALUE (JSON when it parses; @file)."

Options = Annotated[
    list[str] | None, typer.Option("--option", "-o", metavar="KEY=VALUE", help=OPTION_HELP)
]
ColorWhen = Annotated[
    Color | None, typer.Option("--color", metavar=choices(Color), help="When to use colour.")
]
Markdown = Annotated[
    bool | None, typer.Option("--markdown/--no-markdown", help="Render markdown on a terminal.")
]
ShowReasoning = Annotated[
    bool | None,
    typer.Option("--show-reasoning/--hide-reasoning", help="Show reasoning dimmed on a terminal."),
]
Model = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", metavar="ID", help="Model ID or alias.", autocompletion=complete_model
    ),
]
System = Annotated[
    str | None, typer.Option("--system", "-s", metavar="TEXT", help="System prompt.")
]
Tool = Annotated[
    list[str] | None,
    repeated(
        "--tool",
        "Offer the declared tool tools/NAME.toml to the model (repeatable); calls need consent.",
        autocompletion=complete_tool,
    ),
]
Mcp = Annotated[
    list[str] | None,
    repeated(
        "--mcp",
        "Offer the tools of the MCP server [mcp.NAME] in config.toml (repeatable).",
        autocompletion=complete_mcp,
    ),
]
Yes = Annotated[
    bool,
    typer.Option(
        "--yes", "-y", help="Run tool calls without asking (needed when there is no terminal)."
    ),
]
MaxToolRounds = Annotated[
    int,
    typer.Option(
        "--max-tool-rounds",
        metavar="N",
        min=0,
        help="Rounds of tool calls before giving up (exit 7).",
    ),
]
Template = Annotated[
    str | None,
    typer.Option(
        "--template",
        "-t",
        metavar="NAME",
        help="Use templates/NAME.toml.",
        autocompletion=complete_template,
    ),
]
Param = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        metavar="KEY VALUE",
        help="Fill a placeholder of the template (-t): -p KEY VALUE (or KEY=VALUE).",
    ),
]
Attach = Annotated[
    list[str] | None,
    typer.Option(
        "--attach",
        "-a",
        metavar="PATH|URL|-",
        help="Attach an image, PDF or audio file, an http(s) URL or '-' (stdin); repeatable.",
    ),
]


def _attach_types(incomplete: str) -> list[str]:
    from rill.stream.parts import SUPPORTED_TYPES

    return [mime for mime in SUPPORTED_TYPES if mime.startswith(incomplete)]


AttachType = Annotated[
    str | None,
    typer.Option(
        "--attach-type",
        metavar="MIME",
        help="Force the type of -a files (image/png, application/pdf, audio/mpeg, …).",
        autocompletion=_attach_types,
    ),
]


def attaches_stdin(attach: list[str]) -> bool:
    """Whether ``-a -`` takes stdin (which is then not prompt text)."""
    if not attach:  # a plain prompt does not import the attachments' module
        return False
    from rill.input.attachments import split_spec

    return any(split_spec(spec)[0] == "-" for spec in attach)


def check_attach(attach: list[str], attach_type: str | None, words: list[str]) -> list[str]:
    """``-a`` and ``--attach-type`` that contradict the rest of the command line: usage errors."""
    if attach and attaches_stdin(attach) and words == ["-"]:
        raise UsageError("-a - reads stdin as the attached file; '-' cannot be the prompt too")
    if attach_type is not None and not attach:
        raise UsageError("--attach-type sets the type of -a files: give one with -a PATH")
    return attach


Temperature = Annotated[
    float | None,
    typer.Option(
        "--temperature", metavar="NUMBER", help="Sampling temperature.", click_type=NUMBER
    ),
]
MaxTokens = Annotated[
    int | None, typer.Option("--max-tokens", metavar="N", help="Maximum tokens to generate.", min=1)
]
Effort = Annotated[
    ReasoningEffort | None,
    typer.Option("--reasoning-effort", metavar=choices(ReasoningEffort), help="Reasoning effort."),
]
BaseUrl = Annotated[
    str | None, typer.Option("--base-url", metavar="URL", help="OpenAI-compatible API base URL.")
]
Timeout = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        help="Idle timeout in seconds (0: none).",
        click_type=SECONDS,
    ),
]
Retries = Annotated[
    int | None,
    typer.Option("--retries", metavar="N", help="Retries before an answer starts.", min=0),
]
NoHistory = Annotated[bool, switch("--no-history", "Write nothing under the data folder.")]
Json = Annotated[bool, switch("--json", "JSON output.")]

# OpenRouter routing (rill.input.routing): a usage error with any other server.
Provider = Annotated[
    list[str] | None,
    repeated("--provider", "OpenRouter: try this provider (repeat: the order to try)."),
]
Only = Annotated[list[str] | None, repeated("--only", "OpenRouter: use only this provider.")]
Ignore = Annotated[list[str] | None, repeated("--ignore", "OpenRouter: never use this provider.")]
Sort = Annotated[
    str | None,
    typer.Option(
        "--sort",
        metavar="price|throughput|latency",
        help="OpenRouter: prefer providers by price, throughput or latency.",
    ),
]
NoFallbacks = Annotated[
    bool, switch("--no-fallbacks", "OpenRouter: no other provider when the chosen ones fail.")
]
Zdr = Annotated[bool, switch("--zdr", "OpenRouter: only zero-data-retention endpoints.")]
DenyDataCollection = Annotated[
    bool,
    switch(
        "--deny-data-collection",
        "OpenRouter: only providers that do not store or train on prompts.",
    ),
]
Fallback = Annotated[
    list[str] | None,
    repeated(
        "--fallback",
        "OpenRouter: a model to try when the model fails (repeatable, in order).",
        metavar="MODEL",
        autocompletion=complete_model,
    ),
]
Online = Annotated[bool, switch("--online", "OpenRouter: add web search (the :online model).")]
#: The routing options above, named as the commands' parameters (``make_flags``'s arguments).
ROUTING_FLAGS = (
    "provider",
    "only",
    "ignore",
    "sort",
    "no_fallbacks",
    "zdr",
    "deny_data_collection",
    "fallback",
    "online",
)


def routing_flags(params: Mapping[str, Any]) -> RoutingFlags:
    """The routing flags of a command that has every routing option, from its parsed values
    (``ctx.params``); a bad ``--sort`` or an empty name is exit 2."""
    from rill.input.routing import make_flags

    return make_flags(**{name: params[name] for name in ROUTING_FLAGS})


Cache = Annotated[
    bool,
    switch(
        "--cache",
        "Mark the system prompt and long context for prompt caching (Anthropic, Gemini).",
    ),
]

# Time limits of a whole answer (the idle limit is --timeout).
FirstTokenTimeout = Annotated[
    float | None,
    typer.Option(
        "--first-token-timeout",
        metavar="SECONDS",
        help="Limit on the wait for the first token.",
        click_type=SECONDS,
    ),
]
TotalTimeout = Annotated[
    float | None,
    typer.Option(
        "--total-timeout", metavar="SECONDS", help="Limit on the whole run.", click_type=SECONDS
    ),
]

# Structured output (rill.schema).
Schema = Annotated[
    str | None,
    typer.Option(
        "--schema",
        metavar="SCHEMA",
        help=(
            "Ask for JSON matching SCHEMA (inline JSON, @FILE, or fields such as "
            "'name, age int, ok bool, bio: a description') and check the answer (exit 9 if not)."
        ),
    ),
]
SchemaMulti = Annotated[
    str | None,
    typer.Option(
        "--schema-multi",
        metavar="SCHEMA",
        help='Like --schema, for a list: the answer is {"items": [...]} of SCHEMA objects.',
    ),
]


#: The options that are settings flags (``SettingFlags``), named as the commands' parameters, in
#: the order the commands pass them.
SETTING_FLAGS = (
    "model",
    "system",
    "temperature",
    "max_tokens",
    "base_url",
    "timeout",
    "connect_timeout",
    "first_token_timeout",
    "total_timeout",
    "retries",
    "stats",
    "color",
    "markdown",
    "show_reasoning",
)


def setting_flags(params: Mapping[str, Any]) -> SettingFlags:
    """The settings flags for ``resolve_settings`` among a command's parsed values (``ctx.params``):
    each one the command has (None when not given); one it does not have is left out. ``--color``
    is passed as its name (``always``)."""
    flags = {name: params[name] for name in SETTING_FLAGS if name in params}
    if flags.get("color") is not None:
        flags["color"] = Color(flags["color"]).value
    return cast("SettingFlags", flags)
