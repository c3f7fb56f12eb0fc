"""Reading a chunked body past h11 (``rill.stream.body.reads``): same bytes, same errors,
fewer reads.

A raw socket server sends exact bytes, framing faults included, over real loopback HTTP.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from rill.config.settings import Settings, resolve_paths
from rill.errors import StreamError, TimeoutError_
from rill.stream.body import direct_reader, reads
from rill.stream.client import make_http_client
from rill.stream.control import Control, Limits

CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def frame(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class OneConnection:
    """A loopback server for one connection, handled by ``handle`` on a thread of its own."""

    def __init__(self, path: str = "") -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}{path}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        self.handle(conn)

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    @staticmethod
    def read_head(conn: socket.socket) -> bytes:
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(65536)
        return head

    def close(self) -> None:
        self.sock.close()
        self.thread.join(10)


class RawServer(OneConnection):
    """Answers one request with ``pieces`` (bytes, or a float: sleep that long), ends its side,
    then waits for the client to close; ``closed`` is set when it does."""

    def __init__(self, pieces: list[bytes | float], tls: ssl.SSLContext | None = None) -> None:
        self.pieces = pieces
        self.tls = tls
        self.closed = threading.Event()
        super().__init__("/v1")

    def handle(self, conn: socket.socket) -> None:
        if self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True)
        with conn:
            conn.settimeout(10)
            self.read_head(conn)
            for piece in self.pieces:
                if isinstance(piece, float):
                    time.sleep(piece)
                else:
                    conn.sendall(piece)
            if self.tls is None:
                conn.shutdown(socket.SHUT_WR)
            try:
                while conn.recv(65536):
                    pass
            except OSError:
                pass
            self.closed.set()


@contextmanager
def response_from(pieces: list[bytes | float], idle: float = 5.0) -> Iterator[httpx.Response]:
    server = RawServer(pieces)
    settings = Settings(
        base_url=server.url, model="m/x", api_key="", paths=resolve_paths({}), timeout=idle
    )
    try:
        with (
            make_http_client(settings) as http,
            http.stream("POST", server.url + "/chat/completions", content=b"{}") as response,
        ):
            yield response
    finally:
        server.close()


def test_chunked_body_is_read_past_h11_a_network_read_at_a_time() -> None:
    payloads = [b'data: {"n":%d}\n\n' % i for i in range(3000)]
    body = b"".join(frame(p) for p in payloads) + b"0\r\n\r\n"
    with response_from([CHUNKED_HEAD + body]) as response:
        assert direct_reader(response) is not None  # the versions in use allow it
        got = list(reads(response, Control(Limits()), 5.0))
    assert b"".join(got) == b"".join(payloads)
    assert len(got) < len(payloads) / 10  # whole reads, not one piece per HTTP chunk


class _Renamed(httpx.SyncByteStream):
    """httpx's byte stream as a future version might hold it: the attribute the direct read
    follows (``_stream``) is gone."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._inner)

    def close(self) -> None:
        self._inner.close()


def test_a_renamed_private_attribute_falls_back_to_identical_output() -> None:
    payloads = [b'data: {"n":%d}\n\n' % i for i in range(500)]
    body = b"".join(frame(p) for p in payloads) + b"0\r\n\r\n"
    with response_from([CHUNKED_HEAD + body]) as response:
        assert direct_reader(response) is not None
        direct = b"".join(reads(response, Control(Limits()), 5.0))
    with response_from([CHUNKED_HEAD + body]) as response:
        response.stream = _Renamed(response.stream)
        assert direct_reader(response) is None  # the seam notices, and httpx reads the body
        fallback = b"".join(reads(response, Control(Limits()), 5.0))
    assert fallback == direct == b"".join(payloads)


def test_direct_false_reads_through_httpx() -> None:
    # What rill batch asks for: its items' bodies are watched read by read through httpx.
    payloads = [b"data: %d\n\n" % i for i in range(50)]
    body = b"".join(frame(p) for p in payloads) + b"0\r\n\r\n"
    with response_from([CHUNKED_HEAD + body]) as response:
        got = list(reads(response, Control(Limits()), 5.0, direct=False))
        assert response.is_stream_consumed  # httpx's own iterator ran
    assert got == payloads  # one piece per HTTP chunk, as h11 hands them out


def test_bytes_h11_buffered_with_the_headers_are_not_lost() -> None:
    # Headers and the first chunks in one segment: h11 holds those chunks when httpx returns.
    first = frame(b"data: 1\n\n") + frame(b"data: 2\n\n")
    with response_from([CHUNKED_HEAD + first, 0.05, frame(b"data: 3\n\n") + b"0\r\n\r\n"]) as r:
        assert b"".join(reads(r, Control(Limits()), 5.0)) == b"data: 1\n\ndata: 2\n\ndata: 3\n\n"


def test_the_connection_is_closed_not_pooled_after_a_direct_read() -> None:
    server = RawServer([CHUNKED_HEAD + frame(b"data: x\n\n") + b"0\r\n\r\n"])
    settings = Settings(base_url=server.url, model="m/x", api_key="", paths=resolve_paths({}))
    try:
        with make_http_client(settings) as http:
            with http.stream("POST", server.url + "/chat/completions", content=b"{}") as response:
                assert b"".join(reads(response, Control(Limits()), 5.0)) == b"data: x\n\n"
            assert server.closed.wait(5), "h11 never saw the body end: the socket must close"
    finally:
        server.close()


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n",
    ],
    ids=["content-length", "compressed"],
)
def test_other_bodies_take_httpx_own_path(head: bytes) -> None:
    body = b"data: x\n\n" if b"Length" in head else frame(b"not gzip") + b"0\r\n\r\n"
    with response_from([head + body]) as response:
        assert direct_reader(response) is None
        if b"Length" in head:
            assert b"".join(reads(response, Control(Limits()), 5.0)) == b"data: x\n\n"


def test_a_transport_without_h11_takes_httpx_own_path() -> None:
    def handler(_req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter([b"data: a\n\n", b"data: b\n\n"]))

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as http,
        http.stream("POST", "http://x/chat/completions") as response,
    ):
        assert direct_reader(response) is None
        assert b"".join(reads(response, Control(Limits()), 5.0)) == b"data: a\n\ndata: b\n\n"


FAULTS: dict[str, list[bytes | float]] = {
    "bad chunk size": [CHUNKED_HEAD + frame(b"data: kept\n\n") + b"zz\r\nxx\r\n"],
    "bad chunk footer": [CHUNKED_HEAD + frame(b"data: kept\n\n") + b"2\r\nabXX"],
    "closed inside a chunk": [CHUNKED_HEAD + frame(b"data: kept\n\n") + b"20\r\npart"],
    "closed between chunks": [CHUNKED_HEAD + frame(b"data: kept\n\n"), 0.05],
}


@pytest.mark.parametrize("pieces", FAULTS.values(), ids=FAULTS.keys())
def test_framing_faults_keep_what_came_before_and_report_truncation(
    pieces: list[bytes | float],
) -> None:
    got: list[bytes] = []
    with response_from(pieces) as response, pytest.raises(StreamError) as info:
        got.extend(reads(response, Control(Limits()), 5.0))
    assert b"".join(got).startswith(b"data: kept\n\n")
    assert info.value.code == "truncated"


def test_a_silent_stream_hits_the_idle_timeout() -> None:
    with response_from([CHUNKED_HEAD + frame(b"data: 1\n\n"), 1.5], idle=0.3) as response:
        got: list[bytes] = []
        started = time.monotonic()
        with pytest.raises(TimeoutError_, match="idle timeout"):
            got.extend(reads(response, Control(Limits()), 0.3))
        assert time.monotonic() - started < 1.2
    assert got == [b"data: 1\n\n"]


@pytest.fixture
def tls_server_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A server context with a throwaway certificate for 127.0.0.1, which httpx then trusts."""
    if not shutil.which("openssl"):  # pragma: no cover - .ci/run installs it
        pytest.skip("needs openssl to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # httpx trusts it for https base URLs
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


class ConnectProxy(OneConnection):
    """An HTTP proxy that only tunnels (CONNECT), as corporate proxies do for https."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        super().__init__()

    def handle(self, client: socket.socket) -> None:
        with client:
            head = self.read_head(client)
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            self.targets.append(f"{method} {target}")
            host, port = target.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=10) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                pipes = [
                    threading.Thread(target=_pipe, args=(client, upstream), daemon=True),
                    threading.Thread(target=_pipe, args=(upstream, client), daemon=True),
                ]
                for pipe in pipes:
                    pipe.start()
                for pipe in pipes:
                    pipe.join(10)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _read_over_https(pieces: list[bytes | float], tls: ssl.SSLContext) -> tuple[list[bytes], bool]:
    server = RawServer(pieces, tls=tls)
    url = server.url.replace("http://", "https://")
    settings = Settings(base_url=url, model="m/x", api_key="", paths=resolve_paths({}))
    try:
        with (
            make_http_client(settings) as http,
            http.stream("POST", url + "/chat/completions", content=b"{}") as response,
        ):
            direct = direct_reader(response) is not None
            return list(reads(response, Control(Limits()), 5.0)), direct
    finally:
        server.close()


def test_over_tls_too(tls_server_context: ssl.SSLContext) -> None:
    """OpenRouter is HTTPS: the direct read goes through httpcore's TLS stream."""
    payloads = [b'data: {"n":%d}\n\n' % i for i in range(3000)]
    body = b"".join(frame(p) for p in payloads) + b"0\r\n\r\n"
    got, direct = _read_over_https([CHUNKED_HEAD + body], tls_server_context)
    assert direct
    assert b"".join(got) == b"".join(payloads)
    assert len(got) < len(payloads) / 10


def test_over_tls_through_a_connect_proxy(
    tls_server_context: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a proxy, the stream is TLS inside a CONNECT tunnel: still read directly."""
    proxy = ConnectProxy()
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("https_proxy", proxy.url)
    payloads = [b'data: {"n":%d}\n\n' % i for i in range(3000)]
    body = b"".join(frame(p) for p in payloads) + b"0\r\n\r\n"
    try:
        got, direct = _read_over_https([CHUNKED_HEAD + body], tls_server_context)
    finally:
        proxy.close()
    assert proxy.targets and proxy.targets[0].startswith("CONNECT 127.0.0.1:")
    assert direct
    assert b"".join(got) == b"".join(payloads)
