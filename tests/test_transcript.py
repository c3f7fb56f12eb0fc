"""Transcript: folding chunks into an answer, with every quirk of PROTOCOL.md §3, §6 and §8."""

from __future__ import annotations

from typing import Any

import pytest

from rill.errors import StreamError
from rill.events import Chunk, Reasoning, ToolCall
from rill.stream.transcript import Transcript, normalize_usage
from tests.chunks import chunk_obj


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict:
    return chunk_obj(delta, finish, **extra)


def test_content_deltas_accumulate_and_empty_deltas_are_skipped() -> None:
    t = Transcript()
    assert t.add_chunk(chunk({"content": ""})) == []
    assert t.add_chunk(chunk({"content": "Hel"})) == [Chunk("Hel")]
    assert t.add_chunk(chunk({"content": "lo"})) == [Chunk("lo")]
    assert t.add_chunk(chunk({"content": ""}, finish="stop")) == []
    assert t.content == "Hello"
    assert t.final_finish_reason() == "stop"
    assert (t.id, t.model, t.provider) == ("gen-1", "openai/gpt-4o", "OpenAI")


def test_usage_in_current_and_legacy_final_chunks() -> None:
    usage = {
        "prompt_tokens": 17,
        "completion_tokens": 6,
        "total_tokens": 23,
        "cost": 0.0001025,
        "prompt_tokens_details": {"cached_tokens": 3},
        "completion_tokens_details": {"reasoning_tokens": 2},
        "cost_details": {"upstream_inference_cost": None},
    }
    current = Transcript()
    current.add_chunk({"id": "gen-1", "choices": [], "usage": usage})
    legacy = Transcript()
    legacy.add_chunk(chunk({"content": ""}, usage=usage))
    expected = {
        "prompt_tokens": 17,
        "completion_tokens": 6,
        "total_tokens": 23,
        "cost": 0.0001025,
        "reasoning_tokens": 2,
        "cached_tokens": 3,
    }
    assert current.usage() == expected
    assert legacy.usage() == expected


def test_usage_without_cost_or_details_and_every_chunk_usage_keeps_last() -> None:
    t = Transcript()
    t.add_chunk(chunk({"content": "a"}, usage={"prompt_tokens": 1, "completion_tokens": 1}))
    t.add_chunk(chunk({"content": "b"}, usage={"prompt_tokens": 1, "completion_tokens": 2}))
    assert t.usage() == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    assert normalize_usage(None) is None
    details_null = {
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "total_tokens": 2,
        "prompt_tokens_details": None,
        "completion_tokens_details": None,
    }
    assert normalize_usage(details_null) == {
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "total_tokens": 2,
    }


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_reasoning_from_either_field(field: str) -> None:
    t = Transcript()
    assert t.add_chunk(chunk({"content": "", field: "think"})) == [Reasoning("think")]
    assert t.add_chunk(chunk({"content": "ok", field: None, "reasoning_details": []})) == [
        Chunk("ok")
    ]
    assert t.reasoning == "think"
    assert t.message() == {"role": "assistant", "content": "ok", "reasoning": "think"}


def test_reasoning_details_merge_text_and_keep_signature() -> None:
    t = Transcript()
    piece = {
        "type": "reasoning.text",
        "signature": None,
        "format": "anthropic-claude-v1",
        "index": 0,
    }
    t.add_chunk(chunk({"reasoning": "a", "reasoning_details": [piece | {"text": "a"}]}))
    t.add_chunk(chunk({"reasoning": "b", "reasoning_details": [piece | {"text": "b"}]}))
    t.add_chunk(chunk({"reasoning_details": [piece | {"text": "", "signature": "sig"}]}))
    t.add_chunk(chunk({"reasoning_details": [{"type": "reasoning.encrypted", "data": "xx"}]}))
    assert t.reasoning_details == [
        piece | {"text": "ab", "signature": "sig"},
        {"type": "reasoning.encrypted", "data": "xx"},
    ]


def _call(index: Any = 0, id_: str | None = None, name: str | None = None, args: str = "") -> dict:
    frag: dict[str, Any] = {"type": "function", "function": {"arguments": args}}
    if index is not None:
        frag["index"] = index
    if id_ is not None:
        frag["id"] = id_
    if name is not None:
        frag["function"]["name"] = name
    return frag


def test_tool_call_fragments_merge_by_index() -> None:
    t = Transcript()
    deltas = t.add_chunk(chunk({"content": None, "tool_calls": [_call(0, "call_a", "lookup")]}))
    assert deltas == [ToolCall(0, "call_a", "lookup", "")]
    t.add_chunk(chunk({"content": None, "tool_calls": [_call(0, args='{"q":')]}))
    t.add_chunk(chunk({"content": None, "tool_calls": [_call(1, "call_b", "other", "{}")]}))
    t.add_chunk(chunk({"content": None, "tool_calls": [_call(0, args='"x"}')]}))
    t.add_chunk(chunk({"content": ""}, finish="tool_calls"))
    assert t.tool_calls() == [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"q":"x"}'},
        },
        {"id": "call_b", "type": "function", "function": {"name": "other", "arguments": "{}"}},
    ]
    assert t.final_finish_reason() == "tool_calls"


def test_tool_call_anomalies() -> None:
    t = Transcript()
    # missing index continues the last call; empty and duplicate ids get unique ones
    t.add_chunk(chunk({"tool_calls": [_call(0, "", "first", '{"a":')]}))
    t.add_chunk(chunk({"tool_calls": [_call(None, args="1}")]}))
    # a distinct call reusing index 0 (a fresh name after complete arguments)
    t.add_chunk(chunk({"tool_calls": [_call(0, None, "second", '{"b":2}')]}))
    t.add_chunk(chunk({"tool_calls": [_call(1, "dup", "third", "{}")]}))
    t.add_chunk(chunk({"tool_calls": [_call(2, "dup", "fourth", "{}")]}))
    t.add_chunk(chunk({"content": ""}, finish="stop"))  # "stop" with tool calls → tool_calls
    calls = t.tool_calls()
    assert [c["function"]["name"] for c in calls] == ["first", "second", "third", "fourth"]
    assert [c["function"]["arguments"] for c in calls] == ['{"a":1}', '{"b":2}', "{}", "{}"]
    ids = [c["id"] for c in calls]
    assert len(set(ids)) == 4 and all(ids)
    assert t.final_finish_reason() == "tool_calls"


def test_whole_call_in_one_fragment_with_object_arguments() -> None:
    t = Transcript()
    t.add_chunk(
        chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "c1", "function": {"name": "f", "arguments": {"x": 1}}}
                ]
            }
        )
    )
    assert t.tool_calls()[0]["function"]["arguments"] == '{"x": 1}'
    assert t.final_finish_reason() == "tool_calls"


@pytest.mark.parametrize("choices_empty", [False, True])
def test_midstream_error_raises_and_keeps_partial(choices_empty: bool) -> None:
    t = Transcript()
    t.add_chunk(chunk({"content": "partial"}))
    error = {
        "code": 502,
        "message": "Provider returned error",
        "metadata": {"provider_name": "Acme", "raw": '{"error":{"message":"overloaded"}}'},
    }
    bad = chunk({"content": ""}, finish="error", error=error)
    if choices_empty:
        bad["choices"] = []
    with pytest.raises(StreamError) as info:
        t.add_chunk(bad)
    assert info.value.code == 502
    assert info.value.message == "[Acme] overloaded"
    assert info.value.exit_code == 7
    assert t.content == "partial"
    assert t.finish_reason == "error"


def test_string_error_code_is_kept() -> None:
    t = Transcript()
    with pytest.raises(StreamError) as info:
        t.add_chunk({"error": {"code": "server_error", "message": "boom"}, "choices": []})
    assert info.value.code == "server_error"


def test_done_without_finish_reason_counts_as_stop_but_eof_does_not() -> None:
    t = Transcript()
    t.add_chunk(chunk({"content": "x"}))
    assert t.final_finish_reason() is None
    t.done = True
    assert t.final_finish_reason() == "stop"


def test_non_streaming_completion() -> None:
    t = Transcript()
    deltas = t.add_completion(
        {
            "id": "gen-9",
            "model": "m",
            "provider": "P",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "hi", "reasoning": "r"},
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )
    assert deltas == [Reasoning("r"), Chunk("hi")]
    assert t.final_finish_reason() == "stop"
    assert t.message() == {"role": "assistant", "content": "hi", "reasoning": "r"}


def test_non_streaming_error_variant() -> None:
    t = Transcript()
    with pytest.raises(StreamError):
        t.add_completion(
            {
                "choices": [
                    {
                        "finish_reason": "error",
                        "message": {"content": "par"},
                        "error": {"code": 500, "message": "died"},
                    }
                ]
            }
        )
    assert t.content == "par"


def test_content_given_as_parts_or_as_a_non_string() -> None:
    t = Transcript()
    parts = [{"type": "text", "text": "Hel"}, {"type": "image_url"}, {"type": "text", "text": "lo"}]
    assert t.add_chunk(chunk({"content": parts})) == [Chunk("Hello")]
    for odd in (12, True, {"a": 1}, ["x"], [{"type": "text", "text": 5}]):
        assert t.add_chunk(chunk({"content": odd})) == []
    assert t.content == "Hello"
    completion = {"choices": [{"message": {"content": [{"type": "text", "text": "whole"}]}}]}
    assert Transcript().add_completion(completion) == [Chunk("whole")]


def test_long_answers_are_kept_exactly_while_read_along_the_way() -> None:
    t = Transcript()
    assert t.content == "" and not t.has_output
    pieces = [
        ["a", "é", "😀", "\ud800", "\udfff", "\ud83d", "\ude00", "\n"][i % 8] for i in range(5000)
    ]
    for i, piece in enumerate(pieces):
        assert t.add_content(piece) == Chunk(piece)
        if i in (0, 1023, 1024, 3000):  # reads between packs see everything so far
            assert t.content == "".join(pieces[: i + 1])
    assert t.has_output
    assert t.content == "".join(pieces)
    assert t.message()["content"] == "".join(pieces)
