"""``--schema`` end to end: the installed ``rill`` against the fake server's structured-output
models, in every format, in batch and through ``rill.stream_chat``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import rill
from rill.errors import UsageError
from rill.fake import FakeOpenRouter, Scenario
from rill.fake.structured import NO_STRUCTURED_MESSAGE
from rill.schema import concise
from tests.e2e import run

FIELDS = "name, age int, score float, ok bool, bio: a description"
VALID = {"name": "name text", "age": 42, "score": 3.5, "ok": True, "bio": "bio text"}


def rill_run(server: FakeOpenRouter, model: str, *args: str) -> Any:
    return run(["--base-url", server.url, "-m", model, *args, "give me JSON"])


def history_show() -> dict[str, Any]:
    shown = run(["history", "show", "last", "--json"])
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)["exchanges"][-1]  # type: ignore[no-any-return]


def test_valid_answer_streams_and_done_carries_parsed(fake_server: FakeOpenRouter) -> None:
    result = rill_run(fake_server, "fake/schema", "--schema", FIELDS, "-f", "jsonl")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    chunks = [e for e in events if e["event"] == "chunk"]
    assert len(chunks) > 5  # it streamed in pieces
    done = events[-1]
    assert done["event"] == "done"
    assert done["parsed"] == VALID
    assert json.loads(done["message"]["content"]) == VALID
    sent = fake_server.chat_requests[-1].body["response_format"]
    assert sent == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "strict": True, "schema": concise(FIELDS)},
    }
    assert "schema_error" not in history_show()


@pytest.mark.parametrize("fmt", ["json", "sse", "text"])
def test_valid_answer_in_the_other_formats(fake_server: FakeOpenRouter, fmt: str) -> None:
    result = rill_run(fake_server, "fake/schema", "--schema", FIELDS, "-f", fmt)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    out = result.stdout.decode()
    if fmt == "json":
        assert json.loads(out)["parsed"] == VALID
    elif fmt == "sse":
        last = out.strip().split("\n\n")[-1]
        assert last.startswith("event: done\ndata: ")
        assert json.loads(last.split("data: ", 1)[1])["parsed"] == VALID
    else:
        assert json.loads(out) == VALID


def test_without_streaming_too(fake_server: FakeOpenRouter) -> None:
    result = rill_run(fake_server, "fake/schema", "--schema", FIELDS, "--no-stream", "-f", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["parsed"] == VALID
    assert fake_server.chat_requests[-1].body["stream"] is False
    bad = rill_run(fake_server, "fake/schema-invalid", "--schema", FIELDS, "--no-stream")
    assert bad.returncode == 9


def test_no_schema_no_parsed(fake_server: FakeOpenRouter) -> None:
    result = rill_run(fake_server, "fake/demo", "-f", "json")
    assert "parsed" not in json.loads(result.stdout)
    assert "response_format" not in fake_server.chat_requests[-1].body


def test_invalid_answer_exits_9_and_is_kept(fake_server: FakeOpenRouter) -> None:
    result = rill_run(fake_server, "fake/schema-invalid", "--schema", FIELDS)
    assert result.returncode == 9
    answer = result.stdout.decode()
    assert json.loads(answer)["name"] == 12345  # the answer itself, on stdout
    err = result.stderr.decode()
    assert err.count("\n") == 1
    assert err == (
        "rill: the answer does not match the schema at $.name: 12345 is not of type 'string'\n"
    )
    record = history_show()
    assert record["answer"]["content"] == answer
    assert record["schema_error"] == err.removeprefix("rill: ").strip()
    assert record["finish_reason"] == "stop"
    assert "error" not in record
    assert record["request"]["response_format"]["json_schema"]["schema"] == concise(FIELDS)
    shown = run(["history", "show", "last"])
    assert b"[schema] the answer does not match the schema at $.name" in shown.stdout


def test_invalid_answer_in_json_is_an_error_event(fake_server: FakeOpenRouter) -> None:
    result = rill_run(fake_server, "fake/schema-invalid", "--schema", FIELDS, "-f", "json")
    assert result.returncode == 9
    error = json.loads(result.stdout)
    assert error["code"] == "schema_mismatch"
    assert error["exit_code"] == 9
    assert error["status"] is None
    assert "$.name" in error["message"]
    assert json.loads(error["partial"]["content"])["name"] == 12345


def test_an_answer_that_is_not_json_exits_9(fake_server: FakeOpenRouter) -> None:
    result = rill_run(fake_server, "fake/demo", "--schema", "name")
    assert result.returncode == 9
    assert result.stdout.startswith(b"Hello!")
    assert result.stderr == b"rill: the answer is not JSON (Expecting value at line 1 column 1)\n"
    assert history_show()["schema_error"].startswith("the answer is not JSON")


def test_a_truncated_answer_exits_9_with_the_token_limit_note(
    fake_server: FakeOpenRouter,
) -> None:
    fake_server.enqueue(Scenario(content=['{"name": "cu'], finish_reason="length"))
    result = rill_run(fake_server, "m", "--schema", "name", "--max-tokens", "4")
    assert result.returncode == 9
    lines = result.stderr.decode().splitlines()
    assert lines[0].startswith("rill: the answer is not JSON")
    assert "token limit (4)" in lines[1]


def test_schema_from_a_file_and_inline_json(fake_server: FakeOpenRouter, tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"enum": ["a", "b"]}}},
        "required": ["tags"],
        "additionalProperties": False,
    }
    path = tmp_path / "tags.json"
    path.write_text(json.dumps(schema))
    for spec in (f"@{path}", json.dumps(schema)):
        result = rill_run(fake_server, "fake/schema", "--schema", spec, "-f", "json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["parsed"] == {"tags": ["a", "a"]}
        sent = fake_server.chat_requests[-1].body["response_format"]["json_schema"]
        assert sent["schema"] == schema


def test_schema_multi_asks_for_a_list_of_items(fake_server: FakeOpenRouter) -> None:
    result = rill_run(fake_server, "fake/schema", "--schema-multi", "name, age int", "-f", "json")
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout)["parsed"]
    assert parsed == {"items": [{"name": "name text", "age": 42}] * 2}
    sent = fake_server.chat_requests[-1].body["response_format"]["json_schema"]
    assert sent["name"] == "items"
    assert sent["schema"]["required"] == ["items"]
    bad = rill_run(fake_server, "fake/schema-invalid", "--schema-multi", "name, age int")
    assert bad.returncode == 9
    assert b"at $.items[0].name" in bad.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--schema", "name, age integ"], b"unknown type 'integ'"),
        (["--schema", '{"type": "object", "properties": 3}'], b"not a valid JSON Schema"),
        (["--schema", '{"type": '], b"not valid JSON"),
        (["--schema", "@/nonexistent/schema.json"], b"cannot read the schema file"),
        (["--schema", "a", "--schema-multi", "b"], b"use one of them"),
    ],
)
def test_a_bad_schema_is_a_usage_error_and_nothing_is_sent(
    fake_server: FakeOpenRouter, args: list[str], words: bytes
) -> None:
    result = rill_run(fake_server, "fake/schema", *args)
    assert result.returncode == 2
    assert words in result.stderr and result.stderr.count(b"\n") == 1
    assert b"Traceback" not in result.stderr
    assert fake_server.chat_requests == []


def test_a_model_without_structured_output_keeps_the_upstreams_words(
    fake_server: FakeOpenRouter,
) -> None:
    result = rill_run(fake_server, "fake/no-structured-output", "--schema", "name")
    assert result.returncode == 7
    assert NO_STRUCTURED_MESSAGE.encode() in result.stderr
    assert b"HTTP 400" in result.stderr


def test_dry_run_shows_the_response_format(fake_server: FakeOpenRouter) -> None:
    result = rill_run(fake_server, "fake/schema", "--schema", "name", "--dry-run")
    assert result.returncode == 0
    body = json.loads(result.stdout.decode().split("\n\n", 1)[1])
    assert body["response_format"]["json_schema"]["strict"] is True
    assert fake_server.chat_requests == []


def test_batch_schema_per_item_and_for_all(fake_server: FakeOpenRouter) -> None:
    lines = [
        {"id": 1, "prompt": "a", "model": "fake/schema"},
        {"id": 2, "prompt": "b", "model": "fake/schema-invalid"},
        {"id": 3, "prompt": "c", "model": "fake/schema", "schema": {"type": "object"}},
        {"id": 4, "prompt": "d", "model": "fake/schema", "schema": "x int"},
        {"id": 5, "prompt": "e", "model": "fake/schema", "schema": "x integ"},
        {"id": 6, "prompt": "f", "model": "fake/schema", "schema": 3},
    ]
    data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    result = run(
        ["batch", "--base-url", fake_server.url, "--schema", "name", "--ordered", "-j", "2"],
        input=data,
    )
    out = {line["id"]: line for line in map(json.loads, result.stdout.splitlines())}
    assert out[1]["parsed"] == {"name": "name text"}
    assert out[2]["exit_code"] == 9 and out[2]["code"] == "schema_mismatch"
    assert out[3]["parsed"] == {}
    assert out[4]["parsed"] == {"x": 42}
    assert out[5]["exit_code"] == 2 and "unknown type" in out[5]["message"]
    assert out[6]["exit_code"] == 2 and "schema must be" in out[6]["message"]
    assert result.returncode == 9  # the first failed item's code, in input order
    sent = {r.body["messages"][-1]["content"]: r.body for r in fake_server.chat_requests}
    assert sent["d"]["response_format"]["json_schema"]["schema"] == concise("x int")
    multi = run(
        ["batch", "--base-url", fake_server.url, "-m", "fake/schema", "--schema-multi", "n"],
        input=b'{"id": 1, "prompt": "a"}\n',
    )
    assert multi.returncode == 0, multi.stderr
    assert json.loads(multi.stdout)["parsed"] == {"items": [{"n": "n text"}] * 2}
    bad = run(["batch", "--base-url", fake_server.url, "--schema", "a b c"], input=data)
    assert bad.returncode == 2 and b"NAME [TYPE]" in bad.stderr


def test_stream_chat_with_a_schema(fake_server: FakeOpenRouter) -> None:
    events = list(
        rill.stream_chat("hi", base_url=fake_server.url, model="fake/schema", schema=FIELDS)
    )
    assert any(isinstance(e, rill.Chunk) for e in events)
    done = events[-1]
    assert isinstance(done, rill.Done)
    assert done.parsed == VALID and done.checked
    assert done.as_dict()["parsed"] == VALID
    events = list(
        rill.stream_chat(
            "hi",
            base_url=fake_server.url,
            model="fake/schema-invalid",
            schema=concise("name"),
            schema_multi=True,
        )
    )
    error = events[-1]
    assert isinstance(error, rill.Error)
    assert error.exit_code == 9 and error.code == "schema_mismatch"
    assert "$.items[0].name" in error.message
    assert json.loads(error.partial["content"])["items"][0]["name"] == 12345
    with pytest.raises(UsageError, match="unknown type"):
        rill.stream_chat("hi", base_url=fake_server.url, schema="x integ")
