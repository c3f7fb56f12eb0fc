"""``rill.serve.workers.Workers``: the threads ``rill serve`` runs a stream's blocking pulls in.
A call's result and exception come back to the loop; threads are started only when none is free,
up to the limit, and kept; at most ``running`` calls run at once, not counting those waiting on
the network; a cancel waits for the call to end; ``close`` stops the threads."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from rill.serve.workers import Workers
from tests.serving import Concurrency


def run(coro: object, limit: float = 20) -> object:
    async def bounded() -> object:
        return await asyncio.wait_for(coro, limit)  # type: ignore[arg-type]

    return asyncio.run(bounded())


def names() -> list[str]:
    return [t.name for t in threading.enumerate()]


def test_a_call_runs_in_another_thread_and_gives_back_its_result_or_its_exception() -> None:
    workers = Workers(2, "test-workers-a")

    def fail() -> None:
        raise ValueError("no")

    async def main() -> tuple[int, int]:
        ident = await workers.run(threading.get_ident)
        with pytest.raises(ValueError, match="no"):
            await workers.run(fail)
        return ident, await workers.run(lambda a, b: a + b, 2, 3)

    try:
        ident, total = run(main())  # type: ignore[misc]
    finally:
        workers.close()
    assert ident != threading.get_ident() and total == 5


def test_threads_are_kept_for_the_next_call_and_started_only_up_to_the_limit() -> None:
    workers = Workers(3, "test-workers-b")
    busy_at_once, order = Concurrency(), []

    def busy(n: int) -> int:
        busy_at_once.during(0.1)  # long enough for the threads started meanwhile to overlap
        order.append(n)
        return threading.get_ident()

    async def main() -> tuple[set[int], set[int]]:
        one_by_one = {await workers.run(busy, n) for n in range(5)}
        at_once = set(await asyncio.gather(*(workers.run(busy, n) for n in range(9))))
        return one_by_one, at_once

    try:
        one_by_one, at_once = run(main())  # type: ignore[misc]
        assert len(one_by_one) == 1  # one thread served the calls made one after another
        assert workers.threads == 3 and busy_at_once.peak == 3  # nine at once: three threads
        assert len(at_once) == 3 and one_by_one <= at_once
        assert order[:5] == [0, 1, 2, 3, 4] and sorted(order[5:]) == list(range(9))
    finally:
        workers.close()


def test_at_most_running_calls_run_at_once_and_a_waiting_call_lets_the_next_one_run() -> None:
    workers = Workers(4, "test-workers-e", running=1)
    python, log = Concurrency(), []
    headers = threading.Event()  # what the first call waits for, as for an upstream's headers

    def sends() -> None:
        python.during(0.05)  # long enough for a call that was let run meanwhile to overlap
        log.append("waiting")
        workers.waiting(True)
        assert headers.wait(10)
        workers.waiting(False)
        log.append("answered")

    def busy(n: int) -> None:
        python.during(0.05)
        log.append(n)

    async def main() -> None:
        first = asyncio.ensure_future(workers.run(sends))
        # These run while the first call waits; it is still waiting when they have all ended.
        await asyncio.gather(*(workers.run(busy, n) for n in range(3)))
        headers.set()
        await first

    try:
        run(main(), limit=10)
        assert workers.threads == 2  # the waiting call's thread, and one for the others
    finally:
        workers.close()
    assert log == ["waiting", 0, 1, 2, "answered"]
    assert python.peak == 1  # one call at a time ran Python


def test_a_call_that_returns_while_waiting_is_counted_once() -> None:
    workers = Workers(3, "test-workers-f", running=1)
    python = Concurrency()

    def leaves_waiting() -> None:
        workers.waiting(True)
        workers.waiting(True)  # told twice: counted once

    async def main() -> None:
        await workers.run(leaves_waiting)
        await asyncio.gather(*(workers.run(python.during, 0.05) for _ in range(3)))

    try:
        run(main(), limit=10)
    finally:
        workers.close()
    assert python.peak == 1  # the ended wait did not free a second place


def test_a_cancelled_caller_goes_on_only_once_the_call_has_ended() -> None:
    workers = Workers(1, "test-workers-c")
    started, ended = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        time.sleep(0.3)
        ended.set()
        return "done"

    async def main() -> bool:
        task = asyncio.ensure_future(workers.run(slow))
        while not started.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return ended.is_set()

    try:
        assert run(main()) is True
        assert run(workers.run(lambda: "next")) == "next"  # the thread is free again
    finally:
        workers.close()


def test_close_stops_the_threads() -> None:
    workers = Workers(4, "test-workers-d")

    async def main() -> None:
        await asyncio.gather(*(workers.run(time.sleep, 0.05) for _ in range(4)))

    run(main())
    threads = [t for t in threading.enumerate() if t.name == "test-workers-d"]
    assert len(threads) == 4
    workers.close()
    for thread in threads:
        thread.join(5)
    assert "test-workers-d" not in names()
