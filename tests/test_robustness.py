"""Odd upstreams and odd input: the key never leaks, nothing escapes as a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from rill.cli import app
from rill.fake import FakeOpenRouter, Scenario
from tests.e2e import run

runner = CliRunner()


def rill(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, list(args), env=env)


def test_key_quoted_by_the_upstream_never_reaches_output_or_history(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    key = fake_server.api_key
    fake_server.enqueue(Scenario.error(401, message=f"Incorrect API key provided: {key}"))
    result = run(["--base-url", fake_server.url, "-m", "m", "-f", "json", "hi"])
    assert result.returncode == 4
    assert key.encode() not in result.stdout + result.stderr
    assert json.loads(result.stdout)["message"].startswith("Incorrect API key provided: ")
    for path in rill_env.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path


def test_key_with_a_trailing_newline_is_cleaned_and_inner_spaces_are_refused(
    fake_server: FakeOpenRouter,
) -> None:
    env = dict(os.environ, OPENROUTER_API_KEY=fake_server.api_key + "\r\n")
    result = run(["--base-url", fake_server.url, "-m", "fake/echo", "ok"], env=env)
    assert (result.returncode, result.stdout) == (0, b"ok")
    env["OPENROUTER_API_KEY"] = "sk-or-v1 broken key"
    result = run(["--base-url", fake_server.url, "-m", "m", "hi"], env=env)
    assert result.returncode == 3
    assert b"broken" not in result.stderr


@pytest.mark.parametrize("base_url", ["http://[::1/v1", "http://localhost:abc/v1", "ftp://x/v1"])
def test_malformed_base_url_is_a_config_error(base_url: str) -> None:
    result = run(["--base-url", base_url, "hi"])
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith(b"rill: ") and b"Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("scenario", "code", "text"),
    [
        (Scenario(content=["x"], finish_reason="error"), 7, "finish_reason"),
        (Scenario(content=[], send_finish=False, usage_style=None), 7, "no finish reason"),
        (
            Scenario(
                content=["a", "b"], raw_event_after=1, raw_event=b'data: {"choices":[null]}\n\n'
            ),
            7,
            "unexpected shape",
        ),
        (
            Scenario(
                content=["a", "b"],
                raw_event_after=1,
                raw_event=b'data: {"choices":[{"delta":"oops"}]}\n\n',
            ),
            7,
            "unexpected shape",
        ),
    ],
    ids=["finish-error-without-error", "done-with-nothing", "null-choice", "string-delta"],
)
def test_upstream_oddities_fail_cleanly(
    fake_server: FakeOpenRouter, scenario: Scenario, code: int, text: str
) -> None:
    fake_server.enqueue(scenario)
    result = run(["--base-url", fake_server.url, "-m", "m", "hi"])
    err = result.stderr.decode()
    assert result.returncode == code, err
    assert text in err and err.count("\n") == 1 and "Traceback" not in err


LONE_SURROGATE = b'data: {"choices":[{"index":0,"delta":{"content":"\\ud83d!"}}]}\n\n'
#: The chunks written for it: one per upstream piece, the surrogate as "?" (errors="replace").
CHUNKS = [b"a", b"?!", b"b"]


@pytest.mark.parametrize("fmt", ["text", "sse", "jsonl", "json", "openai", "raw"])
def test_lone_surrogate_in_content_is_written_not_crashed(
    fake_server: FakeOpenRouter, fmt: str
) -> None:
    # Pieces "a", then "\ud83d!" (a lone surrogate, valid JSON but not encodable), then "b".
    fake_server.enqueue(Scenario(content=["a", "b"], raw_event_after=1, raw_event=LONE_SURROGATE))
    result = run(["--base-url", fake_server.url, "-m", "m", "-f", fmt, "hi"])
    assert (result.returncode, result.stderr) == (0, b"")
    out = result.stdout
    out.decode("utf-8")  # valid UTF-8 whatever the format: the surrogate is replaced by "?"
    if fmt == "text":
        assert out == b"a?!b"
    elif fmt == "sse":
        start, *chunks, done, empty = out.split(b"\n\n")
        assert start.startswith(b"event: start\n") and empty == b""
        assert chunks == [b'event: chunk\ndata: {"content":"%s","done":false}' % c for c in CHUNKS]
        assert done.startswith(b"event: done\ndata: ")
        assert json.loads(done.split(b"data: ", 1)[1])["message"]["content"] == "a?!b"
    elif fmt == "jsonl":
        start, *chunks, done, empty = out.split(b"\n")
        assert start.startswith(b'{"event":"start",') and empty == b""
        assert chunks == [b'{"event":"chunk","content":"%s","done":false}' % c for c in CHUNKS]
        assert json.loads(done)["message"] == {"role": "assistant", "content": "a?!b"}
    elif fmt == "json":
        assert b'\n    "content": "a?!b"\n' in out
        assert json.loads(out)["message"] == {"role": "assistant", "content": "a?!b"}
    elif fmt == "openai":
        records = out.split(b"\n\n")
        assert records[-2:] == [b"data: [DONE]", b""]
        objs = [json.loads(r.removeprefix(b"data: ")) for r in records[:-2]]
        contents = [o["choices"][0]["delta"].get("content") for o in objs if o["choices"]]
        assert contents == ["a", "?!", "b", None]  # the last: the finish chunk
        assert b'"delta":{"content":"?!"}' in out
    else:  # raw: the upstream's bytes, where the surrogate is still an ASCII escape
        assert LONE_SURROGATE in out


def test_no_stream_with_an_idle_timeout(fake_server: FakeOpenRouter) -> None:
    result = run(
        [
            "--base-url",
            fake_server.url,
            "-m",
            "fake/echo",
            "--no-stream",
            "--timeout",
            "5",
            "whole",
            "answer",
        ]
    )
    assert (result.returncode, result.stdout) == (0, b"whole answer")
    assert fake_server.chat_requests[-1].body["stream"] is False


def test_requests_ask_for_an_uncompressed_body(fake_server: FakeOpenRouter) -> None:
    run(["--base-url", fake_server.url, "-m", "fake/echo", "hi"])
    assert fake_server.chat_requests[-1].headers["accept-encoding"] == "identity"


@pytest.mark.parametrize("field", ["model=x", "stream=false", "messages=[]"])
def test_reserved_request_fields_cannot_be_options(fake_server: FakeOpenRouter, field: str) -> None:
    result = rill("--base-url", fake_server.url, "-o", field, "hi")
    assert result.exit_code == 2
    assert "cannot be set as an option" in result.stderr
    assert fake_server.chat_requests == []


def test_dry_run_never_prints_a_short_key() -> None:
    result = rill(
        "--base-url",
        "http://127.0.0.1:1/v1",
        "--dry-run",
        "hi",
        env={"OPENROUTER_API_KEY": "abc123"},
    )
    assert result.exit_code == 0
    assert "abc123" not in result.stdout
    assert "Authorization: Bearer …REDACTED" in result.stdout


def test_a_json_answer_to_a_stream_request_is_read_whole(tmp_path: Path) -> None:
    body = {
        "id": "gen-1",
        "model": "m",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "not streamed"},
            }
        ],
    }

    def handler(_req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body)

    result = runner.invoke(
        app,
        ["--base-url", "http://127.0.0.1:1/v1", "--no-history", "hi"],
        obj={"transport": httpx.MockTransport(handler)},
    )
    assert (result.exit_code, result.stdout) == (0, "not streamed")


def test_no_history_continue_writes_nothing(fake_server: FakeOpenRouter, rill_env: Path) -> None:
    fake_server.enqueue(Scenario(content=["first"]), Scenario(content=["second"]))
    assert rill("--base-url", fake_server.url, "hello").exit_code == 0
    before = {p: p.read_bytes() for p in rill_env.rglob("*") if p.is_file()}
    (rill_env / "history" / "index.jsonl").unlink()  # a missing index must not be rebuilt
    del before[rill_env / "history" / "index.jsonl"]
    result = rill("--base-url", fake_server.url, "--no-history", "-c", "again")
    assert result.exit_code == 0, result.stderr
    after = {p: p.read_bytes() for p in rill_env.rglob("*") if p.is_file()}
    assert after == before
    assert [m["content"] for m in fake_server.chat_requests[-1].body["messages"]] == [
        "hello",
        "first",
        "again",
    ]


def test_config_system_prompt_does_not_replace_a_chats_own(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    fake_server.enqueue(Scenario(content=["a"]), Scenario(content=["b"]))
    assert rill("--base-url", fake_server.url, "-s", "chat system", "one").exit_code == 0
    rill_env.mkdir(exist_ok=True)
    (rill_env / "config.toml").write_text('system = "config system"\n')
    assert rill("--base-url", fake_server.url, "-c", "two").exit_code == 0
    messages = fake_server.chat_requests[-1].body["messages"]
    assert messages[0] == {"role": "system", "content": "chat system"}
