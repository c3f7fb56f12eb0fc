#!/usr/bin/env python3
"""Generate rill's shell completions and man page from the command line itself.

    python scripts/gen_docs.py           write completions/rill.bash, completions/_rill,
                                         completions/rill.fish and man/rill.1
    python scripts/gen_docs.py --check   exit 1, listing the files that differ from what the
                                         current CLI generates (tests/test_docs.py runs this)

Completion scripts are what ``rill completions bash|zsh|fish`` prints (Typer's own scripts,
``rill.commands.completion.script``). The man page is built by walking the
command tree (``typer.main.get_command``): every option's help text is read from the CLI, never
typed here. The prose sections (output formats, environment, files, exit status, examples) are
written here, keyed by the enums they describe, so a new exit code or output format without a
description stops the build instead of going undocumented.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # document the working tree, not some installed copy

import typer  # noqa: E402 - after the path set-up above

from rill import __version__  # noqa: E402
from rill.cli import app  # noqa: E402
from rill.commands import completion  # noqa: E402
from rill.config.settings import CHOICES, CONFIG_KEYS, DEFAULT_BASE_URL  # noqa: E402
from rill.errors import ExitCode  # noqa: E402
from rill.output.formats import OutputFormat  # noqa: E402

PROG = "rill"
DEFAULT_COMMAND = "ask"
HEADER = completion.HEADER
COMPLETIONS = {
    "bash": Path("completions/rill.bash"),
    "zsh": Path("completions/_rill"),
    "fish": Path("completions/rill.fish"),
}
MAN_PAGE = Path("man/rill.1")

# --------------------------------------------------------------------------------------------
# Prose sections. Keys are the enums they describe; ``check_prose`` makes them complete.

FORMATS: dict[OutputFormat, str] = {
    OutputFormat.text: "Only the assistant's text, byte-exact, written as it arrives. On a "
    "terminal a final newline is added when missing. Errors, spinners and statistics go to "
    "standard error.",
    OutputFormat.sse: "rill's own event stream: one event: and data: block per event, data "
    "always one JSON line. Events: start {chat_id, model}; chunk {content, done}; reasoning "
    "{content}; tool_call {index, id, name, arguments}; and exactly one terminal event, done "
    "{message, usage, finish_reason, model, provider, id, chat_id} or error {code, message, "
    "status, exit_code, partial, chat_id}. A run stopped by a signal or a closed output ends "
    'with done and finish_reason "cancelled". Consumers should ignore event types they do not '
    "know.",
    OutputFormat.jsonl: 'The same events, one JSON object per line, each with an "event" key.',
    OutputFormat.json: "Only the terminal event's object, once, at the end.",
    OutputFormat.openai: "OpenAI-compatible data: {chat.completion.chunk} lines ending in "
    "data: [DONE], for any OpenAI streaming consumer.",
    OutputFormat.raw: "The upstream's server-sent events exactly as received, keep-alive "
    "comments included. History is still recorded.",
}

EXIT_STATUS: dict[ExitCode, str] = {
    ExitCode.OK: "Completed (any finish reason except cancelled or error).",
    ExitCode.INTERNAL: "Internal error: a bug, reported in one line (the traceback with --debug).",
    ExitCode.USAGE: "Usage error: bad options or arguments, an empty prompt, a template "
    "placeholder without a value.",
    ExitCode.CONFIG: "Configuration error: no API key for OpenRouter, an unreadable "
    "config.toml, a key that would travel over plain http.",
    ExitCode.AUTH: "Authentication or permission refused (HTTP 401, 403).",
    ExitCode.CREDITS: "Out of credits (HTTP 402).",
    ExitCode.RATE_LIMITED: "Rate limited (HTTP 429) after retries.",
    ExitCode.UPSTREAM: "Upstream error: another HTTP error, an error inside the stream, or a "
    "stream that ended without a finish reason.",
    ExitCode.NETWORK: "Network error or timeout before a response, or an idle, first-token or "
    "total timeout.",
    ExitCode.SCHEMA: "The answer does not match --schema (not JSON, or not valid for it); the "
    "answer is still on standard output and in history.",
    ExitCode.OUTPUT: "Standard output could not be written (a full disk, /dev/full); the partial "
    "answer is kept in history.",
    ExitCode.INTERRUPTED: "Interrupted by SIGINT (Ctrl-C); the partial answer is kept in history.",
    ExitCode.BROKEN_PIPE: "Standard output was closed by its reader (rill ... | head); the "
    "run ends quietly and the partial answer is kept in history.",
    ExitCode.TERMINATED: "Terminated by SIGTERM or SIGHUP.",
}

ENVIRONMENT = [
    (
        "OPENROUTER_API_KEY",
        "The API key, sent as Authorization: Bearer to the base URL. Required for OpenRouter, "
        "optional for other servers; never sent over plain http to a host other than loopback. "
        "config.toml may give api_key (in a file only its owner can read) or api_key_cmd "
        "instead.",
    ),
    ("RILL_MODEL", "The model ID or alias used when -m is not given."),
    ("RILL_BASE_URL", f"The API base URL used when --base-url is not given ({DEFAULT_BASE_URL})."),
    (
        "RILL_HOME",
        "One folder for config, history, cache and templates. Without it, rill follows "
        "XDG_CONFIG_HOME, XDG_DATA_HOME and XDG_CACHE_HOME (default ~/.config/rill, "
        "~/.local/share/rill and ~/.cache/rill).",
    ),
    ("NO_COLOR", "With --color auto (the default), a non-empty value turns colour off."),
    (
        "FORCE_COLOR",
        "With --color auto, a non-empty value turns colour on even in a pipe (NO_COLOR wins).",
    ),
    ("RILL_DEBUG", "When set to a non-empty value, errors show internal details, as --debug."),
    ("VISUAL, EDITOR", "The editor rill templates edit starts (default vi)."),
]

FILES = [
    (
        "config.toml",
        "$RILL_HOME/config.toml, else $XDG_CONFIG_HOME/rill/config.toml. Settings, below the "
        "command line and the environment in precedence. Change it with rill config. Keys: "
        "@KEYS@.",
    ),
    (
        "history/",
        "$RILL_HOME/history/, else $XDG_DATA_HOME/rill/history/. Every exchange, as JSON or "
        "TOML files (history_format): messages, requested and served model, provider, "
        "generation ID, finish reason, usage, timings and errors. The prompt is saved before "
        "the request is sent. Attached files (-a) are kept once each in attachments/, named by "
        "their SHA-256, so -c sends them again after the originals are gone.",
    ),
    (
        "cache/",
        "$RILL_HOME/cache/, else $XDG_CACHE_HOME/rill/. models.json holds the model list of "
        "the last server asked (rill models), for an hour; shell completion reads it.",
    ),
    (
        "templates/",
        "$RILL_HOME/templates/, else $XDG_CONFIG_HOME/rill/templates/. One NAME.toml per "
        "template, with the keys system, prompt ({{name}} placeholders filled by -p NAME VALUE; "
        "prompt words and standard input follow it after a blank line), model and an [options] "
        "table of extra request fields.",
    ),
]

DESCRIPTION = [
    "rill sends a prompt to OpenRouter or any OpenAI-compatible server (llama.cpp, vLLM, "
    "Ollama's /v1) and writes the answer to standard output as it streams in.",
    "Prompt words are joined with spaces. When standard input is not a terminal it is read "
    "too: the prompt words come first, then a blank line, then standard input. A lone - means "
    "standard input only. A command line whose first word is not a command is a prompt, so "
    "rill explain this is rill ask explain this; to send a prompt that starts with a command's "
    'name, write rill -- history of rome or rill ask "history of rome".',
    "-a PATH|URL|- attaches an image (PNG, JPEG, GIF, WebP), a PDF or audio (WAV, MP3) to the "
    "prompt, as a content part after its text; repeat it for more. The type is recognised from "
    "the file's first bytes, then its name; --attach-type MIME forces it for every -a, and "
    "-a 'PATH;type=MIME' for one. An http(s) URL is sent as it is, never fetched (audio URLs "
    "are refused); - reads the file from standard input, which is then not prompt text. A "
    "file that cannot be attached is a usage error, and nothing is sent.",
    "Settings are taken from the command line, then the environment, then config.toml, then "
    "built-in defaults. Every exchange is recorded under the data folder (see FILES) unless "
    "--no-history is given.",
]

EXAMPLES = [
    ("Ask a question:", 'rill "why is the sky blue?"'),
    (
        "Summarise a file with a given model:",
        "rill -m anthropic/claude-sonnet-4 summarise < notes.md",
    ),
    ("Continue the last chat:", "rill -c and in one sentence?"),
    ("Ask about a PDF and a screenshot:", 'rill -a invoice.pdf -a shot.png "do these match?"'),
    ("Use a local OpenAI-compatible server:", 'rill --base-url http://localhost:8080/v1 "hi"'),
    ("Machine-readable events:", 'rill -f jsonl "hi" | jq -c \'select(.event == "done")\''),
    ("A template with a placeholder:", "rill -t review -p language Python < diff.patch"),
    ("See the request without sending it:", 'rill --dry-run -o top_p=0.9 "hi"'),
    ("Find a model:", "rill models --search claude"),
    ("Set a default model:", "rill config set model openai/gpt-4o"),
    ("Token and cost totals of the last week:", "rill usage --since 7d"),
]


def check_prose() -> None:
    """Every exit code and output format has a description (and nothing else does)."""
    if set(EXIT_STATUS) != set(ExitCode):
        raise SystemExit(f"gen_docs: EXIT_STATUS must describe exactly {sorted(ExitCode)}")
    if set(FORMATS) != set(OutputFormat):
        raise SystemExit(f"gen_docs: FORMATS must describe exactly {sorted(OutputFormat)}")


# --------------------------------------------------------------------------------------------
# Completion scripts


def completion_script(shell: str) -> str:
    """The script ``rill completions SHELL`` prints (Typer's, with rill's header)."""
    return completion.script(shell)


# --------------------------------------------------------------------------------------------
# Roff helpers

_OPTION_WORD = re.compile(r"(?<![\w\\])(--?[A-Za-z][\w-]*)")


def roff(text: str) -> str:
    """Plain text → roff: escapes, option hyphens as \\-, non-ASCII as \\[uXXXX]."""
    text = text.replace("\\", "\\e")
    text = _OPTION_WORD.sub(lambda m: m.group(1).replace("-", "\\-"), text)
    text = re.sub(r"(?<!\S)(--?)(?!\S)", lambda m: m.group(1).replace("-", "\\-"), text)
    text = "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)
    return "\n".join(f"\\&{line}" if line[:1] in (".", "'") else line for line in text.split("\n"))


def bold(text: str) -> str:
    return f"\\fB{roff(text)}\\fR"


def italic(text: str) -> str:
    return f"\\fI{roff(text)}\\fR"


def paragraph(text: str) -> str:
    """One paragraph of help text on one roff line (roff fills it)."""
    text = inspect.cleandoc(text).replace("\b", "")
    return roff(" ".join(text.split()))


# --------------------------------------------------------------------------------------------
# The command tree


def context(command: Any, name: str, parent: Any = None) -> Any:
    """A context for ``command`` as the CLI would build it (help option names inherited)."""
    return command.context_class(command, info_name=name, parent=parent, **command.context_settings)


def walk(command: Any, ctx: Any, path: list[str]) -> Iterator[tuple[list[str], Any, Any]]:
    """Every visible leaf command under ``command``: (words after ``rill``, command, context)."""
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        if sub is None or sub.hidden:
            continue
        sub_ctx = context(sub, name, ctx)
        if hasattr(sub, "commands"):
            yield from walk(sub, sub_ctx, [*path, name])
        else:
            yield [*path, name], sub, sub_ctx


def is_option(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "option"


def metavar(param: Any, ctx: Any) -> str | None:
    """The value placeholder of an option: its choices, or its name in capitals."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return None
    if param.metavar:
        return str(param.metavar)
    record = param.get_help_record(ctx)
    shown = re.search(r"<([^<>]*)>\S*$", record[0]) if record else None
    if shown and "|" in shown.group(1):
        return shown.group(1).removeprefix("list[").removesuffix("]")
    return str(param.name).upper()


def option_entry(param: Any, ctx: Any) -> str:
    """A ``.TP`` entry: the option's names and value, then its help text from the CLI."""
    record = param.get_help_record(ctx)
    value = metavar(param, ctx)
    names = [bold(opt) for opt in sorted(param.opts, key=len)]
    names += [bold(opt) for opt in sorted(param.secondary_opts, key=len)]
    head = ", ".join(names) + (f" {italic(value)}" if value else "")
    help_text = record[1] if record else (param.help or "")
    return f".TP\n{head}\n{paragraph(help_text) or roff('(no description)')}"


def argument_name(param: Any) -> str:
    """``PROMPT...``: the metavar (or name) in capitals, without brackets the usage line adds."""
    name = str(param.metavar or param.name).upper().strip("[]").removesuffix("...")
    return f"{name}..." if param.nargs == -1 else name


def usage(words: list[str], command: Any, ctx: Any) -> str:
    """``rill history show [OPTIONS] [REF]`` built from the command's parameters."""
    parts = [PROG, *words]
    if any(is_option(p) for p in command.get_params(ctx)):
        parts.append("[OPTIONS]")
    for param in command.params:
        if is_option(param):
            continue
        name = argument_name(param)
        parts.append(name if param.required else f"[{name}]")
    return " ".join(parts)


def argument_entries(command: Any) -> list[str]:
    out = []
    for param in command.params:
        if not is_option(param) and getattr(param, "help", None):
            out.append(f".TP\n{italic(argument_name(param))}\n{paragraph(param.help)}")
    return out


def visible_options(command: Any, ctx: Any, *, with_help: bool) -> list[Any]:
    help_names = set(ctx.help_option_names)
    return [
        p
        for p in command.get_params(ctx)
        if is_option(p) and not p.hidden and (with_help or not help_names & set(p.opts))
    ]


# --------------------------------------------------------------------------------------------
# The man page


def man_page() -> str:
    check_prose()
    root: Any = typer.main.get_command(app)  # a group; its classes are private to typer
    root_ctx = context(root, PROG)
    ask = root.get_command(root_ctx, DEFAULT_COMMAND)
    if ask is None:
        raise SystemExit(f"gen_docs: the CLI has no {DEFAULT_COMMAND!r} command")
    ask_ctx = context(ask, DEFAULT_COMMAND, root_ctx)
    summary = inspect.cleandoc(root.help or "").split("\n\n")[0].strip().rstrip(".")
    out = [
        f'.\\" {HEADER}',
        f'.TH RILL 1 "" "{PROG} {__version__}" "User Commands"',
        ".nh",  # no hyphenation: option names and model IDs must stay whole
        ".ad l",
        ".SH NAME",
        f"{PROG} \\- {roff(summary[:1].lower() + summary[1:])}",
        ".SH SYNOPSIS",
        f"{bold(PROG)} [{italic('OPTIONS')}] [{italic('PROMPT')}...]",
        ".br",
        f"{bold(PROG)} {italic('COMMAND')} [{italic('OPTIONS')}] [{italic('ARGS')}...]",
        ".SH DESCRIPTION",
        paragraph(ask.help or ""),
    ]
    for text in DESCRIPTION:
        out += [".PP", paragraph(text)]
    out += argument_entries(ask)
    out.append(".SH OPTIONS")
    out += [option_entry(p, ask_ctx) for p in visible_options(ask, ask_ctx, with_help=True)]
    out += commands_section(root, root_ctx)
    out += completion_section(root, root_ctx)
    out.append(".SH OUTPUT FORMATS")
    out.append(f"Chosen with {bold('--format')}; output is never buffered until the end.")
    for fmt in OutputFormat:
        out += [".TP", bold(fmt.value), paragraph(FORMATS[fmt])]
    out.append(".SH ENVIRONMENT")
    for name, text in ENVIRONMENT:
        out += [".TP", bold(name), paragraph(text)]
    out.append(".SH FILES")
    for name, text in FILES:
        out += [".TP", italic(name), paragraph(text.replace("@KEYS@", config_keys()))]
    out.append(".SH EXIT STATUS")
    for code in ExitCode:
        out += [".TP", bold(str(int(code))), paragraph(EXIT_STATUS[code])]
    out.append(".SH EXAMPLES")
    for text, command in EXAMPLES:
        out += [".PP", paragraph(text), ".PP", ".RS 4", f"{bold(command)}", ".RE"]
    out += [".SH SEE ALSO", "\\fBcurl\\fR(1), \\fBjq\\fR(1)"]
    return "\n".join(out) + "\n"


def config_keys() -> str:
    names = []
    for key in CONFIG_KEYS:
        names.append(f"{key} ({'|'.join(CHOICES[key])})" if key in CHOICES else key)
    return ", ".join(names).replace("aliases", "[aliases] (alias = model ID)")


def commands_section(root: Any, root_ctx: Any) -> list[str]:
    out = [".SH COMMANDS"]
    for words, command, ctx in walk(root, root_ctx, []):
        out.append(f'.SS "{roff(usage(words, command, ctx))}"')
        if words == [DEFAULT_COMMAND]:
            out.append(paragraph(f"The same as {PROG} [OPTIONS] PROMPT...: see OPTIONS."))
            continue
        out.append(paragraph(command.help or command.short_help or ""))
        out += argument_entries(command)
        out += [option_entry(p, ctx) for p in visible_options(command, ctx, with_help=False)]
    return out


def completion_section(root: Any, root_ctx: Any) -> list[str]:
    out = [
        ".SH SHELL COMPLETION",
        paragraph(
            "rill completions bash|zsh|fish prints the completion script for a shell (the same "
            "text as completions/rill.bash, completions/_rill and completions/rill.fish): "
            'eval "$(rill completions bash)" in ~/.bashrc; rill completions zsh > _rill in a '
            "folder of $fpath; rill completions fish > ~/.config/fish/completions/rill.fish. "
            "Every option and choice completes; model IDs from the models cache (run rill "
            "models once), chat IDs from history, template names from the templates folder and "
            "config keys from the keys rill knows. The command can also install a script for "
            "the current shell:"
        ),
    ]
    out += [option_entry(p, root_ctx) for p in visible_options(root, root_ctx, with_help=False)]
    return out


# --------------------------------------------------------------------------------------------
# Entry point


def render_all() -> dict[Path, str]:
    """Every generated file (path relative to the repository root) and its content."""
    files = {path: completion_script(shell) for shell, path in COMPLETIONS.items()}
    files[MAN_PAGE] = man_page()
    return files


def stale_files(root: Path | None = None) -> list[Path]:
    stale = []
    for path, text in render_all().items():
        target = (root or ROOT) / path
        try:
            current = target.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current != text:
            stale.append(path)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate rill's completions and man page.")
    parser.add_argument(
        "--check", action="store_true", help="list files that are not current; exit 1 if any"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path}", file=sys.stderr)
        if stale:
            print("run: python scripts/gen_docs.py", file=sys.stderr)
            return 1
        return 0
    for path, text in render_all().items():
        target = ROOT / path
        try:
            if target.read_text(encoding="utf-8") == text:
                continue
        except FileNotFoundError:
            pass
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
