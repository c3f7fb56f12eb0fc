"""The tool loop: rounds of ``ChatStream`` until an answer asks for no tool.

Each round is one request streamed like any answer (its own time limits, its own history
exchange). When a round ends with tool calls, each call is checked (a declared tool, arguments
valid for its schema), approved (``Consent``) and run (``Execution``); the assistant's tool calls
and one ``tool`` message per call go back to the model in the next round. The loop stops at an
answer without tool calls, at a cancel, at an error, or when the model still asks for tools after
``max_rounds`` rounds (exit 7).

The loop is the signal handlers' target while it runs (``cancel``): a cancel stops the round
that streams, or kills the command that runs; everything so far is kept. Whoever drives the loop
(the prompt command; a chat turn) supplies a ``Host``: how a round is streamed and shown, how
results are recorded when no next round will carry them, and how calls are reported.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Protocol

from rill.errors import Cancelled, ExitCode, RillError
from rill.events import Done, Error, Start, Terminal
from rill.stream.pipeline import ChatStream
from rill.stream.protocol import Request
from rill.stream.transcript import Transcript
from rill.tools.consent import Consent
from rill.tools.definitions import Tool, check_arguments
from rill.tools.run import Execution, ToolResult

DEFAULT_MAX_ROUNDS = 10
ROUND_LIMIT_CODE = "max_tool_rounds"


class Host(Protocol):
    def stream(self, request: Request, results: list[ToolResult]) -> ChatStream:
        """The next round's stream; its history record carries ``results`` (none at first)."""
        ...

    def render(self, stream: ChatStream) -> Any:
        """Pull one round through the renderer; its ``Outcome``."""
        ...

    def keep(self, results: list[ToolResult], reason: RillError) -> None:
        """Record results that no further round will send (a cancel, the round limit)."""
        ...

    def calling(self, tool_name: str, arguments: str) -> None:
        """A call is about to be checked and run."""
        ...

    def called(self, result: ToolResult) -> None:
        """A call ended (or was refused)."""
        ...


class RoundLimit(RillError):
    exit_code = ExitCode.UPSTREAM


def add_usage(total: dict[str, Any] | None, usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Two rounds' usage added up, field by field (a field either lacks counts as 0)."""
    if not usage:
        return total
    if not total:
        return dict(usage)
    out = dict(total)
    for key, value in usage.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            before = out.get(key, 0)
            out[key] = before + value if isinstance(before, int | float) else value
        else:
            out.setdefault(key, value)
    return out


class ToolLoop:
    def __init__(
        self,
        tools: list[Tool],
        consent: Consent,
        *,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
    ) -> None:
        self.tools = {tool.name: tool for tool in tools}
        self.consent = consent
        self.max_rounds = max_rounds
        self.rounds = 0
        """Rounds of tool calls run so far."""
        self.usage: dict[str, Any] | None = None
        """Usage of the rounds finished so far (the current one not included)."""
        self.cancelled: Cancelled | None = None
        self.limit_error: RoundLimit | None = None
        self.stopped_in_calls = False
        """A cancel came while the calls of a finished answer were being run."""
        self._target: ChatStream | Execution | None = None
        self._asking = False

    # -- the signal edge's target (rill.process.Cancellable)

    @property
    def opening(self) -> bool:
        """True when a cancel cannot wake what runs (a question waits for an answer, a request
        is being sent): the signal handler raises instead."""
        target = self._target
        if isinstance(target, Execution):
            return target.served
        return self._asking or (isinstance(target, ChatStream) and target.opening)

    @opening.setter
    def opening(self, value: bool) -> None:
        pass  # what runs says whether it can be woken (``rill.process.Cancellable``)

    def cancel(self, reason: Cancelled) -> bool:
        self.cancelled = reason
        if self._asking:
            return False
        target = self._target
        return True if target is None else target.cancel(reason)

    # -- running

    def request_tools(self) -> list[dict[str, Any]]:
        """The request's ``tools`` field."""
        return [tool.as_function() for tool in self.tools.values()]

    def will_continue(self, event: Terminal) -> bool:
        """Whether a round that ended with ``event`` is followed by another (tool calls to run,
        rounds left, nothing cancelled)."""
        return (
            isinstance(event, Done)
            and bool(event.message.get("tool_calls"))
            and self.cancelled is None
            and self.rounds < self.max_rounds
        )

    def run(self, request: Request, host: Host) -> Any:
        """Run rounds from ``request`` until one needs no tool; the last round's ``Outcome``
        (its terminal event carries the usage of every round)."""
        results: list[ToolResult] = []
        while True:
            stream = host.stream(request, results)
            self._target = stream
            if self.cancelled is not None and results:  # it came between two rounds
                stream.cancel(self.cancelled)
            try:
                outcome = host.render(stream)
            finally:
                self._target = None
            usage = add_usage(self.usage, outcome.transcript.usage())
            calls = outcome.transcript.tool_calls() if outcome.error is None else []
            if not calls or outcome.error is not None:
                return self._final(outcome, usage)
            if self.cancelled is not None:  # the answer was complete when the cancel came
                self.stopped_in_calls = True
                why = f"error: not run: cancelled ({self.cancelled.reason})"
                host.keep([_not_run(call, why) for call in calls], self.cancelled)
                return self._final(outcome, usage)
            if self.rounds >= self.max_rounds:
                self.limit_error = self.round_limit()
                skipped = [
                    _not_run(call, "error: not run: " + self.limit_error.message) for call in calls
                ]
                host.keep(skipped, self.limit_error)
                return self._final(outcome, usage)
            self.usage = usage
            self.rounds += 1
            results = self.run_calls(calls, host)
            if self.cancelled is not None:
                self.stopped_in_calls = True
                host.keep(results, self.cancelled)
                return self._final(outcome, usage)
            request = dataclasses.replace(
                request,
                messages=[
                    *request.messages,
                    assistant_message(outcome.transcript),
                    *(r.message() for r in results),
                ],
            )

    def round_limit(self) -> RoundLimit:
        return RoundLimit(
            f"the model still called tools after {self.max_rounds} round"
            f"{'' if self.max_rounds == 1 else 's'} (--max-tool-rounds {self.max_rounds})"
        )

    def _final(self, outcome: Any, usage: dict[str, Any] | None) -> Any:
        terminal = outcome.terminal
        if isinstance(terminal, Done) and self.rounds:
            outcome = dataclasses.replace(
                outcome, terminal=dataclasses.replace(terminal, usage=usage)
            )
        return outcome

    def run_calls(self, calls: list[dict[str, Any]], host: Host) -> list[ToolResult]:
        """Check, approve and run each call in order; after a cancel the rest are not run."""
        results = []
        for call in calls:
            if self.cancelled is not None:
                results.append(
                    _not_run(call, f"error: not run: cancelled ({self.cancelled.reason})")
                )
                continue
            result = self.run_call(call, host)
            results.append(result)
            host.called(result)
        return results

    def run_call(self, call: dict[str, Any], host: Host) -> ToolResult:
        function = call.get("function") or {}
        name, text = str(function.get("name") or ""), str(function.get("arguments") or "")
        call_id = str(call.get("id") or "")
        host.calling(name, text)
        tool = self.tools.get(name)
        if tool is None:  # never run anything that was not declared
            offered = ", ".join(self.tools) or "none"
            return ToolResult(
                call_id, name, None, f"error: there is no tool {name!r} (offered: {offered})"
            )
        arguments, invalid = check_arguments(tool, text)
        if arguments is None:
            return ToolResult(call_id, name, None, f"error: not run: {invalid}")
        shown = json.dumps(arguments, ensure_ascii=False)
        self._asking = True
        try:
            approved = self.consent.approve(name, shown)
        except Cancelled as exc:
            self.cancelled = self.cancelled or exc
            approved = False
        finally:
            self._asking = False
        if self.cancelled is not None:
            return ToolResult(
                call_id, name, None, f"error: not run: cancelled ({self.cancelled.reason})"
            )
        if not approved:
            return ToolResult(
                call_id, name, None, "error: not run: the call was not approved by the user"
            )
        execution = Execution()
        self._target = execution
        try:
            return execution.run(tool, arguments, call_id)
        except Cancelled as exc:  # raised by the signal edge out of a served tool's wait
            self.cancelled = self.cancelled or exc
            why = f"error: the call was cancelled ({exc.reason})"
            return ToolResult(call_id, name, int(exc.exit_code), why)
        finally:
            self._target = None


def _not_run(call: dict[str, Any], why: str) -> ToolResult:
    function = call.get("function") or {}
    return ToolResult(str(call.get("id") or ""), str(function.get("name") or ""), None, why)


def assistant_message(transcript: Transcript) -> dict[str, Any]:
    """The assistant's turn as sent back with the tool results (content null when empty)."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": transcript.content or None,
        "tool_calls": transcript.tool_calls(),
    }
    details = getattr(transcript, "reasoning_details", None)
    if details:
        message["reasoning_details"] = details
    return message


class RoundsRenderer:
    """A renderer shared by every round: ``start`` once, every round's deltas, one terminal
    event for the whole loop (usage summed; the round limit as an ``error``), and the tool
    results as ``tool_result`` events where the format has events."""

    def __init__(self, inner: Any, loop: ToolLoop) -> None:
        self.inner = inner
        self.loop = loop
        self._started = False
        self.finished = False
        """The one terminal event has been written."""

    @property
    def out(self) -> Any:
        return self.inner.out

    @out.setter
    def out(self, value: Any) -> None:
        self.inner.out = value

    def start(self, event: Start, transcript: Transcript) -> None:
        if not self._started:
            self._started = True
            self.inner.start(event, transcript)

    def deltas(self, raw: bytes, deltas: list[Any]) -> None:
        self.inner.deltas(raw, deltas)

    def finish(self, event: Terminal) -> None:
        loop = self.loop
        if loop.will_continue(event) or self.finished:
            return
        self.finished = True
        if isinstance(event, Done):
            usage = add_usage(loop.usage, event.usage)
            if event.message.get("tool_calls") and loop.cancelled is None:
                error = loop.round_limit()
                self.inner.finish(
                    Error(
                        ROUND_LIMIT_CODE,
                        error.message,
                        None,
                        int(error.exit_code),
                        event.message,
                        event.chat_id,
                    )
                )
                return
            event = dataclasses.replace(event, usage=usage) if loop.rounds else event
        self.inner.finish(event)

    def tool_result(self, result: ToolResult) -> None:
        emit = getattr(self.inner, "event", None)
        if callable(emit):
            emit("tool_result", result.as_dict())
