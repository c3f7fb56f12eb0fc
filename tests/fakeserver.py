"""Fake OpenRouter server: a scriptable local stand-in for ``https://openrouter.ai/api/v1``.

Used by the test suite, by the benchmarks and by anyone who wants to try rill offline. It uses the
standard library only, so it runs from the repository root as::

    $ python -m tests.fakeserver --port 8787
    rill fake server listening on http://127.0.0.1:8787/api/v1

and is driven in-process like this::

    with FakeOpenRouter() as server:
        server.enqueue(Scenario(content=["Hel", "lo"]), Scenario.error(429, retry_after=0))
        ...  # POST f"{server.url}/chat/completions" with "Authorization: Bearer sk-or-v1-test"
        assert server.chat_requests[0].body["stream"] is True

Routes are matched on the path suffix, so ``/api/v1/...``, ``/v1/...`` (the prefix generic
OpenAI-compatible servers use) and bare paths all work: ``POST /chat/completions``,
``GET /models`` (no key needed), ``GET /generation?id=``, ``GET /key``, ``GET /auth/key``,
``GET /credits``.

Which answer a chat request gets: the next queued scenario (``enqueue``, first in first out;
``Scenario.repeat`` serves one entry several times); with an empty queue, a request whose
``model`` is a canned name below gets that scenario; anything else gets
``server.default_scenario`` (a short demo answer, served under the requested model name).

Canned models (``--scenario NAME`` makes one the default for every request):

    fake/demo                   the demo answer
    fake/echo                   the last user message, echoed back word by word
    fake/error-<status>[-<kind>]
                                a pre-stream error with a realistic body and headers; statuses
                                and kinds are listed in ``ERROR_KINDS`` (first kind = default),
                                e.g. fake/error-401-user-not-found, fake/error-429-upstream,
                                fake/error-502-html; kinds "html" and "availability" (the 2026
                                body without ``error.code``) work with every status
    fake/midstream-error        3 chunks, then an error chunk (finish_reason "error"), no [DONE]
    fake/midstream-error-empty  the same with ``choices: []``, a string code and a [DONE]
    fake/truncated              3 chunks, then the TCP connection closes (no finish, no [DONE])
    fake/broken-json            2 chunks, then a data line that is not JSON
    fake/silent-failure         empty answer, finish_reason "stop", native "network_error"
    fake/slow                   20 chunks, one every 0.2 s
    fake/stall                  3 chunks, 3 s of keep-alive comments only, then the rest
    fake/keepalive              2 s of keep-alive comments before the first data event
    fake/reasoning              reasoning (with reasoning_details and a signature), then content
    fake/tools                  two parallel tool calls, arguments in 7-character fragments
    fake/length                 finish_reason "length"
    fake/no-usage  fake/legacy-usage  fake/no-done  fake/crlf  fake/cr
    fake/split                  multi-byte text, the byte stream cut at random offsets
    fake/huge                   one 4 MiB content piece
    fake/paced                  50 pieces 20 ms apart, each the send time (time.time_ns()) + "\\n"
    fake/long[-N]               N small chunks (default 100,000), written in 64 KiB blocks
    fake/long-events[-N]        the same, one HTTP chunk per event

Terms used by ``Scenario``: a *piece* is one data event between the first (role-only) chunk and
the finish chunk: a reasoning piece, a reasoning signature/encrypted detail, a content piece or a
tool-call fragment, numbered from 0 in sending order. Positions such as ``midstream_error_after``,
``abrupt_close_after``, ``stall_after`` and the ``Gate`` indexes count pieces.

Personas reproduce the dialects of other OpenAI-compatible servers: "openrouter" (default),
"openai", "llamacpp-legacy", "vllm-old" and "ollama" (see ``Scenario.persona``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import re
import select
import signal
import socket
import string
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "DEFAULT_API_KEY",
    "DEMO_CONTENT",
    "ERROR_KINDS",
    "KEEPALIVE_TEXT",
    "LONG_CHUNKS",
    "LONG_WORDS",
    "MSG_NO_AUTH",
    "MSG_USER_NOT_FOUND",
    "PERSONAS",
    "FakeOpenRouter",
    "Gate",
    "Generation",
    "Headers",
    "Recorded",
    "Scenario",
    "build_error",
    "canned_scenario",
    "main",
]

DEFAULT_API_KEY = "sk-or-v1-test"
DEFAULT_MODEL = "openai/gpt-4o"
KEEPALIVE_TEXT = ": OPENROUTER PROCESSING"
MSG_NO_AUTH = "No cookie auth credentials found"
MSG_USER_NOT_FOUND = "User not found."
DEMO_CONTENT = ["Hello", "!", " This", " is", " a", " demo", " answer", " from", " rill's"]
DEMO_CONTENT += [" local", " test", " server", "."]
LONG_CHUNKS = 100_000
LONG_WORDS = ["lorem ", "ipsum ", "dolor ", "sit ", "amet ", "consectetur ", "adipiscing "]
LONG_WORDS += ["elit ", "sed ", "do\n"]
PERSONAS = ("openrouter", "openai", "llamacpp-legacy", "vllm-old", "ollama")
Persona = Literal["openrouter", "openai", "llamacpp-legacy", "vllm-old", "ollama"]

_POLL = 0.05  # seconds between disconnect checks while idle
_BLOCK = 64 * 1024  # write size of the coalescing writer
_ALNUM = string.ascii_letters + string.digits
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_JSON_SORTED = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)
_MISSING: Any = object()
_DOCS_ERRORS = "https://openrouter.ai/docs/api_reference/errors-and-debugging"
_USER_ID = "user_2zFakeUser00000000000000"
_SIGNATURE = "EqQBCkgIBxABGAIiQFakeSignatureForTestsOnly0123456789abcdefABCDEF=="
_REASONS = {524: "A Timeout Occurred", 529: "Site Overloaded"}


def _rand(n: int, alphabet: str = _ALNUM, rng: Any = random) -> str:
    return "".join(rng.choices(alphabet, k=n))


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# --------------------------------------------------------------------------------------------
# Value types


class Headers(dict[str, str]):
    """Request headers with case-insensitive lookup (keys are stored lower-case)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__()
        for key, value in items:
            low = key.lower()
            super().__setitem__(low, f"{self[low]}, {value}" if low in self else value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it. ``time`` is ``time.monotonic()`` once the body was read."""

    method: str
    path: str
    headers: Headers
    body: Any  # parsed JSON, or None when the body was empty or not JSON
    time: float
    query: dict[str, str] = field(default_factory=dict)
    raw_body: bytes = b""


@dataclass
class Generation:
    """What ``GET /generation`` reports about one served chat completion."""

    id: str
    model: str
    provider: str
    streamed: bool
    created_at: float  # time.time()
    origin: str = ""
    user_agent: str = ""
    external_user: str | None = None
    tokens_prompt: int = 0
    tokens_completion: int = 0
    tokens_reasoning: int = 0
    tokens_cached: int = 0
    cost: float = 0.0
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    cancelled: bool = False
    done: bool = False
    latency_ms: int = 0
    generation_ms: int = 0

    def as_json(self) -> dict[str, Any]:
        created = datetime.fromtimestamp(self.created_at, UTC).isoformat().replace("+00:00", "Z")
        return {
            "id": self.id,
            "upstream_id": "chatcmpl-" + self.id.rsplit("-", 1)[-1],
            "total_cost": self.cost,
            "cache_discount": None,
            "upstream_inference_cost": None,
            "created_at": created,
            "model": self.model,
            "app_id": None,
            "streamed": self.streamed,
            "cancelled": self.cancelled,
            "provider_name": self.provider,
            "latency": self.latency_ms,
            "moderation_latency": None,
            "generation_time": self.generation_ms,
            "finish_reason": self.finish_reason,
            "native_finish_reason": self.native_finish_reason,
            "tokens_prompt": self.tokens_prompt,
            "tokens_completion": self.tokens_completion,
            "native_tokens_prompt": self.tokens_prompt,
            "native_tokens_completion": self.tokens_completion,
            "native_tokens_completion_images": 0,
            "native_tokens_reasoning": self.tokens_reasoning,
            "native_tokens_cached": self.tokens_cached,
            "num_media_prompt": None,
            "num_media_completion": None,
            "num_search_results": None,
            "origin": self.origin,
            "usage": self.cost,
            "is_byok": False,
            "api_type": "completions",
            "external_user": self.external_user,
            "user_agent": self.user_agent,
        }


class Gate:
    """Holds streamed pieces back until the test has seen the previous one.

    Before sending piece ``i`` (i >= 1) the server blocks until ``release(i)`` is called; the test
    calls it once it has seen piece ``i - 1`` on the client's output, which proves the client
    streams for real. Without a release for ``timeout`` seconds the server gives up and closes the
    connection (``timed_out`` becomes True), so nothing ever hangs.
    """

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.timed_out = False
        self._cond = threading.Condition()
        self._released: set[int] = set()
        self._open = False
        self._waiting = 0

    def release(self, *indexes: int) -> None:
        with self._cond:
            self._released.update(indexes)
            self._cond.notify_all()

    def open(self) -> None:
        """Release every piece, now and later."""
        with self._cond:
            self._open = True
            self._cond.notify_all()

    @property
    def waiting_for(self) -> int:
        """Highest piece index the server has started waiting for (0: none yet)."""
        with self._cond:
            return self._waiting

    def wait(self, index: int, timeout: float) -> bool:
        """Server side: wait up to ``timeout`` seconds for piece ``index`` to be released."""
        with self._cond:
            if index > self._waiting:
                self._waiting = index
                self._cond.notify_all()
            return self._cond.wait_for(lambda: self._open or index in self._released, timeout)

    def wait_for_server(self, index: int, timeout: float) -> bool:
        """Test side: wait until the server is blocked before piece ``index`` (or beyond)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._waiting >= index, timeout)


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


_UNSET = _Unset()


@dataclass
class Scenario:
    """One scripted response. Every field has a realistic default; ``None`` often means "what the
    persona would do". See the module docstring for what a *piece* is."""

    # --- what is said ---
    content: list[str] = field(default_factory=list)  # one content delta per item
    reasoning: list[str] = field(default_factory=list)  # sent before the content
    reasoning_field: str | None = None  # "reasoning" | "reasoning_content"; None: persona's
    reasoning_details: bool = True  # mirror reasoning in delta.reasoning_details (openrouter)
    reasoning_signature: str | None = _SIGNATURE  # final signature-only detail; None: none
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


# --------------------------------------------------------------------------------------------
# Error bodies

ERROR_KINDS: dict[int, tuple[str, ...]] = {
    400: ("invalid-model", "context-length", "stream-options"),
    401: ("no-auth", "user-not-found", "no-auth-legacy"),
    402: ("credits", "insufficient", "key-limit"),
    403: ("moderation", "guardrail"),
    404: ("no-endpoints",),
    408: ("timeout",),
    413: ("too-large",),
    422: ("unprocessable",),
    429: ("platform", "upstream"),
    500: ("server",),
    502: ("upstream", "html"),
    503: ("unavailable",),
    504: ("timeout",),
    524: ("timeout",),
    529: ("overloaded",),
}
"""Canned pre-stream errors: status -> kinds (the first is the default). The kinds "html" (an
edge proxy's HTML page) and "availability" (the 2026 body without ``error.code``) work with any
status."""

_HTML_PAGE = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)

_AVAILABILITY = {
    400: ("model_not_found", False, "invalid_request", "{model} is not a valid model ID"),
    403: ("region_restricted", False, "permission_denied", "{model} is not available here"),
    404: ("no_endpoints", False, "not_found", "No endpoints found for {model}."),
    429: ("capacity_exhausted", True, "rate_limit_exceeded", "{model} is out of capacity"),
    503: ("temporarily_unavailable", True, "provider_unavailable", "{model} is unavailable"),
}

_OPENAI_ERRORS = {
    400: ("invalid_request_error", "invalid_value", "Invalid value for 'messages'."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Not supported."),
    404: ("invalid_request_error", "model_not_found", "The model `{model}` does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", "server_error", "The server had an error processing your request."),
    503: ("server_error", "engine_overloaded", "The engine is currently overloaded."),
}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return _REASONS.get(status, "Error")


def _next_midnight_ms() -> str:
    return str((int(time.time() // 86400) + 1) * 86400 * 1000)


def _openrouter_error(
    status: int, kind: str, model: str, provider: str, ratelimit: dict[str, str]
) -> tuple[str, dict[str, Any] | None, dict[str, Any]]:
    """(message, metadata, top-level extras) of an OpenRouter error body."""
    user = {"user_id": _USER_ID}
    meta: dict[str, Any] | None
    if status == 400:
        if kind == "context-length":
            msg = (
                "This endpoint's maximum context length is 128000 tokens. However, you requested "
                "about 210000 tokens (200000 of text input, 10000 in the output). Please reduce "
                "the length of either one."
            )
            return msg, {"error_type": "context_length_exceeded", "provider_name": None}, {}
        if kind == "stream-options":
            return "Unrecognized request argument supplied: stream_options", None, {}
        return f"{model} is not a valid model ID", None, {}
    if status == 401:
        texts = {
            "user-not-found": MSG_USER_NOT_FOUND,
            "no-auth-legacy": "No auth credentials found",
        }
        return texts.get(kind, MSG_NO_AUTH), None, {}
    if status == 402:
        if kind == "insufficient":
            return "Insufficient credits. Add more using https://openrouter.ai/credits", None, user
        if kind == "key-limit":
            msg = (
                "This request requires more credits, or fewer max_tokens. You requested up to "
                "4096 tokens, but can only afford 1200. To increase, visit "
                "https://openrouter.ai/settings/keys and create a key with a higher total limit"
            )
            return msg, {"provider_name": None}, user
        msg = (
            "This request requires more credits, or fewer max_tokens. You requested up to 65536 "
            "tokens, but can only afford 3395. To increase, visit "
            "https://openrouter.ai/settings/credits and upgrade to a paid account"
        )
        return msg, {"provider_name": None}, user
    if status == 403:
        if kind == "guardrail":
            return "Request blocked by guardrail", {"patterns": ["credit-card-number"]}, {}
        msg = (
            f"{model} requires moderation on {provider}. Your input was flagged for "
            '"harassment". No credits were charged.'
        )
        meta = {
            "reasons": ["harassment"],
            "flagged_input": "you are all idiots and I will...",
            "provider_name": provider,
            "model_slug": model,
        }
        return msg, meta, {}
    if status == 429:
        if kind == "upstream":
            raw = {
                "error": {
                    "message": f"{model} is temporarily rate-limited upstream. Please retry "
                    "shortly, or add your own key to accumulate your rate limits: "
                    "https://openrouter.ai/settings/integrations",
                    "type": "rate_limit_exceeded",
                }
            }
            meta = {
                "raw": json.dumps(raw),
                "provider_name": provider,
                "error_type": "rate_limit_exceeded",
                "limit_source": "upstream_provider_shared_pool",
                "is_byok": False,
            }
            return "Provider returned error", meta, user
        msg = (
            "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model "
            "requests per day"
        )
        meta = {
            "headers": ratelimit,
            "limit_source": "openrouter_free_tier_daily",
            "provider_name": None,
        }
        return msg, meta, user
    if status == 502:
        raw = {"error": {"message": "The server had an error.", "type": "server_error"}}
        meta = {
            "raw": json.dumps(raw),
            "provider_name": provider,
            "error_type": "provider_unavailable",
        }
        return "Provider returned error", meta, {}
    simple = {
        404: (f"No endpoints found for {model}.", None),
        408: ("Operation timed out. Please try again later.", "timeout"),
        413: ("Request payload too large.", "payload_too_large"),
        422: ("Request could not be processed.", "unprocessable"),
        500: ("Internal Server Error", "server"),
        503: (f"No available providers for {model} right now.", "provider_unavailable"),
        504: ("Upstream request timed out.", "timeout"),
        524: ("Request timed out. Please try again later.", "timeout"),
        529: ("Provider is overloaded. Please try again later.", "provider_overloaded"),
    }
    msg, etype = simple.get(status, (_phrase(status), None))
    meta = None if etype is None else {"error_type": etype}
    if status == 529 and meta is not None:
        meta["provider_name"] = provider
    return msg, meta, {}


def _availability(
    status: int, model: str, retry_after: float | None
) -> tuple[str, str, dict[str, Any]]:
    code, retryable, etype, msg = _AVAILABILITY.get(status, _AVAILABILITY[503])
    avail: dict[str, Any] = {"code": code, "retryable": retryable}
    if retry_after is not None:
        avail["retry_after"] = retry_after
    avail["requested_models"] = [model]
    avail["docs_url"] = _DOCS_ERRORS
    return msg.format(model=model), etype, avail


def _generic_error(
    status: int, persona: str, model: str, message: str | None
) -> dict[str, Any] | str:
    etype, code, msg = _OPENAI_ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", "error", "")
    )
    msg = message or msg.format(model=model) or _phrase(status)
    if persona == "vllm-old":
        kind = _phrase(status).replace(" ", "").removesuffix("Error") + "Error"
        return {"object": "error", "message": msg, "type": kind, "param": None, "code": status}
    if persona == "llamacpp-legacy":
        types = {401: "authentication_error", 404: "not_found_error", 503: "unavailable_error"}
        etype = types.get(status, "server_error" if status >= 500 else "invalid_request_error")
        return {"error": {"code": status, "message": msg, "type": etype}}
    if persona == "ollama":
        etype = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
        return {"error": {"message": msg, "type": etype, "param": None, "code": None}}
    return {"error": {"message": msg, "type": etype, "param": None, "code": code}}


def build_error(
    status: int,
    kind: str | None = None,
    *,
    model: str = DEFAULT_MODEL,
    persona: str = "openrouter",
    retry_after: float | None = None,
    message: str | None = None,
    provider: str = "OpenAI",
) -> tuple[dict[str, str], dict[str, Any] | str]:
    """Headers and body of a canned pre-stream error (see ``ERROR_KINDS``)."""
    kind = kind or ERROR_KINDS.get(status, ("generic",))[0]
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = _seconds(retry_after)
    if kind == "html":
        headers["Content-Type"] = "text/html"
        return headers, _HTML_PAGE.format(status=status, phrase=_phrase(status))
    headers["Content-Type"] = "application/json"
    if persona != "openrouter":
        if kind == "stream-options" and message is None:
            message = "Unrecognized request argument supplied: stream_options"
        return headers, _generic_error(status, persona, model, message)
    if kind == "availability":
        msg, etype, avail = _availability(status, model, retry_after)
        error = {"message": message or msg, "error_type": etype, "http_status": status}
        return headers, {"error": {**error, "availability": avail}}
    ratelimit: dict[str, str] = {}
    if status == 429 and kind == "platform":
        ratelimit = {
            "X-RateLimit-Limit": "50",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": _next_midnight_ms(),
        }
        headers.update(ratelimit)
    msg, meta, extra = _openrouter_error(status, kind, model, provider, ratelimit)
    body: dict[str, Any] = {"message": message or msg, "code": status}
    if meta is not None:
        body["metadata"] = meta
    if status == 503:
        body["availability"] = _availability(503, model, retry_after)[2]
    return headers, {"error": body, **extra}


_DEFAULT_MIDSTREAM = {
    "code": 502,
    "message": "Upstream provider disconnected mid-stream",
    "metadata": {"error_type": "provider_unavailable"},
}


# --------------------------------------------------------------------------------------------
# Models

_PARAMS = ["max_tokens", "temperature", "top_p", "stop", "seed", "response_format"]


def _model(
    mid: str,
    name: str,
    context: int,
    prompt: str,
    completion: str,
    max_out: int | None,
    extra_params: list[str],
    tokenizer: str,
    inputs: list[str],
) -> dict[str, Any]:
    modality = "+".join(inputs) + "->text"
    return {
        "id": mid,
        "canonical_slug": mid.split(":")[0],
        "name": name,
        "created": 1747930371,
        "description": f"{name} (served by rill's local test server).",
        "context_length": context,
        "architecture": {
            "modality": modality,
            "input_modalities": inputs,
            "output_modalities": ["text"],
            "tokenizer": tokenizer,
            "instruct_type": None,
        },
        "pricing": {"prompt": prompt, "completion": completion, "request": "0", "image": "0"},
        "top_provider": {
            "context_length": context,
            "max_completion_tokens": max_out,
            "is_moderated": prompt != "0",
        },
        "per_request_limits": None,
        "supported_parameters": sorted(_PARAMS + extra_params),
        "default_parameters": {"temperature": None, "top_p": None, "frequency_penalty": None},
        "supported_voices": None,
        "links": {"details": f"/api/v1/models/{mid.split(':')[0]}/endpoints"},
    }


_MODEL_TABLE = [
    # id, name, context, prompt price, completion price, max output, parameters, tokenizer, inputs
    ("openai/gpt-4o", "OpenAI: GPT-4o", 128000, "0.0000025", "0.00001", 16384, "tools", "GPT",
     "text image"),
    ("anthropic/claude-sonnet-4", "Anthropic: Claude Sonnet 4", 1000000, "0.000003", "0.000015",
     64000, "tools reasoning top_k", "Claude", "text image file"),
    ("google/gemini-2.5-flash", "Google: Gemini 2.5 Flash", 1048576, "0.0000003", "0.0000025",
     65535, "tools reasoning", "Gemini", "text image file audio"),
    ("deepseek/deepseek-r1", "DeepSeek: R1", 163840, "0.0000004", "0.000002", None, "reasoning",
     "DeepSeek", "text"),
    ("meta-llama/llama-3.3-70b-instruct:free", "Meta: Llama 3.3 70B Instruct (free)", 65536, "0",
     "0", 8192, "tools", "Llama3", "text"),
]  # fmt: skip
_PARAM_GROUPS = {"tools": ["tools", "tool_choice"], "reasoning": ["reasoning", "include_reasoning"]}


def default_models() -> list[dict[str, Any]]:
    """The model list ``GET /models`` serves (a fresh copy each call)."""
    models = []
    for mid, name, ctx, prompt, completion, max_out, params, tokenizer, inputs in _MODEL_TABLE:
        extra = [p for group in params.split() for p in _PARAM_GROUPS.get(group, [group])]
        models.append(
            _model(mid, name, ctx, prompt, completion, max_out, extra, tokenizer, inputs.split())
        )
    return models


# --------------------------------------------------------------------------------------------
# Canned scenarios


def _last_user_text(body: Mapping[str, Any] | None) -> str:
    for message in reversed((body or {}).get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def canned_scenario(name: str, body: Mapping[str, Any] | None = None) -> Scenario | None:
    """The scenario a ``fake/...`` model name selects (see the module docstring), else None."""
    if not name.startswith("fake/"):
        return None
    key = name[len("fake/") :]
    if m := re.fullmatch(r"error-(\d{3})(?:-([a-z0-9-]+))?", key):
        status, kind = int(m[1]), m[2]
        known = ERROR_KINDS.get(status, ()) + ("html", "availability")
        if kind is not None and kind not in known:
            return None
        return Scenario.error(status, kind)
    if m := re.fullmatch(r"long(-events)?(?:-(\d+))?", key):
        n = int(m[2]) if m[2] else LONG_CHUNKS
        return Scenario.long(n, split="event" if m[1] else "coalesce")
    three = ["One, ", "two, ", "three, ", "four, ", "five."]
    table: dict[str, Callable[[], Scenario]] = {
        "demo": lambda: Scenario(content=list(DEMO_CONTENT)),
        "echo": lambda: Scenario(content=_words(_last_user_text(body)) or ["(no user message)"]),
        "midstream-error": lambda: Scenario(content=three, midstream_error_after=3),
        "midstream-error-empty": lambda: Scenario(
            content=three,
            midstream_error_after=3,
            midstream_error={"code": "server_error", "message": "Internal server error"},
            midstream_error_choices_empty=True,
            done_after_error=True,
        ),
        "truncated": lambda: Scenario(content=three, abrupt_close_after=3),
        "broken-json": lambda: Scenario(content=three, raw_event_after=2),
        "silent-failure": Scenario.silent_failure,
        "slow": lambda: Scenario(content=[f"chunk {i}\n" for i in range(20)], chunk_delay=0.2),
        "stall": lambda: Scenario(
            content=three, stall_after=3, stall_seconds=3.0, keepalive_every=0.5
        ),
        "keepalive": lambda: Scenario(
            content=list(DEMO_CONTENT), delay_first_data=2.0, keepalive_every=0.25
        ),
        "reasoning": lambda: Scenario(
            reasoning=["Let me think", " about this", " carefully."],
            content=["The answer", " is 42."],
        ),
        "tools": lambda: Scenario(
            tool_calls=[
                {"name": "get_weather", "arguments": {"location": "Paris, France", "unit": "c"}},
                {"name": "get_time", "arguments": {"timezone": "Europe/Paris"}},
            ],
            argument_split=7,
        ),
        "length": lambda: Scenario(
            content=["This answer was cut", " short"], finish_reason="length"
        ),
        "no-usage": lambda: Scenario(content=list(DEMO_CONTENT), usage_style=None),
        "legacy-usage": lambda: Scenario(content=list(DEMO_CONTENT), usage_style="legacy"),
        "no-done": lambda: Scenario(content=list(DEMO_CONTENT), send_done=False),
        "crlf": lambda: Scenario(content=list(DEMO_CONTENT), line_ending="\r\n"),
        "cr": lambda: Scenario(content=list(DEMO_CONTENT), line_ending="\r"),
        "split": lambda: Scenario(
            content=["Grüße ", "aus ", "Köln — ", "日本語の", "テキスト ", "🎉🎉 ", "done."],
            split="bytes",
            split_max=7,
        ),
        "huge": lambda: Scenario(content=["big: "], huge_piece_bytes=4 * 1024 * 1024),
        "paced": lambda: Scenario.paced(50, 0.02),
    }
    build = table.get(key)
    return build() if build else None


def _words(text: str) -> list[str]:
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


# --------------------------------------------------------------------------------------------
# Building the response of one request


class _ClientGone(Exception):
    """The client closed the connection."""


class _Close(Exception):
    """The server drops the connection (scripted truncation, gate timeout, reset or stop)."""


@dataclass
class _Ctx:
    scenario: Scenario
    persona: str
    body: dict[str, Any]
    requested_model: str
    model: str
    gen_id: str
    created: int
    include_usage: bool
    continuous_usage: bool
    reasoning_excluded: bool
    epoch: int
    request: Recorded


def _new_id(persona: str, created: int) -> str:
    if persona == "openrouter":
        return f"gen-{created}-{_rand(20)}"
    if persona == "ollama":
        return f"chatcmpl-{random.randint(1, 999)}"
    if persona == "vllm-old":
        return f"chatcmpl-{_rand(32, string.hexdigits[:16])}"
    return f"chatcmpl-{_rand(29)}"


def _estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    total = 3
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            total += 4 + len(_text_of(message.get("content"))) // 4
    return total


def _huge_text(size: int) -> str:
    unit = "0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ\n"
    return (unit * (size // len(unit) + 1))[:size]


def _tool_fragments(ctx: _Ctx) -> list[list[dict[str, Any]]]:
    """delta.tool_calls lists, one per chunk."""
    s = ctx.scenario
    if s.tool_fragments is not None:
        return [[dict(f)] for f in s.tool_fragments]
    rng = random.Random(ctx.gen_id)
    calls: list[tuple[Any, str, str]] = []
    for call in s.tool_calls:
        args = call.get("arguments", "")
        args = args if isinstance(args, str) else _JSON.encode(args)
        calls.append((call.get("id") or f"call_{_rand(24, rng=rng)}", call["name"], args))
    if s.tool_ids != "normal":
        first = calls[0][0] if calls else ""
        new_id = {"empty": "", "null": None, "duplicate": first}[s.tool_ids]
        calls = [(new_id, name, args) for _, name, args in calls]
    if ctx.persona == "ollama":
        whole = [
            {"id": cid, "index": k, "type": "function", "function": {"name": n, "arguments": a}}
            for k, (cid, n, a) in enumerate(calls)
        ]
        return [whole] if whole else []
    out: list[list[dict[str, Any]]] = []
    step = max(1, s.argument_split)
    for k, (cid, name, args) in enumerate(calls):
        index = 0 if s.tool_shared_index else k
        head = {"index": index, "id": cid, "type": "function"}
        if s.tool_whole:
            out.append([{**head, "function": {"name": name, "arguments": args}}])
            continue
        out.append([{**head, "function": {"name": name, "arguments": ""}}])
        for j in range(0, len(args), step):
            frag: dict[str, Any] = {"index": index, "function": {"arguments": args[j : j + step]}}
            if ctx.persona == "openrouter":
                frag["type"] = "function"
            if s.tool_missing_index:
                del frag["index"]
            out.append([frag])
    return out


def _pieces(ctx: _Ctx) -> list[tuple[str, Any]]:
    """(kind, payload) of every piece, in sending order."""
    s = ctx.scenario
    out: list[tuple[str, Any]] = []
    if s.reasoning and not ctx.reasoning_excluded:
        out.extend(("reasoning", r) for r in s.reasoning)
        if ctx.persona == "openrouter" and s.reasoning_details:
            if s.reasoning_encrypted is not None:
                out.append(("encrypted", s.reasoning_encrypted))
            if s.reasoning_signature:
                out.append(("signature", s.reasoning_signature))
    if s.content_fn is not None or s.timestamp_content:
        out.extend(("lazy", j) for j in range(len(s.content)))
    else:
        out.extend(("content", c) for c in s.content)
    if s.huge_piece_bytes:
        out.append(("content", _huge_text(s.huge_piece_bytes)))
    out.extend(("tool", frags) for frags in _tool_fragments(ctx))
    return out


def _token_counts(
    ctx: _Ctx, pieces: list[tuple[str, Any]], upto: int | None = None
) -> tuple[int, int, int]:
    """(prompt, completion, reasoning) tokens: one token per piece."""
    s = ctx.scenario
    sent = pieces if upto is None else pieces[:upto]
    completion = sum(1 for kind, _ in sent if kind in ("content", "lazy", "tool"))
    if upto is None:
        reasoning = len(s.reasoning)
    else:
        reasoning = sum(1 for kind, _ in sent if kind == "reasoning")
    prompt = s.prompt_tokens if s.prompt_tokens is not None else _estimate_prompt_tokens(ctx.body)
    return prompt, completion + reasoning, reasoning


def _price(models: list[dict[str, Any]], model: str) -> tuple[float, float]:
    for entry in models:
        if entry.get("id") == model:
            pricing = entry.get("pricing") or {}
            return float(pricing.get("prompt", 0)), float(pricing.get("completion", 0))
    return 0.0000025, 0.00001


def _usage(ctx: _Ctx, counts: tuple[int, int, int], price: tuple[float, float]) -> dict[str, Any]:
    s = ctx.scenario
    if s.usage is not None:
        return dict(s.usage)
    prompt, completion, reasoning = counts
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    persona = ctx.persona
    if persona == "openrouter":
        if not s.usage_omit_cost:
            usage["cost"] = round(prompt * price[0] + completion * price[1], 10)
        usage["is_byok"] = False
        nulls = s.usage_null_details
        usage["prompt_tokens_details"] = None if nulls else {"cached_tokens": s.cached_tokens}
        usage["cost_details"] = None if nulls else {"upstream_inference_cost": None}
        usage["completion_tokens_details"] = None if nulls else {"reasoning_tokens": reasoning}
    elif persona == "openai":
        usage["prompt_tokens_details"] = {"cached_tokens": s.cached_tokens, "audio_tokens": 0}
        usage["completion_tokens_details"] = {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
    return usage


class _Builder:
    """Turns pieces into the SSE bytes of one persona."""

    def __init__(self, ctx: _Ctx) -> None:
        s = ctx.scenario
        self.ctx = ctx
        self.s = s
        self.persona = ctx.persona
        self.le = s.line_ending.encode()
        self.enc = _JSON_SORTED if self.persona == "llamacpp-legacy" else _JSON
        legacy_field = self.persona in ("llamacpp-legacy", "vllm-old")
        self.rfield = s.reasoning_field or ("reasoning_content" if legacy_field else "reasoning")
        self.sent_completion = 0
        self._template: tuple[bytes, bytes] | None = None
        self._cache: dict[str, bytes] = {}

    # framing
    def frame(self, obj: Any) -> bytes:
        return b"data: " + self.enc.encode(obj).encode() + self.le + self.le

    def comment(self) -> bytes | None:
        if self.persona in ("openai", "vllm-old", "ollama"):
            return None
        text = self.s.keepalive_text
        if text is None:
            text = ":" if self.persona == "llamacpp-legacy" else KEEPALIVE_TEXT
        return text.encode() + self.le + self.le

    def keepalives_before(self) -> int:
        if self.s.keepalives_before is not None:
            return self.s.keepalives_before
        return 1 if self.persona in ("openrouter", "llamacpp-legacy") else 0

    def done(self) -> bytes:
        return b"data: [DONE]" + self.le + self.le

    def final(self, event: bytes) -> bytes:
        """The last event of the stream, with the scripted ending."""
        s = self.s
        if s.no_final_newline:
            return event[: -2 * len(self.le)]
        blank = s.no_final_blank_line
        if blank is None:
            blank = self.persona == "llamacpp-legacy"
        return event[: -len(self.le)] if blank else event

    # chunk objects
    def chunk(self, choices: list[Any], usage: Any = _MISSING) -> dict[str, Any]:
        c, p = self.ctx, self.persona
        fp = self.s.system_fingerprint
        head: dict[str, Any] = {"id": c.gen_id}
        if p == "openrouter":
            d = {**head, "provider": self.s.provider, "model": c.model}
            d.update({"object": "chat.completion.chunk", "created": c.created, "choices": choices})
            if fp is not None:
                d["system_fingerprint"] = fp
        else:
            d = {**head, "object": "chat.completion.chunk", "created": c.created, "model": c.model}
            if p == "openai":
                d["service_tier"] = "default"
                d["system_fingerprint"] = fp
            elif p == "ollama":
                d["system_fingerprint"] = fp or "fp_ollama"
            elif p == "llamacpp-legacy":
                d["system_fingerprint"] = fp or "b5000-fakeserver"
            d["choices"] = choices
            if p == "openai" and c.include_usage:
                d["usage"] = None
            if p == "vllm-old" and c.continuous_usage:
                prompt = _token_counts(c, [])[0]
                done = self.sent_completion
                d["usage"] = {
                    "prompt_tokens": prompt,
                    "total_tokens": prompt + done,
                    "completion_tokens": done,
                }
        if usage is not _MISSING:
            d["usage"] = usage
        return d

    def choice(
        self, delta: dict[str, Any], finish: str | None = None, native: str | None = None
    ) -> dict[str, Any]:
        if self.persona == "openrouter":
            return {
                "index": 0,
                "delta": delta,
                "finish_reason": finish,
                "native_finish_reason": native,
                "logprobs": None,
            }
        if self.persona in ("openai", "vllm-old"):
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {"index": 0, "delta": delta, "finish_reason": finish}

    def _delta(self, **fields: Any) -> dict[str, Any]:
        if self.persona in ("openrouter", "ollama"):
            return {"role": "assistant", **fields}
        return fields

    def content_delta(self, text: Any) -> dict[str, Any]:
        delta = self._delta(content=text)
        if self.persona == "openrouter" and self.s.reasoning_null_on_content:
            delta.update(reasoning=None, reasoning_details=[])
        return delta

    # events
    def role(self) -> bytes | None:
        p = self.persona
        if p == "ollama":
            return None
        if p == "openai":
            delta: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
        elif p == "llamacpp-legacy":
            delta = {"role": "assistant", "content": None}
        else:
            delta = {"role": "assistant", **self.content_delta("")}
        return self.frame(self.chunk([self.choice(delta)]))

    def content(self, text: str) -> bytes:
        self.sent_completion += 1
        if self.ctx.continuous_usage and self.persona == "vllm-old":
            return self.frame(self.chunk([self.choice(self.content_delta(text))]))
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        if self._template is None:
            sentinel = "\x00\x01piece\x01\x00"
            raw = self.frame(self.chunk([self.choice(self.content_delta(sentinel))]))
            head, tail = raw.split(self.enc.encode(sentinel).encode())
            self._template = (head, tail)
        head, tail = self._template
        data = head + self.enc.encode(text).encode() + tail
        if len(self._cache) < 4096 and len(text) < 256:
            self._cache[text] = data
        return data

    def piece(self, kind: str, payload: Any) -> bytes:
        if kind == "content":
            return self.content(payload)
        if kind == "lazy":
            s = self.s
            text = s.content_fn(payload) if s.content_fn else f"{time.time_ns()}\n"
            return self.content(text)
        if kind == "tool":
            self.sent_completion += 1
            if self.persona == "openrouter":
                delta = self._delta(content=None, tool_calls=payload)
            elif self.persona == "ollama":
                delta = self._delta(content="", tool_calls=payload)
            else:
                delta = {"tool_calls": payload}
            return self.frame(self.chunk([self.choice(delta)]))
        detail_base = {"id": None, "format": "anthropic-claude-v1", "index": 0}
        if kind == "reasoning":
            self.sent_completion += 1
            if self.persona == "openrouter":
                delta = self._delta(content="", **{self.rfield: payload})
                if self.s.reasoning_details:
                    detail = {"type": "reasoning.text", "text": payload, "signature": None}
                    delta["reasoning_details"] = [{**detail, **detail_base}]
            elif self.persona == "ollama":
                delta = self._delta(content="", **{self.rfield: payload})
            else:
                delta = {self.rfield: payload}
            return self.frame(self.chunk([self.choice(delta)]))
        if kind == "signature":
            detail = {"type": "reasoning.text", "signature": payload, **detail_base}
        else:  # encrypted
            detail = {"type": "reasoning.encrypted", "data": payload, **detail_base}
        delta = self._delta(content="", reasoning=None, reasoning_details=[detail])
        return self.frame(self.chunk([self.choice(delta)]))

    def finish(self, reason: str, native: str | None, usage: dict[str, Any] | None) -> bytes:
        p = self.persona
        if p in ("openai", "llamacpp-legacy"):
            delta: dict[str, Any] = {}
        elif p == "vllm-old":
            delta = {"content": ""}
        else:
            delta = self._delta(content="")
        choice = self.choice(delta, reason, native if p == "openrouter" else None)
        if p == "llamacpp-legacy" and usage is not None:
            obj = self.chunk([choice], usage=usage)
            obj["timings"] = {"prompt_n": usage.get("prompt_tokens"), "predicted_per_second": 50.0}
            return self.frame(obj)
        return self.frame(self.chunk([choice]))

    def usage_event(self, usage: dict[str, Any] | None) -> bytes | None:
        if usage is None:
            return None
        if self.persona == "openrouter":
            if self.s.usage_style == "legacy":
                choices = [self.choice(self._delta(content=""))]
            else:
                choices = []
            return self.frame(self.chunk(choices, usage=usage))
        if self.persona in ("openai", "ollama", "vllm-old") and self.ctx.include_usage:
            return self.frame(self.chunk([], usage=usage))
        return None

    def error_event(self, err: dict[str, Any]) -> bytes:
        c, p = self.ctx, self.persona
        message = str(err.get("message", ""))
        code = err.get("code")
        etype = (err.get("metadata") or {}).get("error_type") or "server_error"
        int_code = code if isinstance(code, int) else 500
        if p == "openrouter":
            choices = []
            if not self.s.midstream_error_choices_empty:
                choices = [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]
            obj = {
                "id": c.gen_id,
                "object": "chat.completion.chunk",
                "created": c.created,
                "model": c.model,
                "provider": self.s.provider,
                "error": err,
                "choices": choices,
            }
            return self.frame(obj)
        if p == "llamacpp-legacy":
            legacy = {"code": int_code, "message": message, "type": "server_error"}
            return b"error: " + self.enc.encode(legacy).encode() + self.le + self.le
        if p == "vllm-old":
            kind = "InternalServerError" if int_code >= 500 else "BadRequestError"
            flat = {"object": "error", "message": message, "type": kind, "param": None}
            return self.frame({**flat, "code": int_code})
        generic_code = None if p == "ollama" or code is None else str(code)
        generic_type = "api_error" if p == "ollama" else etype
        error = {"message": message, "type": generic_type, "param": None, "code": generic_code}
        return self.frame({"error": error})


def _merge_tool_fragments(fragments: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    for frag in fragments:
        index = frag.get("index", len(calls) - 1 if calls else 0)
        while len(calls) <= index:
            calls.append(
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
            )
        call = calls[index]
        if frag.get("id") is not None:
            call["id"] = frag["id"]
        fn = frag.get("function") or {}
        if fn.get("name"):
            call["function"]["name"] = fn["name"]
        call["function"]["arguments"] += fn.get("arguments") or ""
    return calls


def _midstream_position(s: Scenario, n: int) -> int | None:
    if s.midstream_error_after is not None:
        return min(s.midstream_error_after, n)
    return n if s.midstream_error is not None else None


def _finish_reasons(s: Scenario, pieces: list[tuple[str, Any]]) -> tuple[str, str]:
    has_tools = any(kind == "tool" for kind, _ in pieces)
    reason = s.finish_reason or ("tool_calls" if has_tools else "stop")
    return reason, s.native_finish_reason or reason


def _completion_body(
    ctx: _Ctx, pieces: list[tuple[str, Any]], usage: dict[str, Any] | None
) -> dict[str, Any]:
    """The ``chat.completion`` object of a non-streaming answer."""
    s, p = ctx.scenario, ctx.persona
    err_at = _midstream_position(s, len(pieces))
    sent = pieces if err_at is None else pieces[:err_at]
    builder = _Builder(ctx)
    texts = []
    for kind, payload in sent:
        if kind == "content":
            texts.append(payload)
        elif kind == "lazy":
            texts.append(s.content_fn(payload) if s.content_fn else f"{time.time_ns()}\n")
    reasoning = "".join(payload for kind, payload in sent if kind == "reasoning")
    calls = _merge_tool_fragments(f for kind, frags in sent if kind == "tool" for f in frags)
    for call in calls:
        call.pop("index", None)
    text = "".join(texts)
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if p in ("openrouter", "openai"):
        message["refusal"] = None
    if p == "openrouter":
        message["reasoning"] = reasoning or None
        if reasoning and s.reasoning_details:
            detail = {
                "type": "reasoning.text",
                "text": reasoning,
                "signature": s.reasoning_signature,
            }
            message["reasoning_details"] = [
                {**detail, "id": None, "format": "anthropic-claude-v1", "index": 0}
            ]
    elif reasoning:
        message[builder.rfield] = reasoning
    if calls:
        message["tool_calls"] = calls
    reason, native = _finish_reasons(s, pieces)
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": reason}
    if p == "openrouter":
        choice["native_finish_reason"] = native
    choice["message"] = message
    if err_at is not None:
        choice["finish_reason"] = "error"
        choice["error"] = s.midstream_error or _DEFAULT_MIDSTREAM
    body: dict[str, Any] = {"id": ctx.gen_id}
    if p == "openrouter":
        body.update(provider=s.provider, model=ctx.model)
    body.update(object="chat.completion", created=ctx.created)
    if p != "openrouter":
        body["model"] = ctx.model
    body["choices"] = [choice]
    if s.system_fingerprint is not None or p in ("openai", "ollama"):
        body["system_fingerprint"] = s.system_fingerprint or (
            "fp_ollama" if p == "ollama" else None
        )
    if usage is not None:
        body["usage"] = usage
    return body


# --------------------------------------------------------------------------------------------
# Socket plumbing


def _peer_closed(sock: socket.socket, timeout: float) -> bool:
    """Wait up to ``timeout`` for the socket to become readable; True if the peer has closed."""
    try:
        readable, _, _ = select.select([sock], [], [], timeout)
    except (OSError, ValueError):
        return True
    if not readable:
        return False
    try:
        data = sock.recv(1, socket.MSG_PEEK | getattr(socket, "MSG_DONTWAIT", 0))
    except BlockingIOError:
        return False
    except OSError:
        return True
    if data:  # the client sent more (a pipelined request): nothing to learn, don't spin
        time.sleep(timeout)
        return False
    return True


class _Writer:
    """Writes one chunked response body, honouring the scenario's write splitting and timing."""

    def __init__(self, fake: FakeOpenRouter, sock: socket.socket, ctx: _Ctx, ka: bytes | None):
        s = ctx.scenario
        self._fake, self._ctx, self._sock = fake, ctx, sock
        self._mode = s.split
        self._buf = bytearray()
        self._rng = random.Random(s.split_seed)
        self._max = max(1, s.split_max)
        self._cut = self._rng.randint(1, self._max)
        self._keepalive = ka
        self._data_started = False
        self._last_check = time.monotonic()
        self.headers_sent = False
        self.sent = 0  # pieces written so far

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(b"%X\r\n" % len(data) + data + b"\r\n")
        except OSError as exc:
            raise _ClientGone from exc

    def write(self, data: bytes) -> None:
        if self._mode == "event":
            self._send(data)
        elif self._mode == "coalesce":
            self._buf += data
            if len(self._buf) >= _BLOCK:
                self._send(bytes(self._buf))
                self._buf.clear()
        else:
            self._buf += data
            self._split(final=False)
        now = time.monotonic()
        if now - self._last_check >= _POLL:
            self._last_check = now
            self.check()

    def _split(self, final: bool) -> None:
        buf, pos = self._buf, 0
        while len(buf) - pos >= self._cut:
            self._send(bytes(buf[pos : pos + self._cut]))
            pos += self._cut
            self._cut = self._rng.randint(1, self._max)
        if final and pos < len(buf):
            self._send(bytes(buf[pos:]))
            pos = len(buf)
        del buf[:pos]

    def flush(self) -> None:
        if self._mode == "coalesce" and self._buf:
            self._send(bytes(self._buf))
            self._buf.clear()
        elif self._mode == "bytes":
            self._split(final=True)

    def end(self) -> None:
        self.flush()
        try:
            self._sock.sendall(b"0\r\n\r\n")
        except OSError as exc:
            raise _ClientGone from exc

    def check(self) -> None:
        if self._fake._aborted(self._ctx):
            raise _Close
        if _peer_closed(self._sock, 0):
            raise _ClientGone

    def idle(self, seconds: float, keepalive_every: float | None = None) -> None:
        """Wait, watching for a disconnect, sending keep-alive comments if asked."""
        self.flush()
        now = time.monotonic()
        deadline = now + seconds
        every = keepalive_every if self._keepalive is not None and self.headers_sent else None
        next_ka = now + every if every else math.inf
        while True:
            self.check()
            now = time.monotonic()
            if now >= deadline:
                return
            if every and now >= next_ka:
                self.write(self._keepalive or b"")
                self.flush()
                next_ka += every
                continue
            if _peer_closed(self._sock, min(_POLL, deadline - now, next_ka - now)):
                raise _ClientGone

    def pace(self) -> None:
        """Apply ``chunk_delay`` before every data event but the first."""
        s = self._ctx.scenario
        if self._data_started and s.chunk_delay > 0:
            self.idle(s.chunk_delay, s.keepalive_every)
        self._data_started = True

    def gate(self, gate: Gate, index: int) -> None:
        self.flush()
        deadline = time.monotonic() + gate.timeout
        while not gate.wait(index, _POLL):
            self.check()
            if time.monotonic() >= deadline:
                gate.timed_out = True
                raise _Close


def _drop(handler: BaseHTTPRequestHandler) -> None:
    handler.close_connection = True
    with contextlib.suppress(OSError):
        handler.connection.shutdown(socket.SHUT_RDWR)


def _send_bytes(
    handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: Mapping[str, str]
) -> None:
    handler.send_response(status, _REASONS.get(status))
    for key, value in headers.items():
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _send_json(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: Any,
    headers: Mapping[str, str] | None = None,
) -> None:
    data = _JSON.encode(body).encode()
    _send_bytes(handler, status, data, {"Content-Type": "application/json", **(headers or {})})


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length > 0 else b""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 60  # a client that stops reading for this long is dropped
    server_header = "cloudflare"
    server: _HTTPServer

    def version_string(self) -> str:
        return self.server_header

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, add=False)

    def _dispatch(self) -> None:
        try:
            self.server.fake._handle(self)
        except (OSError, _ClientGone, _Close):
            _drop(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    fake: FakeOpenRouter

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


# --------------------------------------------------------------------------------------------
# The server


class FakeOpenRouter:
    """A scriptable OpenRouter (and generic OpenAI-compatible) server on a local port.

    Settings (``reset()`` restores the constructor's values): ``api_key``, ``require_auth``,
    ``persona``, ``default_scenario`` (a Scenario or a canned name), ``generation_404_polls``
    (``/generation`` answers 404 that many times per id first), ``key_limit`` / ``spent`` /
    ``key_label`` / ``management_key`` / ``credits_total`` (``/key`` and ``/credits``),
    ``models`` (the ``/models`` list) and ``models_style`` ("openrouter" | "generic"; None:
    generic for every persona but "openrouter").

    Records: ``requests`` (every request, ``Recorded``), ``disconnects`` (``(generation id,
    time.monotonic())`` per client disconnect seen while answering) and ``generations``
    (id -> ``Generation``).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str = DEFAULT_API_KEY,
        require_auth: bool = True,
        persona: Persona = "openrouter",
        default_scenario: Scenario | str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._defaults = (api_key, require_auth, persona, default_scenario)
        self._cond = threading.Condition()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._epoch = 0
        self._active = 0  # chat responses being written (live count, survives reset)
        self.reset()

    # lifecycle
    def start(self) -> FakeOpenRouter:
        self._stopping.clear()
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        with self._cond:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def __enter__(self) -> FakeOpenRouter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL clients use: ``http://127.0.0.1:PORT/api/v1``."""
        return f"http://{self.host}:{self.port}/api/v1"

    @property
    def openai_url(self) -> str:
        """The same server under the ``/v1`` prefix of generic OpenAI-compatible servers."""
        return f"http://{self.host}:{self.port}/v1"

    # scripting
    def reset(self) -> None:
        """Forget queue and records, restore settings, and drop streams still in flight."""
        api_key, require_auth, persona, default_scenario = self._defaults
        with self._cond:
            self._epoch += 1
            self.api_key = api_key
            self.require_auth = require_auth
            self.persona: Persona = persona
            self.default_scenario: Scenario | str = default_scenario or Scenario(
                content=list(DEMO_CONTENT)
            )
            self.generation_404_polls = 0
            self.key_label = "sk-or-v1-tes...est"
            self.key_limit: float | None = 10.0
            self.spent = 0.0
            self.management_key = False
            self.credits_total = 25.0
            self.models = default_models()
            self.models_style: Literal["openrouter", "generic"] | None = None
            self.requests: list[Recorded] = []
            self.disconnects: list[tuple[str, float]] = []
            self.generations: dict[str, Generation] = {}
            self._queue: deque[list[Any]] = deque()
            self._disconnects_seen = 0
            self._generation_polls: dict[str, int] = {}
            self._cond.notify_all()

    def enqueue(self, *scenarios: Scenario) -> None:
        """Queue scenarios for the next chat requests (each served ``repeat`` times)."""
        with self._cond:
            for scenario in scenarios:
                self._queue.append([scenario, max(1, scenario.repeat)])

    @property
    def pending(self) -> int:
        """Queued responses not served yet."""
        with self._cond:
            return sum(entry[1] for entry in self._queue)

    @property
    def chat_requests(self) -> list[Recorded]:
        with self._cond:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def last_request(self) -> Recorded | None:
        with self._cond:
            return self.requests[-1] if self.requests else None

    # waiting
    def wait_disconnect(self, timeout: float) -> float | None:
        """Monotonic time of the next client disconnect not yet returned, or None on timeout."""
        with self._cond:
            if not self._cond.wait_for(
                lambda: len(self.disconnects) > self._disconnects_seen, timeout
            ):
                return None
            moment = self.disconnects[self._disconnects_seen][1]
            self._disconnects_seen += 1
            return moment

    def wait_requests(self, count: int, timeout: float, suffix: str = "/chat/completions") -> bool:
        """Wait until ``count`` requests whose path ends with ``suffix`` have arrived."""

        def arrived() -> bool:
            return sum(r.path.endswith(suffix) for r in self.requests) >= count

        with self._cond:
            return self._cond.wait_for(arrived, timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no chat response is being written."""
        with self._cond:
            return self._cond.wait_for(lambda: self._active == 0, timeout)

    # request handling
    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._cond:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _aborted(self, ctx: _Ctx) -> bool:
        return self._stopping.is_set() or ctx.epoch != self._epoch

    def _handle(self, h: _Handler) -> None:
        raw = _read_body(h)
        parts = urlsplit(h.path)
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = None
        rec = Recorded(
            method=h.command,
            path=parts.path,
            headers=Headers(h.headers.items()),
            body=body,
            time=time.monotonic(),
            query=dict(parse_qsl(parts.query)),
            raw_body=raw,
        )
        with self._cond:
            epoch = self._epoch
            self.requests.append(rec)
            self._cond.notify_all()
        h.server_header = "cloudflare" if self.persona in ("openrouter", "openai") else "uvicorn"
        path = parts.path.rstrip("/")
        routes: dict[str, tuple[str, Callable[[_Handler, Recorded, int], None]]] = {
            "/chat/completions": ("POST", self._chat),
            "/models": ("GET", self._models),
            "/generation": ("GET", self._generation),
            "/auth/key": ("GET", self._key),
            "/key": ("GET", self._key),
            "/credits": ("GET", self._credits),
        }
        for suffix, (method, serve) in routes.items():
            if path.endswith(suffix):
                if h.command != method:
                    self._error(h, 405, "Method Not Allowed")
                    return
                serve(h, rec, epoch)
                return
        self._error(h, 404, "Not Found")

    def _error(self, h: _Handler, status: int, message: str) -> None:
        _send_json(h, status, {"error": {"message": message, "code": status}})

    def _auth_failure(self, headers: Headers, persona: str, override: bool | None) -> str | None:
        required = override if override is not None else self.require_auth
        if override is None and persona == "ollama":
            required = False
        if not required:
            return None
        value = (headers.get("authorization") or "").strip()
        scheme, _, token = value.partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else value
        if not token or token.lower() == "bearer":
            return "no-auth"
        return None if token == self.api_key else "user-not-found"

    def _send_auth_error(self, h: _Handler, kind: str, persona: str) -> None:
        headers, body = build_error(401, kind, persona=persona)
        _send_json(h, 401, body, {k: v for k, v in headers.items() if k != "Content-Type"})

    def _pick(self, rec: Recorded, body: dict[str, Any]) -> tuple[Scenario | None, str, str | None]:
        """Choose the scenario; an auth failure leaves the queue untouched."""
        with self._cond:
            entry = self._queue[0] if self._queue else None
            if entry is not None:
                scenario = entry[0]
            else:
                scenario = canned_scenario(str(body.get("model") or ""), body)
                if scenario is None:
                    default = self.default_scenario
                    if isinstance(default, str):
                        name = default if default.startswith("fake/") else f"fake/{default}"
                        default = canned_scenario(name, body) or Scenario(content=DEMO_CONTENT)
                    scenario = default
            persona = scenario.persona or self.persona
            failure = self._auth_failure(rec.headers, persona, scenario.require_auth)
            if failure is not None:
                return None, persona, failure
            if entry is not None:
                entry[1] -= 1
                if entry[1] <= 0:
                    self._queue.popleft()
            return scenario, persona, None

    def _chat(self, h: _Handler, rec: Recorded, epoch: int) -> None:
        if not isinstance(rec.body, dict):
            _send_json(h, 400, {"error": {"message": "Invalid JSON in request body", "code": 400}})
            return
        body = rec.body
        scenario, persona, failure = self._pick(rec, body)
        if scenario is None:
            self._send_auth_error(h, failure or "no-auth", persona)
            return
        requested = str(body.get("model") or "")
        created = scenario.created if scenario.created is not None else int(time.time())
        options: dict[str, Any] = body.get("stream_options") or {}
        reasoning: dict[str, Any] = body.get("reasoning") or {}
        options = options if isinstance(options, dict) else {}
        reasoning = reasoning if isinstance(reasoning, dict) else {}
        ctx = _Ctx(
            scenario=scenario,
            persona=persona,
            body=body,
            requested_model=requested or DEFAULT_MODEL,
            model=scenario.served_model or requested or DEFAULT_MODEL,
            gen_id=scenario.generation_id or _new_id(persona, created),
            created=created,
            include_usage=options.get("include_usage") is True,
            continuous_usage=options.get("continuous_usage_stats") is True,
            reasoning_excluded=reasoning.get("exclude") is True
            or body.get("include_reasoning") is False,
            epoch=epoch,
            request=rec,
        )
        with self._cond:
            self._active += 1
        try:
            if scenario.reject_stream_options and "stream_options" in body:
                self._serve_error(h, ctx, 400, "stream-options")
            elif scenario.status != 200 or scenario.error_body is not None:
                self._serve_error(h, ctx, scenario.status, scenario.error_kind)
            elif body.get("stream") is True:
                self._serve_stream(h, ctx)
            else:
                self._serve_json(h, ctx)
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def _record_disconnect(self, ctx: _Ctx, gen: Generation | None) -> None:
        with self._cond:
            if gen is not None:
                gen.cancelled = True
            if ctx.epoch == self._epoch:
                self.disconnects.append((ctx.gen_id, time.monotonic()))
                self._cond.notify_all()

    def _wait_before_headers(self, h: _Handler, ctx: _Ctx, gen: Generation | None) -> bool:
        """Apply ``delay_headers``; False when the client left meanwhile."""
        if ctx.scenario.delay_headers <= 0:
            return True
        try:
            _Writer(self, h.connection, ctx, None).idle(ctx.scenario.delay_headers)
        except _ClientGone:
            self._record_disconnect(ctx, gen)
            _drop(h)
            return False
        return True

    def _serve_error(self, h: _Handler, ctx: _Ctx, status: int, kind: str | None) -> None:
        s = ctx.scenario
        if not self._wait_before_headers(h, ctx, None):
            return
        if s.error_body is not None and kind != "stream-options":
            body: Any = s.error_body
            headers = {
                "Content-Type": "application/json" if isinstance(body, dict) else "text/html"
            }
            if s.retry_after is not None:
                headers["Retry-After"] = _seconds(s.retry_after)
        else:
            headers, body = build_error(
                status,
                kind,
                model=ctx.requested_model,
                persona=ctx.persona,
                retry_after=s.retry_after,
                message=s.error_message,
                provider=s.provider,
            )
        headers.update(s.headers)
        if s.content_type:
            headers["Content-Type"] = s.content_type
        data = body.encode() if isinstance(body, str) else _JSON.encode(body).encode()
        _send_bytes(h, status, data, headers)

    def _open_generation(self, ctx: _Ctx, streamed: bool) -> Generation:
        headers = ctx.request.headers
        gen = Generation(
            id=ctx.gen_id,
            model=ctx.model,
            provider=ctx.scenario.provider,
            streamed=streamed,
            created_at=time.time(),
            origin=headers.get("http-referer") or "",
            user_agent=headers.get("user-agent") or "",
            external_user=ctx.body.get("user") if isinstance(ctx.body.get("user"), str) else None,
        )
        with self._cond:
            if ctx.epoch == self._epoch:
                self.generations[gen.id] = gen
        return gen

    def _close_generation(
        self,
        ctx: _Ctx,
        gen: Generation,
        counts: tuple[int, int, int],
        finish: tuple[str, str] | None,
    ) -> None:
        prompt, completion, reasoning = counts
        price = _price(self.models, ctx.model)
        with self._cond:
            gen.tokens_prompt, gen.tokens_completion = prompt, completion
            gen.tokens_reasoning, gen.tokens_cached = reasoning, ctx.scenario.cached_tokens
            gen.cost = round(prompt * price[0] + completion * price[1], 10)
            if finish is not None:
                gen.finish_reason, gen.native_finish_reason = finish
            elapsed = int((time.monotonic() - ctx.request.time) * 1000)
            gen.latency_ms = gen.generation_ms = elapsed
            gen.done = True
            if ctx.epoch == self._epoch:
                self.spent = round(self.spent + gen.cost, 10)

    def _serve_json(self, h: _Handler, ctx: _Ctx) -> None:
        s = ctx.scenario
        gen = self._open_generation(ctx, streamed=False)
        pieces = _pieces(ctx)
        if not self._wait_before_headers(h, ctx, gen):
            self._close_generation(ctx, gen, _token_counts(ctx, pieces, 0), None)
            return
        if s.abrupt_close_after is not None:
            _drop(h)
            self._close_generation(ctx, gen, _token_counts(ctx, pieces, 0), None)
            return
        counts = _token_counts(ctx, pieces)
        usage = (
            None if s.usage_style is None else _usage(ctx, counts, _price(self.models, ctx.model))
        )
        body = _completion_body(ctx, pieces, usage)
        headers = {"X-Generation-Id": ctx.gen_id} if ctx.persona == "openrouter" else {}
        headers.update(s.headers)
        if s.content_type:
            headers["Content-Type"] = s.content_type
        _send_json(h, 200, body, headers)
        choice = body["choices"][0]
        self._close_generation(
            ctx, gen, counts, (choice["finish_reason"], choice.get("native_finish_reason"))
        )

    def _stream_headers(self, ctx: _Ctx) -> dict[str, str]:
        s = ctx.scenario
        if ctx.persona == "openrouter":
            headers = {
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Generation-Id": ctx.gen_id,
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Expose-Headers": "X-Generation-Id,X-Provider-Name,cf-ray",
            }
        else:
            headers = {
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        headers.update(s.headers)
        if s.content_type:
            headers["Content-Type"] = s.content_type
        headers["Transfer-Encoding"] = "chunked"
        return headers

    def _serve_stream(self, h: _Handler, ctx: _Ctx) -> None:
        s = ctx.scenario
        gen = self._open_generation(ctx, streamed=True)
        pieces = _pieces(ctx)
        builder = _Builder(ctx)
        w = _Writer(self, h.connection, ctx, builder.comment())
        finish: tuple[str, str] | None = None
        try:
            if s.delay_headers > 0:
                w.idle(s.delay_headers)
            h.send_response(200)
            for key, value in self._stream_headers(ctx).items():
                h.send_header(key, value)
            h.end_headers()
            w.headers_sent = True
            finish = self._stream_body(ctx, builder, w, pieces)
            w.end()
        except _ClientGone:
            self._record_disconnect(ctx, gen)
            _drop(h)
        except _Close:
            _drop(h)
        except OSError:
            self._record_disconnect(ctx, gen)
            _drop(h)
        finally:
            counts = _token_counts(ctx, pieces, None if finish else w.sent)
            self._close_generation(ctx, gen, counts, finish)

    def _stream_body(
        self, ctx: _Ctx, b: _Builder, w: _Writer, pieces: list[tuple[str, Any]]
    ) -> tuple[str, str] | None:
        """Write everything after the headers; returns the finish reasons (None: no finish)."""
        s = ctx.scenario
        keepalive = b.comment()
        if keepalive is not None:
            for _ in range(b.keepalives_before()):
                w.write(keepalive)
        if s.delay_first_data > 0:
            w.idle(s.delay_first_data, s.keepalive_every)
        role = b.role()
        if role is not None:
            w.pace()
            w.write(role)
        n = len(pieces)
        cut = None if s.abrupt_close_after is None else min(s.abrupt_close_after, n)
        err_at = _midstream_position(s, n)
        every = s.keepalive_every_chunks
        for i in range(n + 1):
            w.sent = i
            if i == cut:
                w.flush()
                raise _Close
            if i in (err_at, n):
                break
            if i == s.stall_after and s.stall_seconds > 0:
                w.idle(s.stall_seconds, s.keepalive_every)
            if s.gate is not None and i >= 1:
                w.gate(s.gate, i)
            if i == s.raw_event_after:
                w.write(s.raw_event)
            if every and keepalive is not None and i and i % every == 0:
                w.write(keepalive)
            w.pace()
            kind, payload = pieces[i]
            w.write(b.piece(kind, payload))
        finish = None
        if err_at is not None:
            tail = [b.error_event(s.midstream_error or _DEFAULT_MIDSTREAM)]
            if s.done_after_error or ctx.persona == "llamacpp-legacy":
                tail.append(b.done())
        else:
            counts = _token_counts(ctx, pieces)
            usage = None
            if s.usage_style is not None:
                usage = _usage(ctx, counts, _price(self.models, ctx.model))
            finish = _finish_reasons(s, pieces)
            tail = []
            if s.send_finish:
                tail.append(b.finish(finish[0], finish[1], usage))
            usage_event = b.usage_event(usage)
            if usage_event is not None:
                tail.append(usage_event)
            if s.send_done:
                tail.append(b.done())
        if tail:
            tail[-1] = b.final(tail[-1])
        for event in tail:
            w.pace()
            w.write(event)
        return finish

    # side endpoints
    def _models(self, h: _Handler, rec: Recorded, epoch: int) -> None:
        models = list(self.models)
        wanted = [p for p in rec.query.get("supported_parameters", "").split(",") if p]
        if wanted:
            models = [m for m in models if set(wanted) <= set(m.get("supported_parameters", []))]
        outputs = rec.query.get("output_modalities", "text")
        if outputs != "all":
            kinds = set(outputs.split(","))
            models = [
                m
                for m in models
                if kinds & set(m.get("architecture", {}).get("output_modalities", ["text"]))
            ]
        style = self.models_style or ("openrouter" if self.persona == "openrouter" else "generic")
        if style == "generic":
            data = [
                {
                    "id": m["id"],
                    "object": "model",
                    "created": m.get("created", 0),
                    "owned_by": "fake",
                }
                for m in models
            ]
            _send_json(h, 200, {"object": "list", "data": data})
            return
        body = {"data": models, "total_count": len(models), "links": {"next": None}}
        _send_json(h, 200, body, {"Cache-Control": "public, max-age=300"})

    def _side_auth(self, h: _Handler, rec: Recorded) -> bool:
        failure = self._auth_failure(rec.headers, self.persona, None)
        if failure is not None:
            self._send_auth_error(h, failure, self.persona)
            return False
        return True

    def _generation(self, h: _Handler, rec: Recorded, epoch: int) -> None:
        if not self._side_auth(h, rec):
            return
        gen_id = rec.query.get("id", "")
        with self._cond:
            gen = self.generations.get(gen_id)
            polls = self._generation_polls.get(gen_id, 0)
            self._generation_polls[gen_id] = polls + 1
            data = gen.as_json() if gen is not None else None
        if data is None or polls < self.generation_404_polls:
            message = f"Generation {gen_id} not found" if gen_id else "Missing generation id"
            self._error(h, 404 if gen_id else 400, message)
            return
        _send_json(h, 200, {"data": data})

    def _key(self, h: _Handler, rec: Recorded, epoch: int) -> None:
        if not self._side_auth(h, rec):
            return
        spent = self.spent
        limit = self.key_limit
        data = {
            "label": self.key_label,
            "limit": limit,
            "limit_remaining": None if limit is None else round(limit - spent, 10),
            "limit_reset": None,
            "include_byok_in_limit": False,
            "usage": spent,
            "usage_daily": spent,
            "usage_weekly": spent,
            "usage_monthly": spent,
            "byok_usage": 0,
            "byok_usage_daily": 0,
            "byok_usage_weekly": 0,
            "byok_usage_monthly": 0,
            "is_free_tier": False,
            "is_management_key": self.management_key,
            "is_provisioning_key": self.management_key,
            "creator_user_id": _USER_ID,
            "expires_at": None,
            "rate_limit": {"requests": -1, "interval": "10s", "note": "deprecated; ignore"},
        }
        _send_json(h, 200, {"data": data})

    def _credits(self, h: _Handler, rec: Recorded, epoch: int) -> None:
        if not self._side_auth(h, rec):
            return
        if not self.management_key:
            self._error(h, 403, "Only management keys can perform this operation")
            return
        _send_json(
            h, 200, {"data": {"total_credits": self.credits_total, "total_usage": self.spent}}
        )


# --------------------------------------------------------------------------------------------
# Command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakeserver",
        description="Serve a fake OpenRouter API on a local port until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument("--key", default=DEFAULT_API_KEY, help="API key to require")
    auth.add_argument("--no-auth", action="store_true", help="accept any key, or none")
    parser.add_argument("--scenario", help="canned scenario for every request, e.g. slow or echo")
    parser.add_argument("--persona", choices=PERSONAS, default="openrouter")
    args = parser.parse_args(argv)
    scenario = args.scenario
    if scenario is not None:
        scenario = scenario if scenario.startswith("fake/") else f"fake/{scenario}"
        if canned_scenario(scenario, {}) is None:
            parser.error(f"unknown scenario: {args.scenario}")
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    server = FakeOpenRouter(
        args.host,
        args.port,
        api_key=args.key,
        require_auth=not args.no_auth,
        persona=args.persona,
        default_scenario=scenario,
    )
    server.start()
    try:
        print(f"rill fake server listening on {server.url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
