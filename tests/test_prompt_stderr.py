"""The prompt command's own lines on stderr, end to end: the installed ``rill`` against the fake
server, its stdout and stderr pipes read as a script would read them."""

from __future__ import annotations

import json
import re

from rill.fake import FakeOpenRouter, Scenario
from tests.e2e import run

TOOLS = ("get_weather", "get_time")


def ask(server: FakeOpenRouter, *args: str) -> tuple[int, bytes, list[str]]:
    done = run(["--base-url", server.url, "-m", "test/m", *args, "hi"])
    return done.returncode, done.stdout, done.stderr.decode().splitlines()


def tool_calls(*names: str) -> Scenario:
    return Scenario(tool_calls=[{"name": name, "arguments": {"n": 1}} for name in names])


def test_an_answer_of_only_tool_calls_says_so_in_text_format(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(tool_calls(*TOOLS))
    code, out, err = ask(fake_server)
    assert (code, out) == (0, b"")
    assert len(err) == 1, err
    assert err[0].startswith("rill: the answer is 2 tool calls (get_weather, get_time) and no text")
    chat_id = json.loads(run(["history", "show", "last", "--json"]).stdout)["id"]
    assert err[0].endswith(f"see them with -f json or rill history show {chat_id} --json")


def test_one_tool_call_beside_text(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(
        Scenario(content=["Let me look.\n"], tool_calls=[{"name": "lookup", "arguments": {}}])
    )
    code, out, err = ask(fake_server, "--no-history")
    assert (code, out) == (0, b"Let me look.\n")
    assert err == ["rill: the answer also holds 1 tool call (lookup): see them with -f json"]


def test_machine_formats_carry_the_calls_and_get_no_note(fake_server: FakeOpenRouter) -> None:
    for fmt in ("json", "jsonl", "sse", "openai", "raw"):
        fake_server.enqueue(tool_calls(*TOOLS))
        code, out, err = ask(fake_server, "-f", fmt)
        assert (code, err) == (0, []), fmt
        assert b"get_weather" in out, fmt


def test_a_failed_answer_gets_its_error_not_the_note(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(
        Scenario(
            tool_calls=[{"name": "lookup", "arguments": {}}],
            midstream_error_after=1,
            midstream_error={"code": "server_error", "message": "it broke"},
        )
    )
    code, _, err = ask(fake_server)
    assert code == 7
    assert err == ["rill: it broke"]


def stats_line(err: list[str]) -> str:
    assert len(err) == 1, err
    assert re.search(r"total \d+\.\d\d s", err[0]), err
    return err[0]


def test_stats_give_no_rate_for_an_answer_that_came_in_one_read(
    fake_server: FakeOpenRouter,
) -> None:
    # The whole stream in one write: no time passes between the first token and the end.
    fake_server.enqueue(Scenario(content=["one ", "read ", "only"], split="coalesce"))
    code, out, err = ask(fake_server, "--stats", "--no-history")
    assert (code, out) == (0, b"one read only")
    line = stats_line(err)
    assert "tok/s" not in line and "3 out tokens" in line


def test_stats_give_a_rate_for_an_answer_that_took_time(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario(content=["a ", "paced ", "answer"], chunk_delay=0.05))
    code, out, err = ask(fake_server, "--stats")
    assert (code, out) == (0, b"a paced answer")
    assert re.search(r" · \d+\.\d tok/s · ", stats_line(err)), err
