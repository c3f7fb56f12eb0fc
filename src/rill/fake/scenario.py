"""``Scenario``: one scripted response (what is said, how it is framed, timed and broken)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from rill.fake.common import LONG_CHUNKS, LONG_WORDS, SIGNATURE, Persona
from rill.fake.records import Gate


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


_UNSET = _Unset()


@dataclass
class Scenario:
    """One scripted response. Every field has a realistic default; ``None`` often means "what the
    persona would do".

    A *piece* is one data event between the first (role-only) chunk and the finish chunk: a
    reasoning piece, a reasoning signature/encrypted detail, a content piece or a tool-call
    fragment, numbered from 0 in sending order. Positions such as ``midstream_error_after``,
    ``abrupt_close_after``, ``stall_after`` and the ``Gate`` indexes count pieces."""

    # --- what is said ---
    content: list[str] = field(default_factory=list)  # one content delta per item
    reasoning: list[str] = field(default_factory=list)  # sent before the content
    reasoning_field: str | None = None  # "reasoning" | "reasoning_content"; None: persona's
    reasoning_details: bool = True  # mirror reasoning in delta.reasoning_details (openrouter)
    reasoning_signature: str | None = SIGNATURE  # final signature-only detail; None: none
    reasoning_encrypted: str | None = None  # also send a {"type": "reasoning.encrypted"} detail
    reasoning_null_on_content: bool = False  # ordinary deltas carry reasoning:null, details:[]
    # tool calls: high-level [{"name", "arguments": str | dict, "id"?}], split in fragments
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_fragments: list[dict[str, Any]] | None = None  # raw delta.tool_calls items, one per chunk
    argument_split: int = 8  # characters of arguments per fragment
    tool_whole: bool = False  # each call complete in one fragment
    tool_missing_index: bool = False  # continuation fragments lack "index"
    tool_ids: Literal["normal", "empty", "null", "duplicate"] = "normal"
    tool_shared_index: bool = False  # distinct parallel calls all use index 0
    huge_piece_bytes: int | None = None  # one extra content piece of this many bytes
    content_fn: Callable[[int], str] | None = None  # piece text computed at send time
    timestamp_content: bool = False  # each content piece becomes f"{time.time_ns()}\n" at send
    # --- identity ---
    served_model: str | None = None  # default: the requested model, else "openai/gpt-4o"
    provider: str = "OpenAI"
    generation_id: str | None = None  # default: gen-<unix>-<20 alnum> (persona-specific form)
    created: int | None = None  # default: now
    system_fingerprint: str | None = None
    # --- finish ---
    finish_reason: str | None = None  # default: "tool_calls" when tool calls, else "stop"
    native_finish_reason: str | None = None  # default: finish_reason
    send_finish: bool = True
    # --- usage ---
    usage_style: Literal["current", "legacy"] | None = "current"  # None: no usage at all
    usage: dict[str, Any] | None = None  # used verbatim instead of the computed usage
    usage_omit_cost: bool = False
    usage_null_details: bool = False
    prompt_tokens: int | None = None  # default: estimated from the request messages
    cached_tokens: int = 0
    cache_write_tokens: int = 0  # reported (openrouter persona) only when not 0
    # --- keep-alive comments ---
    keepalives_before: int | None = None  # before the first data event; None: persona (1 / 0)
    keepalive_text: str | None = None  # ": OPENROUTER PROCESSING", ": " or ":"; None: persona's
    keepalive_every: float | None = None  # while idle (delays, stalls), one comment each N s
    keepalive_every_chunks: int | None = None  # also one comment before every N-th piece
    # --- pre-stream error (any status other than 200, or an explicit error_body) ---
    status: int = 200
    error_kind: str | None = None  # see ERROR_KINDS
    error_body: dict[str, Any] | str | None = None  # str: sent as-is (e.g. an HTML page)
    error_message: str | None = None  # replaces the canned message
    retry_after: float | None = None  # Retry-After header (and availability.retry_after)
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers
    content_type: str | None = None  # overrides the response Content-Type
    # "chunked", or "close": no Transfer-Encoding, the body ends when the connection closes
    framing: Literal["chunked", "close"] = "chunked"
    # --- errors after the 200 ---
    midstream_error_after: int | None = None  # pieces sent before the error chunk
    midstream_error: dict[str, Any] | None = None  # {"code", "message", "metadata": {...}}
    midstream_error_choices_empty: bool = False
    done_after_error: bool = False
    abrupt_close_after: int | None = None  # pieces sent before the TCP connection is dropped
    raw_event_after: int | None = None  # pieces sent before ``raw_event`` is written verbatim
    raw_event: bytes = b"data: {not json\n\n"  # default: a data line of broken JSON
    # --- timing ---
    delay_headers: float = 0.0
    delay_first_data: float = 0.0
    chunk_delay: float = 0.0  # before every data event but the first
    stall_after: int | None = None
    stall_seconds: float = 0.0
    gate: Gate | None = None
    # --- framing ---
    split: Literal["event", "coalesce", "bytes"] = "event"
    split_seed: int = 0
    split_max: int = 40  # largest write in "bytes" mode
    line_ending: Literal["\n", "\r\n", "\r"] = "\n"
    no_final_blank_line: bool | None = None  # last event ends with one line ending; None: persona
    no_final_newline: bool = False  # last event ends with no line ending at all
    send_done: bool = True
    # --- dialect and scripting ---
    persona: Persona | None = None  # None: the server's persona
    require_auth: bool | None = None  # None: the server's setting (never for "ollama")
    reject_stream_options: bool = False  # 400 naming stream_options when the request has it
    repeat: int = 1  # serve this queue entry to that many requests
    # --- hostile modes (rill.fake.hostile; streamed answers) ---
    endless_line_bytes: int | None = None  # after the role chunk, "data: aaa…" with no newline
    deep_json: tuple[Literal["content", "reasoning"], int] | None = None  # (where, depth): one
    # chunk after the first piece nests that deep in delta.content or delta.reasoning_details
    chunk_overrides: dict[str, Any] = field(default_factory=dict)  # id/model/provider of every
    # chunk and finish_reason of the finish chunk, replaced by these values (any JSON type)
    echo_key: Literal["code", "metadata", "message", "malformed", "midstream", "models"] | None = (
        None  # see hostile.CATALOGUE ("hostile-key-PLACE")
    )

    @classmethod
    def error(
        cls,
        status: int,
        kind: str | None = None,
        *,
        retry_after: float | None | _Unset = _UNSET,
        message: str | None = None,
        **fields: Any,
    ) -> Scenario:
        """A pre-stream error with the realistic body of ``build_error``. A 429 of the default
        "platform" kind carries ``Retry-After: 1`` unless ``retry_after`` says otherwise."""
        if isinstance(retry_after, _Unset):
            retry_after = 1 if status == 429 and kind in (None, "platform") else None
        return cls(
            status=status, error_kind=kind, retry_after=retry_after, error_message=message, **fields
        )

    @classmethod
    def silent_failure(cls, **fields: Any) -> Scenario:
        """An empty answer that looks like success: finish "stop", native "network_error"."""
        fields.setdefault("finish_reason", "stop")
        fields.setdefault("native_finish_reason", "network_error")
        return cls(content=[], **fields)

    @classmethod
    def paced(cls, n: int, delay: float, **fields: Any) -> Scenario:
        """``n`` pieces ``delay`` seconds apart, each its send time in ns followed by "\\n"."""
        return cls(content=[""] * n, chunk_delay=delay, timestamp_content=True, **fields)

    @classmethod
    def long(cls, n: int = LONG_CHUNKS, **fields: Any) -> Scenario:
        """``n`` small content pieces cycling through ``LONG_WORDS``, coalesced by default."""
        words = LONG_WORDS
        fields.setdefault("split", "coalesce")
        return cls(content=[words[i % len(words)] for i in range(n)], **fields)
