"""The events of one completion, as rill's machine formats show them.

A run produces ``Start``, then any number of ``Chunk`` / ``Reasoning`` / ``ToolCall`` deltas, then
exactly one terminal event: ``Done`` or ``Error``. They are pure values; rendering them as SSE,
JSON lines, JSON or OpenAI chunks lives in ``render.py``. ``as_dict()`` gives the ``data`` object
of the contract, without the event name (``NAME``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

EventName = Literal["start", "chunk", "reasoning", "tool_call", "done", "error"]


@dataclass(frozen=True, slots=True)
class Start:
    NAME: ClassVar[EventName] = "start"
    chat_id: str | None
    model: str | None
    """The requested model (the served one arrives in ``Done``)."""

    def as_dict(self) -> dict[str, Any]:
        return {"chat_id": self.chat_id, "model": self.model}


@dataclass(frozen=True, slots=True)
class Chunk:
    NAME: ClassVar[EventName] = "chunk"
    content: str

    def as_dict(self) -> dict[str, Any]:
        return {"content": self.content, "done": False}


@dataclass(frozen=True, slots=True)
class Reasoning:
    NAME: ClassVar[EventName] = "reasoning"
    content: str

    def as_dict(self) -> dict[str, Any]:
        return {"content": self.content}


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool-call fragment: ``arguments`` is the piece of JSON text this delta added."""

    NAME: ClassVar[EventName] = "tool_call"
    index: int
    id: str | None
    name: str | None
    arguments: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass(frozen=True, slots=True)
class Done:
    NAME: ClassVar[EventName] = "done"
    message: dict[str, Any]
    usage: dict[str, Any] | None
    finish_reason: str
    model: str | None
    """The served model (may differ from the requested one when a fallback answered)."""
    provider: str | None
    id: str | None
    """The upstream's generation id."""
    chat_id: str | None
    parsed: Any = None
    """With a schema (``--schema``, ``stream_chat(schema=...)``): the answer parsed, valid for
    it (an answer that is not ends with an ``Error`` whose ``exit_code`` is 9 instead)."""
    checked: bool = False
    """Whether the answer was checked against a schema (then ``parsed`` is shown)."""

    def as_dict(self) -> dict[str, Any]:
        data = {
            "message": self.message,
            "usage": self.usage,
            "finish_reason": self.finish_reason,
            "model": self.model,
            "provider": self.provider,
            "id": self.id,
            "chat_id": self.chat_id,
        }
        if self.checked:
            data["parsed"] = self.parsed
        return data


@dataclass(frozen=True, slots=True)
class Error:
    NAME: ClassVar[EventName] = "error"
    code: int | str | None
    """The upstream's own error code (number or string), else the HTTP status, else rill's."""
    message: str
    status: int | None
    """The HTTP status when there was one."""
    exit_code: int
    partial: dict[str, Any]
    """The assistant message received before the failure."""
    chat_id: str | None = None
    """The chat the failed exchange is recorded in (None without history)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "status": self.status,
            "exit_code": self.exit_code,
            "partial": self.partial,
            "chat_id": self.chat_id,
        }


Delta = Chunk | Reasoning | ToolCall
Terminal = Done | Error
Event = Start | Delta | Terminal
