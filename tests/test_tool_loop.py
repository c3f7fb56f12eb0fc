"""``ToolLoop`` with a stand-in host: the loop's decisions, without a server or a terminal."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from rill.env import Environment
from rill.errors import Cancelled, ExitCode, RillError
from rill.events import Done
from rill.stream.protocol import Request
from rill.tools.consent import Consent
from rill.tools.definitions import Tool
from rill.tools.loop import RoundsRenderer, ToolLoop, add_usage
from rill.tools.run import ToolResult

CALL = {"id": "c1", "type": "function", "function": {"name": "echo", "arguments": "{}"}}


@dataclass
class Transcript:
    calls: list[dict[str, Any]]
    content: str = ""
    reasoning_details: list[Any] = field(default_factory=list)

    def tool_calls(self) -> list[dict[str, Any]]:
        return self.calls

    def usage(self) -> dict[str, Any]:
        return {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12, "cost": 0.5}


@dataclass
class Outcome:
    transcript: Transcript
    terminal: Any
    error: RillError | None = None
    chat_id: str | None = None


class Stream:
    def __init__(self) -> None:
        self.cancelled: Cancelled | None = None

    def cancel(self, reason: Cancelled) -> bool:
        self.cancelled = reason
        return True


class Host:
    def __init__(self, answers: list[list[dict[str, Any]]], loop: ToolLoop | None = None) -> None:
        self.answers = answers
        self.requests: list[Request] = []
        self.kept: list[tuple[list[ToolResult], RillError]] = []
        self.results: list[ToolResult] = []
        self.cancel_after_round: int | None = None
        self.loop = loop

    def stream(self, request: Request, results: list[ToolResult]) -> Any:
        self.requests.append(request)
        return Stream()

    def render(self, stream: Any) -> Outcome:
        calls = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if self.loop is not None and self.cancel_after_round == len(self.requests):
            self.loop.cancel(Cancelled("SIGINT", ExitCode.INTERRUPTED))
        message: dict[str, Any] = {"role": "assistant", "content": ""}
        if calls:
            message["tool_calls"] = calls
        done = Done(message, Transcript(calls).usage(), "stop", "m", "p", "id", None)
        return Outcome(Transcript(calls), done)

    def keep(self, results: list[ToolResult], reason: RillError) -> None:
        self.kept.append((results, reason))

    def calling(self, tool_name: str, arguments: str) -> None:
        pass

    def called(self, result: ToolResult) -> None:
        self.results.append(result)


def served(arguments: dict[str, Any]) -> tuple[int, str]:
    return 0, "echoed"


ECHO = Tool("echo", "", {"type": "object"}, (), 5.0, "test", served)


def consent(yes: bool) -> Consent:
    return Consent(Environment(stdin=None, stdout=io.BytesIO(), stderr=io.StringIO()), yes=yes)


def test_rounds_until_an_answer_without_calls_and_usage_summed() -> None:
    loop = ToolLoop([ECHO], consent(yes=True))
    host = Host([[CALL], [CALL], []])
    outcome = loop.run(Request(messages=[{"role": "user", "content": "hi"}]), host)
    assert len(host.requests) == 3 and loop.rounds == 2
    last = host.requests[-1].messages
    assert [m["role"] for m in last] == ["user", "assistant", "tool", "assistant", "tool"]
    assert last[-1] == {"role": "tool", "tool_call_id": "c1", "content": "echoed"}
    assert outcome.terminal.usage["total_tokens"] == 36 and outcome.terminal.usage["cost"] == 1.5
    assert loop.limit_error is None and host.kept == []


def test_max_rounds_zero_runs_nothing_and_keeps_the_calls_as_not_run() -> None:
    loop = ToolLoop([ECHO], consent(yes=True), max_rounds=0)
    host = Host([[CALL]])
    loop.run(Request(messages=[]), host)
    assert loop.limit_error is not None and loop.limit_error.exit_code == 7
    assert host.results == []
    ((results, reason),) = host.kept
    assert results[0].exit_code is None and "--max-tool-rounds 0" in results[0].content


def test_an_undeclared_tool_is_never_run() -> None:
    other = {**CALL, "function": {"name": "rm", "arguments": "{}"}}
    loop = ToolLoop([ECHO], consent(yes=True))
    host = Host([[other], []])
    loop.run(Request(messages=[]), host)
    assert host.results[0].exit_code is None
    assert host.results[0].content == "error: there is no tool 'rm' (offered: echo)"


def test_without_consent_nothing_runs() -> None:
    loop = ToolLoop([ECHO], consent(yes=False))
    host = Host([[CALL], []])
    loop.run(Request(messages=[]), host)
    assert "not approved" in host.results[0].content and host.results[0].exit_code is None


def test_a_cancel_as_a_complete_answer_ends_runs_none_of_its_calls() -> None:
    loop = ToolLoop([ECHO], consent(yes=True))
    host = Host([[CALL], []], loop)
    host.cancel_after_round = 1
    loop.run(Request(messages=[]), host)
    assert host.results == [] and len(host.requests) == 1 and loop.stopped_in_calls
    ((results, reason),) = host.kept
    assert "cancelled (SIGINT)" in results[0].content


def test_the_rounds_renderer_writes_one_start_and_one_terminal_event() -> None:
    loop = ToolLoop([ECHO], consent(yes=True))
    seen: list[Any] = []

    class Inner:
        def start(self, event: Any, transcript: Any) -> None:
            seen.append("start")

        def deltas(self, raw: bytes, deltas: list[Any]) -> None:
            pass

        def finish(self, event: Any) -> None:
            seen.append(event)

        def event(self, name: str, data: dict[str, Any]) -> None:
            seen.append(name)

    renderer = RoundsRenderer(Inner(), loop)
    with_calls = Done({"role": "assistant", "tool_calls": [CALL]}, None, "tool_calls", *[None] * 4)
    renderer.start(None, None)  # type: ignore[arg-type]
    renderer.finish(with_calls)  # a round with calls: the loop goes on, nothing is written
    renderer.tool_result(ToolResult("c1", "echo", 0, "echoed"))
    loop.rounds = loop.max_rounds  # no round left: the same answer is now the round limit
    renderer.start(None, None)  # type: ignore[arg-type]
    renderer.finish(with_calls)
    assert seen[:2] == ["start", "tool_result"] and len(seen) == 3
    assert seen[2].NAME == "error" and seen[2].exit_code == 7


def test_add_usage_adds_field_by_field() -> None:
    assert add_usage(None, {"a": 1}) == {"a": 1}
    assert add_usage({"a": 1, "cost": 0.5}, {"a": 2, "b": 3}) == {"a": 3, "cost": 0.5, "b": 3}
    assert add_usage({"a": 1}, None) == {"a": 1}
