"""The installed ``rill`` as a subprocess against the fake OpenRouter server over real HTTP.

Real streaming, exit codes, closed pipes and concurrent runs can only be shown this way.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e import RILL, finish, read_until, run, spawn
from tests.fakeserver import FakeOpenRouter, Gate, Scenario


def test_streams_for_real_each_piece_before_the_next_is_sent(
    fake_server: FakeOpenRouter,
) -> None:
    pieces = ["alpha ", "beta ", "gamma ", "delta"]
    gate = Gate(timeout=10)
    fake_server.enqueue(Scenario(content=pieces, gate=gate))
    proc = spawn(["--base-url", fake_server.url, "-m", "test/model", "hi"])
    seen = b""
    for i, piece in enumerate(pieces[:-1]):
        # The server holds piece i+1 back until the test has read piece i from rill's stdout.
        seen = (
            read_until(proc, piece.encode(), timeout=10)
            if i == 0
            else seen + read_until(proc, piece.encode(), timeout=10)
        )
        assert pieces[i + 1].encode() not in seen
        gate.release(i + 1)
    code, rest, err = finish(proc)
    assert code == 0, err
    assert seen + rest == "".join(pieces).encode()
    assert not gate.timed_out
    assert err == b""


def test_prompt_words_and_stdin_reach_the_request(fake_server: FakeOpenRouter) -> None:
    result = run(["--base-url", fake_server.url, "-m", "fake/echo", "summarise"], input=b"line1\n")
    assert result.returncode == 0, result.stderr
    body = fake_server.chat_requests[-1].body
    assert body["messages"][-1] == {"role": "user", "content": "summarise\n\nline1\n"}
    assert body["stream"] is True
    assert fake_server.chat_requests[-1].headers["authorization"] == f"Bearer {fake_server.api_key}"

    result = run(["--base-url", fake_server.url, "-m", "fake/echo", "-"], input=b"only stdin")
    assert result.stdout == b"only stdin"
    result = run(["--base-url", fake_server.url, "-m", "fake/echo", "--", "history", "of", "rome"])
    assert result.stdout == b"history of rome"
    result = run(["ask", "--base-url", fake_server.url, "-m", "fake/echo", "history", "of", "rome"])
    assert result.stdout == b"history of rome"
    # Only the first word selects a command: later, "ask" is part of the prompt.
    result = run(["--base-url", fake_server.url, "-m", "fake/echo", "ask", "me"])
    assert result.stdout == b"ask me"
    result = run(["--base-url", fake_server.url, "-m", "fake/echo", "words"], input=b"")
    assert fake_server.chat_requests[-1].body["messages"][-1]["content"] == "words"


def test_no_prompt_is_a_usage_error(fake_server: FakeOpenRouter) -> None:
    result = run(["--base-url", fake_server.url])
    assert result.returncode == 2
    assert result.stderr.count(b"\n") == 1 and b"prompt" in result.stderr
    assert fake_server.chat_requests == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


FAULTS = [
    # (id, scenario or model, extra args, exit code, text expected on stderr)
    ("401", Scenario.error(401), [], 4, "No cookie auth credentials found"),
    ("401-wrong-key", Scenario.error(401, "user-not-found"), [], 4, "User not found"),
    ("403", Scenario.error(403), [], 4, ""),
    ("402", Scenario.error(402), [], 5, "requires more credits"),
    (
        "429-after-retries",
        Scenario.error(429, retry_after=0, repeat=3),
        ["--retries", "2"],
        6,
        "Rate limit",
    ),
    ("400", Scenario.error(400), [], 7, "not a valid model"),
    ("404", Scenario.error(404), [], 7, ""),
    ("500", Scenario.error(500), [], 7, ""),
    ("502-html", Scenario.error(502, "html"), ["--retries", "0"], 7, "502"),
    ("503", Scenario.error(503, retry_after=0), ["--retries", "0"], 7, ""),
    ("midstream", "fake/midstream-error", [], 7, ""),
    ("midstream-empty-choices", "fake/midstream-error-empty", [], 7, ""),
    ("truncated", "fake/truncated", [], 7, "closed before the answer was complete"),
    (
        "no-finish-no-done",
        Scenario(content=["x"], send_finish=False, send_done=False, usage_style=None),
        [],
        7,
        "no finish reason",
    ),
    ("silent-failure", "fake/silent-failure", [], 7, "network_error"),
    (
        "idle-timeout",
        Scenario(content=["a", "b"], stall_after=1, stall_seconds=5),
        ["--timeout", "0.5"],
        8,
        "idle timeout",
    ),
    (
        "first-token-timeout",
        Scenario(content=["a"], delay_first_data=5, keepalive_every=0.1),
        ["--first-token-timeout", "0.5"],
        8,
        "first token",
    ),
    (
        "total-timeout",
        Scenario(content=list("abcdefghij"), chunk_delay=0.3),
        ["--total-timeout", "0.8"],
        8,
        "total",
    ),
]


@pytest.mark.parametrize(
    ("scenario", "extra", "code", "text"),
    [pytest.param(s, e, c, t, id=i) for i, s, e, c, t in FAULTS],
)
def test_fault_exit_codes(
    fake_server: FakeOpenRouter, scenario: Scenario | str, extra: list[str], code: int, text: str
) -> None:
    model = "test/model"
    if isinstance(scenario, str):
        model = scenario
    else:
        fake_server.enqueue(scenario)
    result = run(["--base-url", fake_server.url, "-m", model, *extra, "hi"], timeout=20)
    err = result.stderr.decode()
    assert result.returncode == code, err
    assert "Traceback" not in err
    assert err.startswith("rill: ") and err.count("\n") == 1, err
    assert text in err
    assert fake_server.api_key not in err


def test_keepalives_longer_than_the_idle_timeout_are_activity(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario(content=["ok"], delay_first_data=1.5, keepalive_every=0.1))
    result = run(["--base-url", fake_server.url, "-m", "x/y", "--timeout", "0.6", "hi"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"ok"


def test_connection_refused_is_a_network_error() -> None:
    port = _free_port()
    result = run(["--base-url", f"http://127.0.0.1:{port}/v1", "--retries", "0", "-m", "x", "hi"])
    assert result.returncode == 8
    assert b"cannot connect" in result.stderr and b"Traceback" not in result.stderr


def test_missing_key_for_openrouter_is_a_config_error(fake_server: FakeOpenRouter) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENROUTER_API_KEY"}
    result = run(["hi"], env=env)
    assert result.returncode == 3
    assert b"OPENROUTER_API_KEY" in result.stderr
    assert fake_server.chat_requests == []


def test_key_is_refused_over_plain_http_to_a_remote_host() -> None:
    result = run(["--base-url", "http://example.invalid/v1", "hi"])
    assert result.returncode == 3
    assert b"plain http" in result.stderr
    assert os.environ["OPENROUTER_API_KEY"].encode() not in result.stderr


def test_generic_server_needs_no_key(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario(content=["local"], persona="openai", require_auth=False))
    env = {k: v for k, v in os.environ.items() if k != "OPENROUTER_API_KEY"}
    result = run(["--base-url", fake_server.url, "-m", "llama", "hi"], env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"local"
    request = fake_server.chat_requests[-1]
    assert "authorization" not in {k.lower() for k in request.headers}
    assert request.body["stream_options"] == {"include_usage": True}
    assert "reasoning" not in request.body


def test_closed_stdout_ends_quietly_and_promptly(fake_server: FakeOpenRouter) -> None:
    started = time.monotonic()
    shell = f"{' '.join(RILL)} --base-url {fake_server.url} -m fake/long hi | head -c 3"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", shell],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert result.stdout == b"lor"
    assert result.stderr == b""
    assert result.returncode == 141
    assert time.monotonic() - started < 10


def test_concurrent_runs_do_not_mix(fake_server: FakeOpenRouter) -> None:
    def one(i: int) -> subprocess.CompletedProcess[bytes]:
        return run(["--base-url", fake_server.url, "-m", "fake/echo", f"run number {i}"])

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    for i, result in enumerate(results):
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"run number {i}".encode()


def test_python_m_rill_is_the_same_command(fake_server: FakeOpenRouter) -> None:
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "rill", "--base-url", fake_server.url, "-m", "fake/echo", "same"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, b"same")
    version = subprocess.run(
        [sys.executable, "-m", "rill", "--version"], capture_output=True, timeout=30, check=False
    )
    assert version.stdout.startswith(b"rill ")


def test_jsonl_over_real_http(fake_server: FakeOpenRouter) -> None:
    result = run(["--base-url", fake_server.url, "-m", "fake/reasoning", "-f", "jsonl", "hi"])
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["event"] == "start"
    assert any(e["event"] == "reasoning" for e in events)
    assert events[-1]["event"] == "done" and events[-1]["usage"]["reasoning_tokens"] >= 0
