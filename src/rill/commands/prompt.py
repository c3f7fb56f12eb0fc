"""Wire one prompt run: settings → request → client, renderer, history → ``ChatStream`` → exit.

Kept apart from ``cli.py`` so the Typer command stays a parameter list, and apart from the
streaming core so that the pipeline knows nothing of flags, files, signals or stderr wording: this
module pulls the stream into the renderer, cancels it on a signal or a closed stdout, and words
the outcome on stderr.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from rill.env import Environment
from rill.errors import Cancelled, ExitCode, OutputError, UsageError, reason
from rill.output.formats import OutputFormat
from rill.process import cancel_on_signals, silence_stdout

if TYPE_CHECKING:
    from rill.config.settings import SettingFlags
    from rill.input.routing import RoutingFlags

#: Stands in for a missing key while a dry run's configuration is checked; never sent or shown.
_PLACEHOLDER_KEY = "dry-run"
NO_PROMPT = "no prompt: give words, '-' for stdin, or pipe text in (try rill --help)"


@dataclass
class PromptArgs:
    words: list[str]
    stdin_text: str | None
    flags: SettingFlags
    fmt: OutputFormat = OutputFormat.text
    continue_chat: bool = False
    chat: str | None = None
    no_history: bool = False
    reasoning_effort: str | None = None
    options: list[str] = field(default_factory=list)
    stream: bool = True
    template: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False
    raw: bool = False
    debug: bool = False
    transport: Any = None
    routing: RoutingFlags | None = None
    """OpenRouter's routing flags (``rill.input.routing``); None: none given."""
    cache: bool = False
    """``--cache``: mark the prompt for caching (``rill.input.caching``)."""
    env: Environment | None = None
    """Where the run reads and writes; None: the process's own streams."""
    # Tools (``rill.tools``): --tool NAME, --mcp NAME, --yes, --max-tool-rounds N.
    tools: list[str] = field(default_factory=list)
    mcp: list[str] = field(default_factory=list)
    yes: bool = False
    max_tool_rounds: int = 10
    schema: str | None = None
    """``--schema`` (or ``--schema-multi`` with ``schema_multi``): the spec as given."""
    schema_multi: bool = False
    extract: str | None = None
    """``-x``: "first", ``--extract-last``: "last", else None."""
    attachments: list[str] = field(default_factory=list)  # -a, read by rill.input.attachments
    attach_type: str | None = None


def check_params(ctx: Any, params: list[str] | None, template: str | None) -> None:
    """``-p`` without ``-t`` would silently do nothing: a usage error, the same for the prompt
    command and ``rill batch``."""
    if params and not template:
        ctx.fail("-p fills a template's placeholders: give the template with -t NAME")


def _stderr(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _warn(message: str) -> None:
    _stderr(f"rill: {message}")


@dataclass
class _Ask:
    """What this run asks, before settings: the user's text and the flags, with a template
    applied (its model, system prompt and request fields)."""

    text: str
    flags: SettingFlags
    system: str | None
    extra: dict[str, Any]
    template_text: str | None = None


def run_prompt(args: PromptArgs) -> int:
    from rill.config.settings import resolve_settings
    from rill.stream.client import ChatClient, RetryPolicy, make_http_client

    if args.env is None:
        if sys.stdout is None:  # started with stdout closed: rill … >&-
            raise OutputError("stdout is closed; nothing was sent", ExitCode.BROKEN_PIPE)
        args.env = Environment.from_process()
    ask = _ask(args)
    schema = None
    if args.schema is not None:
        from rill.schema import parse_schema

        schema = parse_schema(args.schema, multi=args.schema_multi)
    attached = _attached(args) if args.attachments else []
    chat_id, earlier = _continued(args, ask.flags)
    settings = resolve_settings(ask.flags, warn=_warn)
    _check_transport(settings, dry_run=args.dry_run)
    request, turn = _request(args, ask, settings, earlier, attached)
    if schema is not None:
        request = dataclasses.replace(request, schema=schema)
    with ExitStack() as stack:
        tools = None
        if args.tools or args.mcp:
            from rill.commands.toolrun import open_tools, with_tools

            tools = stack.enter_context(open_tools(args.tools, args.mcp, settings.paths))
            request = with_tools(request, tools)
        if args.dry_run:
            return _print_dry_run(args.env, settings, request)
        store = _recording_store(args, settings)
        http = make_http_client(settings, args.transport)
        policy = RetryPolicy(settings.retries, _retry_notes(args))
        client = ChatClient(settings, http, policy=policy)
        return _stream(args, settings, client, request, store, chat_id, turn, tools)


def _check_transport(settings: Any, *, dry_run: bool) -> None:
    """Refuse a configuration that cannot send the key safely, or that needs one it lacks.

    A dry run sends nothing, so OpenRouter without a key is fine there: it is checked as the run
    with a key would be (plain http to another host is still refused), with a placeholder key
    that goes nowhere, and a note says what the real run needs."""
    if not (dry_run and settings.openrouter and not settings.api_key):
        settings.check_transport()
        return
    dataclasses.replace(settings, api_key=_PLACEHOLDER_KEY).check_transport()
    _warn("no API key: a real run needs OPENROUTER_API_KEY (or api_key_cmd in config.toml)")


def _ask(args: PromptArgs) -> _Ask:
    from rill.config.settings import resolve_paths
    from rill.input.prompting import apply_template, fill, join_prompt, load_template

    ask = _Ask(join_prompt(args.words, args.stdin_text), args.flags.copy(), None, {})
    ask.system = ask.flags.get("system")
    if args.template:
        template = load_template(resolve_paths().templates_dir, args.template)
        template_system, ask.text = apply_template(template, args.params, ask.text)
        ask.template_text = fill(template.prompt, args.params) if template.prompt else None
        ask.flags["model"] = ask.flags.get("model") or template.model
        ask.system = ask.system if ask.system is not None else template_system
        ask.extra.update(template.options)
    if not ask.text.strip():
        raise UsageError(NO_PROMPT)
    return ask


def _attached(args: PromptArgs) -> list[Any]:
    """The ``-a`` files, read once before anything is sent or recorded."""
    from rill.input.attachments import load_all

    stdin = args.env.stdin if args.env is not None else None
    return load_all(args.attachments, forced=args.attach_type, stdin=stdin)


def _continued(args: PromptArgs, flags: SettingFlags) -> tuple[str | None, list[Any]]:
    """The chat that ``-c``/``--chat`` continue (its id and messages; ``None, []`` for a new
    chat). It goes on with its own model on its own server: they fill ``flags`` where the user
    gave no ``-m`` (or template model) and no ``--base-url``, so that neither the environment
    nor config.toml moves a chat elsewhere, and the key check sees the chat's server."""
    if not args.continue_chat and args.chat is None:
        return None, []
    from rill.config.settings import resolve_paths
    from rill.history import HistoryStore

    # Only reading: a --no-history or --dry-run run writes nothing under the data folder.
    store = HistoryStore(resolve_paths().history_dir, warn=_warn, read_only=True)
    chat_id = store.resolve(args.chat or "last")
    model, base_url = store.origin(chat_id)
    if flags.get("model") is None and model is not None:
        flags["model"] = model
    if flags.get("base_url") is None and base_url is not None:
        flags["base_url"] = base_url
    return chat_id, store.conversation(chat_id)


def _request(
    args: PromptArgs, ask: _Ask, settings: Any, earlier: list[Any], attached: list[Any]
) -> tuple[Any, list[dict[str, Any]]]:
    """The request to send, and this turn's new messages (what history records)."""
    from rill.input.prompting import build_messages, check_extra, merge_options
    from rill.input.routing import RoutingFlags, merge_under, routed_model, routing_fields
    from rill.stream.protocol import Request

    extra = {**ask.extra, **merge_options(args.options)}
    check_extra(extra)
    routing = args.routing or RoutingFlags()
    model = routed_model(routing, settings.model)
    extra = merge_under(extra, routing_fields(routing, settings, model))
    system = ask.system
    if system is None and not earlier:
        system = settings.system  # config's system prompt starts chats; it never replaces one
    messages, turn = build_messages(ask.text, system, earlier)
    if args.cache:
        from rill.input.caching import mark_cache

        pieces = (args.stdin_text, ask.template_text)
        messages = mark_cache(messages, pieces, (model, *routing.fallback))
    if attached:  # the files' parts follow the prompt's text; history stores them once each
        from rill.stream.parts import with_parts

        messages[-1] = with_parts(messages[-1], attached)
        turn[-1] = with_parts(turn[-1], attached)
    request = Request(
        messages=messages,
        model=model,
        stream=args.stream,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        reasoning_effort=args.reasoning_effort,
        extra=extra,
    )
    return request, turn


def _recording_store(args: PromptArgs, settings: Any) -> Any:
    """The history store this run records into, or None (``--no-history``, ``history =
    false``)."""
    if args.no_history or not settings.history:
        return None
    from rill.history import HistoryStore

    return HistoryStore(
        settings.paths.history_dir,
        settings.history_format,
        warn=_warn,
    )


def _retry_notes(args: PromptArgs) -> Any:
    """Retry notes are for people watching; a script's stderr gets only the final outcome."""
    env = _env(args)
    tty = env.stderr_isatty
    if not (args.debug or tty):
        return None
    from rill.output.diagnostics import note_line, write_line

    return lambda note: write_line(env.stderr, note_line(note, tty=tty))


def _env(args: PromptArgs) -> Environment:
    if args.env is None:  # run_prompt sets it before anything is written
        raise RuntimeError("the run has no environment")
    return args.env


def _stream(
    args: PromptArgs,
    settings: Any,
    client: Any,
    request: Any,
    store: Any,
    chat_id: str | None,
    turn: list[dict[str, Any]],
    tools: list[Any] | None = None,
) -> int:
    from rill.stream.control import Limits
    from rill.stream.pipeline import ChatStream, NullSink

    def make_begin(
        chat_id: str | None,
        turn: list[dict[str, Any]],
        tool_results: list[dict[str, Any]] | None = None,
        sent: bool = True,
    ) -> Any:
        def begin() -> Any:
            if store is None:
                return NullSink()
            from rill.history import ExchangeStart

            start = ExchangeStart.of(
                request,
                chat_id=chat_id,
                messages=turn,
                base_url=settings.base_url,
                tool_results=tool_results,
                sent=sent,
            )
            return store.begin(start)

        return begin

    limits = Limits(
        idle=settings.timeout,
        first_token=settings.first_token_timeout,
        total=settings.total_timeout,
    )
    if tools is not None:
        from rill.commands.toolrun import stream_with_tools

        report = partial(_report, args, settings)
        hooks = (partial(_renderer, args, settings), _render, report, _late_output_failure)
        start = (chat_id, turn, tools)
        return stream_with_tools(args, client, request, limits, make_begin, start, hooks)
    renderer = _renderer(args, settings)
    stream = ChatStream(client, request, begin=make_begin(chat_id, turn), limits=limits)
    with cancel_on_signals(stream):
        try:
            outcome, late = _render(stream, renderer)
        finally:
            client.http.close()
        code = _report(args, settings, outcome, renderer)
        return code if late is None else _late_output_failure(late, outcome)


def _renderer(args: PromptArgs, settings: Any, renderer: Any = None) -> Any:
    """The format's renderer on stdout (or ``renderer``), wrapped for a terminal when either
    stream is one."""
    from rill.output.formats import make_renderer

    env = _env(args)
    tty = env.stdout_isatty
    if renderer is None:
        renderer = make_renderer(args.fmt, env.stdout, tty=tty)
    stderr_tty = env.stderr_isatty
    if args.extract is not None:
        from rill.output.extract import ExtractRenderer

        filt = None
        if tty and not args.raw:
            from rill.terminal.safe import SafeText

            filt = SafeText()  # control sequences are shown, not obeyed
        # Code is written as it is, without markdown, even to a terminal: it is meant to be run.
        renderer = ExtractRenderer(env.stdout, last=args.extract == "last", tty=tty, filt=filt)
        tty = False
    if tty or stderr_tty:
        # Spinner, live markdown, dimmed reasoning and safe output exist only for terminals;
        # a plain pipe never imports any of it.
        from rill.terminal.tty import for_terminal

        renderer = for_terminal(
            renderer,
            fmt=args.fmt,
            settings=settings,
            stdout_tty=tty,
            stderr_tty=stderr_tty,
            raw=args.raw,
        )
    return renderer


def _render(stream: Any, renderer: Any) -> tuple[Any, OSError | None]:
    """Pull the stream into the renderer: one write and flush per network read. Returns the
    outcome, and why stdout failed if it did only once the answer was complete (its record
    stays complete: only the exit code tells)."""
    from rill.events import Start
    from rill.stream.pipeline import Received

    steps = stream.steps()
    try:
        for step in steps:
            kind = type(step)
            if kind is Received:
                renderer.deltas(step.raw, step.deltas)
            elif kind is Start:
                renderer.start(step, stream.transcript)
            else:
                try:
                    renderer.finish(step)
                except OSError as exc:
                    return stream.outcome, exc
    except OSError as exc:
        # stdout is closed or cannot be written: the answer so far is recorded as cancelled.
        stream.cancel(_output_gone(exc))
        stream.close()
    return stream.outcome, None


def _output_gone(exc: OSError) -> Cancelled:
    if isinstance(exc, BrokenPipeError):
        return Cancelled("broken pipe", ExitCode.BROKEN_PIPE)
    return Cancelled(f"an unwritable stdout ({reason(exc)})", ExitCode.OUTPUT)


def _late_output_failure(failure: OSError, outcome: Any) -> int:
    """stdout failed on the answer's last write (``-f json`` writes only then): the answer is
    complete in history, the exit code says it was not shown."""
    silence_stdout()
    if isinstance(failure, BrokenPipeError):
        return int(ExitCode.BROKEN_PIPE)
    where = f"in chat {outcome.chat_id}" if outcome.chat_id else "not kept (no history)"
    _warn(f"cannot write to stdout ({reason(failure)}); the answer is {where}")
    return int(ExitCode.OUTPUT)


def _report(args: PromptArgs, settings: Any, outcome: Any, renderer: Any) -> int:
    """The run's lines on stderr (error or cancel, notes, ``--stats``) and its exit code."""
    from rill.output.diagnostics import (
        error_line,
        format_stats,
        note_line,
        tool_calls_note,
        write_line,
    )

    env = _env(args)
    tty = env.stderr_isatty
    # On a shared terminal, a line after an answer without a final newline starts a new line.
    shared = env.shared_terminal
    fresh = [bool(getattr(renderer, "at_line_start", True)) if shared else True]

    def line(text: str) -> None:
        write_line(env.stderr, text, at_line_start=fresh[0])
        fresh[0] = True

    error = outcome.error
    if isinstance(error, Cancelled) and error.exit_code == ExitCode.BROKEN_PIPE:
        silence_stdout()
        if args.debug:
            line("rill: stdout was closed; the partial answer is in history")
    elif isinstance(error, Cancelled):
        if error.exit_code == ExitCode.OUTPUT:
            silence_stdout()  # what is still buffered for it must not fail again at exit
        kept = len(outcome.transcript.content)
        where = f" in chat {outcome.chat_id}" if outcome.chat_id else ""
        line(f"rill: cancelled by {error.reason}; kept {kept} characters of the answer{where}")
    elif error is not None:
        line(error_line(error, tty=tty))  # the pipeline already removed the key
    notes = list(outcome.notes)
    if args.fmt is OutputFormat.text and outcome.error is None:
        notes += tool_calls_note(outcome.transcript, outcome.chat_id)  # text shows none
    for note in notes:
        line(note_line(note, tty=tty))
    if settings.stats:
        line(format_stats(outcome, tty=tty))
    return int(outcome.exit_code)


def _print_dry_run(env: Environment, settings: Any, request: Any) -> int:
    from rill.stream.protocol import build_headers, build_payload, redacted_headers
    from rill.urls import display_url

    headers = redacted_headers(build_headers(settings, stream=request.stream), settings.api_key)
    body = build_payload(request, openrouter=settings.openrouter)
    lines = [f"POST {display_url(settings.base_url)}/chat/completions"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    from rill.stream.parts import shown  # attached files: their type, name, size and hash

    lines += ["", json.dumps(body, ensure_ascii=False, indent=2, default=shown), ""]
    env.stdout.write("\n".join(lines).encode("utf-8", "replace"))
    env.stdout.flush()
    return int(ExitCode.OK)
