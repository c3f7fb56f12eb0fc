"""One request's ``ChatStream`` written to an ASGI client, pulled on the event loop where it can be.

The streaming core is synchronous; ``ChatStream.waiting_steps()`` says where its next step would
block. Its steps are pulled

- on the event loop while they come from the upstream socket: a ``Wait`` on that socket is
  awaited with the loop's reader callback, then the read is decoded, rendered (with one of
  ``rill.output.formats``' renderers) and sent right there. One thread serves every stream, and an
  event costs no thread switch;
- in a worker thread (``rill.serve.workers``; ``Pools`` holds one pool for the network and one
  for the records) while they would block: sending the request and waiting for its headers
  (connecting, retrying), and a body the core cannot read without blocking (HTTP/2, a compressed
  body), whose steps are each handed to the loop and sent before the next is pulled, as many at
  once as there are streams; writing the record (the prompt's before the request is sent, the
  answer's at the end), in one thread for every stream.

A step is pulled only after the previous one was sent, so a client that reads slowly slows its
upstream read instead of filling memory. Meanwhile a second task listens for the client's
``http.disconnect``: a client that goes away cancels the stream (``ChatStream.cancel`` shuts the
upstream socket down, which ends the wait at once), and the remaining steps are pulled to the
end, so the partial answer is recorded as cancelled like any other run's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

import anyio
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from rill.events import Chunk, Reasoning, Start
from rill.output.formats import Renderer
from rill.serve.registry import BY_CLIENT, Active, Registry
from rill.serve.workers import Workers
from rill.stream.body import Wait
from rill.stream.pipeline import ChatStream, Received, Step

#: The longest one wait on an upstream socket lasts before the stream is looked at again (a
#: cancel wakes the wait at once; this bounds it should a socket not be known to the stream).
RECHECK = 0.5


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


#: Given each step and the bytes rendered for it, in order.
Consume = Callable[[Step, bytes], Coroutine[Any, Any, None]]
Item = tuple[Step, bytes]


@dataclass(frozen=True, slots=True)
class Pools:
    """The worker threads a stream's blocking steps may take: ``network`` (sending the request,
    waiting for its headers, a blocking read: as many threads as there are streams, so that slow
    upstreams cannot starve each other, but only a few of them running Python at once, the
    others waiting on the network; a stream's network call tells the pool when it waits, through
    its ``Control``) and ``records`` (writing the prompt's record and the
    answer's: files only). A thread keeps freed memory for its own next use, so every thread
    that has written records holds some: keeping that to a few threads keeps memory flat under
    load. And records written by many threads at once are written more slowly than by a few
    (they queue for the history's lock, and each holder for the interpreter), so a burst of new
    requests reaches the upstream sooner."""

    network: Workers
    records: Workers

    def close(self) -> None:
        self.network.close()
        self.records.close()


class Pump:
    """Pulls one ``ChatStream``, registered while it runs; ``write`` renders each step (None: the
    steps alone are wanted)."""

    def __init__(
        self,
        stream: ChatStream,
        registry: Registry,
        pools: Pools,
        *,
        model: str | None,
        endpoint: str,
        write: Callable[[Step], bytes] | None = None,
    ) -> None:
        self.stream = stream
        self.registry = registry
        self.pools = pools
        self.write = write
        self.entry: Active = registry.add(stream, model, endpoint)
        self._steps = stream.waiting_steps()
        self._loop = asyncio.get_running_loop()  # made by an endpoint, on the loop

    def _render(self, step: Step) -> bytes:
        if type(step) is Received:
            tokens = 0
            for d in step.deltas:
                if type(d) is Chunk or type(d) is Reasoning:
                    tokens += 1
            self.entry.tokens += tokens
        return self.write(step) if self.write is not None else b""

    async def run(self, consume: Consume) -> None:
        """Call ``consume`` with each step and its bytes until the stream ends. Left early (the
        task cancelled, ``consume`` raising), the stream is cancelled and its record finished."""
        ended = False
        record = True  # the first pull writes the prompt's record
        try:
            try:
                while True:
                    pool = self.pools.records if record else self.pools.network
                    items, wait = await pool.run(self._pull_in_thread, consume, record)
                    await self._consume_all(consume, items)
                    while wait is not None and wait.fd is not None:
                        wait = await self._pull_on_loop(consume, wait)
                    if wait is None:
                        break
                    record = wait.record
                ended = True
            finally:
                if not ended:
                    self.stream.cancel()
                    with anyio.CancelScope(shield=True):  # the record is finished, cancelled
                        await self.pools.records.run(self._steps.close)
        finally:
            self.registry.remove(self.entry)

    def _pull_in_thread(self, consume: Consume, record: bool) -> tuple[list[Item], Wait | None]:
        """Pull steps until one would wait on the socket or on the other pool's kind of work
        (``record``: this thread is one of the records' pool), or to the end (None); the steps
        pulled since the last blocking work are returned with it, for the loop to send. Those
        pulled before blocking work are sent first, so that they are not held back by it. In
        the network pool, the stream's waits on the network let the pool run another call."""
        if record:
            return self._pull_steps(consume, True)
        control = self.stream.control
        control.waiting = self.pools.network.waiting
        try:
            return self._pull_steps(consume, False)
        finally:
            control.waiting = None

    def _pull_steps(self, consume: Consume, record: bool) -> tuple[list[Item], Wait | None]:
        items: list[Item] = []
        for step in self._steps:
            if isinstance(step, Wait):
                if step.fd is not None or step.record is not record:
                    return items, step
                if items:  # blocking work is next: this is the thread for it
                    sent = asyncio.run_coroutine_threadsafe(
                        self._consume_all(consume, items), self._loop
                    )
                    sent.result()
                    items = []
                continue
            items.append((step, self._render(step)))
        return items, None

    @staticmethod
    async def _consume_all(consume: Consume, items: list[Item]) -> None:
        for step, data in items:
            await consume(step, data)

    async def _pull_on_loop(self, consume: Consume, wait: Wait) -> Wait | None:
        """Pull steps on the loop, waiting for the socket between reads; None at the end, or the
        ``Wait`` on blocking work for a thread."""
        steps = self._steps
        with Readiness(self._loop, cast(int, wait.fd)) as readiness:
            while True:
                await readiness.wait(wait.timeout)
                while True:
                    step = next(steps, None)
                    if step is None:
                        return None
                    if isinstance(step, Wait):
                        break
                    await consume(step, self._render(step))
                if step.fd is None:
                    return step
                wait = step


class Readiness:
    """Whether one socket is readable, told by the loop's reader callback. The callback stays
    registered while the socket is waited for again and again (no system call per wait); it is
    dropped when it fires while nobody waits (a slow client being written to), so that a
    readable socket does not keep the loop busy, and taken up again at the next wait."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self.loop = loop
        self.fd = fd
        self.ready = False
        self.watching = False
        self.waiter: asyncio.Future[None] | None = None

    def __enter__(self) -> Readiness:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.watching:
            self.loop.remove_reader(self.fd)
            self.watching = False

    def _readable(self) -> None:
        self.ready = True
        waiter = self.waiter
        if waiter is None:
            self.loop.remove_reader(self.fd)
            self.watching = False
        elif not waiter.done():
            waiter.set_result(None)

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float | None) -> None:
        """Until the socket is readable, or ``timeout`` (at most ``RECHECK``) seconds pass."""
        if self.ready:
            self.ready = False
            return
        loop = self.loop
        if not self.watching:
            loop.add_reader(self.fd, self._readable)
            self.watching = True
        self.waiter = loop.create_future()
        timeout = RECHECK if timeout is None else min(timeout, RECHECK)
        timer = loop.call_later(max(timeout, 0.0), self._wake)
        try:
            await self.waiter
        finally:
            timer.cancel()
            self.waiter = None
            self.ready = False


async def watch_disconnect(
    receive: Receive, pump: Pump, gone: list[bool], answered: list[bool]
) -> None:
    """Cancel ``pump``'s stream when the client disconnects. Once the whole answer has been
    sent (``answered``), the server answers this wait with a disconnect itself, which ends it."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not answered:
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

        async def consume(step: Step, data: bytes) -> None:
            if opened:
                if opened[0]:
                    await self._send(send, data, gone)
                return
            decided = await self.open(step, data)
            if decided is None:
                return
            status, headers, streaming, body = decided
            opened.append(streaming)
            raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
            start = {"type": "http.response.start", "status": status, "headers": raw}
            if await self._deliver(send, start, gone):
                await self._send(send, body, gone)

        answered: list[bool] = []
        watcher = asyncio.ensure_future(watch_disconnect(receive, self.pump, gone, answered))
        try:
            await self.pump.run(consume)
            if opened and not gone:
                answered.append(True)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await _stop_watching(watcher, answered)

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


async def _stop_watching(watcher: asyncio.Future[None], answered: list[bool]) -> None:
    """Wait for ``watch_disconnect`` to end: by itself once the answer is complete (uvicorn ends
    its wait then), else cancelled. Cancelling it every time would leave a cancelled task's
    exception, traceback and frames, a cycle, for the collector on every request."""
    if answered and not watcher.done():
        await asyncio.wait((watcher,), timeout=1.0)
    if not watcher.done():
        watcher.cancel()
    with suppress(asyncio.CancelledError):
        await watcher


def sse_headers(request_id: str, content_type: str = "text/event-stream") -> dict[str, str]:
    return {
        "content-type": f"{content_type}; charset=utf-8",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
        "x-rill-request": request_id,
    }
