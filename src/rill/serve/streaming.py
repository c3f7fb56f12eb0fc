"""One request's ``ChatStream`` pulled in the server's thread pool, written to an ASGI client.

The streaming core is synchronous. One worker thread of the framework's pool (``anyio.to_thread``,
with its own limiter so that many silent upstreams cannot starve the pool) pulls the stream's
steps (``Start``, one ``Received`` per network read, the terminal event), renders each with one of
``rill.output.formats``' renderers and hands the bytes to the event loop, at most ``AHEAD`` steps
ahead of what was sent (a slow client slows its upstream read, it does not fill memory). The loop
sends them. Meanwhile a second task listens for the client's ``http.disconnect``: a client that
goes away cancels the stream (``ChatStream.cancel`` shuts the upstream socket down, which wakes
the blocked read at once), and the remaining steps are pulled to the end, so the partial answer
is recorded as cancelled like any other run's.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from typing import BinaryIO, cast

import anyio
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from rill.events import Chunk, Reasoning, Start
from rill.output.formats import Renderer
from rill.serve.registry import BY_CLIENT, Active, Registry
from rill.stream.pipeline import ChatStream, Received, Step

#: Steps the reading thread may be ahead of the client.
AHEAD = 64


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


def render_with(renderer: Renderer, buffer: Buffer, stream: ChatStream) -> Callable[[Step], bytes]:
    """A function writing one step through ``renderer`` (one of ``rill.output.formats``)."""

    def write(step: Step) -> bytes:
        if type(step) is Received:
            renderer.deltas(step.raw, step.deltas)
        elif type(step) is Start:
            renderer.start(step, stream.transcript)
        else:
            renderer.finish(step)  # type: ignore[arg-type]
        return buffer.take()

    return write


Item = tuple[Step, bytes]


class Pump:
    """Pulls one ``ChatStream`` in a worker thread, registered while it runs; ``write`` renders
    each step there (None: the steps alone are wanted)."""

    def __init__(
        self,
        stream: ChatStream,
        registry: Registry,
        limiter: anyio.CapacityLimiter,
        *,
        model: str | None,
        endpoint: str,
        write: Callable[[Step], bytes] | None = None,
    ) -> None:
        self.stream = stream
        self.registry = registry
        self.limiter = limiter
        self.write = write
        self.entry: Active = registry.add(stream, model, endpoint)
        self._space = threading.Semaphore(AHEAD)
        self._abandoned = False
        self._lock = threading.Lock()
        self._ready: deque[Item | None] = deque()
        self._waking = False
        self._loop = asyncio.get_running_loop()  # made by an endpoint, on the loop
        self._wake = asyncio.Event()

    def _produce(self) -> None:
        entry, write, space = self.entry, self.write, self._space
        try:
            for step in self.stream.steps():
                if type(step) is Received:
                    entry.tokens += sum(1 for d in step.deltas if type(d) in (Chunk, Reasoning))
                data = write(step) if write is not None else b""
                while not space.acquire(timeout=0.25):
                    if self._abandoned:
                        break
                self._hand_over((step, data))
        finally:
            self._hand_over(None)

    def _hand_over(self, item: Item | None) -> None:
        """Queue ``item`` for the loop, waking it only when it is not already due to look: a
        busy server takes several steps per wake-up instead of one self-pipe write each."""
        with self._lock:
            self._ready.append(item)
            if self._waking or self._abandoned:
                return
            self._waking = True
        self._loop.call_soon_threadsafe(self._wake.set)

    async def _take(self) -> list[Item | None]:
        await self._wake.wait()
        self._wake.clear()
        with self._lock:
            self._waking = False
            items = list(self._ready)
            self._ready.clear()
        return items

    async def run(self, consume: Callable[[list[Item]], Awaitable[None]]) -> None:
        """Call ``consume`` with the steps (and their bytes) that are ready, in order, until the
        stream ends: one step at a time while the client keeps up, all that are waiting when it
        does not, so a busy server writes fewer, larger pieces instead of falling behind. Left
        early (the task cancelled), the stream is cancelled and still pulled to its end."""
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(
                    partial(anyio.to_thread.run_sync, self._produce, limiter=self.limiter)
                )
                try:
                    ended = False
                    while not ended:
                        items: list[Item] = []
                        for item in await self._take():
                            if item is None:
                                ended = True
                                break
                            items.append(item)
                            self._space.release()
                        if items:
                            await consume(items)
                finally:
                    self._abandoned = True
                    self.stream.cancel()  # a no-op once the stream has ended
        finally:
            self.registry.remove(self.entry)


async def watch_disconnect(receive: Receive, pump: Pump, gone: list[bool]) -> None:
    """Cancel ``pump``'s stream when the client disconnects."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.append(True)
            pump.stream.cancel(BY_CLIENT)
            return


#: What to answer, decided on a step: (status, headers, whether the later steps' bytes follow,
#: the first bytes of the body).
Opening = tuple[int, dict[str, str], bool, bytes]


class StepResponse(Response):
    """An ASGI response fed by a ``Pump``. ``open`` is given each step and its bytes until it
    decides how to answer (None: not yet): an error before any answer may deserve its own
    status, and a client that wants no stream gets one body at the end."""

    def __init__(self, pump: Pump, open_: Callable[[Step, bytes], Awaitable[Opening | None]]):
        super().__init__()
        self.pump = pump
        self.open = open_

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone: list[bool] = []
        opened: list[bool] = []  # [streaming]

        async def consume(items: list[Item]) -> None:
            out: list[bytes] = []
            for step, data in items:
                if not opened:
                    decided = await self.open(step, data)
                    if decided is None:
                        continue
                    status, headers, streaming, body = decided
                    opened.append(streaming)
                    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
                    start = {"type": "http.response.start", "status": status, "headers": raw}
                    if not await self._deliver(send, start, gone):
                        return
                    out.append(body)
                elif opened[0]:
                    out.append(data)
            await self._send(send, b"".join(out), gone)

        async with anyio.create_task_group() as group:
            group.start_soon(watch_disconnect, receive, self.pump, gone)
            await self.pump.run(consume)
            group.cancel_scope.cancel()
        if opened and not gone:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send(self, send: Send, data: bytes, gone: list[bool]) -> None:
        if data and not gone:
            await self._deliver(
                send, {"type": "http.response.body", "body": data, "more_body": True}, gone
            )

    async def _deliver(self, send: Send, message: Message, gone: list[bool]) -> bool:
        """Send ``message``; False (and the stream cancelled) when the client has gone."""
        if gone:
            return False
        try:
            await send(message)
        except OSError:  # the client went away between two steps
            gone.append(True)
            self.pump.stream.cancel(BY_CLIENT)
            return False
        return True


def sse_headers(request_id: str, content_type: str = "text/event-stream") -> dict[str, str]:
    return {
        "content-type": f"{content_type}; charset=utf-8",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
        "x-rill-request": request_id,
    }
