"""ChunkedDecoder: the same body, end and errors as h11 (httpx's parser), at every split."""

from __future__ import annotations

import random
from collections.abc import Iterable

import h11
import pytest

from rill.stream.chunked import MAX_LINE, ChunkedDecoder, ChunkedError

HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

VALID = {
    "one event": b'18\r\ndata: {"a":1}\n\n123456789\r\n0\r\n\r\n',
    "many chunks": b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in [b"a", b"bc" * 40, b"\r\n"])
    + b"0\r\n\r\n",
    "upper hex and leading zeros": b"000A\r\n0123456789\r\n0\r\n\r\n",
    "extensions and trailing blanks": b"3;name=value;x\r\nabc\r\n2 \t\r\nde\r\n0;last\r\n\r\n",
    "trailers": b"2\r\nhi\r\n0\r\nX-Checksum: 1\r\nX-Other: two\r\n\r\n",
    "trailers with bare LF": b"2\r\nhi\r\n0\r\nX-A: 1\n\n",
    "empty body": b"0\r\n\r\n",
    "payload holding CRLF and size-like text": b"8\r\n5\r\nabc\r\n\r\n0\r\n\r\n",
    "bytes after the end": b"1\r\nx\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n",
    "20 hex digits": b"00000000000000000003\r\nabc\r\n0\r\n\r\n",
    "a 20 KB extension": b"3;" + b"x" * 20_000 + b"\r\nabc\r\n0\r\n\r\n",
}

INVALID = {
    "not hex": b"zz\r\nab\r\n0\r\n\r\n",
    "0x prefix": b"0x2\r\nab\r\n0\r\n\r\n",
    "sign": b"+2\r\nab\r\n0\r\n\r\n",
    "leading space": b" 2\r\nab\r\n0\r\n\r\n",
    "21 hex digits": b"000000000000000000003\r\nabc\r\n0\r\n\r\n",
    "data longer than its size": b"2\r\nabc\r\n0\r\n\r\n",
    "no CRLF after the data": b"2\r\nabXY0\r\n\r\n",
    "bare LF after the data": b"2\r\nab\n0\r\n\r\n",
    "empty size line": b"\r\nab\r\n0\r\n\r\n",
    "LF inside an extension": b"2;a\nb\r\nab\r\n0\r\n\r\n",
    "endless size line": b"1" * (MAX_LINE + 10),
}

TRUNCATED = {
    "inside the data": b"a\r\nabc",
    "before the last chunk": b"2\r\nab\r\n",
    "inside the trailers": b"2\r\nab\r\n0\r\nX-A: 1\r\n",
    "inside the size line": b"2\r\nab\r\n1",
}


def h11_decode(pieces: Iterable[bytes]) -> tuple[bytes, bool, bool]:
    """(body, ended, failed) as h11 sees the response ``HEAD + pieces``."""
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_LINE)  # as httpcore sets it
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    body = b""
    first = True
    try:
        for piece in pieces:
            conn.receive_data((HEAD if first else b"") + piece)
            first = False
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    break
                if isinstance(event, h11.Data):
                    body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    return body, True, False
    except h11.RemoteProtocolError:
        return body, False, True
    return body, False, False


def rill_decode(pieces: Iterable[bytes]) -> tuple[bytes, bool, bool]:
    decoder = ChunkedDecoder()
    body = b""
    try:
        for piece in pieces:
            body += decoder.feed(piece)
            if decoder.done:
                return body, True, False
    except ChunkedError as exc:
        return body + exc.body, False, True
    return body, False, False


def splits(data: bytes) -> Iterable[list[bytes]]:
    """Whole; one byte at a time; cut at every point; and random pieces."""
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]
    rng = random.Random(len(data))
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(data)), min(3, len(data) - 1)))
        yield [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def _short_splits(data: bytes) -> Iterable[list[bytes]]:
    if len(data) > 200:  # long lines: whole, and in 1 KiB reads
        return [[data], [data[i : i + 1024] for i in range(0, len(data), 1024)]]
    return splits(data)


@pytest.mark.parametrize("body", VALID.values(), ids=VALID.keys())
def test_valid_bodies_decode_like_h11_at_every_split(body: bytes) -> None:
    expected = h11_decode([body])
    assert expected[1], "h11 itself must accept the case"
    for pieces in _short_splits(body):
        assert rill_decode(pieces) == expected, pieces


@pytest.mark.parametrize("body", INVALID.values(), ids=INVALID.keys())
def test_invalid_bodies_fail_like_h11(body: bytes) -> None:
    assert h11_decode([body])[2], "h11 itself must reject the case"
    for pieces in _short_splits(body):
        got = rill_decode(pieces)
        assert got[2], pieces
        # What came before the fault is delivered, as h11 delivers it.
        assert got[0] == h11_decode(pieces)[0]


@pytest.mark.parametrize("body", TRUNCATED.values(), ids=TRUNCATED.keys())
def test_truncated_bodies_neither_end_nor_fail(body: bytes) -> None:
    for pieces in splits(body):
        got = rill_decode(pieces)
        assert got == h11_decode(pieces)
        assert not got[1] and not got[2]


def test_a_stream_of_many_small_chunks_in_64_kib_reads() -> None:
    rng = random.Random(7)
    payloads = [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 400))) for _ in range(3000)]
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in payloads) + b"0\r\n\r\n"
    reads = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    decoder = ChunkedDecoder()
    out = [decoder.feed(r) for r in reads]
    assert b"".join(out) == b"".join(payloads)
    assert decoder.done
    assert all(out[:-1]), "every read hands over what it completed"
    assert decoder.feed(b"more") == b""


@pytest.mark.parametrize(
    "trailer", [b"not a header line\r\n\r\n", b" folded\r\n\r\n"], ids=["no colon", "obs-fold"]
)
def test_malformed_trailers_after_a_whole_body_are_ignored(trailer: bytes) -> None:
    # The one deliberate difference from h11 (see rill.stream.chunked): the body is complete.
    body = b"2\r\nhi\r\n0\r\n" + trailer
    assert h11_decode([body]) == (b"hi", False, True)
    assert rill_decode([body]) == (b"hi", True, False)
