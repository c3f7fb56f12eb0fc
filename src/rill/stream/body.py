"""A response body, one network read at a time: ``reads(response, control, idle)``.

Each read waits at most as long as the stream's ``Control`` allows (the idle limit, or less when
a first-token or total deadline is nearer), and transport failures become rill's errors (a
cancel's reason wins over what the dead socket said). A chunked HTTP/1.1 body is read past h11
when the libraries in use allow it (``direct_reader``, the one place that reaches into httpx's
and httpcore's attributes); otherwise httpx reads it, with the same bytes out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpcore
import httpx

from rill.errors import StreamError, TimeoutError_, reason
from rill.stream.chunked import ChunkedDecoder, ChunkedError
from rill.stream.control import Control, seconds

READ_SIZE = 64 * 1024  # what httpcore reads at a time


def reads(
    response: httpx.Response, control: Control, idle: float | None, *, direct: bool = True
) -> Iterator[bytes]:
    """The body's bytes as they arrive, one network read at a time.

    Each read waits at most ``control.read_timeout(idle)``: the idle limit, or less when a first
    token or total deadline is nearer. With ``direct``, a chunked HTTP/1.1 body is read past h11
    when it can be (``direct_reader``); otherwise httpx reads it, and ``control.arm`` enforces the
    deadlines with a timer. A cancel shuts the socket down: the read wakes, and the cancel's
    reason is raised instead of whatever the dead socket said.
    """
    if response.is_stream_consumed:  # already read (a test transport with a fixed body)
        yield response.content
        return
    direct_body = direct_reader(response) if direct else None
    try:
        if direct_body is not None:
            yield from _read_chunked(*direct_body, control, idle)
        else:
            control.arm()
            for piece in response.iter_raw():
                control.check()
                yield piece
    except (httpx.ReadTimeout, httpcore.ReadTimeout):
        control.check()
        raise control.timed_out() or TimeoutError_(
            f"the stream went silent for {seconds(idle)} (idle timeout)"
        ) from None
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
    buffered: bytes, network: Any, control: Control, idle: float | None
) -> Iterator[bytes]:
    decoder = ChunkedDecoder()
    data = buffered
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
        data = network.read(READ_SIZE, control.read_timeout(idle))
        if not data:
            raise ChunkedError("the connection closed inside the chunked body")
