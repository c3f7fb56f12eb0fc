"""Self-tests of the fake OpenRouter server, with only the standard library as the client."""

from __future__ import annotations

import ast
import json
import math
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
    CATALOGUE,
    DEMO_CONTENT,
    ERROR_KINDS,
    LONG_CHUNKS,
    MSG_NO_AUTH,
    MSG_USER_NOT_FOUND,
    PERSONAS,
    FakeOpenRouter,
    Gate,
    Scenario,
    canned_scenario,
)
from tests.e2e import RILL, stop

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


# --- rill fake-server ---------------------------------------------------------------------


def fake_server_process(*args: str) -> subprocess.Popen[str]:
    command = [*RILL, "fake-server", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def first_line(proc: subprocess.Popen[str], timeout: float = 10) -> str:
    assert proc.stdout is not None
    assert select.select([proc.stdout], [], [], timeout)[0], "no URL line"
    return proc.stdout.readline()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_rill_fake_server_prints_its_url_and_stops_quietly(signum: int) -> None:
    with fake_server_process("--port", "0", "--scenario", "hostile-nan") as proc:
        try:
            url = first_line(proc).rstrip("\n")
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/v1", url), url
            req = urllib.request.Request(
                url + "/chat/completions",
                data=json.dumps(chat("any", stream=False)).encode(),
                headers={"Authorization": "Bearer sk-or-v1-test"},
            )
            with _OPENER.open(req, timeout=5) as resp:
                assert math.isnan(json.loads(resp.read())["usage"]["cost"])
            proc.send_signal(signum)
            assert proc.wait(timeout=10) == 0
            assert proc.stderr is not None and proc.stderr.read() == ""
        finally:
            stop([proc])


def test_a_busy_port_is_one_line_and_exit_2(fake_server: FakeOpenRouter) -> None:
    for command in (
        [*RILL, "fake-server", "--port", str(fake_server.port)],
        [sys.executable, "-m", "rill.fake", "--port", str(fake_server.port)],
    ):
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 2 and done.stdout == ""
        assert re.fullmatch(
            rf"rill: cannot listen on 127\.0\.0\.1:{fake_server.port}: .+\n", done.stderr
        )


@pytest.mark.parametrize(
    "args",
    [["fake-server", "--scenario", "nope"], ["fake-server", "--scenario", "hostile-key-nowhere"]],
)
def test_bad_fake_server_options_are_one_line_and_exit_2(args: list[str]) -> None:
    done = subprocess.run([*RILL, *args], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("rill: unknown scenario") and done.stderr.count("\n") == 1


def test_python_m_rill_fake_bad_option() -> None:
    command = [sys.executable, "-m", "rill.fake", "--bogus"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert done.stderr == "rill: unrecognized arguments: --bogus (see python -m rill.fake --help)\n"


def test_the_help_and_the_list_document_every_scenario() -> None:
    listing = subprocess.run(
        [*RILL, "fake-server", "--list-scenarios"], capture_output=True, text=True, timeout=30
    )
    module_help = subprocess.run(
        [sys.executable, "-m", "rill.fake", "--help"], capture_output=True, text=True, timeout=30
    )
    assert listing.returncode == 0 and module_help.returncode == 0
    for name, _ in CATALOGUE:
        assert f"  {name}\n" in listing.stdout and f"  {name}\n" in module_help.stdout
    command_help = subprocess.run(
        [*RILL, "fake-server", "--help"], capture_output=True, text=True, timeout=30
    ).stdout
    flat = re.sub(r"(?<=\w-)\s+", "", " ".join(command_help.split()))  # words cut at hyphens
    for word in ("--port", "--scenario", "--list-scenarios", "Exit status: 0", "busy port"):
        assert word in flat
    for name, _ in CATALOGUE:
        if name.startswith("hostile-"):
            assert name in flat


def test_every_catalogue_entry_is_a_scenario() -> None:
    examples = {"STATUS": "429", "KIND": "upstream", "N": "7", "SIZE": "3k", "FIELD": "model"}
    examples["PLACE"] = "message"
    for name, _ in CATALOGUE:
        plain = re.sub(r"\[-[^]]*\]", "", name)  # without the optional parts
        full = re.sub(r"\[-([^]|]*)[^]]*\]", r"-\1", name)  # with the first of each
        for variant in {plain, full}:
            key = re.sub(r"[A-Z]+", lambda m: examples[m[0]], variant)
            assert canned_scenario(f"fake/{key}") is not None, key
    for bad in ("hostile-nope", "hostile-key-url", "hostile-type-usage", "hostile-endless-line-x"):
        assert canned_scenario(f"fake/{bad}") is None


def test_the_commands_persona_choices_are_the_fakes() -> None:
    from rill.commands.fake import Persona

    assert tuple(p.value for p in Persona) == PERSONAS


# --- hostile modes ------------------------------------------------------------------------


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_endless_line_is_sent_in_pieces_without_a_newline(fake_server: FakeOpenRouter) -> None:
    assert canned_scenario("fake/hostile-endless-line") == Scenario(
        endless_line_bytes=80 * 1024 * 1024
    )
    size = 1024 * 1024 + 5
    r = RawStream(fake_server, chat("fake/hostile-endless-line-" + str(size)))
    chunks = r.chunks()
    raw = b"".join(chunks)
    assert r.status == 200 and r.complete
    head, _, line = raw.rpartition(b"\n\n")
    assert data_of(head + b"\n\n")[0]["choices"][0]["delta"]["role"] == "assistant"
    assert line == b"data: " + b"a" * size
    assert max(len(c) for c in chunks) <= 64 * 1024 and len(chunks) >= size // (64 * 1024)


def test_endless_line_stops_when_the_client_leaves(fake_server: FakeOpenRouter) -> None:
    r = RawStream(fake_server, chat("fake/hostile-endless-line"))  # 80 MiB
    assert len(r.read_until(b"a" * 300_000)) < 80 * 1024 * 1024
    r.close()
    assert fake_server.wait_disconnect(10) is not None
    assert fake_server.wait_idle(10)


def deep_event(raw: bytes, key: bytes, depth: int) -> dict[str, Any]:
    """The one data event holding ``key`` nested ``depth`` deep, that value replaced by 0."""
    found = [e for e in events(raw) if nested(depth) in e]
    assert len(found) == 1
    event = found[0]
    assert event.count(b"[" * depth) == 1 and b"[" * (depth + 1) not in event
    assert b'"' + key + b'":' + nested(depth) in event
    obj = json.loads(event.removeprefix(b"data: ").replace(nested(depth), b"0"))
    assert isinstance(obj, dict)
    return obj


@pytest.mark.parametrize(
    ("where", "key"), [("content", "content"), ("reasoning", "reasoning_details")]
)
def test_deep_json_in_a_chunk(fake_server: FakeOpenRouter, where: str, key: str) -> None:
    r, raw = stream(fake_server, chat(f"fake/hostile-deep-{where}"))
    obj = deep_event(raw, key.encode(), 100_000)
    assert obj["choices"][0]["delta"][key] == 0 and obj["model"] == "fake/hostile-deep-" + where
    r, raw = stream(fake_server, chat(f"fake/hostile-deep-{where}-3000"))
    deep_event(raw, key.encode(), 3000)
    texts = [d.get("content") for d in deltas([o for o in data_of_lenient(raw)])]
    assert "".join(t for t in texts if isinstance(t, str)) == "Before the deep chunk. After it."
    assert raw.endswith(b"data: [DONE]\n\n")


def data_of_lenient(raw: bytes) -> list[Any]:
    """``data_of`` without the events too deep for ``json``."""
    return [json.loads(e[6:]) for e in events(raw) if e.startswith(b"data: {") and b"[[[[" not in e]


def test_deep_json_in_an_error_body(fake_server: FakeOpenRouter) -> None:
    for stream_ in (True, False):
        status, headers, body = request(
            fake_server, "/chat/completions", chat("fake/hostile-deep-error-50000", stream=stream_)
        )
        assert status == 502 and headers["Content-Type"] == "application/json"
        assert body.count(b"[") == 50_000 and nested(50_000) in body
        error = json.loads(body.replace(nested(50_000), b"0"))["error"]
        assert error["code"] == 502 and error["metadata"]["raw"] == 0
    status, _, body = request(fake_server, "/chat/completions", chat("fake/hostile-deep-error"))
    assert status == 502 and nested(100_000) in body


@pytest.mark.parametrize("field", ["finish_reason", "model", "provider", "id"])
@pytest.mark.parametrize("kind", ["object", "number"])
def test_fields_of_the_wrong_type(fake_server: FakeOpenRouter, field: str, kind: str) -> None:
    value = {"object": {"unexpected": ["object"]}, "number": 42}[kind]
    r, raw = stream(fake_server, chat(f"fake/hostile-type-{field}-{kind}"))
    objs = [o for o in data_of(raw) if isinstance(o, dict)]
    assert len(objs) >= 3
    if field == "finish_reason":
        reasons = [o["choices"][0]["finish_reason"] for o in objs if o["choices"]]
        assert reasons[-1] == value and set(map(str, reasons[:-1])) == {"None"}
    else:
        assert all(o[field] == value for o in objs)
    assert "".join(d.get("content") or "" for d in deltas(objs)) == "".join(DEMO_CONTENT)
    status, _, body = request(
        fake_server, "/chat/completions", chat(f"fake/hostile-type-{field}", stream=False)
    )
    whole = json.loads(body)
    got = whole["choices"][0]["finish_reason"] if field == "finish_reason" else whole[field]
    assert status == 200 and got == {"unexpected": ["object"]}


KEY = "sk-or-v1-" + "0123456789abcdef" * 4


@pytest.fixture
def keyed(fake_server: FakeOpenRouter) -> FakeOpenRouter:
    fake_server.api_key = KEY  # a key as long as a real one (reset() restores the default)
    return fake_server


def test_an_error_code_echoing_the_key(keyed: FakeOpenRouter) -> None:
    status, headers, body = request(keyed, "/chat/completions", chat("fake/hostile-key-code"))
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"]["code"] == KEY


def test_error_metadata_echoing_the_key(keyed: FakeOpenRouter) -> None:
    status, _, body = request(keyed, "/chat/completions", chat("fake/hostile-key-metadata"))
    metadata = json.loads(body)["error"]["metadata"]
    assert status == 400 and metadata["headers"]["Authorization"] == f"Bearer {KEY}"
    assert KEY in json.loads(metadata["raw"])["error"]["message"]


def test_a_long_message_echoing_the_key_at_490(keyed: FakeOpenRouter) -> None:
    status, _, body = request(keyed, "/chat/completions", chat("fake/hostile-key-message"))
    message = json.loads(body)["error"]["message"]
    assert status == 400 and len(message) == 600 and message.index(KEY) == 490
    assert message.count(KEY) == 1


def test_broken_json_echoing_the_key(keyed: FakeOpenRouter) -> None:
    status, headers, body = request(keyed, "/chat/completions", chat("fake/hostile-key-malformed"))
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert f"Bearer {KEY}".encode() in body
    with pytest.raises(ValueError):
        json.loads(body)


def test_a_midstream_error_echoing_the_key(keyed: FakeOpenRouter) -> None:
    r, raw = stream(keyed, chat("fake/hostile-key-midstream"), headers={})
    objs = data_of(raw)
    assert [d["content"] for d in deltas(objs[1:3])] == ["One, ", "two, "]
    error = objs[-1]["error"]
    assert KEY in error["message"] and error["metadata"]["key"] == KEY


def test_the_echo_without_a_key(fake_server: FakeOpenRouter) -> None:
    fake_server.require_auth = False
    status, _, body = request(
        fake_server, "/chat/completions", chat("fake/hostile-key-code"), key=None
    )
    assert status == 400 and json.loads(body)["error"]["code"] == "(no key sent)"


def test_the_model_list_echoing_the_key(keyed: FakeOpenRouter) -> None:
    keyed.default_scenario = "hostile-key-models"
    status, _, body = request(keyed, "/models")
    models = json.loads(body)["data"]
    echo = models[-1]
    assert status == 200 and len(models) == 6
    assert echo["id"] == f"fake/echo-{KEY}" and KEY in echo["name"]
    assert echo["description"].index(KEY) == 490 and echo["metadata"] == {KEY: KEY}
    status, _, body = request(keyed, "/chat/completions", chat(stream=False))
    assert status == 200 and KEY not in body.decode()  # a chat is answered as usual


@pytest.mark.parametrize("place", ["code", "metadata", "message", "malformed"])
def test_the_model_list_answers_the_keyed_errors(keyed: FakeOpenRouter, place: str) -> None:
    keyed.default_scenario = f"hostile-key-{place}"
    status, headers, body = request(keyed, "/models")
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert KEY in body.decode()
    keyed.default_scenario = "hostile-key-midstream"  # no error before a stream: a plain list
    status, _, body = request(keyed, "/models")
    assert status == 200 and KEY not in body.decode()


@pytest.mark.parametrize(
    ("name", "literals"),
    [
        ("nan", [b'"cost":NaN', b'"prompt_tokens":NaN', b'"completion_tokens":NaN']),
        (
            "infinity",
            [b'"cost":Infinity', b'"total_tokens":Infinity', b'"completion_tokens":-Infinity'],
        ),
    ],
)
def test_usage_numbers_as_nan_and_infinity(
    fake_server: FakeOpenRouter, name: str, literals: list[bytes]
) -> None:
    r, raw = stream(fake_server, chat(f"fake/hostile-{name}"))
    usage_event = [e for e in events(raw) if b'"usage"' in e]
    assert len(usage_event) == 1 and all(lit in usage_event[0] for lit in literals)
    usage = data_of(raw)[-2]["usage"]
    cost = usage["cost"]
    assert math.isnan(cost) if name == "nan" else cost == math.inf
    _, _, body = request(
        fake_server, "/chat/completions", chat(f"fake/hostile-{name}", stream=False)
    )
    assert all(lit in body for lit in literals)


def imports_of(path: Path) -> set[str]:
    """The absolute module names ``path`` imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_rill_fake_sits_on_the_bottom_layers_and_only_its_command_imports_it() -> None:
    src = ROOT / "src" / "rill"
    bottom = {"rill", "rill.errors", "rill.events", "rill.env"}
    for path in (src / "fake").glob("*.py"):
        for name in imports_of(path):
            top = name.split(".")[0]
            ok = name in bottom or name.startswith("rill.fake") or top in sys.stdlib_module_names
            assert ok, f"{path.name} imports {name}"
    importers = [
        p.relative_to(src).as_posix()
        for p in src.rglob("*.py")
        if "fake" not in p.relative_to(src).parts[:1]
        and any(n == "rill.fake" or n.startswith("rill.fake.") for n in imports_of(p))
    ]
    assert importers == ["commands/fake.py"]
