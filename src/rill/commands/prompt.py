"""Wire one prompt run: settings → request → client, renderer, history → session → exit code.

Kept apart from ``cli.py`` so the Typer command stays a parameter list, and apart from
``session.py`` so the streaming loop knows nothing of flags, files or stderr wording.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from rill.errors import Cancelled, ExitCode, UsageError
from rill.output.formats import OutputFormat

NO_PROMPT = "no prompt: give words, '-' for stdin, or pipe text in (try rill --help)"


@dataclass
class PromptArgs:
    words: list[str]
    stdin_text: str | None
    flags: dict[str, Any]
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


def _stderr(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def run_prompt(args: PromptArgs) -> int:
    from rill.config.settings import resolve_paths, resolve_settings
    from rill.input.prompting import (
        apply_template,
        build_messages,
        check_extra,
        fill,
        join_prompt,
        load_template,
        merge_options,
    )
    from rill.stream.client import ChatClient, make_http_client
    from rill.stream.protocol import Request

    def warn(message: str) -> None:
        _stderr(f"rill: {message}")

    user_text = join_prompt(args.words, args.stdin_text)
    flags = dict(args.flags)
    system = flags.get("system")
    extra: dict[str, Any] = {}
    template_text = None
    if args.template:
        template = load_template(resolve_paths().templates_dir, args.template)
        template_system, user_text = apply_template(template, args.params, user_text)
        template_text = fill(template.prompt, args.params) if template.prompt else None
        flags["model"] = flags.get("model") or template.model
        system = system if system is not None else template_system
        extra.update(template.options)
    if not user_text.strip():
        raise UsageError(NO_PROMPT)
    settings = resolve_settings(flags, warn=warn)
    settings.check_transport()
    extra.update(merge_options(args.options))
    check_extra(extra)
    from rill.input.routing import RoutingFlags, merge_under, routed_model, routing_fields

    routing = flags.get("routing") or RoutingFlags()
    model = routed_model(routing, settings.model)
    extra = merge_under(extra, routing_fields(routing, settings, model))

    recording = settings.history and not args.no_history and not args.dry_run
    continuing = args.continue_chat or args.chat is not None
    store = None
    if recording or continuing:
        from rill.history import HistoryStore

        # Only reading (--no-history -c, --dry-run): nothing may be written under the data folder.
        store = HistoryStore(
            settings.paths.history_dir,
            settings.history_format,  # type: ignore[arg-type]  # validated by settings
            warn=warn,
            read_only=not recording,
        )
    chat_id = None
    earlier: list[dict[str, Any]] = []
    if store is not None and continuing:
        chat_id = store.resolve(args.chat or "last")
        earlier = store.conversation(chat_id)
    if system is None and not earlier:
        system = settings.system  # config's system prompt starts chats; it never replaces one
    messages, turn = build_messages(user_text, system, earlier)
    if flags.get("cache"):
        from rill.input.caching import mark_cache

        pieces = (args.stdin_text, template_text)
        messages = mark_cache(messages, pieces, (model, *routing.fallback))
    request = Request(
        messages=messages,
        model=model,
        stream=args.stream,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        reasoning_effort=args.reasoning_effort,
        extra=extra,
    )
    if args.dry_run:
        return _print_dry_run(settings, request)

    http = make_http_client(settings, args.transport)
    # Retry notes are for people watching; a script's stderr gets only the final outcome.
    on_retry = warn if args.debug or _isatty(sys.stderr) else None
    client = ChatClient(settings, http, on_retry=on_retry)
    return _stream(args, settings, client, request, store if recording else None, chat_id, turn)


def _stream(
    args: PromptArgs,
    settings: Any,
    client: Any,
    request: Any,
    store: Any,
    chat_id: str | None,
    turn: list[dict[str, Any]],
) -> int:
    from rill.output.formats import make_renderer
    from rill.stream.session import NullRecorder, run_chat

    def begin() -> Any:
        if store is None:
            return NullRecorder()
        from rill.history import ExchangeStart

        return store.begin(
            ExchangeStart(
                chat_id=chat_id,
                messages=turn,
                requested_model=request.model,
                request=request.options(),
                base_url=settings.base_url,
            )
        )

    out = sys.stdout.buffer
    tty = _isatty(sys.stdout)
    renderer = make_renderer(args.fmt, out, tty=tty)
    stderr_tty = _isatty(sys.stderr)
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
    try:
        outcome = run_chat(
            client,
            request,
            renderer,
            begin=begin,
            first_token_timeout=settings.first_token_timeout,
            total_timeout=settings.total_timeout,
        )
    finally:
        client.http.close()
    error = outcome.error
    if isinstance(error, Cancelled) and error.reason == "broken pipe":
        silence_stdout()
        if args.debug:
            _stderr("rill: stdout was closed; the partial answer is in history")
    elif isinstance(error, Cancelled):
        kept = len(outcome.transcript.content)
        where = f" in chat {outcome.chat_id}" if outcome.chat_id else ""
        _stderr(f"rill: cancelled by {error.reason}; kept {kept} characters of the answer{where}")
    elif error is not None:
        status = getattr(error, "status", None)
        suffix = f" (HTTP {status})" if status and status != 200 else ""
        _stderr(f"rill: {error.message}{suffix}")  # the session already removed the key
    for note in outcome.notes:
        _stderr(f"rill: {note}")
    if settings.stats:
        from rill.output.diagnostics import format_stats

        _stderr(format_stats(outcome, tty=stderr_tty))
    return int(outcome.exit_code)


def _print_dry_run(settings: Any, request: Any) -> int:
    from rill.stream.protocol import build_headers, build_payload, redacted_headers

    headers = redacted_headers(build_headers(settings, stream=request.stream), settings.api_key)
    body = build_payload(request, openrouter=settings.openrouter)
    lines = [f"POST {settings.base_url}/chat/completions"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += ["", json.dumps(body, ensure_ascii=False, indent=2), ""]
    sys.stdout.write("\n".join(lines))
    sys.stdout.flush()
    return int(ExitCode.OK)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def silence_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
