"""``rill serve``'s ``Pump`` in process, against the fake server over real HTTP: the records of
many streams starting or ending at once are written by a few threads at a time
(``Pools.records``), while requests are sent from as many threads as there are streams; a
network pool that runs one call at a time still sends every request while the others wait for
their upstream's headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from rill.config.settings import Settings, resolve_settings
from rill.events import Done
from rill.fake import FakeOpenRouter, Gate, Scenario
from rill.serve.registry import Registry
from rill.serve.streaming import Pools, Pump
from rill.serve.workers import Workers
from rill.stream.client import ChatClient, make_http_client
from rill.stream.pipeline import ChatStream, ExchangeSink, NullSink, Step
from rill.stream.protocol import Request
from tests.serving import Concurrency

STREAMS = 8


class SlowSink:
    """A record that takes a while to finish, as one fsynced on a busy disk does."""

    chat_id = None

    def __init__(self, finishing: Concurrency, finished: list[dict[str, Any]]) -> None:
        self.finishing = finishing
        self.finished = finished

    def add(self, content: str = "", reasoning: str = "") -> None:
        pass

    def finish(self, outcome: dict[str, Any]) -> None:
        self.finishing.during(0.1)
        self.finished.append(outcome)


def pump_all(
    settings: Settings,
    pools: Pools,
    *,
    begin: Callable[[], ExchangeSink] = NullSink,
    first_step: Callable[[], None] | None = None,
    meanwhile: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """``STREAMS`` streams pumped at once through ``pools`` (closed after), within 20 s, each
    ending with ``Done``. ``first_step`` is called as each stream's first step arrives;
    ``meanwhile`` runs beside them."""
    http = make_http_client(settings)
    ends: list[Step] = []

    async def one(registry: Registry) -> None:
        request = Request(messages=[{"role": "user", "content": "hi"}], model="test/m")
        stream = ChatStream(ChatClient(settings, http), request, begin=begin)
        pump = Pump(stream, registry, pools, model="test/m", endpoint="/v1")
        steps: list[Step] = []

        async def consume(step: Step, data: bytes) -> None:
            if not steps and first_step is not None:
                first_step()
            steps.append(step)

        await pump.run(consume)
        ends.append(steps[-1])

    async def main() -> None:
        registry = Registry()
        try:
            with anyio.fail_after(20):
                async with anyio.create_task_group() as group:
                    for _ in range(STREAMS):
                        group.start_soon(one, registry)
                    if meanwhile is not None:
                        await meanwhile()
        finally:
            pools.close()
        assert registry.listing() == []

    try:
        anyio.run(main)
    finally:
        http.close()
    assert len(ends) == STREAMS and all(isinstance(e, Done) for e in ends), ends


def test_records_are_written_a_few_at_a_time_and_requests_all_at_once(
    fake_server: FakeOpenRouter, rill_env: Any
) -> None:
    settings = resolve_settings({"base_url": fake_server.url, "model": "test/m"})
    gate = Gate()  # the answers go on once every request has been sent: they all end together
    fake_server.enqueue(*(Scenario(content=["one ", "two "], gate=gate) for _ in range(STREAMS)))
    beginning, finishing, finished = Concurrency(), Concurrency(), []

    def begin() -> SlowSink:
        beginning.during(0.1)  # the prompt's record, on the same busy disk
        return SlowSink(finishing, finished)

    async def all_sent() -> None:
        # Every request is sent while none has ended (the records' pool holds none back).
        while len(fake_server.chat_requests) < STREAMS:
            await anyio.sleep(0.01)
        gate.open()

    pump_all(settings, Pools(Workers(STREAMS), Workers(2)), begin=begin, meanwhile=all_sent)
    assert len(finished) == STREAMS
    assert beginning.peak == 2
    assert finishing.peak == 2


def test_a_request_waiting_for_its_headers_lets_the_next_one_be_sent(
    fake_server: FakeOpenRouter, rill_env: Any
) -> None:
    settings = resolve_settings({"base_url": fake_server.url, "model": "test/m"})
    # Headers held long enough for every request to be sent meanwhile, if each waiting request
    # lets the next one run; one after another, the first answer would start with one request
    # sent.
    fake_server.enqueue(*(Scenario(content=["one"], delay_headers=2.0) for _ in range(STREAMS)))
    sent_when_answered: list[int] = []

    def first_step() -> None:
        sent_when_answered.append(len(fake_server.chat_requests))

    pump_all(settings, Pools(Workers(STREAMS, running=1), Workers(1)), first_step=first_step)
    assert sent_when_answered == [STREAMS] * STREAMS
