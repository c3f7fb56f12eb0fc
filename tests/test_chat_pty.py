"""``rill chat`` driven through a real pseudo-terminal against the fake server.

Keys go in as a terminal sends them (Ctrl-C is the line discipline's SIGINT while an answer
streams, a paste is wrapped in bracketed-paste markers); the screen is read through pyte, and what
was sent is read from the fake server's records and from history.
"""

from __future__ import annotations

import json
import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rill.fake import FakeOpenRouter
from tests.e2e import RILL, run
from tests.ptyterm import PtyTerm

CTRL_C, CTRL_D = b"\x03", b"\x04"


@pytest.fixture
def chat_env(fake_server: FakeOpenRouter) -> dict[str, str]:
    return {
        **os.environ,
        "RILL_BASE_URL": fake_server.url,
        "TERM": "xterm-256color",
        "COLUMNS": "100",
        "LINES": "40",
    }


@pytest.fixture
def open_chat(chat_env: dict[str, str]) -> Iterator[Any]:
    terms: list[PtyTerm] = []

    def start(*args: str) -> PtyTerm:
        term = PtyTerm([*RILL, "chat", *args], chat_env)
        terms.append(term)
        wait_prompt(term)
        return term

    yield start
    for term in terms:
        term.kill()


def wait_prompt(term: PtyTerm, count: int = 1) -> str:
    """The screen once ``count`` prompts (a line that is ``>`` alone) are on it."""
    return term.wait_for(
        lambda s: sum(line == ">" for line in s.splitlines()) >= count, f"prompt #{count}"
    )


def user_messages(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


def last_chat() -> dict[str, Any]:
    done = run(["history", "show", "last", "--json"])
    assert done.returncode == 0, done.stderr
    chat: dict[str, Any] = json.loads(done.stdout)
    return chat


def test_two_turns_then_ctrl_d(open_chat: Any, fake_server: FakeOpenRouter, rill_env: Path) -> None:
    term = open_chat("-m", "fake/echo")
    term.line("the first question")
    term.wait_text("the first question", count=2)  # typed, then echoed as the answer
    wait_prompt(term)
    term.line("and the second one")
    term.wait_text("and the second one", count=2)
    wait_prompt(term)
    term.send(CTRL_D)
    assert term.wait_exit() == 0
    bodies = [r.body for r in fake_server.chat_requests]
    assert [user_messages(b) for b in bodies] == [
        ["the first question"],
        ["the first question", "and the second one"],
    ]
    assert bodies[1]["messages"][1] == {"role": "assistant", "content": "the first question"}
    chat = last_chat()
    assert len(chat["exchanges"]) == 2  # one chat, two exchanges
    history = next(rill_env.rglob("chat_input_history"))
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    assert "+and the second one" in history.read_text()


def test_ctrl_c_cancels_the_answer_only(open_chat: Any, fake_server: FakeOpenRouter) -> None:
    term = open_chat("-m", "fake/slow")
    term.line("count slowly")
    term.wait_text("chunk 2")
    term.send(CTRL_C)
    screen = term.wait_text("answer cancelled")
    assert "chunk 19" not in screen
    wait_prompt(term)
    assert fake_server.wait_disconnect(5) is not None  # the connection was closed
    term.line("/model fake/echo")
    term.wait_text("model: fake/echo")
    term.line("still here")
    term.wait_text("still here", count=2)
    wait_prompt(term)
    term.line("/exit")
    assert term.wait_exit() == 0
    first, second = last_chat()["exchanges"]
    assert first["finish_reason"] == "cancelled"
    assert first["answer"]["content"].startswith("chunk 0\nchunk 1\nchunk 2")
    assert "chunk 19" not in first["answer"]["content"]
    assert second["requested_model"] == "fake/echo"
    # The partial answer is part of the conversation the next turn sent.
    sent = fake_server.chat_requests[-1].body["messages"]
    assert sent[1]["role"] == "assistant" and sent[1]["content"].startswith("chunk 0")


def test_ctrl_c_at_the_prompt_clears_the_line(open_chat: Any, fake_server: FakeOpenRouter) -> None:
    term = open_chat("-m", "fake/echo")
    term.send(b"never sent")
    term.wait_text("never sent")
    term.send(CTRL_C)
    term.line("sent instead")
    term.wait_text("sent instead", count=2)
    wait_prompt(term)
    term.send(CTRL_D)
    assert term.wait_exit() == 0
    assert [user_messages(r.body) for r in fake_server.chat_requests] == [["sent instead"]]


def test_a_bracketed_paste_is_one_message(open_chat: Any, fake_server: FakeOpenRouter) -> None:
    term = open_chat("-m", "fake/echo")
    term.paste("line one\nline two\nline three")
    term.wait_text("line three")
    assert fake_server.chat_requests == []  # inserted, not sent
    term.send(b"\r")
    assert fake_server.wait_requests(1, timeout=10)
    wait_prompt(term)
    term.send(CTRL_D)
    assert term.wait_exit() == 0
    requests = fake_server.chat_requests
    assert len(requests) == 1
    assert user_messages(requests[0].body) == ["line one\nline two\nline three"]


def test_triple_quotes_make_a_multi_line_message(
    open_chat: Any, fake_server: FakeOpenRouter
) -> None:
    term = open_chat("-m", "fake/echo")
    for line in ('"""', "alpha", "", "beta", '"""'):
        term.line(line)
    assert fake_server.wait_requests(1, timeout=10)
    wait_prompt(term)
    term.send(CTRL_D)
    assert term.wait_exit() == 0
    assert user_messages(fake_server.chat_requests[0].body) == ["alpha\n\nbeta"]


def test_retry_asks_again_and_keeps_the_first_answer(
    open_chat: Any, fake_server: FakeOpenRouter
) -> None:
    term = open_chat("-m", "fake/echo")
    term.line("once more")
    term.wait_text("once more", count=2)
    wait_prompt(term)
    term.line("/retry")
    term.wait_text("once more", count=3)
    wait_prompt(term)
    term.line("/frobnicate")
    term.wait_text("no command /frobnicate")
    wait_prompt(term)
    term.send(CTRL_D)
    assert term.wait_exit() == 0
    first, second = (r.body for r in fake_server.chat_requests)
    assert first["messages"] == second["messages"]  # the same question, asked again
    exchanges = last_chat()["exchanges"]
    assert [ex["answer"]["content"] for ex in exchanges] == ["once more", "once more"]


def test_resume_shows_the_last_exchange_and_the_shell_continues_it(
    open_chat: Any, fake_server: FakeOpenRouter, chat_env: dict[str, str]
) -> None:
    done = run(["-m", "fake/echo", "remember the walrus"], env=chat_env)
    assert done.returncode == 0, done.stderr
    chat_id = last_chat()["id"]
    term = open_chat("-c")
    screen = term.text()
    assert "> remember the walrus" in screen
    assert screen.count("remember the walrus") == 2  # the question and its rendered answer
    term.line("and the carpenter")
    term.wait_text("and the carpenter", count=2)
    wait_prompt(term)
    term.send(CTRL_D)
    assert term.wait_exit() == 0
    assert user_messages(fake_server.chat_requests[-1].body) == [
        "remember the walrus",
        "and the carpenter",
    ]
    done = run(["-c", "from the shell"], env=chat_env)
    assert done.returncode == 0, done.stderr
    chat = last_chat()
    assert chat["id"] == chat_id and len(chat["exchanges"]) == 3


def test_stdin_not_a_terminal_is_a_usage_error() -> None:
    done = run(["chat"], input=b"hello\n")
    assert done.returncode == 2
    assert b"rill -c" in done.stderr
    assert done.stderr.count(b"\n") == 1


def test_sigterm_mid_answer_ends_the_session_keeping_the_partial(
    open_chat: Any, fake_server: FakeOpenRouter
) -> None:
    term = open_chat("-m", "fake/slow")
    term.line("count slowly")
    term.wait_text("chunk 1")
    os.kill(term.pid, signal.SIGTERM)
    assert term.wait_exit() == 143
    (exchange,) = last_chat()["exchanges"]
    assert exchange["finish_reason"] == "cancelled"
    assert exchange["answer"]["content"].startswith("chunk 0\nchunk 1")


def test_sighup_at_the_prompt_ends_the_session(open_chat: Any) -> None:
    term = open_chat("-m", "fake/echo")
    os.kill(term.pid, signal.SIGHUP)
    assert term.wait_exit() == 143


def test_an_error_ends_the_turn_not_the_session(
    open_chat: Any, fake_server: FakeOpenRouter
) -> None:
    term = open_chat("-m", "fake/error-500", "--retries", "0")
    term.line("this fails")
    term.wait_text("HTTP 500")
    wait_prompt(term)
    term.line("/model fake/echo")
    term.line("this works")
    term.wait_text("this works", count=2)
    wait_prompt(term)
    term.line("/exit")
    assert term.wait_exit() == 0


def test_usage_history_system_and_edit(
    open_chat: Any, fake_server: FakeOpenRouter, chat_env: dict[str, str], tmp_path: Path
) -> None:
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nprintf "written in the editor\\nsecond line\\n" > "$1"\n')
    editor.chmod(0o755)
    chat_env["VISUAL"] = str(editor)
    term = open_chat("-m", "fake/echo")
    term.line("/system be brief")
    term.wait_text("system prompt set")
    term.line("/edit")
    term.wait_text("second line", count=1)
    wait_prompt(term)
    body = fake_server.chat_requests[0].body
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "written in the editor\nsecond line"},
    ]
    term.line("/usage")
    term.wait_text("1 exchanges ·")
    term.line("/history")
    term.wait_text("> written in the editor")
    wait_prompt(term)  # a key typed before the editor reads again is lost
    term.send(CTRL_D)
    assert term.wait_exit() == 0
    assert len(fake_server.chat_requests) == 1


PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def test_attach_sends_the_file_with_the_next_message_and_history_keeps_it(
    open_chat: Any, fake_server: FakeOpenRouter, chat_env: dict[str, str], tmp_path: Path
) -> None:
    picture = tmp_path / "shot.png"
    picture.write_bytes(PNG)
    term = open_chat("-m", "fake/echo")
    term.line(f"/attach {tmp_path / 'missing.png'}")
    term.wait_text("cannot attach")
    wait_prompt(term)
    term.line(f"/attach {picture}")
    term.wait_text("it goes with the next message")
    wait_prompt(term)
    assert fake_server.chat_requests == []  # attaching sends nothing by itself
    term.line("what is in it")
    term.wait_text("what is in it", count=2)
    wait_prompt(term)
    term.line("and now")
    term.wait_text("and now", count=2)
    wait_prompt(term)
    term.send(CTRL_D)
    assert term.wait_exit() == 0
    first, second = (r.body["messages"] for r in fake_server.chat_requests)
    parts = first[-1]["content"]
    assert parts[0] == {"type": "text", "text": "what is in it"}
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert second[-1] == {"role": "user", "content": "and now"}  # sent once, with its message
    assert second[0]["content"][1] == parts[1]  # and resent as part of the chat
    shown = run(["history", "show", "last"], env=chat_env)
    assert "shot.png" in shown.stdout.decode(), shown.stdout


def test_model_completion_offers_cached_ids(
    open_chat: Any, fake_server: FakeOpenRouter, chat_env: dict[str, str]
) -> None:
    done = run(["models"], env=chat_env)  # fills the models cache, as a user would
    assert done.returncode == 0, done.stderr
    term = open_chat("-m", "fake/echo")
    term.send(b"/model deeps\t")
    term.wait_text("/model deepseek/deepseek-r1")
    term.send(b"\r")
    term.wait_text("model: deepseek/deepseek-r1")
    wait_prompt(term)
    term.send(CTRL_D)
    assert term.wait_exit() == 0


def test_up_arrow_recalls_a_message_of_an_earlier_session(
    open_chat: Any, fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    term = open_chat("-m", "fake/echo", "--no-history")
    term.line("kept by no one")
    term.wait_text("kept by no one", count=2)
    wait_prompt(term)
    term.send(CTRL_D)
    assert term.wait_exit() == 0
    assert list(rill_env.rglob("chat_input_history")) == []  # --no-history: nothing written
    term = open_chat("-m", "fake/echo")
    term.line("worth asking twice")
    term.wait_text("worth asking twice", count=2)
    wait_prompt(term)
    term.send(CTRL_D)
    assert term.wait_exit() == 0
    term = open_chat("-m", "fake/echo")
    term.send(b"\x1b[A")  # up arrow
    term.wait_text("> worth asking twice")
    term.send(b"\r")
    assert fake_server.wait_requests(3, timeout=10)
    wait_prompt(term)
    term.send(CTRL_D)
    assert term.wait_exit() == 0
    assert user_messages(fake_server.chat_requests[2].body) == ["worth asking twice"]
