"""The streaming core pulled from any thread: ``rill.stream_chat`` and ``ChatStream`` against the
fake server over real HTTP — time limits off the main thread, leaving and cancelling while the
upstream is silent (the server must see the connection close), and text kept before it is shown.
"""

from __future__ import annotations

import inspect
import json
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import rill
from rill.config.settings import resolve_settings
from rill.errors import Cancelled, ExitCode
from rill.events import Chunk, Done, Error, Start
from rill.fake import FakeOpenRouter, Gate, Scenario
from rill.stream.client import ChatClient, make_http_client
from rill.stream.pipeline import ChatStream, Received
from rill.stream.protocol import Request
from tests.e2e import RILL, finish, read_until, run, spawn, wait_until

PIECES = ["one ", "two ", "three "]


def _held(fake_server: FakeOpenRouter, after: int = 1) -> Gate:
    """The server sends ``after`` pieces, then holds the rest back, silent (no keep-alives)."""
    gate = Gate(timeout=15)
    fake_server.enqueue(Scenario(content=PIECES, gate=gate, keepalives_before=0))
    return gate


def _in_thread(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            box["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, box


def test_stream_chat_is_a_plain_generator_of_the_contract_events(
    fake_server: FakeOpenRouter,
) -> None:
    fake_server.enqueue(Scenario(content=PIECES))
    events = rill.stream_chat("hi", base_url=fake_server.url, model="test/m")
    assert inspect.isgenerator(events)
    seen = list(events)
    assert isinstance(seen[0], Start)
    assert "".join(e.content for e in seen if isinstance(e, Chunk)) == "one two three "
    assert isinstance(seen[-1], Done) and seen[-1].finish_reason == "stop"
    assert [type(e) for e in seen].count(Done) == 1


def test_leaving_the_loop_on_a_silent_upstream_closes_the_connection_at_once(
    fake_server: FakeOpenRouter,
) -> None:
    _held(fake_server)
    events = rill.stream_chat("hi", base_url=fake_server.url, model="test/m", timeout=30)
    for event in events:
        if isinstance(event, Chunk):
            break  # the server now holds the rest back and says nothing
    left = time.monotonic()
    events.close()
    closed = fake_server.wait_disconnect(timeout=5)
    assert closed is not None, "the server never saw the connection close"
    assert closed - left < 1.0


def test_close_from_another_thread_wakes_a_consumer_blocked_on_a_silent_upstream(
    fake_server: FakeOpenRouter,
) -> None:
    _held(fake_server)
    settings = resolve_settings({"base_url": fake_server.url, "model": "test/m", "timeout": 30})
    client = ChatClient(settings, make_http_client(settings))
    request = Request(messages=[{"role": "user", "content": "hi"}], model="test/m")
    stream = ChatStream(client, request)
    shown = threading.Event()

    def consume() -> list[Any]:
        events = []
        for event in stream:
            events.append(event)
            if isinstance(event, Chunk):
                shown.set()
        return events

    thread, box = _in_thread(consume)
    assert shown.wait(10)
    cancelled_at = time.monotonic()
    stream.close()  # from this thread, while the consumer waits in a read
    thread.join(5)
    assert not thread.is_alive(), "the consumer stayed blocked"
    assert time.monotonic() - cancelled_at < 1.0
    events = box["value"]
    assert isinstance(events[-1], Done) and events[-1].finish_reason == "cancelled"
    assert events[-1].message["content"] == "one "
    closed = fake_server.wait_disconnect(timeout=5)
    assert closed is not None and closed - cancelled_at < 1.0
    client.http.close()


@pytest.mark.parametrize(
    ("limits", "scenario", "limit"),
    [
        ({"first_token_timeout": 0.4}, Scenario(content=PIECES, delay_first_data=10), 0.4),
        ({"total_timeout": 0.6}, Scenario(content=PIECES * 50, chunk_delay=0.05), 0.6),
    ],
    ids=["first-token", "total"],
)
def test_time_limits_hold_in_a_worker_thread(
    fake_server: FakeOpenRouter, limits: dict[str, float], scenario: Scenario, limit: float
) -> None:
    fake_server.enqueue(scenario)

    def pull() -> tuple[list[Any], float]:
        started = time.monotonic()
        events = list(
            rill.stream_chat("hi", base_url=fake_server.url, model="test/m", timeout=30, **limits)
        )
        return events, time.monotonic() - started

    thread, box = _in_thread(pull)
    thread.join(10)
    assert not thread.is_alive()
    assert "error" not in box, box.get("error")
    events, took = box["value"]
    last = events[-1]
    assert isinstance(last, Error) and last.exit_code == 8 and last.code == "timeout", last
    assert "time limit" in last.message
    assert limit <= took < limit + 0.5
    assert fake_server.wait_disconnect(timeout=5) is not None


def test_the_journal_has_each_read_before_the_consumer_sees_it(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    gate = _held(fake_server)
    settings = resolve_settings({"base_url": fake_server.url, "model": "test/m"})
    client = ChatClient(settings, make_http_client(settings))
    from rill.history import ExchangeStart, HistoryStore

    store = HistoryStore(settings.paths.history_dir, "json")
    request = Request(messages=[{"role": "user", "content": "hi"}], model="test/m")
    stream = ChatStream(
        client,
        request,
        begin=lambda: store.begin(ExchangeStart(None, request.messages, "test/m", {}, "")),
    )
    journals = list((rill_env / "history").rglob("*journal*"))
    for step in stream.steps():
        if isinstance(step, Received) and step.deltas:
            journals = [p for p in (rill_env / "history").rglob("*") if p.is_file()]
            assert any(b"one " in p.read_bytes() for p in journals), journals
            break
    stream.cancel(Cancelled("SIGINT", ExitCode.INTERRUPTED))
    gate.open()
    last = list(stream.steps())[-1]
    assert isinstance(last, Done) and last.finish_reason == "cancelled"
    client.http.close()


def test_sigkill_right_after_a_delta_is_shown_keeps_it(fake_server: FakeOpenRouter) -> None:
    _held(fake_server)
    proc = spawn(["--base-url", fake_server.url, "-m", "test/model", "hi"])
    read_until(proc, b"one ")
    proc.send_signal(signal.SIGKILL)  # no wait for a journal flush: it came before stdout
    finish(proc)
    shown = run(["history", "show", "last", "--json"])
    exchange = json.loads(shown.stdout)["exchanges"][-1]
    assert exchange["finish_reason"] == "interrupted"
    assert exchange["answer"]["content"] == "one "


@pytest.mark.parametrize(
    ("flag", "scenario"),
    [
        ("--first-token-timeout", Scenario(content=PIECES, delay_first_data=10)),
        ("--total-timeout", Scenario(content=PIECES * 50, chunk_delay=0.05)),
    ],
)
def test_a_batch_item_gets_the_time_limits(
    fake_server: FakeOpenRouter, tmp_path: Path, flag: str, scenario: Scenario
) -> None:
    fake_server.enqueue(scenario)
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"id": "slow", "prompt": "x"}) + "\n")
    started = time.monotonic()
    result = run(
        ["batch", str(items), "--base-url", fake_server.url, "-m", "test/m", flag, "0.5"],
        timeout=20,
    )
    assert time.monotonic() - started < 8
    assert result.returncode == 8, result.stderr
    line = json.loads(result.stdout)
    assert line["id"] == "slow" and line["exit_code"] == 8 and "time limit" in line["message"]


def test_sigint_while_waiting_for_the_response_headers(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario(content=PIECES, delay_headers=10))
    proc = spawn(["--base-url", fake_server.url, "-m", "test/model", "hi"])
    wait_until(lambda: fake_server.chat_requests, 10, "the request")
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    rc, out, err = finish(proc)
    assert rc == 130 and out == b""
    assert time.monotonic() - sent < 2
    assert b"Traceback" not in err and err.count(b"\n") == 1, err


def test_a_closed_stdout_at_the_start_sends_nothing(fake_server: FakeOpenRouter) -> None:
    argv = " ".join(shlex.quote(a) for a in [*RILL, "--base-url", fake_server.url, "hi"])
    result = subprocess.run(
        ["sh", "-c", f"{argv} >&-"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 141, result.stderr
    assert result.stderr.count("\n") == 1 and "stdout is closed" in result.stderr
    assert fake_server.chat_requests == []


def test_an_unwritable_stdout_is_one_line_and_keeps_the_answer(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario(content=PIECES))
    with open("/dev/full", "wb") as full:
        result = subprocess.run(
            [*RILL, "--base-url", fake_server.url, "-m", "test/model", "hi"],
            stdin=subprocess.DEVNULL,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 74, result.stderr
    text = result.stderr
    assert text.count("\n") == 1 and "No space left on device" in text, text
    assert "Traceback" not in text and "Exception ignored" not in text
    exchange = json.loads(run(["history", "show", "last", "--json"]).stdout)["exchanges"][-1]
    assert exchange["finish_reason"] == "cancelled"
    assert exchange["answer"]["content"].startswith("one ")


# rill guards Ctrl-C from the moment its entry module is imported; before that only the
# interpreter and the installer's wrapper script run, which rill cannot guard. So the moments are
# counted from that import (``-X importtime`` reports it on stderr), not from the spawn: on a
# loaded machine the interpreter alone can take longer than a fixed delay.
_RILL_IMPORTED = re.compile(rb"\| +rill\.__main__\s*$", re.MULTILINE)


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.03, 0.08, 0.2])
def test_ctrl_c_at_any_moment_of_start_up_is_quiet(
    fake_server: FakeOpenRouter, delay: float
) -> None:
    fake_server.enqueue(Scenario(content=PIECES, delay_headers=10))
    script = RILL[-1] if len(RILL) == 1 else None
    argv = [sys.executable, "-X", "importtime", *([script] if script else ["-m", "rill"])]
    proc = subprocess.Popen(
        [*argv, "--base-url", fake_server.url, "-m", "test/model", "hi"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        seen = b""
        deadline = time.monotonic() + 20
        while not _RILL_IMPORTED.search(seen):
            assert time.monotonic() < deadline, "rill's modules were never imported"
            more = proc.stderr.read1(65536)
            assert more, seen[-500:]
            seen += more
        time.sleep(delay)  # the moment of the Ctrl-C is the parameter
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    err = b"".join(
        line for line in (seen + rest).splitlines(keepends=True) if b"import time:" not in line
    )
    assert proc.returncode == 130, (proc.returncode, err)
    assert b"Traceback" not in err and err.count(b"\n") <= 1, err


def test_an_error_object_names_the_chat_that_recorded_it(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario(status=402))
    result = run(["--base-url", fake_server.url, "-m", "test/model", "-f", "json", "hi"])
    assert result.returncode == 5
    error = json.loads(result.stdout)
    listed = json.loads(run(["history", "list", "--json"]).stdout)
    assert error["chat_id"] == listed[0]["id"] and error["exit_code"] == 5


def test_the_prompt_command_writes_to_the_environment_it_is_given(
    fake_server: FakeOpenRouter,
) -> None:
    import io

    from rill.commands.prompt import PromptArgs, run_prompt
    from rill.config.settings import SettingFlags
    from rill.env import Environment

    fake_server.enqueue(Scenario(content=PIECES))
    out, err = io.BytesIO(), io.StringIO()
    flags: SettingFlags = {"base_url": fake_server.url, "model": "test/m", "stats": True}
    env = Environment(stdin=None, stdout=out, stderr=err)
    code = run_prompt(PromptArgs(["hi"], None, flags, no_history=True, env=env))
    assert code == 0
    assert out.getvalue() == b"one two three "
    assert err.getvalue().startswith("rill: ") and "tokens" in err.getvalue()
