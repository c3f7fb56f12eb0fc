"""A response body, one network read at a time: ``reads(response, control, idle)``.

Each read waits at most as long as the stream's ``Control`` allows (the idle limit, or less when
a first-token or total deadline is nearer), and transport failures become rill's errors (a
cancel's reason wins over what the dead socket said). A chunked HTTP/1.1 body is read past h11
when the libraries in use allow it (``direct_reader``, the one place that reaches into httpx's
and httpcore's attributes); otherwise httpx reads it, with the same bytes out.

A body rill reads itself can also be read without blocking (``nowait``): where a read would wait,
a ``Wait`` naming the socket is yielded instead, and the consumer pulls again once the socket is
readable (or the wait's time is up: the time limits are still decided here). An event loop can
so drive many streams from one thread, with no thread per stream.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from rill.errors import StreamError, TimeoutError_, reason
from rill.stream.chunked import ChunkedDecoder, ChunkedError
from rill.stream.control import Control, seconds

READ_SIZE = 64 * 1024  # what httpcore reads at a time


@dataclass(frozen=True, slots=True)
class Wait:
    """The next step would block. ``fd``: on reading that file descriptor; pull again once it is
    readable, or after at most ``timeout`` seconds (None: no limit), and the read decides whether
    a time limit has passed. ``fd`` None: on other blocking work (sending the request, a read rill
    cannot make without blocking, writing the record), which the consumer may pull in a worker
    thread; ``record``: that work is writing the record, the prompt's or the answer's (files, no
    network), which a consumer may keep to a few threads of its own."""

    fd: int | None
    timeout: float | None = None
    record: bool = False


#: A ``Wait`` on work other than a read.
WORK = Wait(None)
#: A ``Wait`` on the record being written (the prompt's, then the answer's).
RECORD = Wait(None, record=True)


def reads(
    response: httpx.Response,
    control: Control,
    idle: float | None,
    *,
    direct: bool = True,
    nowait: bool = False,
) -> Iterator[bytes | Wait]:
    """The body's bytes as they arrive, one network read at a time.

    Each read waits at most ``control.read_timeout(idle)``: the idle limit, or less when a first
    token or total deadline is nearer. With ``direct``, a chunked HTTP/1.1 body is read past h11
    when it can be (``direct_reader``); otherwise httpx reads it, and ``control.arm`` enforces the
    deadlines with a timer. A cancel shuts the socket down: the read wakes, and the cancel's
    reason is raised instead of whatever the dead socket said. With ``nowait``, a body read
    directly yields a ``Wait`` on its socket where a read would block; before each read of any
    other body, which blocks, ``WORK`` says so.
    """
    if response.is_stream_consumed:  # already read (a test transport with a fixed body)
        yield response.content
        return
    direct_body = direct_reader(response) if direct else None
    try:
        if direct_body is not None:
            yield from _read_chunked(*direct_body, control, idle, nowait)
        else:
            control.arm()
            pieces = response.iter_raw()
            while True:
                if nowait:
                    yield WORK
                piece = next(pieces, None)
                control.check()  # a cancel ends a body that ends with its connection, too
                if piece is None:
                    break
                yield piece
    except (httpx.ReadTimeout, httpcore.ReadTimeout):
        control.check()
        raise control.timed_out() or went_silent(idle) from None
    except (httpx.RemoteProtocolError, httpcore.RemoteProtocolError, ChunkedError):
        control.check()
        raise StreamError(
            "the connection closed before the answer was complete", status=200, code="truncated"
        ) from None
    except (httpx.TransportError, httpcore.NetworkError, OSError) as exc:
        control.check()
        raise StreamError(
            f"the connection failed mid-stream: {reason(exc)}", status=200, code="network"
        ) from None


def went_silent(idle: float | None) -> TimeoutError_:
    """The idle limit's error: no byte for ``idle`` seconds."""
    return TimeoutError_(f"the stream went silent for {seconds(idle)} (idle timeout)")


def direct_reader(response: httpx.Response) -> tuple[bytes, Any] | None:
    """What h11 has buffered and the connection, when the body can be read past h11.

    A chunked HTTP/1.1 body is read straight from httpcore's network stream and de-chunked by
    ``ChunkedDecoder`` (see ``rill.stream.chunked`` for why: it is most of the cost of a fast
    stream).
    The response headers came through httpx and h11 as usual; the bytes h11 received after them
    are taken from its public ``trailing_data``. Reaching h11 goes through private attributes of
    httpx and httpcore, so every step is checked: when anything differs (another transport, HTTP/2,
    a compressed body, other versions of the libraries) this returns None and the body is read
    with ``iter_raw`` as before. Closing the response then closes the connection, since h11 never
    saw the body end: nothing half-read goes back to the pool.
    """
    if (
        response.extensions.get("http_version") != b"HTTP/1.1"
        or response.headers.get("transfer-encoding", "").lower() != "chunked"
        or response.headers.get("content-encoding", "identity").lower() != "identity"
    ):
        return None
    network = response.extensions.get("network_stream")
    conn: Any = response.stream
    for attr in ("_stream", "_httpcore_stream", "_stream", "_connection", "_h11_state"):
        conn = getattr(conn, attr, None)
    try:
        import h11
    except ImportError:  # pragma: no cover - httpcore 1.x always brings h11
        return None
    if network is None or not isinstance(conn, h11.Connection):
        return None
    if conn.their_state is not h11.SEND_BODY:
        return None
    buffered, _closed = conn.trailing_data
    return bytes(buffered), network


def _read_chunked(
    buffered: bytes, network: Any, control: Control, idle: float | None, nowait: bool
) -> Iterator[bytes | Wait]:
    decoder = ChunkedDecoder()
    data = buffered
    sock = network.get_extra_info("socket") if nowait else None
    if not isinstance(sock, socket.socket):
        sock = None
    else:
        sock.settimeout(0.0)  # the connection is never reused: the response closes it
    just_read = False
    while True:
        if data:
            try:
                body = decoder.feed(data)
            except ChunkedError as exc:
                if exc.body:
                    yield exc.body  # what came before the fault is still the answer's
                raise
            if body:
                yield body
            if decoder.done:
                return
        control.check()
        if sock is None:
            data = network.read(READ_SIZE, control.read_timeout(idle))
        else:
            data = yield from _read_when_ready(sock, control, idle, just_read)
            just_read = True
        if not data:
            raise ChunkedError("the connection closed inside the chunked body")


def _read_when_ready(
    sock: socket.socket, control: Control, idle: float | None, wait_first: bool
) -> Generator[Wait, None, bytes]:
    """One read of a non-blocking socket: a ``Wait`` each time nothing is there yet. The idle
    limit counts from the first try; the deadlines are ``control``'s. ``wait_first`` (a read
    has just emptied the socket): wait before trying, unless TLS holds decrypted bytes back."""
    since = time.monotonic()
    if wait_first and isinstance(sock, ssl.SSLSocket) and sock.pending():
        wait_first = False
    while True:
        if not wait_first:
            try:
                return sock.recv(READ_SIZE)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
        wait_first = False
        control.check()
        left = control.remaining()  # raises once a deadline has passed
        if idle is not None:
            idle_left = since + idle - time.monotonic()
            if idle_left <= 0:
                raise went_silent(idle)
            left = idle_left if left is None else min(left, idle_left)
        yield Wait(sock.fileno(), left)
