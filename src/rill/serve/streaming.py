"""One request's ``ChatStream`` pulled from the server's thread pool, written to an ASGI client.

The streaming core is synchronous: each step (``Start``, one ``Received`` per network read, the
terminal event) is pulled by a worker thread (``anyio.to_thread``, with its own limiter so that
many silent upstreams cannot starve the pool), rendered by one of ``rill.output.formats``'
renderers into a buffer, and sent. While a step is awaited, a second task listens for the
client's ``http.disconnect``: a client that goes away cancels the stream (``ChatStream.cancel``
shuts the upstream socket down, which wakes the blocked read at once), and the remaining steps
are pulled to the end, so the partial answer is recorded as cancelled like any other run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, BinaryIO, cast

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from rill.events import Chunk, Reasoning, Start
from rill.serve.registry import BY_CLIENT, Active, Registry
from rill.stream.pipeline import ChatStream, Received, Step


class Buffer:
    """A renderer's output stream: what one step wrote, taken after the step."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data

    def binary(self) -> BinaryIO:
        return cast(BinaryIO, self)


class Pump:
    """Pulls one ``ChatStream`` step by step from worker threads, registered while it runs."""

    def __init__(
        self,
        stream: ChatStream,
        registry: Registry,
        limiter: anyio.CapacityLimiter,
        *,
        model: str | None,
        endpoint: str,
    ) -> None:
        self.stream = stream
        self.registry = registry
        self.limiter = limiter
        self.entry: Active = registry.add(stream, model, endpoint)
        self._steps = stream.steps()
        self.done = False

    def _next(self) -> Step | None:
        step = next(self._steps, None)
        if step is None:
            self.done = True
        elif type(step) is Received:
            self.entry.tokens += sum(1 for d in step.deltas if type(d) in (Chunk, Reasoning))
        elif type(step) is not Start:
            self.done = True  # the terminal event: the record is finished
        return step

    async def next(self) -> Step | None:
        if self.done:
            return None
        return await anyio.to_thread.run_sync(self._next, limiter=self.limiter)

    def _drain(self) -> None:
        while not self.done:
            self._next()

    async def finish(self) -> None:
        """End the stream (cancelled if it had not ended) and forget it; safe to call twice.
        Shielded: it runs even while the task is being cancelled (the server stopping)."""
        with anyio.CancelScope(shield=True):
            if not self.done:
                self.stream.cancel()
                await anyio.to_thread.run_sync(self._drain, limiter=self.limiter)
            self.registry.remove(self.entry)


async def watch_disconnect(receive: Receive, pump: Pump, gone: list[bool]) -> None:
    """Cancel ``pump``'s stream when the client disconnects."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.append(True)
            pump.stream.cancel(BY_CLIENT)
            return


#: Given the first step, what to answer: (status, headers, a function writing each later step
#: to bytes or None when nothing follows, the first bytes of the body).
Opening = tuple[int, dict[str, str], Callable[[Step], bytes] | None, bytes]


class StepResponse(Response):
    """An ASGI response fed by a ``Pump``: ``open`` looks at the first step (an error before
    any answer may deserve its own status) and says how the rest is written."""

    def __init__(self, pump: Pump, open_: Callable[[Step | None], Awaitable[Opening]]) -> None:
        super().__init__()
        self.pump = pump
        self.open = open_

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pump = self.pump
        gone: list[bool] = []
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(watch_disconnect, receive, pump, gone)
                try:
                    await self._answer(send, gone)
                finally:
                    group.cancel_scope.cancel()
        finally:
            await pump.finish()

    async def _answer(self, send: Send, gone: list[bool]) -> None:
        pump = self.pump
        status, headers, write, body = await self.open(await pump.next())
        raw_headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
        ]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await self._send(send, body, gone)
        if write is not None:
            while (step := await pump.next()) is not None:
                data = write(step)
                if data and not gone:
                    await self._send(send, data, gone)
        if not gone:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send(self, send: Send, data: bytes, gone: list[bool]) -> None:
        if not data or gone:
            return
        try:
            await send({"type": "http.response.body", "body": data, "more_body": True})
        except OSError:  # the client went away between two steps
            gone.append(True)
            self.pump.stream.cancel(BY_CLIENT)


def sse_headers(request_id: str, content_type: str = "text/event-stream") -> dict[str, str]:
    return {
        "content-type": f"{content_type}; charset=utf-8",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
        "x-rill-request": request_id,
    }


def render_with(renderer: Any, buffer: Buffer, stream: ChatStream) -> Callable[[Step], bytes]:
    """A function writing one step through ``renderer`` (one of ``rill.output.formats``)."""

    def write(step: Step) -> bytes:
        kind = type(step)
        if kind is Received:
            renderer.deltas(step.raw, step.deltas)  # type: ignore[union-attr]
        elif kind is Start:
            renderer.start(step, stream.transcript)
        else:
            renderer.finish(step)
        return buffer.take()

    return write
