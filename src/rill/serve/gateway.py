"""The OpenAI-compatible gateway: ``POST /v1/chat/completions`` and ``GET /v1/models``.

A request is sent upstream as a stream whatever the client asked, so that every answer is
journaled while it arrives and can be cancelled; a client that asked for a stream gets each
upstream read as ``chat.completion.chunk`` events (``-f openai``'s renderer) as it arrives, one
that did not gets one ``chat.completion`` object at the end. An error before the answer starts
keeps the upstream's HTTP status, with an OpenAI-shaped body.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse, Response

from rill.errors import RillError
from rill.events import Done, Error
from rill.output.formats import OpenAIRenderer, openai_usage
from rill.serve.context import BadRequest, ServeContext, error_body, error_response, read_json
from rill.serve.streaming import Buffer, Opening, Pump, StepResponse, render_with, sse_headers
from rill.stream.pipeline import Step
from rill.stream.protocol import Request

#: Body fields rill sets itself; every other field is passed upstream as the client sent it.
OWN_FIELDS = frozenset({"messages", "model", "stream", "stream_options"})


def upstream_request(body: dict[str, Any], default_model: str | None) -> Request:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest(400, "messages must be a non-empty list")
    if not all(isinstance(m, dict) for m in messages):
        raise BadRequest(400, "each message must be an object")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest(400, "model must be a string")
    extra = {k: v for k, v in body.items() if k not in OWN_FIELDS}
    return Request(messages=messages, model=model or default_model, stream=True, extra=extra)


def error_status(event: Error) -> int:
    """The HTTP status an error is answered with: the upstream's, else by its kind."""
    if event.status and 400 <= event.status <= 599:
        return event.status
    return {8: 504 if "time" in event.message else 502, 130: 499, 143: 503}.get(
        event.exit_code, 502
    )


def error_reply(event: Error) -> JSONResponse:
    kind = "upstream_error" if event.status else "rill_error"
    return error_response(error_status(event), event.message, kind, event.code)


def completion(event: Done, created: int) -> dict[str, Any]:
    """A finished answer as one ``chat.completion`` object."""
    message = {"role": "assistant", **event.message}
    message.setdefault("content", None)
    out: dict[str, Any] = {
        "id": event.id or "chatcmpl-rill",
        "object": "chat.completion",
        "created": created,
        "model": event.model or "unknown",
        "choices": [{"index": 0, "message": message, "finish_reason": event.finish_reason}],
    }
    if event.usage is not None:
        out["usage"] = openai_usage(event.usage)
    return out


async def chat_completions(request: HTTPRequest) -> Response:
    ctx: ServeContext = request.app.state.rill
    try:
        body = await read_json(request)
        upstream = upstream_request(body, ctx.settings.model)
    except BadRequest as exc:
        return error_response(exc.status, exc.message, exc.kind)
    wants_stream = body.get("stream") is True
    stream = ctx.stream(upstream, chat_id=None, turn=list(upstream.messages))
    created = int(time.time())
    buffer = Buffer()
    renderer = OpenAIRenderer(buffer.binary(), clock=lambda: created)
    write = render_with(renderer, buffer, stream) if wants_stream else None
    pump = Pump(stream, ctx.registry, ctx.pools, model=upstream.model, endpoint="/v1", write=write)

    async def open_(step: Step, data: bytes) -> Opening | None:
        if isinstance(step, Error):  # before any answer, or the end of a non-streamed one
            refusal = error_reply(step)
            headers = {"content-type": "application/json", "x-rill-request": pump.entry.id}
            return refusal.status_code, headers, False, bytes(refusal.body)
        if wants_stream:
            return 200, sse_headers(pump.entry.id), True, data
        if isinstance(step, Done):
            reply = JSONResponse(completion(step, created))
            headers = {"content-type": "application/json", "x-rill-request": pump.entry.id}
            return 200, headers, False, bytes(reply.body)
        return None  # the whole answer is sent at its end

    return StepResponse(pump, open_)


async def models(request: HTTPRequest) -> Response:
    """The upstream's model list, as OpenAI's ``GET /v1/models`` shapes it."""
    ctx: ServeContext = request.app.state.rill
    from rill.commands.upstream import fetch_models

    try:
        listed = await anyio.to_thread.run_sync(fetch_models, ctx.settings)
    except RillError as exc:
        status = getattr(exc, "status", None) or 502
        return JSONResponse(error_body(exc.message, "upstream_error", status), status_code=status)
    data = [{"object": "model", "owned_by": "rill", "created": 0, **m} for m in listed]
    return JSONResponse({"object": "list", "data": data})
