"""Self-tests of the fake OpenRouter server: other servers' dialects, authentication, routing
and the side endpoints."""

from __future__ import annotations

import json
import re

import pytest

from rill.fake import DEMO_CONTENT, MSG_NO_AUTH, MSG_USER_NOT_FOUND, FakeOpenRouter, Scenario
from tests.fakeclient import chat, data_of, deltas, request, stream

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
