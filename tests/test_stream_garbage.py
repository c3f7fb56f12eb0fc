"""A streamed request leaves nothing for the cyclic collector: once a stream has ended, its
response, connection, request and pipeline are freed when the last reference goes. A
long-running server (``rill serve``) otherwise piles up ~75 objects per request, and the
collections that clear them stop the event loop. Against the fake server over real HTTP."""

from __future__ import annotations

import gc
import select
from collections.abc import Iterator
from typing import Any

import pytest

from rill.config.settings import resolve_settings
from rill.events import Done, Error
from rill.fake import FakeOpenRouter, Scenario
from rill.stream.client import ChatClient, make_http_client
from rill.stream.pipeline import ChatStream
from rill.stream.protocol import Request

WATCHED = ("httpx", "httpcore", "h11", "rill")


@pytest.fixture
def client(fake_server: FakeOpenRouter) -> Iterator[ChatClient]:
    settings = resolve_settings({"base_url": fake_server.url, "model": "test/m"})
    http = make_http_client(settings)
    yield ChatClient(settings, http, direct_body=True)
    http.close()


def stream_once(client: ChatClient, waiting: bool) -> Any:
    stream = ChatStream(client, Request(messages=[{"role": "user", "content": "hi"}]))
    last = None
    for step in stream.waiting_steps() if waiting else stream.steps():
        fd = getattr(step, "fd", None)
        if fd is not None:
            select.select([fd], [], [], 5)
        last = step
    return last


def cyclic_garbage(run: Any) -> list[str]:
    """The types, from httpx, httpcore, h11 or rill, of what only the collector frees once
    ``run()`` has returned."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        run()
        gc.collect()
        found = [type(o).__module__ + "." + type(o).__qualname__ for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return [name for name in found if name.split(".")[0] in WATCHED]


@pytest.mark.parametrize("waiting", [True, False], ids=["waiting_steps", "steps"])
def test_a_finished_stream_leaves_no_cycles(
    fake_server: FakeOpenRouter, client: ChatClient, waiting: bool
) -> None:
    fake_server.enqueue(Scenario(content=["one ", "two "]))
    assert isinstance(stream_once(client, waiting), Done)  # the pool's connection is made
    ends: list[Any] = []
    fake_server.enqueue(Scenario(content=["one ", "two "]))
    assert cyclic_garbage(lambda: ends.append(stream_once(client, waiting))) == []
    assert isinstance(ends[0], Done)


def test_an_upstream_error_leaves_no_response_behind(
    fake_server: FakeOpenRouter, client: ChatClient
) -> None:
    fake_server.enqueue(Scenario(status=400, error_message="bad request"))
    ends: list[Any] = []
    garbage = cyclic_garbage(lambda: ends.append(stream_once(client, True)))
    assert isinstance(ends[0], Error) and ends[0].status == 400
    assert not [name for name in garbage if name.startswith(("httpx", "httpcore", "h11"))]
