"""Wiring: what ``rill batch`` was given, into settings, defaults and a running batch."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, TextIO

import httpx

from rill.config.settings import SettingFlags, Settings
from rill.env import isatty
from rill.errors import ExitCode, UsageError
from rill.process import silence_stdout
from rill.stream.client import ChatClient
from rill.stream.control import Limits

if TYPE_CHECKING:
    from rill.input.routing import RoutingFlags

from rill.batch.items import check_unique, completed_ids, parse_jsonl, parse_lines
from rill.batch.output import Output, check_output, compact_output, open_output
from rill.batch.pacing import BackoffGate, GatedPolicy, Stop, make_pool
from rill.batch.progress import Reporter, Tally
from rill.batch.requests import Defaults, merge_fields
from rill.batch.runner import Batch


@dataclass
class BatchArgs:
    """What ``rill batch`` was given; ``flags`` holds the settings flags (None: not given)."""

    input: str | None = None
    jobs: int = 4
    output: str | None = None
    ordered: bool = False
    lines: bool = False
    flags: SettingFlags = field(default_factory=lambda: SettingFlags())
    reasoning_effort: str | None = None
    options: list[str] = field(default_factory=list)
    no_history: bool = False
    template: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    prompt_prefix: str | None = None
    routing: RoutingFlags | None = None
    cache: bool = False
    transport: httpx.BaseTransport | None = None
    stdin: BinaryIO | None = None
    stdout: BinaryIO | None = None
    stderr: TextIO | None = None
    progress: bool | None = None
    """None: show progress when stderr is a terminal."""
    schema: str | None = None
    """``--schema`` (``--schema-multi`` with ``schema_multi``) for every item."""
    schema_multi: bool = False


def read_input(source: str | None, stdin: BinaryIO | None) -> bytes:
    if source is None or source == "-":
        if stdin is None or (source is None and isatty(stdin)):
            raise UsageError(
                "no input: give a file of JSON lines or pipe them in (try rill batch --help)"
            )
        return stdin.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from None


def resolve(args: BatchArgs, warn: Callable[[str], None]) -> tuple[Settings, Defaults]:
    """Settings and per-item defaults, with the same precedence as the prompt command."""
    from rill.config.settings import resolve_paths, resolve_settings
    from rill.input.prompting import apply_template, load_template, merge_options

    flags = args.flags.copy()
    template = None
    template_system: str | None = None
    template_text = ""
    options: dict[str, Any] = {}
    if args.template:
        template = load_template(resolve_paths().templates_dir, args.template)
        # Every placeholder must have a value: checked once, before anything is sent.
        template_system, template_text = apply_template(template, args.params, "")
        flags["model"] = flags.get("model") or template.model
        options.update(template.options)
    settings = resolve_settings(flags, warn=warn)
    settings.check_transport()
    system = flags.get("system")
    if system is None:
        system = template_system if template_system is not None else settings.system
    defaults = Defaults(
        model=settings.model,
        system=system,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        reasoning_effort=args.reasoning_effort,
        options=merge_fields(options, merge_options(args.options)),
        prefix=args.prompt_prefix or "",
        template=template,
        params=dict(args.params),
        aliases=settings.aliases,
        routing=_checked_routing(args.routing, settings),
        settings=settings,
        cache_pieces=(args.prompt_prefix or "", template_text) if args.cache else None,
        schema=_schema(args),
        schema_multi=args.schema_multi,
    )
    return settings, defaults


def _checked_routing(routing: RoutingFlags | None, settings: Settings) -> RoutingFlags:
    """The routing flags, refused once, before anything is sent, exactly as the prompt
    command refuses them: a flag for a server that is not OpenRouter is a usage error (exit 2),
    a bad ``[provider]`` table a configuration error (exit 3)."""
    from rill.input.routing import RoutingFlags, routed_model, routing_fields

    routing = routing or RoutingFlags()
    routing_fields(routing, settings, routed_model(routing, settings.model))
    return routing


def _stream_writer(out: BinaryIO) -> Callable[[bytes], None]:
    def write(line: bytes) -> None:
        out.write(line)
        out.flush()

    return write


def _fd_writer(fd: int) -> Callable[[bytes], None]:
    from rill.files import write_all

    return lambda line: write_all(fd, line)


def _tidy(fd: int, path: Path, reporter: Reporter) -> None:
    try:
        compact_output(fd, path)
    except OSError as exc:
        reporter.say(f"cannot rewrite {path} ({exc.strerror or exc}): an id may have two lines")


def run_batch(args: BatchArgs) -> int:
    """Run a whole batch; the exit code (0, the first failed item's, or 130/141/143)."""
    err = args.stderr if args.stderr is not None else sys.stderr
    stdin = args.stdin if args.stdin is not None else getattr(sys.stdin, "buffer", None)
    if args.output:
        check_output(Path(args.output), args.input)
    data = read_input(args.input, stdin)
    items = parse_lines(data) if args.lines else parse_jsonl(data)
    check_unique(items)
    progress = isatty(err) if args.progress is None else args.progress
    tally = Tally(total=len(items))
    reporter = Reporter(err, tally, progress=progress)
    settings, defaults = resolve(args, reporter.say)
    path = Path(args.output) if args.output else None
    done = completed_ids(path) if path is not None else set()
    todo = [item for item in items if item.key is None or item.key not in done]
    tally.total, tally.skipped = len(todo), len(items) - len(todo)

    store = None
    if settings.history and not args.no_history:
        from rill.history import HistoryStore

        fmt: Literal["json", "toml"] = "toml" if settings.history_format == "toml" else "json"
        store = HistoryStore(settings.paths.history_dir, fmt, warn=reporter.say)
    stop = Stop()
    gate = BackoffGate()
    reporter.waiting = gate.remaining

    def on_gate(delay: float, why: str) -> None:
        if not progress:
            reporter.say(f"rate limited ({why}); the whole batch waits {delay:.1f} s")

    fd = open_output(path) if path is not None else None
    stdout = args.stdout if args.stdout is not None else sys.stdout.buffer
    write = _stream_writer(stdout) if fd is None else _fd_writer(fd)
    http = make_pool(settings, args.jobs, args.transport)
    # A body read past h11 would close its connection: the pool keeps them for the next items.
    policy = GatedPolicy(settings.retries, gate, on_gate)
    client = ChatClient(settings, http, policy=policy, direct_body=False)
    limits = Limits(settings.timeout, settings.first_token_timeout, settings.total_timeout)
    output = Output(write, ordered=args.ordered)
    batch = Batch(
        client,
        defaults,
        output,
        reporter,
        stop,
        jobs=args.jobs,
        store=store,
        base_url=settings.base_url,
        limits=limits,
    )
    try:
        code = batch.run(todo)
        if fd is not None and path is not None:
            _tidy(fd, path, reporter)
    finally:
        http.close()
        if fd is not None:
            os.close(fd)
    if stop.code is ExitCode.BROKEN_PIPE:
        if args.stdout is None:
            silence_stdout()
        return code
    not_saved = store.not_saved if store is not None else 0
    reporter.summary(stop, batch.unfinished, resumable=path is not None, not_saved=not_saved)
    return code


def _schema(args: BatchArgs) -> Any:
    """``--schema`` for every item, checked once before anything is sent (exit 2 when bad)."""
    if args.schema is None:
        return None
    from rill.schema import parse_schema

    return parse_schema(args.schema, multi=args.schema_multi)
