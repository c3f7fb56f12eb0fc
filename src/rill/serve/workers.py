"""Threads that run a stream's blocking pulls for the event loop.

A ``Workers`` pool starts a thread when a call finds none free (up to ``limit``), and keeps it
for the next call: under a steady load no thread is started or ended, and a burst of new
requests finds its threads already there. Handing a call over costs the loop one future and one
queue put, and the answer one ``call_soon_threadsafe``. The framework's own pool
(``anyio.to_thread``) checks its limiter, cancel scopes and run-time variables on every call
and retires a thread idle for ten seconds: under a stream's three or more blocking pulls, that
was a seventh of the server's time with the interpreter lock.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar

T = TypeVar("T")

#: One call: the loop to answer on, the future it awaits, the function and its arguments.
Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class Workers:
    """At most ``limit`` threads, each running one call at a time; calls beyond that wait, in
    order, for a thread to come free. Its counts are kept on the event loop's thread alone (a
    thread tells it is free with its answer), so the loop never waits for a lock that a worker
    holds while it waits for the interpreter."""

    def __init__(self, limit: int, name: str = "rill-worker") -> None:
        self.limit = limit
        self.name = name
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._threads = 0
        self._idle = 0  # threads free for a call that no call has been promised to
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
        self._submit((loop, future, function, args))
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

    def _submit(self, job: Job) -> None:
        self._jobs.put(job)
        if self._idle:
            self._idle -= 1
        elif self._threads < self.limit:
            self._threads += 1
            self._starts.put(True)

    def _start_threads(self) -> None:
        starts = self._starts
        while starts.get():
            threading.Thread(target=self._work, name=self.name, daemon=True).start()

    def _settle(
        self, future: asyncio.Future[Any], result: Any, error: BaseException | None
    ) -> None:
        """On the loop: a thread's answer, and that thread is free."""
        self._idle += 1
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def _work(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            loop, future, function, args = job
            del job
            result: Any = None
            error: BaseException | None = None
            try:
                result = function(*args)
            except BaseException as exc:  # noqa: BLE001 - raised again where the call was made
                error = exc
            with suppress(RuntimeError):  # the loop has closed: nobody waits any more
                loop.call_soon_threadsafe(self._settle, future, result, error)
            del loop, future, function, args, result, error
