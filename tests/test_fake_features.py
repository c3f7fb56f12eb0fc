"""Self-tests of the fake OpenRouter server: reasoning, tool calls, real streaming and
disconnects, non-streaming answers."""

from __future__ import annotations

import json
import time

import pytest

from rill.fake import FakeOpenRouter, Gate, Scenario
from tests.fakeclient import RawStream, chat, data_of, deltas, request, stream

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
