"""Output formats, read back by independent consumers (httpx-sse, json.loads), with exact keys.

These run the CLI in-process with an ``httpx.MockTransport`` serving scripted upstream bodies; the
end-to-end subprocess tests against the fake server live in test_e2e_*.py.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import httpx_sse
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rill.cli import app
from tests.chunks import chunk_obj

KEY = "sk-or-v1-formats-test-key"

#: The contract's data keys, per event type: changing them must be a deliberate act.
EVENT_KEYS = {
    "start": {"chat_id", "model"},
    "chunk": {"content", "done"},
    "reasoning": {"content"},
    "tool_call": {"index", "id", "name", "arguments"},
    "done": {"message", "usage", "finish_reason", "model", "provider", "id", "chat_id"},
    "error": {"code", "message", "status", "exit_code", "partial", "chat_id"},
}


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> str:
    return (
        "data: "
        + json.dumps(chunk_obj(delta, finish, gen_id="gen-77", created=1, **extra))
        + "\n\n"
    )


USAGE = {
    "prompt_tokens": 5,
    "completion_tokens": 3,
    "total_tokens": 8,
    "cost": 0.002,
    "completion_tokens_details": {"reasoning_tokens": 1},
    "prompt_tokens_details": {"cached_tokens": 0},
}


def usage_chunk() -> str:
    obj = chunk_obj(gen_id="gen-77", created=1, choices=[], usage=USAGE)
    return "data: " + json.dumps(obj) + "\n\n"


STREAMS = {
    "plain": ": OPENROUTER PROCESSING\n\n"
    + chunk({"content": ""})
    + chunk({"content": "Hel"})
    + chunk({"content": "lo"})
    + chunk({"content": ""}, "stop")
    + usage_chunk()
    + "data: [DONE]\n\n",
    "reasoning": chunk({"content": "", "reasoning": "think "})
    + chunk({"content": "", "reasoning": "hard"})
    + chunk({"content": "Hi"})
    + chunk({"content": ""}, "stop")
    + usage_chunk()
    + "data: [DONE]\n\n",
    "tools": chunk(
        {
            "content": None,
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get", "arguments": ""},
                }
            ],
        }
    )
    + chunk({"content": None, "tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]})
    + chunk({"content": None, "tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]})
    + chunk({"content": ""}, "tool_calls")
    + usage_chunk()
    + "data: [DONE]\n\n",
    "midstream_error": chunk({"content": "par"})
    + chunk({"content": "tial"})
    + chunk(
        {"content": ""},
        "error",
        error={
            "code": 502,
            "message": "upstream died",
            "metadata": {"error_type": "provider_unavailable"},
        },
    ),
    "usage_only_final": chunk({"content": "Yo"})
    + chunk({"content": ""}, "stop")
    + usage_chunk()
    + "data: [DONE]\n\n",
}
EXPECTED_CONTENT = {
    "plain": "Hello",
    "reasoning": "Hi",
    "tools": "",
    "midstream_error": "partial",
    "usage_only_final": "Yo",
}


def invoke(tmp_path: Path, body: str, *args: str, status: int = 200) -> Any:
    def handler(_req: httpx.Request) -> httpx.Response:
        ctype = "text/event-stream" if status == 200 else "application/json"
        return httpx.Response(status, headers={"content-type": ctype}, content=body.encode())

    return CliRunner().invoke(
        app,
        list(args),
        obj={"transport": httpx.MockTransport(handler)},
        env={
            "RILL_HOME": str(tmp_path / "home"),
            "OPENROUTER_API_KEY": KEY,
            "RILL_MODEL": "",
            "RILL_BASE_URL": "",
        },
    )


def parse_sse(text: str) -> list[httpx_sse.ServerSentEvent]:
    response = httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=text.encode()
    )
    return list(httpx_sse.EventSource(response).iter_sse())


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_sse_format_read_by_httpx_sse(tmp_path: Path, name: str) -> None:
    result = invoke(tmp_path, STREAMS[name], "-f", "sse", "--no-history", "-m", "a/b", "hi")
    events = parse_sse(result.stdout)
    names = [e.event for e in events]
    assert names[0] == "start"
    assert names[-1] in ("done", "error")
    assert sum(n in ("done", "error") for n in names) == 1
    for e in events:
        data = json.loads(e.data)
        assert "\n" not in e.data
        assert set(data) == EVENT_KEYS[e.event], e.event
    content = "".join(json.loads(e.data)["content"] for e in events if e.event == "chunk")
    assert content == EXPECTED_CONTENT[name]
    terminal = json.loads(events[-1].data)
    if name == "midstream_error":
        assert result.exit_code == 7
        assert names[-1] == "error"
        assert terminal["code"] == 502 and terminal["exit_code"] == 7
        assert terminal["message"] == "upstream died"
        assert terminal["partial"] == {"role": "assistant", "content": "partial"}
    else:
        assert result.exit_code == 0
        assert terminal["usage"]["total_tokens"] == 8
        assert terminal["usage"]["cost"] == 0.002
        assert terminal["model"] == "openai/gpt-4o" and terminal["id"] == "gen-77"
        assert terminal["provider"] == "OpenAI"
        assert json.loads(events[0].data) == {"chat_id": None, "model": "a/b"}


def test_reasoning_and_tool_call_events(tmp_path: Path) -> None:
    result = invoke(tmp_path, STREAMS["reasoning"], "-f", "jsonl", "--no-history", "hi")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [x["content"] for x in lines if x["event"] == "reasoning"] == ["think ", "hard"]
    assert lines[-1]["message"] == {"role": "assistant", "content": "Hi", "reasoning": "think hard"}
    assert lines[-1]["usage"]["reasoning_tokens"] == 1

    result = invoke(tmp_path, STREAMS["tools"], "-f", "jsonl", "--no-history", "hi")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    calls = [x for x in lines if x["event"] == "tool_call"]
    assert calls[0] == {
        "event": "tool_call",
        "index": 0,
        "id": "call_1",
        "name": "get",
        "arguments": "",
    }
    assert "".join(c["arguments"] for c in calls) == '{"a":1}'
    done = lines[-1]
    assert done["finish_reason"] == "tool_calls"
    assert done["message"]["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": '{"a":1}'}}
    ]


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_jsonl_lines_parse_and_carry_event_key(tmp_path: Path, name: str) -> None:
    result = invoke(tmp_path, STREAMS[name], "-f", "jsonl", "--no-history", "hi")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    for line in lines:
        event = line.pop("event")
        assert set(line) == EVENT_KEYS[event]
    assert "".join(x.get("content", "") for x in lines if "done" in x) == EXPECTED_CONTENT[name]


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_json_format_prints_only_the_terminal_object(tmp_path: Path, name: str) -> None:
    result = invoke(tmp_path, STREAMS[name], "-f", "json", "--no-history", "hi")
    obj = json.loads(result.stdout)
    key = "partial" if name == "midstream_error" else "message"
    assert set(obj) == EVENT_KEYS["error" if key == "partial" else "done"]
    assert obj[key]["content"] == EXPECTED_CONTENT[name]


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_openai_format_read_by_httpx_sse(tmp_path: Path, name: str) -> None:
    result = invoke(tmp_path, STREAMS[name], "-f", "openai", "--no-history", "hi")
    events = parse_sse(result.stdout)
    assert events[-1].data == "[DONE]"
    objs = [json.loads(e.data) for e in events[:-1]]
    content = "".join(
        (o["choices"][0]["delta"].get("content") or "") for o in objs if o.get("choices")
    )
    assert content == EXPECTED_CONTENT[name]
    if name == "midstream_error":
        assert objs[-1]["error"]["message"] == "upstream died"
    else:
        chunks = [o for o in objs if "choices" in o]
        assert all(o["object"] == "chat.completion.chunk" for o in chunks)
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        finish = [o["choices"][0]["finish_reason"] for o in chunks if o["choices"]]
        assert finish[-1] in ("stop", "tool_calls")
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 8


def test_raw_format_is_byte_exact(tmp_path: Path) -> None:
    result = invoke(tmp_path, STREAMS["plain"], "-f", "raw", "--no-history", "hi")
    assert result.stdout_bytes == STREAMS["plain"].encode()


def test_text_format_is_content_only(tmp_path: Path) -> None:
    result = invoke(tmp_path, STREAMS["reasoning"], "--no-history", "hi")
    assert result.stdout == "Hi"
    assert result.stderr == ""


def test_error_before_stream_in_every_format(tmp_path: Path) -> None:
    body = json.dumps({"error": {"code": 402, "message": "Insufficient credits"}})
    for fmt in ("text", "sse", "jsonl", "json", "openai"):
        result = invoke(tmp_path, body, "-f", fmt, "--no-history", "hi", status=402)
        assert result.exit_code == 5, fmt
        assert "Insufficient credits" in result.stderr
        error = {
            "code": 402,
            "message": "Insufficient credits",
            "status": 402,
            "exit_code": 5,
            "partial": {"role": "assistant", "content": ""},
            "chat_id": None,  # --no-history: no chat holds the failed exchange
        }
        if fmt == "text":
            assert result.stdout == ""
        elif fmt == "json":
            assert json.loads(result.stdout) == error
        elif fmt == "sse":  # nothing started: the one event is the terminal error
            events = parse_sse(result.stdout)
            assert [(e.event, json.loads(e.data)) for e in events] == [("error", error)]
        elif fmt == "jsonl":
            lines = [json.loads(line) for line in result.stdout.splitlines()]
            assert lines == [{"event": "error", **error}]
        else:  # openai: an error object, then [DONE]
            first, done = parse_sse(result.stdout)
            assert json.loads(first.data) == {
                "error": {
                    "message": "Insufficient credits",
                    "type": "upstream_error",
                    "code": 402,
                    "status": 402,
                }
            }
            assert done.data == "[DONE]" and result.stdout.endswith("data: [DONE]\n\n")


def test_no_stream_renders_through_the_same_formats(tmp_path: Path) -> None:
    body = json.dumps(
        {
            "id": "gen-5",
            "model": "openai/gpt-4o",
            "provider": "OpenAI",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "whole"},
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )
    result = invoke(tmp_path, body, "--no-stream", "-f", "jsonl", "--no-history", "hi")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [x["event"] for x in lines] == ["start", "chunk", "done"]
    assert lines[-1]["message"]["content"] == "whole"
    result = invoke(tmp_path, body, "--no-stream", "--no-history", "hi")
    assert result.stdout == "whole"


@pytest.mark.parametrize("fmt", ["sse", "jsonl"])
def test_fast_chunk_encoding_matches_json_dumps(fmt: str) -> None:
    import io

    from rill.events import Chunk, Reasoning
    from rill.output.formats import OutputFormat, make_renderer

    texts = ["plain", 'quote " back\\slash', "new\nline\ttab\x00nul", "héllo 😀 \u2028", ""]
    fast, slow = io.BytesIO(), io.BytesIO()
    renderer = make_renderer(OutputFormat(fmt), fast)
    reference = make_renderer(OutputFormat(fmt), slow)
    deltas = [cls(t) for t in texts for cls in (Chunk, Reasoning)]
    renderer.deltas(b"", deltas)  # type: ignore[attr-defined]
    for d in deltas:
        reference._write([reference.encode(d.NAME, d.as_dict())])  # type: ignore[attr-defined]
    assert fast.getvalue() == slow.getvalue()


# -- the terminal event's JSON, written in pieces ---------------------------------------------


def _written(obj: Any, dumps: Any, monkeypatch: pytest.MonkeyPatch, limit: int) -> bytes:
    import io

    from rill.output import formats as render

    monkeypatch.setattr(render, "LONG_STRING", limit)
    out = io.BytesIO()
    render.write_json_sliced(out, obj, dumps, head="event: done\ndata: ", tail="\n\n")
    return out.getvalue()


LONG_VALUES = [
    "plain words " * 50,
    'quotes " and \\ backslashes \\" ' * 30,
    "controls \x00\x01\n\r\t\x1f " * 40,
    "naïve 日本語 😀 " * 40,
    "lone \ud800 and \udfff surrogates, a split pair \ud83d\ude00 " * 30,
]


@pytest.mark.parametrize("limit", [1, 7, 64, 10_000])
def test_write_json_equals_dumps_for_long_strings(
    limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rill.values import compact_json, pretty_json

    obj = {
        "event": "done",
        "message": {"role": "assistant", "content": LONG_VALUES[4], "reasoning": LONG_VALUES[1]},
        "calls": [{"arguments": v} for v in LONG_VALUES],
        "short": "ok",
        "n": 1.5,
        "none": None,
    }
    for dumps in (compact_json, pretty_json):
        expected = ("event: done\ndata: " + dumps(obj) + "\n\n").encode("utf-8", "replace")
        assert _written(obj, dumps, monkeypatch, limit) == expected


def test_write_json_falls_back_when_a_placeholder_text_is_in_the_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rill.output.formats import _SLOT
    from rill.values import compact_json

    obj = {"b": _SLOT % 0, "a": "x" * 100}  # "b" holds the text of the placeholder for "a"
    expected = ("event: done\ndata: " + compact_json(obj) + "\n\n").encode()
    assert _written(obj, compact_json, monkeypatch, 50) == expected  # only "a" is long


# -- the openai format's content frame ---------------------------------------------------------


def _openai_by_dicts(ident: str | None, model: str | None, batches: list[list[str]]) -> bytes:
    """What the openai format wrote before content-only chunks had a frame: one dict each."""
    out: list[str] = []
    first = True
    for batch in batches:
        for text in batch:
            delta: dict[str, Any] = {"role": "assistant", "content": text} if first else {}
            delta.setdefault("content", text)
            first = False
            chunk = {
                "id": ident or "chatcmpl-rill",
                "object": "chat.completion.chunk",
                "created": 7,
                "model": model or "asked/model",
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
            }
            out.append(f"data: {json.dumps(chunk, ensure_ascii=False, separators=(',', ':'))}\n\n")
    return "".join(out).encode("utf-8", "replace")


_texts = st.text(alphabet=st.characters(), max_size=8) | st.sampled_from(
    ["", '"', "\\", "\n", "\u2028", "\ud800", "😀", "rill-content-slot"]
)


@settings(max_examples=200, deadline=None, database=None)
@given(
    ident=st.none() | st.sampled_from(["gen-1", 'q"uote', "rill-content-slot", "é"]),
    model=st.none() | st.sampled_from(["m/x", "é\u2028", "rill-content-slot"]),
    batches=st.lists(st.lists(_texts, max_size=3), max_size=4),
)
def test_openai_content_chunks_are_the_bytes_their_dicts_would_be(
    ident: str | None, model: str | None, batches: list[list[str]]
) -> None:
    from rill.events import Chunk, Start
    from rill.output.formats import OpenAIRenderer

    t = SimpleNamespace(id=ident, model=model)
    out = io.BytesIO()
    renderer = OpenAIRenderer(out, clock=lambda: 7)
    renderer.start(Start(None, "asked/model"), t)  # type: ignore[arg-type]
    for batch in batches:
        renderer.deltas(b"", [Chunk(text) for text in batch])
    assert out.getvalue() == _openai_by_dicts(ident, model, batches)
