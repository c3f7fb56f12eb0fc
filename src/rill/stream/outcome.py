"""How a stream ends: the terminal event, the history record's final fields and the exit code.

``conclude`` looks at what the transcript holds and at the error that ended the stream, if any,
and decides — the one place that does — whether the answer is done, cancelled or failed. An
answer without a finish reason, one that ended with ``finish_reason: "error"``, or a routed
provider that failed silently (PROTOCOL §3.4) is an upstream error even without an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rill.errors import (
    Cancelled,
    ExitCode,
    NetworkError,
    RillError,
    SchemaMismatch,
    StreamError,
    TimeoutError_,
)
from rill.events import Done, Error, Terminal
from rill.stream.protocol import Request
from rill.stream.transcript import Transcript


@dataclass
class Outcome:
    exit_code: ExitCode
    terminal: Terminal
    transcript: Transcript
    timings: dict[str, Any]
    chat_id: str | None
    error: RillError | None = None
    notes: list[str] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    """The exchange's final fields, as handed to the history recorder."""


def _implied_error(transcript: Transcript, finish_reason: str | None) -> RillError | None:
    """An error the stream carried without raising one."""
    if finish_reason == "error":
        return StreamError(
            'the upstream ended the answer with an error (finish_reason "error")',
            status=200,
            code=transcript.native_finish_reason or "upstream_error",
        )
    if finish_reason is None:
        return StreamError(
            "the stream ended before the answer was complete (no finish reason)",
            status=200,
            code="truncated",
        )
    silent = transcript.native_finish_reason in ("network_error", "error")
    if silent and not transcript.has_output:
        # A routed provider failed but the stream still said "stop" (PROTOCOL §3.4).
        return StreamError(
            f"the provider failed silently ({transcript.native_finish_reason})",
            status=200,
            code=transcript.native_finish_reason,
        )
    return None


def error_code(error: RillError) -> int | str:
    """The ``code`` of an ``error`` event: the upstream's own, else the kind of failure."""
    code = getattr(error, "code", None)
    if code is not None:
        return code  # type: ignore[no-any-return]
    if isinstance(error, TimeoutError_):
        return "timeout"
    return "network" if isinstance(error, NetworkError) else "internal"


def conclude(
    transcript: Transcript,
    error: RillError | None,
    *,
    request: Request,
    chat_id: str | None,
    timings: dict[str, Any],
) -> Outcome:
    usage = transcript.usage()
    finish_reason = transcript.final_finish_reason()
    if error is None:
        error = _implied_error(transcript, finish_reason)
    parsed, checked = None, False
    if error is None and request.schema is not None:
        try:
            parsed, checked = request.schema.check(transcript.content), True
        except SchemaMismatch as exc:
            error = exc  # the answer is complete and kept: only its shape is wrong
    record: dict[str, Any] = {
        "content": transcript.content,
        "reasoning": transcript.reasoning or None,
        "tool_calls": transcript.tool_calls() or None,
        "reasoning_details": transcript.reasoning_details or None,
        "served_model": transcript.model,
        "provider": transcript.provider,
        "generation_id": transcript.id,
        "usage": usage,
        "timings": timings,
    }
    terminal: Terminal
    if error is None or isinstance(error, Cancelled):
        reason = "cancelled" if error is not None else (finish_reason or "stop")
        terminal = Done(
            message=transcript.message(),
            usage=usage,
            finish_reason=reason,
            model=transcript.model,
            provider=transcript.provider,
            id=transcript.id,
            chat_id=chat_id,
            parsed=parsed,
            checked=checked,
        )
        record["finish_reason"] = reason
        exit_code = error.exit_code if error is not None else ExitCode.OK
    else:
        terminal = Error(
            code=error_code(error),
            message=error.message,
            status=getattr(error, "status", None),
            exit_code=int(error.exit_code),
            partial=transcript.message(),
            chat_id=chat_id,
        )
        if isinstance(error, SchemaMismatch):
            record["finish_reason"] = finish_reason
            record["schema_error"] = error.message
        else:
            record["finish_reason"] = "error"
            record["error"] = terminal.as_dict() | {"partial": None}
            del record["error"]["chat_id"]  # the record is in the chat already
        exit_code = error.exit_code
    notes = []
    if (error is None or isinstance(error, SchemaMismatch)) and finish_reason == "length":
        limit = request.max_tokens
        notes.append(
            f"the answer was cut at the token limit{f' ({limit})' if limit else ''}; "
            "raise it with --max-tokens"
        )
    return Outcome(exit_code, terminal, transcript, timings, chat_id, error, notes, record)
