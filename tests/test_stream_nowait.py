"""``ChatStream.waiting_steps()``: the pipeline pulled without ever blocking on the body, as an
event loop pulls it (``rill serve``). Against the fake server over real HTTP: where a read would
wait, a ``Wait`` names the socket; the events are those of ``steps()``; the time limits, a cancel
and leaving the loop behave as in a blocking pull; whatever else blocks (the record being
finished, each read of a body httpx reads) comes after a ``Wait`` on work, so a loop can hand
that pull to a thread. The record is written after a ``Wait`` of its own, at both ends: the
prompt's before the request is sent, the answer's before the terminal event.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from rill.config.settings import resolve_settings
from rill.errors import Cancelled, ExitCode
from rill.events import Chunk, Done, Error, Start
from rill.fake import FakeOpenRouter, Gate, Scenario
from rill.history import ExchangeStart, HistoryStore
from rill.stream.body import RECORD, WORK, Wait
from rill.stream.client import ChatClient, make_http_client
from rill.stream.pipeline import ChatStream, Received, Step
from rill.stream.protocol import Request

PIECES = ["one ", "two ", "three "]


@pytest.fixture
def make_stream(fake_server: FakeOpenRouter) -> Iterator[Any]:
    clients: list[ChatClient] = []

    def make(*, direct: bool = True, begin: Any = None, **settings: Any) -> ChatStream:
        resolved = resolve_settings({"base_url": fake_server.url, "model": "test/m", **settings})
        client = ChatClient(resolved, make_http_client(resolved), direct_body=direct)
        clients.append(client)
        request = Request(messages=[{"role": "user", "content": "hi"}], model="test/m")
        if begin is None:
            return ChatStream(client, request)
        return ChatStream(client, request, begin=lambda: begin(request))

    yield make
    for client in clients:
        client.http.close()


@pytest.fixture
def history(fake_server: FakeOpenRouter, rill_env: Path) -> tuple[HistoryStore, Any]:
    """The history store, and a ``begin`` recording a stream's request in it."""
    settings = resolve_settings({"base_url": fake_server.url, "model": "test/m"})
    store = HistoryStore(settings.paths.history_dir, "json")

    def begin(request: Request) -> Any:
        return store.begin(ExchangeStart(None, request.messages, "test/m", {}, ""))

    return store, begin


def pull(steps: Generator[Step | Wait, None, None], limit: float = 10) -> list[Step | Wait]:
    """Every step, waiting on each ``Wait``'s socket with select as a loop would; bounded."""
    seen: list[Step | Wait] = []
    deadline = time.monotonic() + limit
    for step in steps:
        seen.append(step)
        if isinstance(step, Wait) and step.fd is not None:
            timeout = 1.0 if step.timeout is None else min(step.timeout, 1.0)
            select.select([step.fd], [], [], max(timeout, 0.0))
        assert time.monotonic() < deadline, "the stream did not end"
    return seen


def content(seen: list[Step | Wait]) -> str:
    return "".join(
        d.content for s in seen if isinstance(s, Received) for d in s.deltas if type(d) is Chunk
    )


def next_in_thread(steps: Generator[Step | Wait, None, None]) -> Step | Wait:
    """One pull in a thread, failing the test if it blocks (the point of ``waiting_steps``)."""
    box: list[Step | Wait] = []
    thread = threading.Thread(target=lambda: box.append(next(steps)), daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive(), "the pull blocked"
    return box[0]


def test_the_events_are_those_of_a_blocking_pull_with_waits_on_the_socket_between(
    fake_server: FakeOpenRouter, make_stream: Any
) -> None:
    fake_server.enqueue(Scenario(content=PIECES * 3, chunk_delay=0.03))
    seen = pull(make_stream(timeout=30).waiting_steps())
    waits = [s for s in seen if isinstance(s, Wait)]
    # The prompt's record, then sending the request, then the answer.
    assert seen[:2] == [RECORD, WORK] and isinstance(seen[2], Start)
    assert content(seen) == "".join(PIECES * 3)
    assert any(w.fd is not None for w in waits), "no read ever waited"
    assert all(w.timeout is not None and 0 < w.timeout <= 30 for w in waits if w.fd is not None)
    # The record is finished after the last Wait on it, right before the terminal event.
    assert seen[-2] is RECORD and [w for w in waits if w.fd is None] == [RECORD, WORK, RECORD]
    assert RECORD.record and not WORK.record
    assert isinstance(seen[-1], Done) and seen[-1].finish_reason == "stop"

    fake_server.enqueue(Scenario(content=PIECES * 3, chunk_delay=0.03))
    blocking = list(make_stream().steps())
    assert content(blocking) == content(seen)  # type: ignore[arg-type]
    assert not any(isinstance(s, Wait) for s in blocking)


def test_a_read_with_nothing_to_read_yields_a_wait_instead_of_blocking(
    fake_server: FakeOpenRouter, make_stream: Any
) -> None:
    gate = Gate(timeout=15)
    fake_server.enqueue(Scenario(content=PIECES, gate=gate, keepalives_before=0))
    steps = make_stream(timeout=30).waiting_steps()
    step = next_in_thread(steps)
    while not (isinstance(step, Received) and content([step]) == "one "):
        step = next_in_thread(steps)
    # The server now holds the rest back: every pull returns a Wait at once.
    for _ in range(3):
        step = next_in_thread(steps)
        assert isinstance(step, Wait) and step.fd is not None
    gate.open()
    rest = pull(steps)
    assert content(rest) == "two three "
    assert isinstance(rest[-1], Done) and rest[-1].finish_reason == "stop"


def test_the_idle_limit_still_holds_when_nobody_blocks(
    fake_server: FakeOpenRouter, make_stream: Any
) -> None:
    gate = Gate(timeout=15)
    fake_server.enqueue(Scenario(content=PIECES, gate=gate, keepalives_before=0))
    started = time.monotonic()
    seen = pull(make_stream(timeout=0.4).waiting_steps())
    took = time.monotonic() - started
    gate.open()
    last = seen[-1]
    assert isinstance(last, Error) and last.code == "timeout" and last.exit_code == 8, last
    assert "idle timeout" in last.message
    assert content(seen) == "one "
    assert 0.4 <= took < 3
    assert fake_server.wait_disconnect(timeout=5) is not None


def test_a_cancel_during_a_wait_ends_the_stream_with_the_partial_answer(
    fake_server: FakeOpenRouter, make_stream: Any
) -> None:
    gate = Gate(timeout=15)
    fake_server.enqueue(Scenario(content=PIECES, gate=gate, keepalives_before=0))
    stream = make_stream(timeout=30)
    steps = stream.waiting_steps()
    step = next_in_thread(steps)
    while not (isinstance(step, Wait) and step.fd is not None and stream.transcript.content):
        step = next_in_thread(steps)
    cancelled_at = time.monotonic()
    stream.cancel(Cancelled("SIGINT", ExitCode.INTERRUPTED))
    # The socket is shut down, so a loop waiting on it wakes at once.
    readable, _, _ = select.select([step.fd], [], [], 5)
    assert readable and time.monotonic() - cancelled_at < 1
    rest = pull(steps)
    gate.open()
    assert rest[-2] is RECORD
    last = rest[-1]
    assert isinstance(last, Done) and last.finish_reason == "cancelled"
    assert last.message["content"] == "one "
    closed = fake_server.wait_disconnect(timeout=5)
    assert closed is not None and closed - cancelled_at < 1


def test_leaving_at_the_wait_on_the_record_still_finishes_it(
    fake_server: FakeOpenRouter, make_stream: Any, history: tuple[HistoryStore, Any]
) -> None:
    store, begin = history
    fake_server.enqueue(Scenario(content=PIECES))
    stream = make_stream(begin=begin)
    steps = stream.waiting_steps()
    for step in steps:
        if step is RECORD and stream.transcript.content:
            break
        if isinstance(step, Wait) and step.fd is not None:
            select.select([step.fd], [], [], 1)
    steps.close()  # a consumer gone before the last pull: nothing more is yielded
    assert stream.outcome is not None
    chat = store.load(store.resolve("last"))
    exchange = chat["exchanges"][-1]
    assert exchange["answer"]["content"] == "one two three "
    assert exchange["finish_reason"] == "stop"


def test_each_read_of_a_body_rill_does_not_read_itself_is_announced_as_work(
    fake_server: FakeOpenRouter, make_stream: Any
) -> None:
    fake_server.enqueue(Scenario(content=PIECES, chunk_delay=0.02))
    seen = pull(make_stream(direct=False).waiting_steps())
    assert content(seen) == "one two three "
    assert isinstance(seen[-1], Done)
    # No socket to wait on: every read blocks, and WORK comes before each; RECORD before the
    # prompt's record and the answer's.
    assert seen[0] is RECORD and seen[-2] is RECORD
    assert all(s is WORK for s in seen[1:-2] if isinstance(s, Wait))
    for before, step in zip(seen, seen[1:], strict=False):
        if isinstance(step, Received):
            assert before is WORK, seen
    assert seen[-2] is RECORD


def test_the_prompt_is_recorded_in_the_pull_after_the_first_wait_before_anything_is_sent(
    fake_server: FakeOpenRouter, make_stream: Any, history: tuple[HistoryStore, Any]
) -> None:
    store, record = history
    begun: list[str] = []

    def begin(request: Request) -> Any:
        recorder = record(request)
        begun.append(recorder.chat_id)
        return recorder

    fake_server.enqueue(Scenario(content=PIECES))
    steps = make_stream(begin=begin).waiting_steps()
    assert next_in_thread(steps) is RECORD
    assert begun == [] and store.last_chat_id() is None  # nothing written yet
    assert next_in_thread(steps) is WORK
    chat = store.load(begun[0])
    assert chat["exchanges"][-1]["status"] == "running"
    assert fake_server.chat_requests == []  # the request goes out in the pull after WORK
    rest = pull(steps)
    assert isinstance(rest[-1], Done) and content(rest) == "one two three "
    assert len(fake_server.chat_requests) == 1


def test_leaving_before_the_request_is_sent_records_the_prompt_as_cancelled(
    fake_server: FakeOpenRouter, make_stream: Any, history: tuple[HistoryStore, Any]
) -> None:
    store, begin = history
    stream = make_stream(begin=begin)
    steps = stream.waiting_steps()
    assert [next_in_thread(steps), next_in_thread(steps)] == [RECORD, WORK]
    steps.close()  # the client went away while the request waited for a thread
    assert stream.outcome is not None
    exchange = store.load(store.resolve("last"))["exchanges"][-1]
    assert exchange["status"] != "running" and exchange["finish_reason"] == "cancelled"
    assert fake_server.chat_requests == []
