"""A client for the fake OpenRouter server made of the standard library alone: requests, raw
chunked streams that keep the HTTP framing visible, and the SSE events in them (the fake's
self-tests use it, so a bug in rill's own client cannot hide a bug in the server)."""

from __future__ import annotations

import json
import select
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from rill.fake import FakeOpenRouter

ROOT = Path(__file__).resolve().parent.parent
CHUNK_KEYS = ["id", "provider", "model", "object", "created", "choices"]
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def chat(model: str = "openai/gpt-4o", stream: bool = True, **extra: Any) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi there"}], "stream": stream}
    return {**body, **extra}


class RawStream:
    """A tiny HTTP/1.1 client that keeps the chunked framing visible."""

    def __init__(
        self,
        server: FakeOpenRouter,
        body: Any,
        *,
        path: str = "/api/v1/chat/completions",
        method: str = "POST",
        headers: dict[str, str] | None = None,
        auth: bool = True,
        read_head: bool = True,
    ) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=5)
        data = b"" if body is None else json.dumps(body).encode()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {server.host}", "Connection: close"]
        lines.append(f"Content-Length: {len(data)}")
        if body is not None:
            lines.append("Content-Type: application/json")
        if auth:
            lines.append(f"Authorization: Bearer {server.api_key}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
        self.buf = bytearray()
        self.complete = False
        self.status = 0
        self.headers: dict[str, str] = {}
        if read_head:
            self.read_head()

    def _fill(self, timeout: float = 5.0) -> None:
        readable, _, _ = select.select([self.sock], [], [], timeout)
        if not readable:
            raise TimeoutError("the fake server sent nothing")
        try:
            data = self.sock.recv(1 << 16)
        except ConnectionResetError:
            data = b""
        if not data:
            raise EOFError
        self.buf += data

    def _line(self) -> bytes:
        while (end := self.buf.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self.buf[:end])
        del self.buf[: end + 2]
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_head(self) -> None:
        self.status = int(self._line().split()[1])
        while line := self._line():
            key, _, value = line.decode().partition(":")
            self.headers[key.strip().lower()] = value.strip()

    def next_chunk(self) -> bytes | None:
        """The next HTTP chunk; None after the last one or when the connection was cut."""
        try:
            size = int(self._line().split(b";")[0], 16)
            if size == 0:
                self._line()
                self.complete = True
                return None
            data = self._exact(size)
            self._exact(2)
            return data
        except EOFError:
            return None

    def chunks(self) -> list[bytes]:
        out = []
        while (chunk := self.next_chunk()) is not None:
            out.append(chunk)
        self.close()
        return out

    def read_until(self, needle: bytes) -> bytes:
        seen = b""
        while needle not in seen:
            chunk = self.next_chunk()
            assert chunk is not None, f"stream ended before {needle!r}: {seen!r}"
            seen += chunk
        return seen

    def pending(self, timeout: float) -> bool:
        return bool(self.buf) or bool(select.select([self.sock], [], [], timeout)[0])

    def close(self) -> None:
        self.sock.close()


def stream(server: FakeOpenRouter, body: Any = None, **kw: Any) -> tuple[RawStream, bytes]:
    r = RawStream(server, chat() if body is None else body, **kw)
    return r, b"".join(r.chunks())


def events(raw: bytes, le: bytes = b"\n") -> list[bytes]:
    parts = raw.split(le + le)
    return [p for p in parts if p]


def data_of(raw: bytes, le: bytes = b"\n") -> list[Any]:
    out: list[Any] = []
    for event in events(raw, le):
        if event.startswith(b"data: "):
            payload = event[len(b"data: ") :].rstrip(b"\r\n")
            out.append("[DONE]" if payload == b"[DONE]" else json.loads(payload))
    return out


def deltas(objs: list[Any]) -> list[dict[str, Any]]:
    return [o["choices"][0]["delta"] for o in objs if isinstance(o, dict) and o.get("choices")]


def request(
    server: FakeOpenRouter,
    path: str,
    body: Any = None,
    *,
    key: str | None = "default",
    base: str = "/api/v1",
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {server.api_key if key == 'default' else key}"
    data = None if body is None else json.dumps(body).encode()
    url = f"http://{server.host}:{server.port}{base}{path}"
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with OPENER.open(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()
