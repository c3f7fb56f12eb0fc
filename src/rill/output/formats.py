"""Output formats: one strategy object per ``--format``, chosen once by ``make_renderer``.

The session calls ``start`` once the upstream accepted the request, ``deltas`` once per network
read (with that read's raw bytes and the deltas decoded from it) and ``finish`` with the terminal
event. Each call writes and flushes at most once, so nothing waits for the next read. Everything
here writes bytes to a binary stream: no rich, no re-wrapping, byte-exact in a pipe.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any, BinaryIO, Protocol

from rill.events import Chunk, Delta, Done, Error, Reasoning, Start, Terminal, ToolCall
from rill.stream.transcript import Transcript
from rill.values import compact_json, pretty_json


class OutputFormat(StrEnum):
    text = "text"
    sse = "sse"
    jsonl = "jsonl"
    json = "json"
    openai = "openai"
    raw = "raw"


class Renderer(Protocol):
    def start(self, event: Start, transcript: Transcript) -> None: ...

    def deltas(self, raw: bytes, deltas: list[Delta]) -> None: ...

    def finish(self, event: Terminal) -> None: ...


class TextRenderer:
    """Only the assistant's content, byte-exact; on a terminal, a final newline if missing."""

    def __init__(self, out: BinaryIO, *, tty: bool = False) -> None:
        self.out = out
        self.tty = tty
        self.last = ""

    def start(self, event: Start, transcript: Transcript) -> None:
        pass

    def deltas(self, raw: bytes, deltas: list[Delta]) -> None:
        text = "".join([d.content for d in deltas if type(d) is Chunk])
        if text:
            self.out.write(text.encode("utf-8", "replace"))
            self.out.flush()
            self.last = text[-1]

    def finish(self, event: Terminal) -> None:
        if self.tty and self.last and self.last != "\n":
            self.out.write(b"\n")
            self.out.flush()


class RawRenderer:
    """The upstream's bytes exactly as received, keep-alive comments included."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out

    def start(self, event: Start, transcript: Transcript) -> None:
        pass

    def deltas(self, raw: bytes, deltas: list[Delta]) -> None:
        if raw:
            self.out.write(raw)
            self.out.flush()

    def finish(self, event: Terminal) -> None:
        pass


# json.dumps(text, ensure_ascii=False) for a str, without building a dict per delta: the
# per-event cost of the sse and jsonl formats is dominated by encoding otherwise.
_encode_str: Any = (
    getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring
)


#: Strings longer than this (in characters) are written by ``write_json_sliced`` in slices of
#: this length.
LONG_STRING = 1 << 16
_SLOT = "\x00rill-long-string-%d\x00"
#: Stands for a chunk's content while ``OpenAIRenderer`` makes its frame.
_CONTENT_SLOT = "rill-content-slot"


def write_json_sliced(
    out: BinaryIO, obj: Any, dumps: Callable[[Any], str], *, head: str = "", tail: str = ""
) -> None:
    """Write ``head + dumps(obj) + tail`` as UTF-8, without holding the JSON of a long string.

    The last event of a run holds the whole answer. As one JSON text it would cost the answer
    twice over while being built and once more while encoded (four bytes a character once it
    holds an emoji). Instead, long strings are swapped for placeholders, the rest is dumped as
    usual, and each long string is written between its quotes in slices, each escaped by
    json's own string encoder: escaping is per character, so the bytes are the same.
    ``dumps`` must escape strings as ``ensure_ascii=False`` does.
    """
    long: list[str] = []

    def swap(value: Any) -> Any:
        if type(value) is str and len(value) > LONG_STRING:
            long.append(value)
            return _SLOT % (len(long) - 1)
        if type(value) is dict:
            return {k: swap(v) for k, v in value.items()}
        if type(value) is list:
            return [swap(v) for v in value]
        return value

    text = dumps(swap(obj))
    slots = [_encode_str(_SLOT % i) for i in range(len(long))]
    if any(text.count(slot) != 1 for slot in slots):  # a placeholder's text occurs elsewhere
        text, slots, long = dumps(obj), [], []
    write = out.write
    rest = head + text
    for slot, value in zip(slots, long, strict=True):
        before, _, rest = rest.partition(slot)
        write(before.encode("utf-8", "replace") + b'"')
        for start in range(0, len(value), LONG_STRING):
            write(_encode_str(value[start : start + LONG_STRING])[1:-1].encode("utf-8", "replace"))
        write(b'"')
    write((rest + tail).encode("utf-8", "replace"))
    out.flush()


class _EventStreamRenderer:
    """Shared by ``sse`` and ``jsonl``: one encoded record per event, one write per read."""

    #: Prefix and suffix around the JSON-encoded content of chunk and reasoning events.
    chunk_frame: tuple[str, str]
    reasoning_frame: tuple[str, str]

    def __init__(self, out: BinaryIO) -> None:
        self.out = out

    def record(self, name: str, data: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
        """One event: the framing before its JSON object, the object, the framing after."""
        raise NotImplementedError

    def encode(self, name: str, data: dict[str, Any]) -> str:
        head, obj, tail = self.record(name, data)
        return f"{head}{compact_json(obj)}{tail}"

    def _delta(self, d: Delta) -> str:
        if isinstance(d, Chunk):
            head, tail = self.chunk_frame
        elif isinstance(d, Reasoning):
            head, tail = self.reasoning_frame
        else:
            return self.encode(d.NAME, d.as_dict())
        return f"{head}{_encode_str(d.content)}{tail}"

    def _write(self, records: list[str]) -> None:
        if records:
            self.out.write("".join(records).encode("utf-8", "replace"))
            self.out.flush()

    def start(self, event: Start, transcript: Transcript) -> None:
        self._write([self.encode(event.NAME, event.as_dict())])

    def deltas(self, raw: bytes, deltas: list[Delta]) -> None:
        self._write([self._delta(d) for d in deltas])

    def finish(self, event: Terminal) -> None:
        head, obj, tail = self.record(event.NAME, event.as_dict())
        write_json_sliced(self.out, obj, compact_json, head=head, tail=tail)

    def event(self, name: str, data: dict[str, Any]) -> None:
        """One more event between the deltas (``tool_result`` from the tool loop)."""
        self._write([self.encode(name, data)])


class SSERenderer(_EventStreamRenderer):
    chunk_frame = ('event: chunk\ndata: {"content":', ',"done":false}\n\n')
    reasoning_frame = ('event: reasoning\ndata: {"content":', "}\n\n")

    def record(self, name: str, data: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
        return f"event: {name}\ndata: ", data, "\n\n"


class JSONLRenderer(_EventStreamRenderer):
    chunk_frame = ('{"event":"chunk","content":', ',"done":false}\n')
    reasoning_frame = ('{"event":"reasoning","content":', "}\n")

    def record(self, name: str, data: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
        return "", {"event": name, **data}, "\n"


class JSONRenderer:
    """Only the terminal event's object, once, at the end."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out

    def start(self, event: Start, transcript: Transcript) -> None:
        pass

    def deltas(self, raw: bytes, deltas: list[Delta]) -> None:
        pass

    def finish(self, event: Terminal) -> None:
        write_json_sliced(self.out, event.as_dict(), pretty_json, tail="\n")


class OpenAIRenderer:
    """OpenAI-compatible ``chat.completion.chunk`` SSE, ending in ``data: [DONE]``."""

    def __init__(self, out: BinaryIO, *, clock: Any = time.time) -> None:
        self.out = out
        self.created = int(clock())
        self.transcript: Transcript | None = None
        self.model: str | None = None
        self.sent_role = False
        self._frame: tuple[Any, str, str] | None = None

    def start(self, event: Start, transcript: Transcript) -> None:
        self.transcript = transcript
        self.model = event.model

    def _content_frame(self) -> tuple[str, str] | None:
        """The text around the encoded content of a chunk that carries only content: the same
        bytes as ``compact_json(self._chunk({"content": …}))``, without a dict per delta. Made again
        when the id or the model changes; None when it cannot be made."""
        t = self.transcript
        key = (t.id, t.model) if t else None
        frame = self._frame
        if frame is None or frame[0] != key:
            text = compact_json(self._chunk({"content": _CONTENT_SLOT}))
            head, slot, tail = text.partition(_encode_str(_CONTENT_SLOT))
            if not slot or slot in tail:
                return None
            frame = self._frame = (key, "data: " + head, tail + "\n\n")
        return frame[1], frame[2]

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        t = self.transcript
        return {
            "id": (t.id if t else None) or "chatcmpl-rill",
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": (t.model if t else None) or self.model or "unknown",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def _write(self, objs: list[Any]) -> None:
        if objs:
            text = "".join(
                f"data: {o if isinstance(o, str) else compact_json(o)}\n\n" for o in objs
            )
            self.out.write(text.encode("utf-8", "replace"))
            self.out.flush()

    def deltas(self, raw: bytes, deltas: list[Delta]) -> None:
        if self.sent_role and all(type(d) is Chunk for d in deltas):
            frame = self._content_frame()
            if frame is not None:
                head, tail = frame
                text = "".join(
                    f"{head}{_encode_str(d.content)}{tail}"  # type: ignore[union-attr]
                    for d in deltas
                )
                if text:
                    self.out.write(text.encode("utf-8", "replace"))
                    self.out.flush()
                return
        objs = []
        for d in deltas:
            delta: dict[str, Any]
            if type(d) is Chunk:
                delta = {"content": d.content}
            elif type(d) is Reasoning:
                delta = {"content": "", "reasoning": d.content}
            elif type(d) is ToolCall:
                call: dict[str, Any] = {"index": d.index}
                if d.id:
                    call["id"] = d.id
                    call["type"] = "function"
                function = {"arguments": d.arguments}
                if d.name:
                    function["name"] = d.name
                call["function"] = function
                delta = {"tool_calls": [call]}
            else:
                continue
            if not self.sent_role:
                delta = {"role": "assistant", **delta}
                self.sent_role = True
            objs.append(self._chunk(delta))
        self._write(objs)

    def finish(self, event: Terminal) -> None:
        objs: list[Any] = []
        if isinstance(event, Done):
            objs.append(self._chunk({}, event.finish_reason))
            if event.usage is not None:
                usage_chunk = self._chunk({})
                usage_chunk["choices"] = []
                usage_chunk["usage"] = openai_usage(event.usage)
                objs.append(usage_chunk)
        elif isinstance(event, Error):
            objs.append(
                {
                    "error": {
                        "message": event.message,
                        "type": "upstream_error",
                        "code": event.code,
                        "status": event.status,
                    }
                }
            )
        objs.append("[DONE]")
        self._write(objs)


def openai_usage(usage: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": usage.get("prompt_tokens", 0),
        "completion_tokens": usage.get("completion_tokens", 0),
        "total_tokens": usage.get("total_tokens", 0),
    }
    if "cost" in usage:
        out["cost"] = usage["cost"]
    if "cached_tokens" in usage:
        out["prompt_tokens_details"] = {"cached_tokens": usage["cached_tokens"]}
    if "reasoning_tokens" in usage:
        out["completion_tokens_details"] = {"reasoning_tokens": usage["reasoning_tokens"]}
    return out


def make_renderer(fmt: OutputFormat, out: BinaryIO, *, tty: bool = False) -> Renderer:
    if fmt is OutputFormat.text:
        return TextRenderer(out, tty=tty)
    if fmt is OutputFormat.sse:
        return SSERenderer(out)
    if fmt is OutputFormat.jsonl:
        return JSONLRenderer(out)
    if fmt is OutputFormat.json:
        return JSONRenderer(out)
    if fmt is OutputFormat.openai:
        return OpenAIRenderer(out)
    return RawRenderer(out)
