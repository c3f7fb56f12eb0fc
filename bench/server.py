"""A small HTTP/1.1 server for the benchmarks: streaming bodies built in memory, sent fast.

The test suite's fake server favours fidelity; this one only has to be quick and exact. Each
route serves one kind of ``/chat/completions`` answer; the URL names the route and a tag,
``http://127.0.0.1:PORT/<route>/<tag>/v1``, so the benchmark can look up when the request of one
particular run arrived (``arrival_ns(tag)``, on ``time.monotonic_ns()``, which is system-wide on
Linux and so comparable with the parent process's clock).

- ``body`` routes send a pre-built response (headers and the whole chunked body) with
  ``sendall``: as fast as the loopback and the client allow.
- ``paced`` routes send ``count`` content chunks ``interval`` seconds apart, each carrying its
  own send time as content: ``"<monotonic_ns>\\n"``. One thread (``Pacer``) sends every paced
  stream's chunks when they are due, so that many streams at once are paced as precisely as
  one: a thread per stream would queue for the interpreter between reading the clock and
  sending, and that wait would count as latency.

Chunk objects follow PROTOCOL.md §3.2 (OpenRouter's key order and field set), one HTTP chunk per
SSE event, as a server that flushes every token writes them (or, with ``framing="coalesced"``,
64 KiB chunks, as a buffering proxy would).
"""

from __future__ import annotations

import contextlib
import heapq
import json
import random
import socket
import threading
import time
from dataclasses import dataclass, field

GEN_ID = "gen-1754441342-hIkMo7SMi0ZecQw3oR4d"
#: Pieces of content, with quotes, escapes and multi-byte characters to check byte-exactness.
WORDS = [
    "the",
    " model",
    " answer",
    "Peb",
    "ble",
    " is",
    ",",
    " naïve",
    " 😀",
    "\n\n",
    " 42",
    ".",
    ' "quoted"',
    " back\\slash",
    "\tTab",
    " 日本語",
]
USAGE = {
    "prompt_tokens": 17,
    "completion_tokens": 0,
    "total_tokens": 17,
    "cost": 0.0001025,
    "is_byok": False,
    "prompt_tokens_details": {"cached_tokens": 0},
    "cost_details": {"upstream_inference_cost": None},
    "completion_tokens_details": {"reasoning_tokens": 0},
}
KEEPALIVE = b": OPENROUTER PROCESSING\n\n"
BLOCK = 64 * 1024  # HTTP chunk size of the "coalesced" framing
HEADERS = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream\r\n"
    b"Cache-Control: no-cache\r\n"
    b"X-Generation-Id: " + GEN_ID.encode() + b"\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"Connection: close\r\n"
    b"\r\n"
)


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _event(choices: list[dict[str, object]], **tail: object) -> bytes:
    """One ``data: {chat.completion.chunk}\\n\\n`` event, keys in OpenRouter's order."""
    obj = {
        "id": GEN_ID,
        "provider": "OpenAI",
        "model": "openai/gpt-4o",
        "object": "chat.completion.chunk",
        "created": 1754441342,
        "choices": choices,
        **tail,
    }
    return b"data: " + _dumps(obj).encode() + b"\n\n"


def chunk_event(content: str, finish: str | None = None) -> bytes:
    """A content delta (or the finish chunk), as OpenRouter writes it."""
    choice = {
        "index": 0,
        "delta": {"role": "assistant", "content": content},
        "finish_reason": finish,
        "native_finish_reason": finish,
        "logprobs": None,
    }
    return _event([choice], system_fingerprint="fp_07871e2ad8")


def usage_event(completion_tokens: int) -> bytes:
    usage = dict(USAGE, completion_tokens=completion_tokens)
    usage["total_tokens"] = usage["prompt_tokens"] + completion_tokens
    return _event([], usage=usage)


def frame(event: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(event), event)


def closing_events(count: int) -> list[bytes]:
    return [chunk_event("", "stop"), usage_event(count), b"data: [DONE]\n\n"]


@dataclass
class Stream:
    """A whole answer: its SSE events, the content they carry and the response bytes."""

    events: list[bytes]
    content: str
    count: int

    @property
    def sse(self) -> bytes:
        """The body as a client sees it once de-chunked (what ``curl -N`` prints)."""
        return b"".join(self.events)

    def response(self, framing: str = "event") -> bytes:
        """Headers and chunked body: one HTTP chunk per event, or 64 KiB chunks ("coalesced")."""
        if framing == "coalesced":
            body = self.sse
            frames = [frame(body[i : i + BLOCK]) for i in range(0, len(body), BLOCK)]
        else:
            frames = [frame(e) for e in self.events]
        return HEADERS + b"".join(frames) + b"0\r\n\r\n"


def build_stream(count: int, seed: int = 1) -> Stream:
    """Keep-alive, a role chunk, ``count`` content chunks, finish chunk, usage chunk, [DONE]."""
    rng = random.Random(seed)
    pieces = ["".join(rng.choices(WORDS, k=rng.randint(1, 3))) for _ in range(count)]
    events = [KEEPALIVE, chunk_event("")]
    events += [chunk_event(p) for p in pieces]
    events += closing_events(count)
    return Stream(events, "".join(pieces), count)


@dataclass
class Paced:
    count: int
    interval: float


class Pacer:
    """One thread sending every paced stream's content chunks when they are due; the time
    stamped in a chunk is read right before it is sent."""

    def __init__(self) -> None:
        self._due: list[tuple[int, int, PacedStream]] = []  # (due ns, order, stream)
        self._cond = threading.Condition()
        self._order = 0
        threading.Thread(target=self._run, name="bench-pacer", daemon=True).start()

    def send(self, conn: socket.socket, paced: Paced, errors: list[str]) -> None:
        """Send ``paced``'s chunks on ``conn`` and its closing events; back when they are sent."""
        stream = PacedStream(conn, paced.count, int(paced.interval * 1e9), errors)
        if stream.left:
            self._add(time.monotonic_ns() + stream.step, stream)
            if not stream.done.wait(paced.count * paced.interval + 120):
                errors.append("a paced stream did not end")
                return
        tail = b"".join(frame(e) for e in closing_events(paced.count))
        conn.sendall(tail + b"0\r\n\r\n")

    def _add(self, due: int, stream: PacedStream) -> None:
        with self._cond:
            self._order += 1
            heapq.heappush(self._due, (due, self._order, stream))
            self._cond.notify()

    def _run(self) -> None:
        clock = time.monotonic_ns
        while True:
            with self._cond:
                while not self._due:
                    self._cond.wait()
                due, _, stream = self._due[0]
                wait = due - clock()
                if wait > 0:
                    self._cond.wait(wait / 1e9)
                    continue
                heapq.heappop(self._due)
            try:
                stream.conn.sendall(frame(chunk_event(f"{clock()}\n")))
            except OSError as exc:
                stream.errors.append(f"{type(exc).__name__}: {exc}")
                stream.left = 0
            else:
                stream.left -= 1
            if stream.left:
                self._add(due + stream.step, stream)
            else:
                stream.done.set()


@dataclass
class PacedStream:
    conn: socket.socket
    left: int
    step: int
    errors: list[str]
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class BenchServer:
    """Threaded loopback server; ``start()`` it, ``close()`` it (or use ``with``)."""

    host: str = "127.0.0.1"
    routes: dict[str, bytes | Paced] = field(default_factory=dict)
    arrivals: dict[str, int] = field(default_factory=dict)
    last_arrivals: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._sock = socket.create_server((self.host, 0), backlog=128)
        self.port: int = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="bench-server", daemon=True)
        self._lock = threading.Lock()
        self._closed = False
        self._pacer: Pacer | None = None

    # -- public API ----------------------------------------------------------------------------

    def add_body(self, route: str, response: bytes) -> None:
        self.routes[route] = response

    def add_paced(self, route: str, count: int, interval: float) -> None:
        self.routes[route] = Paced(count, interval)
        if self._pacer is None:
            self._pacer = Pacer()

    def base_url(self, route: str, tag: str) -> str:
        return f"http://{self.host}:{self.port}/{route}/{tag}/v1"

    def arrival_ns(self, tag: str) -> int | None:
        with self._lock:
            return self.arrivals.get(tag)

    def arrival_spread_ns(self, tag: str) -> int | None:
        """From the first request of ``tag`` to arrive to the last (None: none arrived)."""
        with self._lock:
            first, last = self.arrivals.get(tag), self.last_arrivals.get(tag)
        return None if first is None or last is None else last - first

    def forget(self, tag: str) -> None:
        """Forget when the requests of ``tag`` arrived (a tag used again for a new run)."""
        with self._lock:
            self.arrivals.pop(tag, None)
            self.last_arrivals.pop(tag, None)

    def start(self) -> BenchServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> BenchServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving -------------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                path = self._read_request(conn)
                if path is None:
                    return
                parts = path.strip("/").split("/")
                route = self.routes.get(parts[0]) if parts else None
                if route is None or len(parts) < 2 or not path.endswith("/chat/completions"):
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    return
                if isinstance(route, Paced):
                    assert self._pacer is not None
                    conn.sendall(HEADERS + frame(KEEPALIVE) + frame(chunk_event("")))
                    self._pacer.send(conn, route, self.errors)
                else:
                    conn.sendall(route)
                conn.shutdown(socket.SHUT_WR)
        except OSError as exc:  # a client that went away early is its own benchmark's failure
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def _read_request(self, conn: socket.socket) -> str | None:
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                return None
            buf += data
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        method, path, _ = lines[0].decode("latin-1").split(" ", 2)
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            data = conn.recv(65536)
            if not data:
                return None
            body += data
        now = time.monotonic_ns()
        parts = path.strip("/").split("/")
        if len(parts) >= 2:
            with self._lock:
                self.arrivals.setdefault(parts[1], now)
                self.last_arrivals[parts[1]] = now
        return path if method == "POST" else None
