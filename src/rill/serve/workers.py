"""Threads that run a stream's blocking pulls for the event loop.

A ``Workers`` pool starts a thread when a call finds none free (up to ``limit``), and keeps it
for the next call: under a steady load no thread is started or ended, and a burst of new
requests finds its threads already there. Handing a call over costs the loop one future and one
queue put, and the answer one ``call_soon_threadsafe``. The framework's own pool
(``anyio.to_thread``) checks its limiter, cancel scopes and run-time variables on every call
and retires a thread idle for ten seconds: under a stream's three or more blocking pulls, that
was a seventh of the server's time with the interpreter lock.

``running`` bounds how many calls run at once, not counting those that said they are waiting on
the network (``waiting``): a call beyond it waits for one to end or to start waiting. Threads
that run Python at the same time queue for the interpreter lock, and the event loop queues with
them: while fifty requests were being sent at once, each event the loop had to pass on waited
behind most of them (bench/serve_bench.py: p99 20 to 30 ms for the first events of a burst of
streams, 5 to 9 ms with two calls running; the events after the burst much the same either
way). The requests of the burst were sent one at a time anyway, each while it held the lock; a
call waiting for its upstream's headers, connecting or backing off lets the next one run.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar

T = TypeVar("T")

#: One call: the loop to answer on, the future it awaits, the function and its arguments.
Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class Workers:
    """At most ``limit`` threads, each running one call at a time, and at most ``running`` calls
    (default: ``limit``) running and not waiting; calls beyond that wait, in order. Its counts are
    kept on the event loop's thread alone (a thread tells it is free with its answer, and when a
    call waits with ``waiting``), so the loop never waits for a lock that a worker holds while it
    waits for the interpreter."""

    def __init__(self, limit: int, name: str = "rill-worker", running: int | None = None) -> None:
        self.limit = limit
        self.running = limit if running is None else running
        self.name = name
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._pending: deque[Job] = deque()  # calls not yet handed to a thread
        # In each thread: the loop of the call it runs, and whether that call is waiting.
        self._call = threading.local()
        self._threads = 0
        self._idle = 0  # threads free for a call that no call has been promised to
        self._busy = 0  # calls handed to a thread, running and not waiting
        # ``Thread.start`` waits until the new thread runs, which takes the interpreter lock from
        # threads that are busy: about 10 ms each in a burst, and the loop must not wait for
        # that. A thread of the pool's own starts them.
        self._starts: queue.SimpleQueue[bool] = queue.SimpleQueue()
        threading.Thread(target=self._start_threads, name=f"{name}-starter", daemon=True).start()

    @property
    def threads(self) -> int:
        """How many threads have been started (and not stopped by ``close``)."""
        return self._threads

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in one of the threads: its result, or its exception raised here.

        A cancel while it runs is raised once it has returned, not before: the caller may go on
        only when nothing else is being done with what it handed over (a stream's steps are
        pulled by one thread at a time)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((loop, future, function, args))
        self._dispatch()
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            while not future.done():
                with suppress(asyncio.CancelledError):
                    await asyncio.shield(future)
            if not future.cancelled():
                future.exception()  # retrieved: the cancel is what is raised
            raise

    def close(self) -> None:
        """Stop the threads once the calls given so far have run (once the loop has ended)."""
        count, self._threads, self._idle = self._threads, 0, 0
        self._starts.put(False)
        for _ in range(count):
            self._jobs.put(None)

    def waiting(self, waits: bool) -> None:
        """From a call's thread: the call starts (True) or stops (False) waiting on the network,
        for as long as that takes; another call may run meanwhile. Telling what was already
        told changes nothing, and a call that returns while waiting has stopped waiting."""
        call = self._call
        loop = getattr(call, "loop", None)
        if loop is None or waits is call.waits:
            return
        call.waits = waits
        with suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(self._waits, waits)

    def _waits(self, waits: bool) -> None:
        self._busy += -1 if waits else 1
        if waits:
            self._dispatch()

    def _dispatch(self) -> None:
        """Hand waiting calls to threads while the limits allow."""
        pending = self._pending
        while pending and self._busy < self.running:
            if self._idle:
                self._idle -= 1
            elif self._threads < self.limit:
                self._threads += 1
                self._starts.put(True)
            else:
                return
            self._busy += 1
            self._jobs.put(pending.popleft())

    def _start_threads(self) -> None:
        starts = self._starts
        while starts.get():
            threading.Thread(target=self._work, name=self.name, daemon=True).start()

    def _settle(
        self,
        future: asyncio.Future[Any],
        result: Any,
        error: BaseException | None,
        waited: bool,
    ) -> None:
        """On the loop: a thread's answer, and that thread is free (``waited``: the call ended
        waiting, and was no longer counted as running)."""
        self._idle += 1
        if not waited:
            self._busy -= 1
        self._dispatch()
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def _work(self) -> None:
        jobs, call = self._jobs, self._call
        while True:
            job = jobs.get()
            if job is None:
                return
            loop, future, function, args = job
            del job
            call.loop, call.waits = loop, False
            result: Any = None
            error: BaseException | None = None
            try:
                result = function(*args)
            except BaseException as exc:  # noqa: BLE001 - raised again where the call was made
                error = exc
            waited, call.loop = call.waits, None
            with suppress(RuntimeError):  # the loop has closed: nobody waits any more
                loop.call_soon_threadsafe(self._settle, future, result, error, waited)
            del loop, future, function, args, result, error
