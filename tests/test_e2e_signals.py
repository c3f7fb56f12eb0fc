"""Real signals sent to a running ``rill`` mid-stream: what it prints, keeps and tells upstream."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from rill.fake import FakeOpenRouter, Gate, Scenario
from tests.e2e import finish, read_until, run, spawn, wait_until

PIECES = ["one ", "two ", "three ", "four "]


def _start_mid_stream(
    fake_server: FakeOpenRouter, *args: str, framing: str = "chunked"
) -> tuple[subprocess.Popen[bytes], Gate, bytes]:
    """rill running with two pieces shown and the server holding the third back."""
    gate = Gate(timeout=15)
    fake_server.enqueue(Scenario(content=PIECES, gate=gate, framing=framing))  # type: ignore[arg-type]
    proc = spawn(["--base-url", fake_server.url, "-m", "test/model", *args, "hi"])
    seen = read_until(proc, b"one ")
    gate.release(1)
    seen += read_until(proc, b"two ")
    assert gate.wait_for_server(2, 10)  # the server now holds piece 2 back
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


def test_sigint_in_a_body_ended_by_its_connection_is_a_cancel_not_a_truncation(
    fake_server: FakeOpenRouter,
) -> None:
    """The signal shuts the socket down; for a body that is not chunked, that looks like the
    body's end, but the cancel is what happened."""
    proc, _gate, seen = _start_mid_stream(fake_server, framing="close")
    proc.send_signal(signal.SIGINT)
    rc, rest, err = finish(proc)
    assert rc == 130, err
    assert seen + rest == b"one two "
    assert "cancelled by SIGINT" in err.decode()
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


def _has_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open (Linux: its descriptors in /proc)."""
    fds = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(OSError):
        return any(os.readlink(fds / fd) == str(path) for fd in os.listdir(fds))
    return False


def _pending(pid: int, sig: signal.Signals) -> bool:
    """Whether ``sig`` waits to be delivered to process ``pid`` (Linux: /proc status masks)."""
    pending = 0  # the thread's and the process's pending signals
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("SigPnd", "ShdPnd"):
            pending |= int(value, 16)
    return bool(pending & (1 << (int(sig) - 1)))


def _wait_for_journal(content: str) -> None:
    """Wait until history shows the running answer's ``content`` (journalled within ~1 s)."""
    wait_until(
        lambda: _last_exchange()["answer"].get("content") == content,
        5,
        "the partial answer in the journal",
    )


def test_second_sigint_during_cleanup_still_exits_quietly(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    proc, _gate, _seen = _start_mid_stream(fake_server)
    _wait_for_journal("one two ")
    # Two signals sent back to back merge while the first is pending, and the clean-up after
    # the first is over in a few milliseconds. Holding the history lock keeps rill in it:
    # saving the partial answer waits for the lock, with the connection already closed.
    lock = rill_env / "history" / ".lock"
    fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        proc.send_signal(signal.SIGINT)
        assert fake_server.wait_disconnect(5) is not None  # the first SIGINT was handled
        deadline = time.monotonic() + 10
        while not _has_open(proc.pid, lock):  # rill is now waiting for the lock
            assert proc.poll() is None, "rill left before it tried to save the answer"
            assert time.monotonic() < deadline, "rill never tried to save the answer"
            time.sleep(0.005)
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        rc, rest, err = finish(proc)
    finally:
        os.close(fd)
    assert rc == 130  # os._exit(128 + SIGINT): it left at once, without waiting for the lock
    assert rest == b""
    # Quietly: no traceback, no "Exception ignored"; at most one "rill:" line.
    assert err == b"" or (err.startswith(b"rill: ") and err.count(b"\n") == 1), err
    # The answer was never saved, but its journal was: history shows it as interrupted.
    exchange = _last_exchange()
    assert exchange["finish_reason"] == "interrupted"
    assert exchange["answer"]["content"] == "one two "


def test_sigkill_mid_stream_is_shown_as_interrupted_with_its_partial_answer(
    fake_server: FakeOpenRouter,
) -> None:
    proc, _gate, _seen = _start_mid_stream(fake_server)
    _wait_for_journal("one two ")
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


def test_two_sigterms_back_to_back_keep_the_text_shown(fake_server: FakeOpenRouter) -> None:
    proc, _gate, seen = _start_mid_stream(fake_server)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.001)  # the gap between the two signals is what is tested
    proc.send_signal(signal.SIGTERM)
    rc, rest, err = finish(proc)
    assert rc == 143
    assert b"Traceback" not in err and err.count(b"\n") <= 1, err
    exchange = _last_exchange()
    assert exchange["finish_reason"] in ("cancelled", "interrupted")
    assert exchange["answer"]["content"] == (seen + rest).decode() == "one two "


def test_a_signal_while_a_finished_answer_is_saved_leaves_it_finished(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    proc, gate, _seen = _start_mid_stream(fake_server)
    lock = rill_env / "history" / ".lock"
    fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        gate.open()
        read_until(proc, b"four ")  # the whole answer is shown; saving it waits for the lock
        wait_until(lambda: _has_open(proc.pid, lock), 10, "rill saving the answer")
        proc.send_signal(signal.SIGTERM)
        wait_until(lambda: not _pending(proc.pid, signal.SIGTERM), 10, "SIGTERM delivered")
        assert proc.poll() is None  # it did not end the run: the save still waits for the lock
    finally:
        os.close(fd)
    rc, _rest, err = finish(proc)
    assert rc == 0, err
    exchange = _last_exchange()
    assert exchange["finish_reason"] == "stop"
    assert exchange["answer"]["content"] == "one two three four "
