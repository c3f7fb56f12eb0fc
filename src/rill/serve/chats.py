"""The chat endpoints: rill's own event stream (``-f sse``, byte for byte), the JSON of
``history list``, ``history show`` and ``usage --json``, and the active requests."""

from __future__ import annotations

from typing import Any

import anyio
from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse, Response

from rill.errors import RillError
from rill.input.prompting import build_messages
from rill.output.formats import SSERenderer
from rill.serve.context import BadRequest, ServeContext, error_response, read_json
from rill.serve.streaming import Buffer, Opening, Pump, StepResponse, render_with, sse_headers
from rill.stream.pipeline import Step
from rill.stream.protocol import Request


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadRequest(400, f"{name} must be a {'non-empty ' if required else ''}string")
    return value


def _store(ctx: ServeContext) -> Any:
    if ctx.store is None:
        raise BadRequest(404, "history is off (--no-history)", "not_found")
    return ctx.store


def _continued(ctx: ServeContext, ref: str) -> tuple[str | None, str | None, list[Any]]:
    """(chat id, its model, its messages) of the chat a message continues; ``new``: none."""
    if ref == "new":
        return None, None, []
    store = _store(ctx)
    try:
        chat_id = store.resolve(ref)
    except RillError as exc:
        raise BadRequest(404, exc.message, "not_found") from None
    model, _base_url = store.origin(chat_id)  # the chat goes on on this server's upstream
    return chat_id, model, store.conversation(chat_id)


async def message_stream(request: HTTPRequest) -> Response:
    ctx: ServeContext = request.app.state.rill
    try:
        body = await read_json(request)
        content = _text(body, "content", required=True) or ""
        model = _text(body, "model")
        system = _text(body, "system")
        ref = request.path_params["chat_id"]
        chat_id, chat_model, earlier = await anyio.to_thread.run_sync(_continued, ctx, ref)
    except BadRequest as exc:
        return error_response(exc.status, exc.message, exc.kind)
    settings = ctx.settings
    if system is None and not earlier:
        system = settings.system
    messages, turn = build_messages(content, system, earlier)
    upstream = Request(
        messages=messages,
        model=model or chat_model or settings.model,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
    )
    stream = ctx.stream(upstream, chat_id=chat_id, turn=turn)
    buffer = Buffer()
    write = render_with(SSERenderer(buffer.binary()), buffer, stream)
    pump = Pump(
        stream,
        ctx.registry,
        ctx.pools,
        model=upstream.model,
        endpoint="/api/chats",
        write=write,
    )

    async def open_(step: Step, data: bytes) -> Opening:
        return 200, sse_headers(pump.entry.id), True, data

    return StepResponse(pump, open_)


async def list_chats(request: HTTPRequest) -> Response:
    ctx: ServeContext = request.app.state.rill
    raw = request.query_params.get("limit", "20")
    if not raw.isdigit() or int(raw) < 1:
        return error_response(400, "limit must be a positive integer", "invalid_request_error")
    try:
        store = _store(ctx)
    except BadRequest:
        return JSONResponse([])
    rows = await anyio.to_thread.run_sync(store.list_chats, int(raw))
    return JSONResponse(rows)


def _show(ctx: ServeContext, ref: str) -> dict[str, Any]:
    from rill.commands.history import public

    store = _store(ctx)
    try:
        chat = store.load(store.resolve(ref))
    except RillError as exc:
        raise BadRequest(404, exc.message, "not_found") from None
    return {**chat, "exchanges": [public(ex) for ex in chat.get("exchanges", [])]}


async def show_chat(request: HTTPRequest) -> Response:
    ctx: ServeContext = request.app.state.rill
    try:
        chat = await anyio.to_thread.run_sync(_show, ctx, request.path_params["chat_id"])
    except BadRequest as exc:
        return error_response(exc.status, exc.message, exc.kind)
    return JSONResponse(chat)


def _usage(ctx: ServeContext, since: str | None, by: str) -> dict[str, Any]:
    from rill.commands.history import parse_since
    from rill.history import usage_total

    try:
        start = parse_since(since)
    except Exception as exc:  # typer's BadParameter
        raise BadRequest(400, f"since: {exc}") from None
    store = ctx.store
    rows = store.usage(since=start, by=by) if store is not None else []  # type: ignore[arg-type]
    total = usage_total(rows)
    return {"by": by, "since": start.isoformat() if start else None, "rows": rows, "total": total}


async def usage(request: HTTPRequest) -> Response:
    ctx: ServeContext = request.app.state.rill
    by = request.query_params.get("by", "model")
    if by not in ("model", "day"):
        return error_response(400, "by must be model or day", "invalid_request_error")
    since = request.query_params.get("since")
    try:
        result = await anyio.to_thread.run_sync(_usage, ctx, since, by)
    except BadRequest as exc:
        return error_response(exc.status, exc.message, exc.kind)
    return JSONResponse(result)


async def list_requests(request: HTTPRequest) -> Response:
    ctx: ServeContext = request.app.state.rill
    return JSONResponse(ctx.registry.listing())


async def cancel_request(request: HTTPRequest) -> Response:
    ctx: ServeContext = request.app.state.rill
    request_id = request.path_params["request_id"]
    if not ctx.registry.cancel(request_id):
        return error_response(404, f"no active request {request_id}", "not_found")
    return JSONResponse({"id": request_id, "cancelled": True})
