"""Self-tests of the fake OpenRouter server, with only the standard library as the client."""

from __future__ import annotations

import json
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from rill.fake import (
    DEMO_CONTENT,
    ERROR_KINDS,
    LONG_CHUNKS,
    MSG_NO_AUTH,
    MSG_USER_NOT_FOUND,
    FakeOpenRouter,
    Gate,
    Scenario,
)

ROOT = Path(__file__).resolve().parent.parent
CHUNK_KEYS = ["id", "provider", "model", "object", "created", "choices"]
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


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
        with _OPENER.open(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


# --- the success path -----------------------------------------------------------------------


def test_stream_bytes_and_format(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario(content=["Hel", "lo"], system_fingerprint="fp_test"))
    r, raw = stream(fake_server, chat(usage={"include": True}))
    assert r.status == 200 and r.complete
    assert r.headers["content-type"] == "text/event-stream"
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["transfer-encoding"] == "chunked"
    gen_id = r.headers["x-generation-id"]
    assert re.fullmatch(r"gen-\d+-[A-Za-z0-9]{20}", gen_id)

    assert raw.startswith(b": OPENROUTER PROCESSING\n\ndata: {")
    assert raw.endswith(b"\n\ndata: [DONE]\n\n")
    objs = data_of(raw)
    assert objs[-1] == "[DONE]"
    chunks = objs[:-1]
    for obj in chunks:
        assert list(obj)[:6] == CHUNK_KEYS
        assert obj["id"] == gen_id and obj["object"] == "chat.completion.chunk"
        assert obj["provider"] == "OpenAI" and obj["model"] == "openai/gpt-4o"
        assert obj["system_fingerprint"] == "fp_test"
    role, hel, lo, finish, usage = chunks
    assert role["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "finish_reason": None,
            "native_finish_reason": None,
            "logprobs": None,
        }
    ]
    assert [d["content"] for d in deltas([hel, lo])] == ["Hel", "lo"]
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert finish["choices"][0]["native_finish_reason"] == "stop"
    assert finish["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert usage["choices"] == []
    assert list(usage)[-2:] == ["system_fingerprint", "usage"]
    u = usage["usage"]
    assert u["completion_tokens"] == 2 and u["total_tokens"] == u["prompt_tokens"] + 2
    assert u["cost"] > 0 and u["is_byok"] is False
    assert u["prompt_tokens_details"] == {"cached_tokens": 0}
    assert u["completion_tokens_details"] == {"reasoning_tokens": 0}
    assert u["cost_details"] == {"upstream_inference_cost": None}

    rec = fake_server.chat_requests[0]
    assert rec.method == "POST" and rec.path == "/api/v1/chat/completions"
    assert rec.headers["AUTHORIZATION"] == f"Bearer {fake_server.api_key}"
    assert rec.body["usage"] == {"include": True}


def test_one_http_chunk_per_event_by_default(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario(content=["a", "b"]))
    r = RawStream(fake_server, chat())
    chunks = r.chunks()
    assert all(c.endswith(b"\n\n") and c.count(b"\n\n") == 1 for c in chunks)
    assert len(chunks) == 1 + 1 + 2 + 1 + 1 + 1  # comment, role, 2 pieces, finish, usage, DONE


def test_demo_answer_echoes_requested_model(fake_server: FakeOpenRouter) -> None:
    _, raw = stream(fake_server, chat("acme/whatever"))
    objs = data_of(raw)
    assert {o["model"] for o in objs[:-1]} == {"acme/whatever"}
    assert "".join(d.get("content") or "" for d in deltas(objs)) == "".join(DEMO_CONTENT)


def test_served_model_and_request_headers_recorded(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario(content=["x"], served_model="openai/gpt-5.2", provider="Azure"))
    headers = {"HTTP-Referer": "https://example.org", "X-Title": "rill", "x-openrouter-title": "t"}
    _, raw = stream(fake_server, chat(models=["openai/gpt-5.2"]), headers=headers)
    assert {(o["model"], o["provider"]) for o in data_of(raw)[:-1]} == {("openai/gpt-5.2", "Azure")}
    rec = fake_server.last_request
    assert rec is not None
    assert rec.headers.get("http-referer") == "https://example.org"
    assert rec.headers["x-title"] == "rill" and "X-OpenRouter-Title" in rec.headers


@pytest.mark.parametrize("text", [": OPENROUTER PROCESSING", ": ", ":"])
def test_keepalives_before_and_while_waiting(fake_server: FakeOpenRouter, text: str) -> None:
    fake_server.enqueue(
        Scenario(
            content=["x"],
            keepalives_before=2,
            keepalive_text=text,
            delay_first_data=0.25,
            keepalive_every=0.05,
        )
    )
    _, raw = stream(fake_server)
    head = events(raw)
    first_data = next(i for i, e in enumerate(head) if e.startswith(b"data:"))
    # The two sent before, then one every 0.05 s of the 0.25 s wait: how many of those fit
    # depends on scheduling, so only the first one is counted on.
    assert first_data >= 3
    assert set(head[:first_data]) == {text.encode()}


def test_keepalive_every_chunks_and_during_stall(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(
        Scenario(
            content=["a", "b", "c", "d"],
            keepalives_before=0,
            keepalive_every_chunks=2,
            stall_after=3,
            stall_seconds=0.2,
            keepalive_every=0.05,
        )
    )
    _, raw = stream(fake_server)
    kinds = b"".join(b"C" if e.startswith(b":") else b"D" for e in events(raw))
    # role, a, b, comment (every 2nd piece), c, stall comments, d, finish, usage, DONE. The
    # stall's comments come every 0.05 s of 0.2 s: only the first is counted on, the others
    # depend on how the server's thread is scheduled.
    assert re.fullmatch(rb"DDDCDC+DDDD", kinds), kinds


@pytest.mark.parametrize(
    ("fields", "check"),
    [
        ({"usage_style": "legacy"}, "legacy"),
        ({"usage_style": None}, "none"),
        ({"usage_omit_cost": True}, "no-cost"),
        ({"usage_null_details": True}, "null-details"),
        ({"usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}, "override"),
    ],
)
def test_usage_variants(fake_server: FakeOpenRouter, fields: dict[str, Any], check: str) -> None:
    fake_server.enqueue(Scenario(content=["x"], **fields))
    objs = data_of(stream(fake_server)[1])[:-1]
    with_usage = [o for o in objs if "usage" in o]
    if check == "none":
        assert with_usage == []
        assert objs[-1]["choices"][0]["finish_reason"] == "stop"
        return
    (last,) = with_usage
    assert last is objs[-1]
    u = last["usage"]
    if check == "legacy":
        assert last["choices"] == [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "finish_reason": None,
                "native_finish_reason": None,
                "logprobs": None,
            }
        ]
    elif check == "no-cost":
        assert "cost" not in u and u["completion_tokens"] == 1
    elif check == "null-details":
        assert u["prompt_tokens_details"] is None and u["completion_tokens_details"] is None
    else:
        assert u == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


# --- errors ------------------------------------------------------------------------------------

ALL_ERRORS = [(status, kind) for status, kinds in ERROR_KINDS.items() for kind in kinds]
ALL_ERRORS += [(404, "availability"), (429, "availability"), (503, "availability"), (504, "html")]


@pytest.mark.parametrize(("status", "kind"), ALL_ERRORS)
def test_canned_pre_stream_errors(fake_server: FakeOpenRouter, status: int, kind: str) -> None:
    code, headers, body = request(
        fake_server, "/chat/completions", chat(f"fake/error-{status}-{kind}")
    )
    assert code == status
    if kind == "html":
        assert headers["Content-Type"] == "text/html"
        assert body.startswith(b"<html>") and str(status).encode() in body
        return
    assert headers["Content-Type"] == "application/json"
    error = json.loads(body)["error"]
    assert isinstance(error["message"], str) and error["message"]
    if kind == "availability":
        assert "code" not in error and error["http_status"] == status
        assert error["availability"]["requested_models"] == [f"fake/error-{status}-{kind}"]
        return
    assert error["code"] == status
    if status == 401:
        texts = {"user-not-found": MSG_USER_NOT_FOUND, "no-auth": MSG_NO_AUTH}
        assert error["message"] == texts.get(kind, "No auth credentials found")
    if (status, kind) == (402, "credits"):
        assert error["metadata"] == {"provider_name": None}
        assert error["message"].startswith("This request requires more credits")
    if (status, kind) == (429, "platform"):
        assert headers["Retry-After"] == "1"
        assert headers["X-RateLimit-Remaining"] == "0"
        assert error["metadata"]["headers"]["X-RateLimit-Reset"] == headers["X-RateLimit-Reset"]
        assert error["metadata"]["limit_source"] == "openrouter_free_tier_daily"
    if (status, kind) == (429, "upstream"):
        assert error["message"] == "Provider returned error"
        assert isinstance(json.loads(error["metadata"]["raw"]), dict)
    if status == 503:
        assert error["availability"]["retryable"] is True


def test_default_kinds_and_model_selected_errors(fake_server: FakeOpenRouter) -> None:
    code, _, body = request(fake_server, "/chat/completions", chat("fake/error-400"))
    assert code == 400
    assert json.loads(body)["error"]["message"] == "fake/error-400 is not a valid model ID"
    assert request(fake_server, "/chat/completions", chat("fake/error-401"))[0] == 401
    # an unknown kind is not a canned name: the demo answer is served
    assert request(fake_server, "/chat/completions", chat("fake/error-401-nope"))[0] == 200


def test_error_sequence_then_success(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(
        Scenario.error(429, retry_after=0),
        Scenario.error(503, retry_after=0.5, headers={"X-Extra": "1"}),
        Scenario(content=["ok"]),
    )
    assert fake_server.pending == 3
    first = request(fake_server, "/chat/completions", chat())
    second = request(fake_server, "/chat/completions", chat())
    third = request(fake_server, "/chat/completions", chat(stream=False))
    assert (first[0], first[1]["Retry-After"]) == (429, "0")
    assert (second[0], second[1]["Retry-After"], second[1]["X-Extra"]) == (503, "0.5", "1")
    assert json.loads(second[2])["error"]["availability"]["retry_after"] == 0.5
    assert third[0] == 200
    assert json.loads(third[2])["choices"][0]["message"]["content"] == "ok"
    assert fake_server.pending == 0


def test_explicit_error_body_and_content_type(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(
        Scenario(status=500, error_body="oops", content_type="text/plain"),
        Scenario(error_body={"error": {"message": "odd"}}),
    )
    code, headers, body = request(fake_server, "/chat/completions", chat())
    assert (code, headers["Content-Type"], body) == (500, "text/plain", b"oops")
    code, _, body = request(fake_server, "/chat/completions", chat())
    assert (code, json.loads(body)) == (200, {"error": {"message": "odd"}})


def test_midstream_error_documented_form(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario(content=["a", "b", "c"], midstream_error_after=2))
    r, raw = stream(fake_server)
    assert r.complete
    objs = data_of(raw)
    assert "[DONE]" not in objs
    assert [d["content"] for d in deltas(objs[:-1])] == ["", "a", "b"]
    err = objs[-1]
    assert list(err) == ["id", "object", "created", "model", "provider", "error", "choices"]
    assert err["error"]["code"] == 502 and err["error"]["metadata"]["error_type"]
    assert err["choices"] == [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]


def test_midstream_error_variants(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(
        Scenario(
            content=["a"],
            midstream_error={"code": "server_error", "message": "boom"},
            midstream_error_choices_empty=True,
            done_after_error=True,
        )
    )
    objs = data_of(stream(fake_server)[1])
    assert objs[-1] == "[DONE]"
    assert objs[-2]["choices"] == [] and objs[-2]["error"]["code"] == "server_error"
    assert deltas(objs[:-2])[-1]["content"] == "a"


@pytest.mark.parametrize("model", [None, "fake/truncated"])
def test_abrupt_close(fake_server: FakeOpenRouter, model: str | None) -> None:
    if model is None:
        fake_server.enqueue(Scenario(content=["a", "b", "c"], abrupt_close_after=2))
    r, raw = stream(fake_server, chat(model or "openai/gpt-4o"))
    assert r.status == 200 and not r.complete
    objs = data_of(raw)
    assert "[DONE]" not in objs
    assert all(o["choices"][0]["finish_reason"] is None for o in objs)
    assert len(objs) == 1 + (2 if model is None else 3)


def test_silent_failure(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario.silent_failure())
    objs = data_of(stream(fake_server)[1])
    assert all(not d.get("content") for d in deltas(objs[:-1]))
    finish = objs[-3]["choices"][0]
    assert (finish["finish_reason"], finish["native_finish_reason"]) == ("stop", "network_error")


# --- framing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("le", ["\r\n", "\r"])
def test_line_endings(fake_server: FakeOpenRouter, le: str) -> None:
    fake_server.enqueue(Scenario(content=["a", "b"], line_ending=le))  # type: ignore[arg-type]  # parametrized str
    raw = stream(fake_server)[1]
    sep = le.encode()
    assert raw.startswith(b": OPENROUTER PROCESSING" + sep + sep)
    assert raw.endswith(b"data: [DONE]" + sep + sep)
    if le == "\r":
        assert b"\n" not in raw
    objs = data_of(raw, sep)
    assert [d["content"] for d in deltas(objs[:-1])][:3] == ["", "a", "b"]


def test_final_event_without_blank_line(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(
        Scenario(content=["a"], no_final_blank_line=True),
        Scenario(content=["a"], no_final_newline=True),
        Scenario(content=["a"], send_done=False, no_final_blank_line=True),
    )
    assert stream(fake_server)[1].endswith(b"\n\ndata: [DONE]\n")
    assert stream(fake_server)[1].endswith(b"\n\ndata: [DONE]")
    raw = stream(fake_server)[1]
    assert raw.endswith(b"}\n") and not raw.endswith(b"}\n\n") and b"[DONE]" not in raw


def test_split_modes_send_the_same_bytes(fake_server: FakeOpenRouter) -> None:
    text = ["Grüße ", "aus ", "Köln — ", "日本語", "🎉🎉", ' "quoted" \\ ']
    same = {"content": text, "generation_id": "gen-1-abc", "created": 1, "tool_calls": []}
    fake_server.enqueue(
        Scenario(**same),
        Scenario(**same, split="coalesce"),
        Scenario(**same, split="bytes", split_seed=7, split_max=5),
    )
    by_event = RawStream(fake_server, chat()).chunks()
    coalesced = RawStream(fake_server, chat()).chunks()
    by_bytes = RawStream(fake_server, chat()).chunks()
    assert b"".join(by_event) == b"".join(coalesced) == b"".join(by_bytes)
    assert len(coalesced) == 1
    assert len(by_bytes) > len(b"".join(by_bytes)) // 5
    assert max(len(c) for c in by_bytes) <= 5

    def splits_a_character(chunk: bytes) -> bool:
        try:
            chunk.decode()
        except UnicodeDecodeError:
            return True
        return False

    assert any(splits_a_character(c) for c in by_bytes)
    assert "".join(d["content"] for d in deltas(data_of(b"".join(by_bytes))[:-1])) == "".join(text)


def test_huge_piece(fake_server: FakeOpenRouter) -> None:
    size = 4 * 1024 * 1024
    fake_server.enqueue(Scenario(content=["x"], huge_piece_bytes=size))
    raw = stream(fake_server)[1]
    longest = max(events(raw), key=len)
    assert len(longest) > size
    assert len(deltas(data_of(raw))[2]["content"]) == size


def test_long_stream_arrives_whole(fake_server: FakeOpenRouter) -> None:
    r, raw = stream(fake_server, chat("fake/long"))  # each read is bounded by the socket timeout
    assert r.complete
    assert raw.count(b"data: ") == LONG_CHUNKS + 4  # role, pieces, finish, usage, [DONE]


def test_paced_pieces_carry_their_send_time(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario.paced(4, 0.02))
    before = time.time_ns()
    objs = data_of(stream(fake_server)[1])
    stamps = [int(d["content"]) for d in deltas(objs[:-1]) if d.get("content")]
    assert len(stamps) == 4 and before <= stamps[0]
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert min(gaps) >= 15_000_000


# --- reasoning and tool calls ------------------------------------------------------------------


def test_reasoning_stream(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(
        Scenario(
            reasoning=["think", "ing"],
            content=["answer"],
            reasoning_encrypted="opaque",
            reasoning_null_on_content=True,
        )
    )
    objs = data_of(stream(fake_server)[1])
    ds = deltas(objs[:-1])
    assert [d.get("reasoning") for d in ds[1:3]] == ["think", "ing"]
    assert ds[1]["content"] == "" and ds[1]["reasoning_details"][0]["text"] == "think"
    assert ds[3]["reasoning_details"][0] == {
        "type": "reasoning.encrypted",
        "data": "opaque",
        "id": None,
        "format": "anthropic-claude-v1",
        "index": 0,
    }
    signature = ds[4]["reasoning_details"][0]
    assert signature["signature"] and "text" not in signature
    assert ds[5] == {
        "role": "assistant",
        "content": "answer",
        "reasoning": None,
        "reasoning_details": [],
    }
    assert objs[-2]["usage"]["completion_tokens_details"]["reasoning_tokens"] == 2


def test_reasoning_exclude_still_counts_tokens(fake_server: FakeOpenRouter) -> None:
    objs = data_of(stream(fake_server, chat("fake/reasoning", reasoning={"exclude": True}))[1])
    assert not any("reasoning" in d for d in deltas(objs[:-1]))
    assert objs[-2]["usage"]["completion_tokens_details"]["reasoning_tokens"] == 3


def test_tool_call_fragments(fake_server: FakeOpenRouter) -> None:
    objs = data_of(stream(fake_server, chat("fake/tools"))[1])
    frags = [t for d in deltas(objs[:-1]) for t in d.get("tool_calls", [])]
    first = frags[0]
    assert first["index"] == 0 and first["id"].startswith("call_") and first["type"] == "function"
    assert first["function"] == {"name": "get_weather", "arguments": ""}
    by_index: dict[int, str] = {}
    for frag in frags:
        by_index[frag["index"]] = by_index.get(frag["index"], "") + frag["function"]["arguments"]
    assert json.loads(by_index[0]) == {"location": "Paris, France", "unit": "c"}
    assert json.loads(by_index[1]) == {"timezone": "Europe/Paris"}
    assert all(len(f["function"]["arguments"]) <= 7 for f in frags)
    tool_delta = next(d for d in deltas(objs) if "tool_calls" in d)
    assert tool_delta["content"] is None
    assert objs[-3]["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_call_anomalies(fake_server: FakeOpenRouter) -> None:
    calls = [{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": "{}"}]
    fake_server.enqueue(
        Scenario(tool_calls=calls, tool_whole=True, tool_ids="duplicate", tool_shared_index=True),
        Scenario(tool_calls=calls, tool_missing_index=True, tool_ids="empty", finish_reason="stop"),
    )
    whole = [
        t for d in deltas(data_of(stream(fake_server)[1])[:-1]) for t in d.get("tool_calls", [])
    ]
    assert [(t["index"], t["function"]["arguments"]) for t in whole] == [(0, '{"x":1}'), (0, "{}")]
    assert whole[0]["id"] == whole[1]["id"]
    objs = data_of(stream(fake_server)[1])
    frags = [t for d in deltas(objs[:-1]) for t in d.get("tool_calls", [])]
    assert {f["id"] for f in frags if "id" in f} == {""}
    assert all("index" not in f for f in frags if "id" not in f)
    assert objs[-3]["choices"][0]["finish_reason"] == "stop"


# --- real streaming and disconnects ------------------------------------------------------------


def test_gate_holds_each_piece_until_released(fake_server: FakeOpenRouter) -> None:
    gate = Gate(timeout=5)
    fake_server.enqueue(Scenario(content=["p0", "p1", "p2"], gate=gate))
    r = RawStream(fake_server, chat())
    r.read_until(b'"p0"')
    for i in (1, 2):
        assert gate.wait_for_server(i, 5)
        assert not r.pending(0.1)  # piece i is held back
        gate.release(i)
        r.read_until(f'"p{i}"'.encode())
    rest = b"".join(r.chunks())
    assert rest.endswith(b"data: [DONE]\n\n") and r.complete


def test_gate_timeout_closes_the_connection(fake_server: FakeOpenRouter) -> None:
    gate = Gate(timeout=0.2)
    fake_server.enqueue(Scenario(content=["p0", "p1"], gate=gate))
    started = time.monotonic()
    r, raw = stream(fake_server)
    assert not r.complete and gate.timed_out
    assert b'"p0"' in raw and b'"p1"' not in raw
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("phase", ["chunk_delay", "delay_headers", "gate", "stall"])
def test_disconnect_is_detected_quickly(fake_server: FakeOpenRouter, phase: str) -> None:
    scenarios = {
        "chunk_delay": Scenario(content=["x"] * 200, chunk_delay=0.05),
        "delay_headers": Scenario(content=["x"], delay_headers=10),
        "gate": Scenario(content=["x", "y"], gate=Gate(timeout=10)),
        "stall": Scenario(content=["x", "y"], stall_after=1, stall_seconds=10),
    }
    fake_server.enqueue(scenarios[phase])
    r = RawStream(fake_server, chat(), read_head=phase != "delay_headers")
    if phase == "delay_headers":
        assert fake_server.wait_requests(1, 5)
    else:
        r.read_until(b'"x"')
    r.close()
    closed = time.monotonic()
    detected = fake_server.wait_disconnect(5)
    assert detected is not None and detected - closed < 3.0
    gen_id, _ = fake_server.disconnects[0]
    assert fake_server.generations[gen_id].cancelled
    assert fake_server.wait_disconnect(0.05) is None
    assert fake_server.wait_idle(5)


# --- non-streaming -----------------------------------------------------------------------------


def test_non_streaming_completion(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario(content=["Hel", "lo"], reasoning=["hmm"], system_fingerprint="fp"))
    code, headers, body = request(fake_server, "/chat/completions", chat(stream=False))
    assert code == 200 and headers["Content-Type"] == "application/json"
    obj = json.loads(body)
    assert list(obj)[:6] == ["id", "provider", "model", "object", "created", "choices"]
    assert obj["object"] == "chat.completion" and headers["X-Generation-Id"] == obj["id"]
    choice = obj["choices"][0]
    assert (choice["finish_reason"], choice["native_finish_reason"]) == ("stop", "stop")
    message = choice["message"]
    assert message["content"] == "Hello" and message["reasoning"] == "hmm"
    assert message["refusal"] is None and message["reasoning_details"][0]["text"] == "hmm"
    assert obj["usage"]["completion_tokens"] == 3


def test_non_streaming_error_with_200(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario(content=["a", "b", "c"], midstream_error_after=1))
    code, _, body = request(fake_server, "/chat/completions", chat(stream=False))
    choice = json.loads(body)["choices"][0]
    assert code == 200 and choice["finish_reason"] == "error"
    assert choice["message"]["content"] == "a" and choice["error"]["code"] == 502


# --- personas ----------------------------------------------------------------------------------


def test_persona_openai(fake_server: FakeOpenRouter) -> None:
    scenario = Scenario(persona="openai", content=["a", "b"])
    fake_server.enqueue(scenario, scenario, Scenario.error(404, persona="openai"))
    raw = stream(fake_server, chat(stream_options={"include_usage": True}))[1]
    assert raw.startswith(b"data: ") and b"\n\n:" not in raw
    objs = data_of(raw)[:-1]
    assert all(
        "provider" not in o and "native_finish_reason" not in o["choices"][0] for o in objs[:-1]
    )
    assert objs[0]["id"].startswith("chatcmpl-")
    assert all(o["usage"] is None for o in objs[:-1])
    assert (
        objs[-2]["choices"][0]["delta"] == {} and objs[-2]["choices"][0]["finish_reason"] == "stop"
    )
    assert objs[-1]["choices"] == [] and "cost" not in objs[-1]["usage"]
    objs = data_of(stream(fake_server)[1])[:-1]
    assert not any("usage" in o for o in objs)
    code, _, body = request(fake_server, "/chat/completions", chat())
    error = json.loads(body)["error"]
    assert code == 404 and set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "model_not_found"


def test_persona_llamacpp_legacy(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(
        Scenario(persona="llamacpp-legacy", content=["a"], reasoning=["r"]),
        Scenario(persona="llamacpp-legacy", content=["a", "b"], midstream_error_after=1),
    )
    raw = stream(fake_server)[1]
    assert raw.startswith(b":\n\ndata: ") and raw.endswith(b"}\n\ndata: [DONE]\n")
    objs = data_of(raw)
    assert deltas(objs)[0] == {"role": "assistant", "content": None}
    assert deltas(objs)[1] == {"reasoning_content": "r"}
    assert objs[-2]["usage"]["completion_tokens"] == 2 and "timings" in objs[-2]
    assert list(objs[1]) == sorted(objs[1])
    raw = stream(fake_server)[1]
    assert re.search(rb'\n\nerror: \{"code":502,[^\n]*\}\n\ndata: \[DONE\]\n$', raw)


def test_persona_vllm_old(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(
        Scenario(persona="vllm-old", content=["a", "b"]), Scenario.error(400, persona="vllm-old")
    )
    body = chat(stream_options={"include_usage": True, "continuous_usage_stats": True})
    objs = data_of(stream(fake_server, body)[1])[:-1]
    assert all("usage" in o for o in objs)
    assert [o["usage"]["completion_tokens"] for o in objs[:3]] == [0, 1, 2]
    code, _, raw = request(fake_server, "/chat/completions", chat())
    error = json.loads(raw)
    assert code == 400 and error["object"] == "error" and error["code"] == 400


def test_persona_ollama_needs_no_key(fake_server: FakeOpenRouter) -> None:
    calls = [{"name": "a", "arguments": "{}"}, {"name": "b", "arguments": '{"y":2}'}]
    fake_server.enqueue(Scenario(persona="ollama", reasoning=["r"], tool_calls=calls))
    r, raw = stream(fake_server, auth=False)
    assert r.status == 200
    objs = data_of(raw)
    ds = deltas(objs[:-1])
    assert ds[0]["reasoning"] == "r"
    (tool_delta,) = [d for d in ds if "tool_calls" in d]
    assert [t["function"]["name"] for t in tool_delta["tool_calls"]] == ["a", "b"]
    assert objs[0]["system_fingerprint"] == "fp_ollama"


def test_reject_stream_options(fake_server: FakeOpenRouter) -> None:
    scenario = Scenario(persona="openai", content=["ok"], reject_stream_options=True)
    fake_server.enqueue(scenario, scenario)
    code, _, body = request(
        fake_server, "/chat/completions", chat(stream_options={"include_usage": True})
    )
    assert code == 400 and "stream_options" in json.loads(body)["error"]["message"]
    assert request(fake_server, "/chat/completions", chat())[0] == 200


# --- auth, routing and side endpoints ----------------------------------------------------------


def test_auth_failures_keep_the_queue(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario(content=["queued"]))
    for key, message in [
        (None, MSG_NO_AUTH),
        ("", MSG_NO_AUTH),
        ("sk-or-v1-bad", MSG_USER_NOT_FOUND),
    ]:
        code, _, body = request(fake_server, "/chat/completions", chat(), key=key)
        assert code == 401
        assert json.loads(body) == {"error": {"message": message, "code": 401}}
    assert fake_server.pending == 1
    fake_server.require_auth = False
    code, _, body = request(fake_server, "/chat/completions", chat(stream=False), key=None)
    assert code == 200 and b"queued" in body


def test_v1_prefix_and_unknown_paths(fake_server: FakeOpenRouter) -> None:
    assert request(fake_server, "/chat/completions", chat(), base="/v1")[0] == 200
    assert request(fake_server, "/nope", None)[0] == 404
    assert request(fake_server, "/models", chat())[0] == 405  # POST on a GET route


def test_models_endpoint(fake_server: FakeOpenRouter) -> None:
    code, _, body = request(fake_server, "/models", key=None)
    listing = json.loads(body)
    assert code == 200 and listing["total_count"] == len(listing["data"]) >= 4
    assert listing["links"] == {"next": None}
    ids = [m["id"] for m in listing["data"]]
    assert "openai/gpt-4o" in ids and "anthropic/claude-sonnet-4" in ids
    gpt = listing["data"][ids.index("openai/gpt-4o")]
    assert isinstance(gpt["pricing"]["prompt"], str) and gpt["context_length"] == 128000
    assert gpt["top_provider"]["max_completion_tokens"] and "tools" in gpt["supported_parameters"]
    assert gpt["architecture"]["output_modalities"] == ["text"]
    code, _, body = request(fake_server, "/models?supported_parameters=reasoning", key=None)
    assert "openai/gpt-4o" not in [m["id"] for m in json.loads(body)["data"]]
    fake_server.models_style = "generic"
    generic = json.loads(request(fake_server, "/models", base="/v1")[2])
    assert generic["object"] == "list" and "pricing" not in generic["data"][0]


def test_generation_endpoint(fake_server: FakeOpenRouter) -> None:
    r, _ = stream(fake_server)
    gen_id = r.headers["x-generation-id"]
    fake_server.generation_404_polls = 2
    assert request(fake_server, f"/generation?id={gen_id}", key="wrong")[0] == 401
    assert request(fake_server, f"/generation?id={gen_id}")[0] == 404
    assert request(fake_server, f"/generation?id={gen_id}")[0] == 404
    code, _, body = request(fake_server, f"/generation?id={gen_id}")
    data = json.loads(body)["data"]
    assert code == 200 and data["id"] == gen_id and data["streamed"] is True
    assert data["cancelled"] is False and data["finish_reason"] == "stop"
    assert data["tokens_completion"] == len(DEMO_CONTENT) and data["total_cost"] > 0
    assert request(fake_server, "/generation?id=gen-0-unknown")[0] == 404


def test_key_and_credits(fake_server: FakeOpenRouter) -> None:
    before = json.loads(request(fake_server, "/key")[2])["data"]
    assert before["limit"] == 10.0 and before["limit_remaining"] == 10.0
    assert before["is_management_key"] is False
    objs = data_of(stream(fake_server)[1])
    cost = objs[-2]["usage"]["cost"]
    after = json.loads(request(fake_server, "/auth/key")[2])["data"]
    assert after["limit_remaining"] == pytest.approx(10.0 - cost)
    assert after["usage"] == pytest.approx(cost)
    assert request(fake_server, "/key", key=None)[0] == 401
    code, _, body = request(fake_server, "/credits")
    assert code == 403 and json.loads(body)["error"]["code"] == 403
    fake_server.management_key = True
    credits = json.loads(request(fake_server, "/credits")[2])["data"]
    assert credits["total_usage"] == pytest.approx(cost)


def test_echo_and_repeat(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario(content=["twice"], repeat=2))
    assert fake_server.pending == 2
    for _ in range(2):
        assert b"twice" in request(fake_server, "/chat/completions", chat(stream=False))[2]
    body = chat("fake/echo", messages=[{"role": "user", "content": "say it back"}])
    ds = deltas(data_of(stream(fake_server, body)[1])[:-1])
    pieces = [d["content"] for d in ds if d.get("content")]
    assert "".join(pieces) == "say it back" and len(pieces) == 3


def test_command_line() -> None:
    command = [sys.executable, "-m", "rill.fake", "--no-auth", "--scenario", "echo"]
    out, err = subprocess.PIPE, subprocess.PIPE
    with subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err, text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            assert select.select([proc.stdout], [], [], 10)[0], "no banner"
            line = proc.stdout.readline()
            pattern = r"(http://127\.0\.0\.1:\d+/api/v1)\n"
            m = re.fullmatch(pattern, line)
            assert m, line
            req = urllib.request.Request(
                m[1] + "/chat/completions",
                data=json.dumps(chat("any", stream=False)).encode(),
                headers={"Content-Type": "application/json"},
            )
            with _OPENER.open(req, timeout=5) as resp:
                assert json.loads(resp.read())["choices"][0]["message"]["content"] == "hi there"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=5) == 0
            assert proc.stderr.read() == ""
        finally:
            if proc.poll() is None:
                proc.kill()
