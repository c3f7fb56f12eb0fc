"""Self-tests of the fake OpenRouter server: the success path and the framing of its streams."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from rill.fake import DEMO_CONTENT, LONG_CHUNKS, FakeOpenRouter, Scenario
from tests.fakeclient import CHUNK_KEYS, RawStream, chat, data_of, deltas, events, stream

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
