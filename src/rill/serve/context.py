"""What every endpoint of ``rill serve`` shares: the upstream settings, one connection pool,
the history store, the active-request registry and the worker threads' limits."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse

from rill.config.settings import Settings
from rill.history import ExchangeStart, HistoryStore
from rill.serve.registry import Registry
from rill.serve.streaming import Pools
from rill.serve.workers import Workers
from rill.stream.client import ChatClient, RetryPolicy
from rill.stream.control import Limits
from rill.stream.pipeline import ChatStream, ExchangeSink, NullSink
from rill.stream.protocol import Request
from rill.values import MAX_NESTING, has_non_finite, nested_deeper

#: Request bodies larger than this get 413.
MAX_BODY = 20 * 1024 * 1024
#: Streams answered at once (each holds a worker thread while it waits for the upstream).
MAX_STREAMS = 512
#: Streams' network calls running at once, not counting those waiting on the network (see
#: ``Workers``): each request is sent while the previous one is handed over.
NETWORK_RUNNING = 2
#: Threads writing records. One: the writes queue for the history's lock anyway, and under load
#: (bench/serve_bench.py) one thread left the event loop the interpreter more often than two or
#: four, and the streams' added latency was lowest.
RECORD_THREADS = 1


class BadRequest(Exception):
    """A request the server refuses before anything is sent upstream."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


@dataclass
class ServeContext:
    settings: Settings
    http: httpx.Client
    store: HistoryStore | None
    token: str | None = None
    registry: Registry = field(default_factory=Registry)
    pools: Pools = field(
        default_factory=lambda: Pools(
            Workers(MAX_STREAMS, "rill-network", NETWORK_RUNNING),
            Workers(RECORD_THREADS, "rill-records"),
        )
    )

    def stream(
        self, request: Request, *, chat_id: str | None, turn: list[dict[str, Any]]
    ) -> ChatStream:
        """A ``ChatStream`` for ``request``, recorded in history as ``turn`` of ``chat_id``
        (None: a new chat), exactly as a command run records it."""
        settings, store = self.settings, self.store

        def begin() -> ExchangeSink:
            if store is None:
                return NullSink()
            start = ExchangeStart.of(
                request, chat_id=chat_id, messages=turn, base_url=settings.base_url
            )
            return store.begin(start)

        limits = Limits(settings.timeout, settings.first_token_timeout, settings.total_timeout)
        client = ChatClient(settings, self.http, policy=RetryPolicy(settings.retries))
        return ChatStream(client, request, begin=begin, limits=limits)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


async def read_json(request: HTTPRequest) -> dict[str, Any]:
    """The request's body as a JSON object; 413 past ``MAX_BODY``, 400 when it is not one."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise BadRequest(413, f"the request body is larger than {MAX_BODY} bytes")
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > MAX_BODY:
            raise BadRequest(413, f"the request body is larger than {MAX_BODY} bytes")
        parts.append(part)
    try:
        body = json.loads(b"".join(parts), parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(400, f"the request body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(400, "the request body must be a JSON object")
    if has_non_finite(body) or nested_deeper(body, MAX_NESTING + 2):
        raise BadRequest(400, f"the request body may not nest more than {MAX_NESTING} deep")
    return body


def error_body(message: str, kind: str, code: Any = None) -> dict[str, Any]:
    """An error as OpenAI's API words it."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def error_response(status: int, message: str, kind: str, code: Any = None) -> JSONResponse:
    return JSONResponse(error_body(message, kind, code), status_code=status)
