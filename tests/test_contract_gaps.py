"""Contract behaviours end to end: settings precedence, config keys, stats, every format
streaming for real, chat ids, cancellation in every format, and the README's main command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from rill.fake import FakeOpenRouter, Gate, Scenario
from tests.e2e import finish, read_until, run, spawn

ROOT = Path(__file__).resolve().parent.parent


def _config(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text)


def _show_last() -> dict[str, Any]:
    result = run(["history", "show", "last", "--json"])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _partial_answer() -> str | None:
    """The last exchange's answer so far, or None while nothing is recorded yet."""
    result = run(["history", "show", "last", "--json"])
    if result.returncode != 0:
        return None
    answer: str | None = json.loads(result.stdout)["exchanges"][-1].get("answer", {}).get("content")
    return answer


def test_stats_line_on_stderr(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(
        # Paced, so the generation lasts long enough for a token rate to mean something.
        Scenario(
            content=["Hi", " there"],
            served_model="openai/gpt-4o-mini",
            provider="Azure",
            chunk_delay=0.05,
        )
    )
    result = run(["--base-url", fake_server.url, "-m", "m", "--stats", "hi"])
    assert result.returncode == 0
    assert result.stdout == b"Hi there"
    line = result.stderr.decode()
    assert line.count("\n") == 1
    for part in ("in /", "out tokens", "first token", "tok/s", "$", "openai/gpt-4o-mini", "Azure"):
        assert part in line, line


def test_base_url_precedence_flag_env_config(fake_server: FakeOpenRouter, rill_env: Path) -> None:
    dead = "http://127.0.0.1:9/v1"
    _config(rill_env, f'base_url = "{fake_server.url}"\nretries = 0\n')
    assert run(["-m", "fake/echo", "from config"]).stdout == b"from config"
    env = dict(os.environ, RILL_BASE_URL=dead)
    assert run(["-m", "fake/echo", "env wins"], env=env).returncode == 8  # env beats config
    result = run(["--base-url", fake_server.url, "-m", "fake/echo", "flag wins"], env=env)
    assert result.stdout == b"flag wins"  # the flag beats the environment


def test_model_precedence_and_aliases(fake_server: FakeOpenRouter, rill_env: Path) -> None:
    _config(rill_env, 'model = "from/config"\n[aliases]\nfast = "vendor/fast-model"\n')
    run(["--base-url", fake_server.url, "hi"])
    assert fake_server.chat_requests[-1].body["model"] == "from/config"
    run(["--base-url", fake_server.url, "hi"], env=dict(os.environ, RILL_MODEL="from/env"))
    assert fake_server.chat_requests[-1].body["model"] == "from/env"
    run(["--base-url", fake_server.url, "-m", "fast", "hi"])
    assert fake_server.chat_requests[-1].body["model"] == "vendor/fast-model"


def test_config_keys_take_effect(fake_server: FakeOpenRouter, rill_env: Path) -> None:
    _config(rill_env, "max_tokens = 321\nretries = 1\ntimeout = 0.5\ntemperature = 0.3\n")
    run(["--base-url", fake_server.url, "-m", "m", "hi"])
    body = fake_server.chat_requests[-1].body
    assert (body["max_tokens"], body["temperature"]) == (321, 0.3)

    fake_server.enqueue(Scenario.error(429, retry_after=0, repeat=5))
    before = len(fake_server.chat_requests)
    assert run(["--base-url", fake_server.url, "-m", "m", "hi"]).returncode == 6
    assert len(fake_server.chat_requests) - before == 2  # retries = 1

    fake_server.reset()
    fake_server.enqueue(Scenario(content=["a", "b"], stall_after=1, stall_seconds=5))
    result = run(["--base-url", fake_server.url, "-m", "m", "hi"])
    assert result.returncode == 8 and b"idle timeout" in result.stderr  # timeout = 0.5


def test_retries_flag_sets_the_number_of_attempts(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario.error(503, retry_after=0, repeat=5))
    assert run(["--base-url", fake_server.url, "-m", "m", "--retries", "3", "hi"]).returncode == 7
    assert len(fake_server.chat_requests) == 4
    fake_server.reset()
    fake_server.enqueue(Scenario.error(503, retry_after=0), Scenario(content=["ok"]))
    result = run(["--base-url", fake_server.url, "-m", "m", "--retries", "1", "hi"])
    assert (result.returncode, result.stdout) == (0, b"ok")


def test_options_reach_the_request(fake_server: FakeOpenRouter, tmp_path: Path) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    (tmp_path / "tools.json").write_text(json.dumps(tools))
    run(
        [
            "--base-url",
            fake_server.url,
            "-m",
            "m",
            "-o",
            "top_p=0.5",
            "-o",
            "user=alice",
            "-o",
            'provider.order=["a","b"]',
            "-o",
            f"tools=@{tmp_path / 'tools.json'}",
            "-o",
            'stop=["END"]',
            "hi",
        ]
    )
    body = fake_server.chat_requests[-1].body
    assert body["top_p"] == 0.5 and body["user"] == "alice"
    assert body["provider"] == {"order": ["a", "b"]}
    assert body["tools"] == tools and body["stop"] == ["END"]


def test_broken_config_is_a_config_error(fake_server: FakeOpenRouter, rill_env: Path) -> None:
    _config(rill_env, "model = [unclosed\n")
    result = run(["--base-url", fake_server.url, "hi"])
    assert result.returncode == 3
    assert b"config.toml" in result.stderr and b"Traceback" not in result.stderr
    _config(rill_env, "timeout = true\n")
    assert run(["--base-url", fake_server.url, "hi"]).returncode == 3
    assert fake_server.chat_requests == []


def test_xdg_locations_without_rill_home(fake_server: FakeOpenRouter, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RILL_HOME"}
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "cfg"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )
    assert run(["--base-url", fake_server.url, "-m", "fake/echo", "hi"], env=env).returncode == 0
    assert list((tmp_path / "data" / "rill" / "history" / "chats").iterdir())
    assert run(["models", "--base-url", fake_server.url], env=env).returncode == 0
    assert (tmp_path / "cache" / "rill" / "models.json").exists()
    assert run(["config", "path"], env=env).stdout.decode().strip() == str(
        tmp_path / "cfg" / "rill" / "config.toml"
    )
    assert not (tmp_path / "home").exists()


def test_raw_format_still_records_history(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario(content=["raw ", "answer"]))
    result = run(["--base-url", fake_server.url, "-m", "m", "-f", "raw", "hi"])
    assert result.stdout.startswith(b": OPENROUTER PROCESSING\n\ndata: {")
    assert result.stdout.endswith(b"data: [DONE]\n\n")
    exchange = _show_last()["exchanges"][-1]
    assert exchange["answer"]["content"] == "raw answer"
    assert exchange["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("fmt", "marker"),
    [
        ("sse", b'"content":"{}"'),
        ("jsonl", b'"content":"{}"'),
        ("openai", b'"content":"{}"'),
        ("raw", b'"content":"{}"'),
    ],
)
def test_every_format_streams_each_delta_as_it_arrives(
    fake_server: FakeOpenRouter, fmt: str, marker: bytes
) -> None:
    pieces = ["p0", "p1", "p2"]
    gate = Gate(timeout=10)
    fake_server.enqueue(Scenario(content=pieces, gate=gate))
    proc = spawn(["--base-url", fake_server.url, "-m", "m", "-f", fmt, "hi"])
    seen = b""
    for i, piece in enumerate(pieces):
        seen += read_until(proc, marker.replace(b"{}", piece.encode()))
        if i + 1 < len(pieces):
            # The next piece's event, not its bare text (a random id may contain "p2").
            assert marker.replace(b"{}", pieces[i + 1].encode()) not in seen
            gate.release(i + 1)
    code, _rest, err = finish(proc)
    assert code == 0, err
    assert not gate.timed_out


def test_chat_id_in_events_matches_history(fake_server: FakeOpenRouter) -> None:
    result = run(["--base-url", fake_server.url, "-m", "fake/echo", "-f", "jsonl", "hi"])
    events = [json.loads(line) for line in result.stdout.splitlines()]
    chat_id = _show_last()["id"]
    assert events[0]["chat_id"] == chat_id and events[-1]["chat_id"] == chat_id
    result = run(["--base-url", fake_server.url, "-m", "fake/echo", "-f", "json", "-c", "again"])
    assert json.loads(result.stdout)["chat_id"] == chat_id


@pytest.mark.parametrize(
    ("fmt", "sig", "code"),
    [("sse", signal.SIGINT, 130), ("openai", signal.SIGINT, 130), ("json", signal.SIGTERM, 143)],
)
def test_cancelling_ends_every_format_with_a_cancelled_done(
    fake_server: FakeOpenRouter, fmt: str, sig: signal.Signals, code: int
) -> None:
    gate = Gate(timeout=15)
    fake_server.enqueue(Scenario(content=["one ", "two "], gate=gate))
    proc = spawn(["--base-url", fake_server.url, "-m", "m", "-f", fmt, "hi"])
    out = b""
    if fmt == "json":  # json prints only at the end: wait until rill has journaled "one "
        deadline = time.monotonic() + 10
        while _partial_answer() != "one ":
            assert time.monotonic() < deadline, "the first piece never reached rill"
    else:
        out = read_until(proc, b"one ")
    proc.send_signal(sig)
    rc, rest, err = finish(proc)
    assert rc == code and b"Traceback" not in err
    out += rest
    if fmt == "sse":
        last = out.decode().strip().split("\n\n")[-1]
        assert last.startswith("event: done\n")
        assert json.loads(last.split("data: ", 1)[1])["finish_reason"] == "cancelled"
    elif fmt == "openai":
        lines = [x for x in out.decode().split("\n\n") if x]
        assert lines[-1] == "data: [DONE]"
        finishes = [
            json.loads(x[6:])["choices"][0]["finish_reason"]
            for x in lines[:-1]
            if json.loads(x[6:]).get("choices")
        ]
        assert finishes[-1] == "cancelled"
    else:
        done = json.loads(out)
        assert done["finish_reason"] == "cancelled"
        assert done["message"]["content"] == "one "


def test_prompt_is_on_disk_before_the_answer_starts(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario(content=["late"], delay_headers=3))
    proc = spawn(["--base-url", fake_server.url, "-m", "m", "remember this prompt"])
    assert fake_server.wait_requests(1, timeout=10)
    chat = _show_last()  # the server has not answered yet
    assert proc.poll() is None
    exchange = chat["exchanges"][-1]
    assert exchange["messages"][-1]["content"] == "remember this prompt"
    assert exchange.get("finish_reason") is None
    proc.send_signal(signal.SIGTERM)
    rc, _out, _err = finish(proc)
    assert rc == 143
    assert _show_last()["exchanges"][-1]["finish_reason"] == "cancelled"


def test_color_flag_is_validated_and_never_touches_a_pipe(fake_server: FakeOpenRouter) -> None:
    assert run(["--base-url", fake_server.url, "--color", "sometimes", "hi"]).returncode == 2
    for choice in ("always", "never", "auto"):
        fake_server.enqueue(Scenario(content=["# Title\n", "**bold**"]))
        result = run(["--base-url", fake_server.url, "-m", "m", "--color", choice, "hi"])
        assert result.stdout == b"# Title\n**bold**"


def test_readme_main_command_streams_a_demo_offline(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENROUTER_API_KEY"}
    env["RILL_HOME"] = str(tmp_path / "demo-home")
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo"), "hello demo"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert b"demo answer" in result.stdout
    assert b"fake server" in result.stderr
    assert time.monotonic() - started < 300
