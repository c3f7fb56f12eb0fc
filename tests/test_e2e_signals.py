"""Real signals sent to a running ``rill`` mid-stream: what it prints, keeps and tells upstream."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import Any

import pytest

from tests.e2e import finish, read_until, run, spawn
from tests.fakeserver import FakeOpenRouter, Gate, Scenario

PIECES = ["one ", "two ", "three ", "four "]


def _start_mid_stream(
    fake_server: FakeOpenRouter, *args: str
) -> tuple[subprocess.Popen[bytes], Gate, bytes]:
    """rill running with two pieces shown and the server holding the third back."""
    gate = Gate(timeout=15)
    fake_server.enqueue(Scenario(content=PIECES, gate=gate))
    proc = spawn(["--base-url", fake_server.url, "-m", "test/model", *args, "hi"])
    seen = read_until(proc, b"one ")
    gate.release(1)
    seen += read_until(proc, b"two ")
    deadline = time.monotonic() + 10
    while gate.waiting_for < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # the server is about to block on piece 2
    return proc, gate, seen


def _last_exchange() -> dict[str, Any]:
    result = run(["history", "show", "last", "--json"])
    assert result.returncode == 0, result.stderr
    chat = json.loads(result.stdout)
    return chat["exchanges"][-1]


@pytest.mark.parametrize(
    ("sig", "code", "name"),
    [
        (signal.SIGINT, 130, "SIGINT"),
        (signal.SIGTERM, 143, "SIGTERM"),
        (signal.SIGHUP, 143, "SIGHUP"),
    ],
)
def test_signal_mid_stream_keeps_everything(
    fake_server: FakeOpenRouter, sig: signal.Signals, code: int, name: str
) -> None:
    proc, _gate, seen = _start_mid_stream(fake_server)
    sent_at = time.monotonic()
    proc.send_signal(sig)
    disconnected = fake_server.wait_disconnect(timeout=5)
    rc, rest, err = finish(proc)
    assert rc == code
    assert seen + rest == b"one two "  # exactly what was received, nothing more
    text = err.decode()
    assert "Traceback" not in text
    assert text.count("\n") == 1 and f"cancelled by {name}" in text, text
    assert disconnected is not None and disconnected - sent_at < 1.0
    exchange = _last_exchange()
    assert exchange["finish_reason"] == "cancelled"
    assert exchange["answer"]["content"] == "one two "


def test_sigterm_ends_machine_formats_with_a_cancelled_done(fake_server: FakeOpenRouter) -> None:
    gate = Gate(timeout=15)
    fake_server.enqueue(Scenario(content=PIECES, gate=gate))
    proc = spawn(["--base-url", fake_server.url, "-m", "test/model", "-f", "jsonl", "hi"])
    out = read_until(proc, b'"one "')
    gate.release(1)
    out += read_until(proc, b'"two "')
    proc.send_signal(signal.SIGTERM)
    rc, rest, err = finish(proc)
    assert rc == 143
    events = [json.loads(line) for line in (out + rest).splitlines()]
    assert events[-1]["event"] == "done"
    assert events[-1]["finish_reason"] == "cancelled"
    assert events[-1]["message"]["content"] == "one two "
    assert sum(e["event"] in ("done", "error") for e in events) == 1


def test_second_sigint_during_cleanup_still_exits_quietly(fake_server: FakeOpenRouter) -> None:
    proc, _gate, _seen = _start_mid_stream(fake_server)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    rc, _rest, err = finish(proc)
    assert rc == 130
    assert b"Traceback" not in err


def test_sigkill_mid_stream_is_shown_as_interrupted_with_its_partial_answer(
    fake_server: FakeOpenRouter,
) -> None:
    proc, _gate, _seen = _start_mid_stream(fake_server)
    # The journal is written within a second of the text arriving: wait until history shows it.
    deadline = time.monotonic() + 5
    while _last_exchange()["answer"].get("content") != "one two ":
        assert time.monotonic() < deadline, "the partial answer never reached the journal"
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    exchange = _last_exchange()
    assert exchange["finish_reason"] == "interrupted"
    assert exchange["answer"]["content"] == "one two "
    listed = json.loads(run(["history", "list", "--json"]).stdout)
    assert listed[0]["finish_reason"] == "interrupted"


def test_closed_stdout_keeps_the_partial_answer_in_history(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario.long(100_000))
    started = time.monotonic()
    proc = spawn(["--base-url", fake_server.url, "-m", "test/long", "hi"])
    assert proc.stdout is not None
    first = os.read(proc.stdout.fileno(), 5)
    assert first
    proc.stdout.close()  # like `| head -c 5`
    rc, _out, err = finish(proc)
    assert rc == 141
    assert err == b""
    assert time.monotonic() - started < 5
    exchange = _last_exchange()
    assert exchange["finish_reason"] == "cancelled"
    assert exchange["answer"]["content"].startswith(first.decode())
