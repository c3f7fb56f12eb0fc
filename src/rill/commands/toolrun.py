"""The prompt command with tools (``--tool``, ``--mcp``): the tool loop wired to the command's
renderer, history and stderr lines.

``open_tools`` loads and checks every tool named before anything is sent (exit 2 naming one that
is unknown or invalid) and starts the MCP servers named; ``run_rounds`` drives
``rill.tools.loop.ToolLoop`` with a ``Host`` that streams each round through the command's own
render function, records each round in history and words each call on stderr.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from typing import Any

from rill.env import Environment
from rill.errors import Cancelled, RillError
from rill.events import Done
from rill.output.diagnostics import error_line, note_line, one_line, write_line
from rill.stream.pipeline import ChatStream, ExchangeSink
from rill.stream.protocol import Request
from rill.tools.consent import Consent
from rill.tools.definitions import Tool
from rill.tools.loop import RoundsRenderer, ToolLoop
from rill.tools.run import ToolResult

#: How much of a result the one-line report on stderr shows.
_RESULT_SHOWN = 80

MakeBegin = Callable[..., Any]
"""(chat id, messages, tool results, sent) → a ``ChatStream``'s ``begin``."""


@contextmanager
def open_tools(tool_names: list[str], mcp_names: list[str], paths: Any) -> Iterator[list[Tool]]:
    """The tools ``--tool`` and ``--mcp`` name, checked; MCP servers run until the block ends."""
    from rill.tools.definitions import load_tools, tools_dir

    tools = load_tools(tools_dir(paths.config_dir), tool_names)
    with ExitStack() as stack:
        if mcp_names:
            from rill.config.settings import load_config
            from rill.tools.mcp import McpServer, server_config

            config = load_config(paths.config_file)
            for name in dict.fromkeys(mcp_names):
                command, timeout = server_config(config, name)
                server = McpServer(name, command, timeout)
                stack.callback(server.close)
                tools += server.start()
        seen: set[str] = set()
        for tool in tools:
            if tool.name in seen:
                from rill.errors import UsageError

                raise UsageError(f"tool {tool.name!r} is offered twice ({tool.source})")
            seen.add(tool.name)
        yield tools


def with_tools(request: Request, tools: list[Tool]) -> Request:
    """The request offering ``tools`` (as the ``tools`` field)."""
    functions = [tool.as_function() for tool in tools]
    return dataclasses.replace(request, extra={**request.extra, "tools": functions})


class PromptHost:
    """The prompt command's side of the loop (``rill.tools.loop.Host``)."""

    def __init__(
        self,
        *,
        env: Environment,
        client: Any,
        limits: Any,
        make_begin: MakeBegin,
        chat_id: str | None,
        turn: list[dict[str, Any]],
        base: RoundsRenderer,
        wrap: Callable[[Any], Any],
        render: Callable[[ChatStream, Any], tuple[Any, OSError | None]],
        consent: Consent,
    ) -> None:
        self.env = env
        self.client = client
        self.limits = limits
        self.make_begin = make_begin
        self.chat_id = chat_id
        self.turn = turn
        self.base = base
        self.wrap = wrap
        self.render_round = render
        self.consent = consent
        self.renderer: Any = base
        self.late: OSError | None = None
        self.request: Request | None = None

    def stream(self, request: Request, results: list[ToolResult]) -> ChatStream:
        self.request = request
        if results:
            begin = self.make_begin(
                self.chat_id, [r.message() for r in results], _exit_codes(results)
            )
        else:
            begin = self.make_begin(self.chat_id, self.turn, None)
        self.renderer = self.wrap(self.base)
        return ChatStream(self.client, request, begin=begin, limits=self.limits)

    def render(self, stream: ChatStream) -> Any:
        outcome, self.late = self.render_round(stream, self.renderer)
        self.chat_id = outcome.chat_id or self.chat_id
        return outcome

    def keep(self, results: list[ToolResult], reason: RillError) -> None:
        """Record the results in an exchange of their own, ended at once: a continued chat
        then has a ``tool`` message for every call it holds."""
        messages = [r.message() for r in results]
        sink: ExchangeSink = self.make_begin(self.chat_id, messages, _exit_codes(results), False)()
        cancelled = isinstance(reason, Cancelled)
        record: dict[str, Any] = {
            "content": "",
            "finish_reason": "cancelled" if cancelled else "error",
        }
        if not cancelled:
            record["error"] = {
                "code": "max_tool_rounds",
                "message": reason.message,
                "exit_code": int(reason.exit_code),
            }
        sink.finish(record)

    def calling(self, tool_name: str, arguments: str) -> None:
        if self.consent.yes or self.consent.all or not self.consent.can_ask:
            tty = self.env.stderr_isatty
            write_line(self.env.stderr, note_line(f"tool {tool_name} {arguments}", tty=tty))

    def called(self, result: ToolResult) -> None:
        tty = self.env.stderr_isatty
        write_line(self.env.stderr, note_line(summary(result), tty=tty))
        self.base.tool_result(result)


def summary(result: ToolResult) -> str:
    """One line for stderr: how a call ended, and the start of what it said."""
    text = one_line(result.content).strip()
    shown = text if len(text) <= _RESULT_SHOWN else text[: _RESULT_SHOWN - 1] + "…"
    if result.exit_code is None:
        return f"tool {result.name}: {shown}"
    size = len(result.content.encode("utf-8"))
    return f"tool {result.name} → exit {result.exit_code}, {size} bytes: {shown}"


def _exit_codes(results: list[ToolResult]) -> list[dict[str, Any]]:
    return [{"id": r.id, "name": r.name, "exit_code": r.exit_code} for r in results]


def run_rounds(
    loop: ToolLoop,
    host: PromptHost,
    request: Request,
    report: Callable[[Any, Any], int],
    late_failure: Callable[[OSError, Any], int],
) -> int:
    """Run the loop; the exit code (the round limit: 7; a cancel while a tool ran: its code)."""
    try:
        outcome = loop.run(request, host)
    finally:
        host.client.http.close()
    cancelled = loop.cancelled
    if cancelled is not None and loop.stopped_in_calls:
        # The round's answer was complete (its tool calls were being run): the run ends as
        # cancelled all the same, with one terminal event.
        terminal = outcome.terminal
        if isinstance(terminal, Done):
            terminal = dataclasses.replace(terminal, finish_reason="cancelled")
        with suppress(OSError):
            host.base.finish(terminal)  # unless the round's own was written already
        env = host.env
        where = f"; the chat is {outcome.chat_id}" if outcome.chat_id else ""
        write_line(env.stderr, f"rill: cancelled by {cancelled.reason} while a tool ran{where}")
        return int(cancelled.exit_code)
    code = report(outcome, host.renderer)
    if loop.limit_error is not None and outcome.error is None:
        tty = host.env.stderr_isatty
        write_line(host.env.stderr, error_line(loop.limit_error, tty=tty))
        code = int(loop.limit_error.exit_code)
    return code if host.late is None else late_failure(host.late, outcome)


def stream_with_tools(
    args: Any,
    client: Any,
    request: Request,
    limits: Any,
    make_begin: MakeBegin,
    start: tuple[str | None, list[dict[str, Any]], list[Tool]],
    hooks: tuple[Callable[..., Any], ...],
) -> int:
    """The prompt command's run with tools: rounds of answers and tool calls (``ToolLoop``),
    shown as one answer. ``start``: the chat to continue, this turn's messages, the tools;
    ``hooks``: the command's renderer wrapper, render, report and late-failure functions."""
    from rill.output.formats import make_renderer
    from rill.process import cancel_on_signals

    chat_id, turn, tools = start
    wrap, render, report, late_failure = hooks
    env: Environment = args.env
    consent = Consent(env, yes=args.yes)
    loop = ToolLoop(tools, consent, max_rounds=args.max_tool_rounds)
    base = RoundsRenderer(make_renderer(args.fmt, env.stdout, tty=env.stdout_isatty), loop)
    host = PromptHost(
        env=env,
        client=client,
        limits=limits,
        make_begin=make_begin,
        chat_id=chat_id,
        turn=turn,
        base=base,
        wrap=wrap,
        render=render,
        consent=consent,
    )
    with cancel_on_signals(loop):
        return run_rounds(loop, host, request, report, late_failure)
