"""The installed ``rill`` as a subprocess against the fake OpenRouter server over real HTTP.

Real streaming, exit codes, closed pipes and concurrent runs can only be shown this way.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rill.fake import FakeOpenRouter, Gate, Scenario
from tests.e2e import RILL, finish, read_until, run, spawn
from tests.faults import FAULTS, Fault, readme_section


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


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_table(fake_server: FakeOpenRouter, fault: Fault) -> None:
    model = "test/model"
    if isinstance(fault.scenario, str):
        model = fault.scenario
    elif fault.scenario is not None:
        fake_server.enqueue(fault.scenario)
    base_url = fault.base_url(fake_server) if fault.base_url else fake_server.url
    env = dict(os.environ)
    if fault.without_key:
        env.pop("OPENROUTER_API_KEY")
    args = ["--base-url", base_url, "-m", model, *fault.args, "hi"]
    result = run(args, env=env, timeout=30)
    err = result.stderr.decode()
    assert result.returncode == fault.exit_code, err
    assert "Traceback" not in err
    assert fake_server.api_key not in err
    if fault.exit_code == 0:
        assert err == ""
        return
    assert err.startswith("rill: ") and err.count("\n") == 1, err
    assert fault.stderr in err


def test_readme_fault_section_matches_the_table() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    start, end = "<!-- faults:start -->\n", "\n<!-- faults:end -->"
    assert start in readme and end in readme, "README.md lacks the faults markers"
    section = readme.split(start, 1)[1].split(end, 1)[0]
    assert section == readme_section(), "regenerate with: python -m tests.faults"


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
    # fake/reasoning: three reasoning pieces, then two content pieces; one token per piece.
    reasoning = [e["content"] for e in events if e["event"] == "reasoning"]
    assert reasoning == ["Let me think", " about this", " carefully."]
    done = events[-1]
    assert done["event"] == "done"
    assert done["message"]["content"] == "The answer is 42."
    assert done["usage"]["reasoning_tokens"] == 3
    assert done["usage"]["completion_tokens"] == 5  # reasoning tokens included


@pytest.mark.parametrize(
    "args",
    [
        ["--format", "nope", "hi"],
        ["--temperature", "warm", "hi"],
        ["--nope", "hi"],
        ["history", "show", "--bogus"],
        ["usage", "--by", "week"],
    ],
)
def test_bad_flags_get_one_line_and_exit_2(fake_server: FakeOpenRouter, args: list[str]) -> None:
    result = run(["--base-url", fake_server.url, *args] if args[0].startswith("-") else args)
    err = result.stderr.decode()
    assert result.returncode == 2
    assert err.startswith("rill: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert fake_server.chat_requests == []


#: Pieces whose JSON needs every kind of escape, and characters of every UTF-8 length.
TRICKY_PIECES = [
    "plain",
    ' "q"',
    " back\\slash",
    "\n\n",
    "\ttab",
    " naïve",
    " 日本語",
    " 😀",
]


@pytest.mark.parametrize("split", ["event", "coalesce", "bytes"])
def test_long_tricky_stream_is_exact_in_text_and_jsonl(
    fake_server: FakeOpenRouter, split: str
) -> None:
    # Every framing a server or proxy may use: an HTTP chunk per event, large chunks, and
    # chunks cut at arbitrary bytes (inside UTF-8 characters and JSON escapes).
    pieces = [TRICKY_PIECES[i % len(TRICKY_PIECES)] + str(i) for i in range(5000)]
    expected = "".join(pieces)
    fake_server.default_scenario = Scenario(content=pieces, split=split)  # type: ignore[arg-type]
    text = run(["--base-url", fake_server.url, "--no-history", "hi"], timeout=60)
    assert text.returncode == 0, text.stderr
    assert text.stdout == expected.encode("utf-8", "replace")
    jsonl = run(["--base-url", fake_server.url, "--no-history", "-f", "jsonl", "hi"], timeout=60)
    assert jsonl.returncode == 0, jsonl.stderr
    events = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert "".join(e["content"] for e in events if e["event"] == "chunk") == expected
    assert events[-1]["message"]["content"] == expected
