"""Accumulate a streamed answer, chunk by chunk, with no I/O.

``Transcript.add_chunk(obj)`` folds one decoded ``chat.completion.chunk`` into the answer and
returns the deltas it carried; the answer so far (content, reasoning, tool calls, usage, finish
reason, served model) can be read at any moment — which is what saving a partial answer on Ctrl-C
needs. It tolerates what PROTOCOL.md §3, §6 and §8 list: empty ``choices``, usage in its own
chunk or on every chunk, ``reasoning`` vs ``reasoning_content``, tool-call fragments with missing
indexes, missing or duplicated ids, and distinct calls sharing one index.
"""

from __future__ import annotations

import json
import math
from typing import Any

from rill.errors import error_for_chunk
from rill.events import Chunk, Delta, Reasoning, ToolCall
from rill.stream.protocol import error_message
from rill.stream.template import ContentTemplate


class _ToolCallState:
    __slots__ = ("id", "name", "args", "type")

    def __init__(self, id_: str | None, name: str | None) -> None:
        self.id = id_
        self.name = name
        self.args: list[str] = []
        self.type = "function"

    def arguments_complete(self) -> bool:
        text = "".join(self.args)
        if not text:
            return False
        try:
            json.loads(text)
        except ValueError:
            return False
        return True


class Transcript:
    """The answer so far. ``add_chunk`` folds a parsed chunk; ``add_known`` folds a content chunk
    that repeats an already parsed one without parsing it (the private ``ContentTemplate``)."""

    def __init__(self, template: ContentTemplate | None = None) -> None:
        # The content so far: older pieces as UTF-8 in _packed, the latest ones in _pieces. UTF-8
        # never takes more room than a str, and a quarter of it once the answer holds one emoji
        # (a str then spends 4 bytes on every character); nor is it copied whole as it grows.
        self._packed = bytearray()
        self._pieces: list[str] = []
        self._content: str | None = ""  # the last join, until more content comes
        self.reasoning_parts: list[str] = []
        self.reasoning_details: list[dict[str, Any]] = []
        self._calls: list[_ToolCallState] = []
        self._index_map: dict[int, int] = {}  # upstream index → position in _calls
        self._last_index: int | None = None
        self.finish_reason: str | None = None
        self.native_finish_reason: str | None = None
        self.model: str | None = None
        self.provider: str | None = None
        self.id: str | None = None
        self.raw_usage: dict[str, Any] | None = None
        self.done = False  # saw ``data: [DONE]``
        # Reads repeated content chunks without parsing them: the stream's fast path.
        self._template = template if template is not None else ContentTemplate()

    # -- reading -------------------------------------------------------------------------------

    @property
    def content(self) -> str:
        if self._content is None:
            self._pack()
            # surrogatepass: lone surrogates (JSON allows "\ud800") come back as they went in.
            self._content = self._packed.decode("utf-8", "surrogatepass")
        return self._content

    @property
    def reasoning(self) -> str:
        return "".join(self.reasoning_parts)

    @property
    def has_output(self) -> bool:
        return bool(self._packed or self._pieces or self.reasoning_parts or self._calls)

    def tool_calls(self) -> list[dict[str, Any]]:
        calls = []
        seen: set[str] = set()
        for position, call in enumerate(self._calls):
            call_id = call.id
            if not call_id or call_id in seen:
                call_id = f"call_{position}"
            seen.add(call_id)
            calls.append(
                {
                    "id": call_id,
                    "type": call.type,
                    "function": {"name": call.name or "", "arguments": "".join(call.args)},
                }
            )
        return calls

    def message(self) -> dict[str, Any]:
        """The assistant message so far, as the contract's ``message``/``partial`` shows it."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.reasoning_parts:
            msg["reasoning"] = self.reasoning
        if self._calls:
            msg["tool_calls"] = self.tool_calls()
        return msg

    def usage(self) -> dict[str, Any] | None:
        return normalize_usage(self.raw_usage)

    def final_finish_reason(self) -> str | None:
        reason = self.finish_reason
        if self._calls and reason in (None, "stop"):
            # Tool calls with a missing or "stop" finish reason still await their results
            # (PROTOCOL §3.4: OpenRouter's own SDK applies the same fix).
            return "tool_calls"
        if reason is None and self.done and self.has_output:
            return "stop"  # some servers end with [DONE] and no finish reason (PROTOCOL §10.5)
        return reason

    # -- folding -------------------------------------------------------------------------------

    def add_chunk(self, obj: dict[str, Any]) -> list[Delta]:
        """Fold one chunk; raises ``StreamError`` on an error chunk (the partial answer stays)."""
        if self.id is None:
            self._note_meta(obj)
        error = obj.get("error")
        if error:
            self._raise_error(error, obj)
        usage = obj.get("usage")
        if usage:
            self.raw_usage = usage
        out: list[Delta] = []
        choices = obj.get("choices")
        if not choices:
            return out
        choice = choices[0]
        delta = choice.get("delta")
        if delta:
            reasoning = delta.get("reasoning") or delta.get("reasoning_content")
            if reasoning and isinstance(reasoning, str):
                self.reasoning_parts.append(reasoning)
                out.append(Reasoning(reasoning))
            details = delta.get("reasoning_details")
            if details:
                self._add_reasoning_details(details)
            content = delta.get("content")
            if content and type(content) is not str:
                content = _text_parts(content)
            if content:
                out.append(self.add_content(content))
            calls = delta.get("tool_calls")
            if calls:
                out.extend(self._add_tool_calls(calls))
        finish = choice.get("finish_reason")
        if finish:
            self.finish_reason = finish
            self.native_finish_reason = choice.get("native_finish_reason")
            if choice.get("error"):
                self._raise_error(choice["error"], obj)
        return out

    def add_known(self, data: str, out: list[Delta]) -> bool:
        """Fold the chunk ``data`` if it repeats the shape of a parsed one, without parsing it;
        False when it does not (the caller parses it and calls ``add_parsed``)."""
        template = self._template
        template.seen += 1
        content = template.content(data)
        if content is None:
            return False
        if content:
            out.append(self.add_content(content))
        return True

    def add_parsed(self, data: str, obj: dict[str, Any], out: list[Delta]) -> None:
        """Fold the chunk ``obj`` parsed from ``data``, and learn its shape for ``add_known``."""
        out += self.add_chunk(obj)
        self._template.learn(data, obj)

    def add_content(self, content: str) -> Chunk:
        """Fold a piece of content (what a content-only chunk carries)."""
        pieces = self._pieces
        pieces.append(content)
        self._content = None
        if len(pieces) >= 1024:
            self._pack()
        return Chunk(content)

    def _pack(self) -> None:
        self._packed += "".join(self._pieces).encode("utf-8", "surrogatepass")
        self._pieces.clear()

    def add_completion(self, obj: dict[str, Any]) -> list[Delta]:
        """Fold a whole non-streaming ``chat.completion`` object."""
        self._note_meta(obj)
        if obj.get("error"):
            self._raise_error(obj["error"], obj)
        if obj.get("usage"):
            self.raw_usage = obj["usage"]
        out: list[Delta] = []
        choices = obj.get("choices") or []
        if not choices:
            return out
        choice = choices[0]
        message = choice.get("message") or {}
        reasoning = message.get("reasoning") or message.get("reasoning_content")
        if reasoning and isinstance(reasoning, str):
            self.reasoning_parts.append(reasoning)
            out.append(Reasoning(reasoning))
        if message.get("reasoning_details"):
            self._add_reasoning_details(message["reasoning_details"])
        content = message.get("content")
        if content and not isinstance(content, str):
            content = _text_parts(content)
        if content:
            out.append(self.add_content(content))
        calls = message.get("tool_calls")
        if calls:
            indexed = [{**call, "index": i} for i, call in enumerate(calls)]
            out.extend(self._add_tool_calls(indexed))
        self.finish_reason = choice.get("finish_reason") or "stop"
        self.native_finish_reason = choice.get("native_finish_reason")
        if choice.get("error"):
            self._raise_error(choice["error"], obj)
        self.done = True
        return out

    def _note_meta(self, obj: dict[str, Any]) -> None:
        self.id = obj.get("id") or self.id
        self.model = obj.get("model") or self.model
        self.provider = obj.get("provider") or self.provider

    def _raise_error(self, error: Any, obj: dict[str, Any]) -> None:
        code = error.get("code") if isinstance(error, dict) else None
        try:
            message = error_message(error) if isinstance(error, dict) else str(error)
        except RecursionError:
            message = "the upstream sent an error nested too deep to read"
        if not isinstance(code, int | str) or isinstance(code, bool):
            code = None  # an upstream code that is a structure says nothing a script can use
        self.finish_reason = "error"
        raise error_for_chunk(code, message, body=obj)

    def _add_reasoning_details(self, details: list[Any]) -> None:
        for item in details:
            if not isinstance(item, dict):
                continue
            last = self.reasoning_details[-1] if self.reasoning_details else None
            if (
                last is not None
                and item.get("type") == "reasoning.text"
                and last.get("type") == "reasoning.text"
                and last.get("index") == item.get("index")
            ):
                # Consecutive text pieces of one block merge; a late signature joins its block.
                last["text"] = (last.get("text") or "") + (item.get("text") or "")
                if item.get("signature"):
                    last["signature"] = item["signature"]
            else:
                self.reasoning_details.append(dict(item))

    def _add_tool_calls(self, fragments: list[Any]) -> list[Delta]:
        out: list[Delta] = []
        for frag in fragments:
            if not isinstance(frag, dict):
                continue
            function = frag.get("function") or {}
            frag_id = frag.get("id") or None
            name = function.get("name") or None
            args = function.get("arguments")
            if args is not None and not isinstance(args, str):
                try:
                    args = json.dumps(args)  # some servers send parsed objects
                except (RecursionError, ValueError):
                    raise TypeError("tool-call arguments that cannot be JSON") from None
            raw_index = frag.get("index")
            if not isinstance(raw_index, int):
                # A missing index continues the last call (OpenRouter's SDK does the same).
                raw_index = self._last_index if self._last_index is not None else 0
            position = self._index_map.get(raw_index)
            call = self._calls[position] if position is not None else None
            if call is not None and self._starts_new_call(call, frag_id, name):
                position = None  # distinct parallel calls sharing one index
            if position is None:
                position = len(self._calls)
                self._calls.append(_ToolCallState(frag_id, name))
                self._index_map[raw_index] = position
                call = self._calls[position]
            else:
                assert call is not None
                call.id = call.id or frag_id
                call.name = call.name or name
            self._last_index = raw_index
            if args:
                call.args.append(args)
            out.append(ToolCall(position, frag_id, name, args or ""))
        return out

    @staticmethod
    def _starts_new_call(call: _ToolCallState, frag_id: str | None, name: str | None) -> bool:
        if frag_id and call.id and frag_id != call.id:
            return True
        return bool(name and call.name and call.arguments_complete())


def _text_parts(content: Any) -> str:
    """The text of a content given as a list of parts (``[{"type": "text", "text": ...}]``, as
    some servers send); anything else that is not a string carries no text."""
    if not isinstance(content, list):
        return ""
    return "".join(
        part["text"]
        for part in content
        if isinstance(part, dict)
        and part.get("type") == "text"
        and isinstance(part.get("text"), str)
    )


def normalize_usage(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """The contract's usage: token counts always, cost and details when reported."""
    if not raw or not isinstance(raw, dict):
        return None
    prompt = _int(raw.get("prompt_tokens"))
    completion = _int(raw.get("completion_tokens"))
    total = _int(raw.get("total_tokens")) or prompt + completion
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total,
    }
    cost = raw.get("cost")
    if isinstance(cost, int | float) and not isinstance(cost, bool) and math.isfinite(cost):
        usage["cost"] = cost  # a NaN or Infinity cost is no cost at all: left out
    completion_details = raw.get("completion_tokens_details")
    if isinstance(completion_details, dict):
        reasoning = completion_details.get("reasoning_tokens")
        if reasoning is not None:
            usage["reasoning_tokens"] = _int(reasoning)
    prompt_details = raw.get("prompt_tokens_details")
    if isinstance(prompt_details, dict):
        cached = prompt_details.get("cached_tokens")
        if cached is not None:
            usage["cached_tokens"] = _int(cached)
        written = prompt_details.get("cache_write_tokens")
        if written:
            usage["cache_write_tokens"] = _int(written)
    return usage


def _int(value: Any) -> int:
    """A token count; 0 for anything that is not one (NaN and Infinity included)."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return 0
