"""Writing the answer to one chat request: a pre-stream error, a JSON body or an SSE stream."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rill.fake import hostile
from rill.fake.chunks import Builder, completion_body
from rill.fake.common import JSON, seconds
from rill.fake.error_bodies import DEFAULT_MIDSTREAM, build_error
from rill.fake.pieces import (
    Ctx,
    build_pieces,
    build_usage,
    finish_reasons,
    midstream_position,
    model_price,
    token_counts,
)
from rill.fake.records import Generation
from rill.fake.wire import ClientGone, Close, Handler, Writer, drop, send_bytes, send_json

if TYPE_CHECKING:
    from rill.fake.server import FakeOpenRouter


def wait_before_headers(fake: FakeOpenRouter, h: Handler, ctx: Ctx, gen: Generation | None) -> bool:
    """Apply ``delay_headers``; False when the client left meanwhile."""
    if ctx.scenario.delay_headers <= 0:
        return True
    try:
        Writer(fake, h.connection, ctx, None).idle(ctx.scenario.delay_headers)
    except ClientGone:
        fake.record_disconnect(ctx, gen)
        drop(h)
        return False
    return True


def serve_error(fake: FakeOpenRouter, h: Handler, ctx: Ctx, status: int, kind: str | None) -> None:
    s = ctx.scenario
    if not wait_before_headers(fake, h, ctx, None):
        return
    body: Any
    if s.echo_key is not None and kind != "stream-options":
        headers, body = hostile.key_error(s.echo_key, hostile.key_of(ctx.request.headers))
    elif s.error_body is not None and kind != "stream-options":
        body = s.error_body
        headers = {"Content-Type": "application/json" if isinstance(body, dict) else "text/html"}
        if s.retry_after is not None:
            headers["Retry-After"] = seconds(s.retry_after)
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
    data = body.encode() if isinstance(body, str) else JSON.encode(body).encode()
    send_bytes(h, status, data, headers)


def serve_json(fake: FakeOpenRouter, h: Handler, ctx: Ctx) -> None:
    s = ctx.scenario
    gen = fake.open_generation(ctx, streamed=False)
    pieces = build_pieces(ctx)
    if not wait_before_headers(fake, h, ctx, gen):
        fake.close_generation(ctx, gen, token_counts(ctx, pieces, 0), None)
        return
    if s.abrupt_close_after is not None:
        drop(h)
        fake.close_generation(ctx, gen, token_counts(ctx, pieces, 0), None)
        return
    counts = token_counts(ctx, pieces)
    usage = (
        None
        if s.usage_style is None
        else build_usage(ctx, counts, model_price(fake.models, ctx.model))
    )
    body = completion_body(ctx, pieces, usage)
    headers = {"X-Generation-Id": ctx.gen_id} if ctx.persona == "openrouter" else {}
    headers.update(s.headers)
    if s.content_type:
        headers["Content-Type"] = s.content_type
    send_json(h, 200, body, headers)
    choice = body["choices"][0]
    fake.close_generation(
        ctx, gen, counts, (choice["finish_reason"], choice.get("native_finish_reason"))
    )


def stream_headers(fake: FakeOpenRouter, ctx: Ctx) -> dict[str, str]:
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
    if s.framing == "chunked":
        headers["Transfer-Encoding"] = "chunked"
    else:
        headers["Connection"] = "close"
    return headers


def serve_stream(fake: FakeOpenRouter, h: Handler, ctx: Ctx) -> None:
    s = ctx.scenario
    gen = fake.open_generation(ctx, streamed=True)
    pieces = build_pieces(ctx)
    builder = Builder(ctx)
    w = Writer(fake, h.connection, ctx, builder.comment())
    finish: tuple[str, str] | None = None
    try:
        if s.delay_headers > 0:
            w.idle(s.delay_headers)
        h.send_response(200)
        for key, value in stream_headers(fake, ctx).items():
            h.send_header(key, value)
        h.end_headers()
        w.headers_sent = True
        finish = stream_body(fake, ctx, builder, w, pieces)
        w.end()
    except ClientGone:
        fake.record_disconnect(ctx, gen)
        drop(h)
    except Close:
        drop(h)
    except OSError:
        fake.record_disconnect(ctx, gen)
        drop(h)
    finally:
        counts = token_counts(ctx, pieces, None if finish else w.sent)
        fake.close_generation(ctx, gen, counts, finish)


def stream_body(
    fake: FakeOpenRouter, ctx: Ctx, b: Builder, w: Writer, pieces: list[tuple[str, Any]]
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
    if s.endless_line_bytes is not None:
        hostile.write_endless_line(w, s.endless_line_bytes)
        return None
    err_at = midstream_position(s, len(pieces))
    _write_pieces(ctx, b, w, pieces, err_at, keepalive)
    if err_at is not None:
        tail, finish = _error_tail(ctx, b), None
    else:
        tail, finish = _finish_tail(fake, ctx, b, pieces)
    if tail:
        tail[-1] = b.final(tail[-1])
    for event in tail:
        w.pace()
        w.write(event)
    return finish


def _write_pieces(
    ctx: Ctx,
    b: Builder,
    w: Writer,
    pieces: list[tuple[str, Any]],
    err_at: int | None,
    keepalive: bytes | None,
) -> None:
    """The pieces up to the scripted error, cut (``Close``), stall, gate or raw event."""
    s = ctx.scenario
    n = len(pieces)
    cut = None if s.abrupt_close_after is None else min(s.abrupt_close_after, n)
    every = s.keepalive_every_chunks
    for i in range(n + 1):
        w.sent = i
        if i == cut:
            w.flush()
            raise Close
        if i in (err_at, n):
            return
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


def _error_tail(ctx: Ctx, b: Builder) -> list[bytes]:
    s = ctx.scenario
    error = s.midstream_error or DEFAULT_MIDSTREAM
    if s.echo_key == "midstream":
        error = hostile.midstream_key_error(hostile.key_of(ctx.request.headers))
    tail = [b.error_event(error)]
    if s.done_after_error or ctx.persona == "llamacpp-legacy":
        tail.append(b.done())
    return tail


def _finish_tail(
    fake: FakeOpenRouter, ctx: Ctx, b: Builder, pieces: list[tuple[str, Any]]
) -> tuple[list[bytes], tuple[str, str]]:
    s = ctx.scenario
    usage = None
    if s.usage_style is not None:
        usage = build_usage(ctx, token_counts(ctx, pieces), model_price(fake.models, ctx.model))
    finish = finish_reasons(s, pieces)
    tail = []
    if s.send_finish:
        tail.append(b.finish(finish[0], finish[1], usage))
    usage_event = b.usage_event(usage)
    if usage_event is not None:
        tail.append(usage_event)
    if s.send_done:
        tail.append(b.done())
    return tail, finish
