"""Socket plumbing: the chunked writer with its splitting and timing, and the HTTP handler."""

from __future__ import annotations

import contextlib
import math
import random
import select
import socket
import sys
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from rill.fake.common import JSON, POLL, REASONS
from rill.fake.pieces import Ctx
from rill.fake.records import Gate

if TYPE_CHECKING:
    from rill.fake.server import FakeOpenRouter

_BLOCK = 64 * 1024  # write size of the coalescing writer


class ClientGone(Exception):
    """The client closed the connection."""


class Close(Exception):
    """The server drops the connection (scripted truncation, gate timeout, reset or stop)."""


def _peer_closed(sock: socket.socket, timeout: float) -> bool:
    """Wait up to ``timeout`` for the socket to become readable; True if the peer has closed."""
    try:
        readable, _, _ = select.select([sock], [], [], timeout)
    except (OSError, ValueError):
        return True
    if not readable:
        return False
    try:
        data = sock.recv(1, socket.MSG_PEEK | getattr(socket, "MSG_DONTWAIT", 0))
    except BlockingIOError:
        return False
    except OSError:
        return True
    if data:  # the client sent more (a pipelined request): nothing to learn, don't spin
        time.sleep(timeout)
        return False
    return True


class Writer:
    """Writes one response body (chunked, or ended by closing the connection), honouring the
    scenario's write splitting and timing."""

    def __init__(self, fake: FakeOpenRouter, sock: socket.socket, ctx: Ctx, ka: bytes | None):
        s = ctx.scenario
        self._fake, self._ctx, self._sock = fake, ctx, sock
        self._mode = s.split
        self._chunked = s.framing == "chunked"
        self._buf = bytearray()
        self._rng = random.Random(s.split_seed)
        self._max = max(1, s.split_max)
        self._cut = self._rng.randint(1, self._max)
        self._keepalive = ka
        self._data_started = False
        self._last_check = time.monotonic()
        self.headers_sent = False
        self.sent = 0  # pieces written so far

    def _send(self, data: bytes) -> None:
        try:
            if self._chunked:
                self._sock.sendall(b"%X\r\n" % len(data) + data + b"\r\n")
            else:
                self._sock.sendall(data)
        except OSError as exc:
            raise ClientGone from exc

    def write(self, data: bytes) -> None:
        if self._mode == "event":
            self._send(data)
        elif self._mode == "coalesce":
            self._buf += data
            if len(self._buf) >= _BLOCK:
                self._send(bytes(self._buf))
                self._buf.clear()
        else:
            self._buf += data
            self._split(final=False)
        now = time.monotonic()
        if now - self._last_check >= POLL:
            self._last_check = now
            self.check()

    def _split(self, final: bool) -> None:
        buf, pos = self._buf, 0
        while len(buf) - pos >= self._cut:
            self._send(bytes(buf[pos : pos + self._cut]))
            pos += self._cut
            self._cut = self._rng.randint(1, self._max)
        if final and pos < len(buf):
            self._send(bytes(buf[pos:]))
            pos = len(buf)
        del buf[:pos]

    def flush(self) -> None:
        if self._mode == "coalesce" and self._buf:
            self._send(bytes(self._buf))
            self._buf.clear()
        elif self._mode == "bytes":
            self._split(final=True)

    def end(self) -> None:
        self.flush()
        if not self._chunked:
            return  # the server closes the connection after the handler
        try:
            self._sock.sendall(b"0\r\n\r\n")
        except OSError as exc:
            raise ClientGone from exc

    def check(self) -> None:
        if self._fake.aborted(self._ctx):
            raise Close
        if _peer_closed(self._sock, 0):
            raise ClientGone

    def idle(self, seconds: float, keepalive_every: float | None = None) -> None:
        """Wait, watching for a disconnect, sending keep-alive comments if asked."""
        self.flush()
        now = time.monotonic()
        deadline = now + seconds
        every = keepalive_every if self._keepalive is not None and self.headers_sent else None
        next_ka = now + every if every else math.inf
        while True:
            self.check()
            now = time.monotonic()
            if now >= deadline:
                return
            if every and now >= next_ka:
                self.write(self._keepalive or b"")
                self.flush()
                next_ka += every
                continue
            if _peer_closed(self._sock, min(POLL, deadline - now, next_ka - now)):
                raise ClientGone

    def pace(self) -> None:
        """Apply ``chunk_delay`` before every data event but the first."""
        s = self._ctx.scenario
        if self._data_started and s.chunk_delay > 0:
            self.idle(s.chunk_delay, s.keepalive_every)
        self._data_started = True

    def gate(self, gate: Gate, index: int) -> None:
        self.flush()
        deadline = time.monotonic() + gate.timeout
        while not gate.wait(index, POLL):
            self.check()
            if time.monotonic() >= deadline:
                gate.timed_out = True
                raise Close


def drop(handler: BaseHTTPRequestHandler) -> None:
    handler.close_connection = True
    with contextlib.suppress(OSError):
        handler.connection.shutdown(socket.SHUT_RDWR)


def send_bytes(
    handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: Mapping[str, str]
) -> None:
    handler.send_response(status, REASONS.get(status))
    for key, value in headers.items():
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def send_json(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: Any,
    headers: Mapping[str, str] | None = None,
) -> None:
    data = JSON.encode(body).encode()
    send_bytes(handler, status, data, {"Content-Type": "application/json", **(headers or {})})


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length > 0 else b""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 60  # a client that stops reading for this long is dropped
    server_header = "cloudflare"
    server: HTTPServer

    def version_string(self) -> str:
        return self.server_header

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.fake.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake.track(self.connection, add=False)

    def _dispatch(self) -> None:
        try:
            self.server.fake.handle(self)
        except (OSError, ClientGone, Close):
            drop(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    fake: FakeOpenRouter

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)
