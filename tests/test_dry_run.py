"""``--dry-run``: print the request exactly as it would be sent, key redacted, and send nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from rill.cli import app
from rill.stream.protocol import OPENROUTER_ONLY_FIELDS
from tests.e2e import run

KEY = "sk-or-v1-0123456789abcdef0123456789abcdef"
OPENROUTER = "https://openrouter.ai/api/v1"
ATTRIBUTION = ("HTTP-Referer", "X-OpenRouter-Title", "X-Title")


def rill(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, ["--dry-run", *args], input=input)


def parse(stdout: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(request line, headers, body) of a dry-run print-out."""
    head, blank, body = stdout.partition("\n\n")
    assert blank, stdout
    line, *header_lines = head.split("\n")
    headers = dict(h.split(": ", 1) for h in header_lines)
    return line, headers, json.loads(body)


@pytest.fixture(autouse=True)
def long_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)


def test_openrouter_request_is_exact_and_the_key_redacted() -> None:
    result = rill("hello", "there")
    assert (result.exit_code, result.stderr) == (0, "")
    assert KEY not in result.stdout
    line, headers, body = parse(result.stdout)
    assert line == f"POST {OPENROUTER}/chat/completions"
    assert headers["Authorization"] == "Bearer sk-or-…REDACTED"
    assert headers["Content-Type"] == "application/json"
    assert headers["Accept"] == "text/event-stream"
    for name in ATTRIBUTION:
        assert headers[name]
    assert body == {
        "model": "openrouter/auto",
        "messages": [{"role": "user", "content": "hello there"}],
        "stream": True,
        "max_tokens": 8192,
    }
    assert result.stdout.endswith("}\n")


def test_openrouter_gets_its_own_fields() -> None:
    result = rill(
        "-m", "a/b", "-s", "Be brief.", "--temperature", "0.3", "--max-tokens", "50",
        "--reasoning-effort", "high", "-o", 'provider.order=["x"]', "-o", 'usage={"include":true}',
        "hi",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    _, _, body = parse(result.stdout)
    assert body == {
        "model": "a/b",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
        "stream": True,
        "max_tokens": 50,
        "temperature": 0.3,
        "reasoning": {"effort": "high"},
        "provider": {"order": ["x"]},
        "usage": {"include": True},
    }


def test_other_servers_get_no_openrouter_only_fields(fake_server: Any) -> None:
    result = rill("--base-url", fake_server.url, "-m", "local", "--reasoning-effort", "low", "hi")
    assert result.exit_code == 0, result.output
    line, headers, body = parse(result.stdout)
    assert line == f"POST {fake_server.url}/chat/completions"
    assert body == {
        "model": "local",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "reasoning_effort": "low",
        "stream_options": {"include_usage": True},
    }
    assert not OPENROUTER_ONLY_FIELDS & set(body)
    for name in ATTRIBUTION:
        assert name not in headers
    assert headers["Authorization"] == "Bearer sk-or-…REDACTED"


def test_another_server_without_a_key_gets_no_authorization(
    fake_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY")
    result = rill("--base-url", fake_server.openai_url, "-m", "local", "hi")
    assert result.exit_code == 0, result.output
    _, headers, body = parse(result.stdout)
    assert "Authorization" not in headers
    assert "model" in body and "max_tokens" not in body


def test_no_stream_asks_for_json(fake_server: Any) -> None:
    result = rill("--base-url", fake_server.url, "-m", "m", "--no-stream", "hi")
    _, headers, body = parse(result.stdout)
    assert headers["Accept"] == "application/json"
    assert body["stream"] is False and "stream_options" not in body


def test_stdin_follows_the_prompt_words_after_a_blank_line() -> None:
    _, _, body = parse(rill("explain", input="line 1\nline 2\n").stdout)
    assert body["messages"] == [{"role": "user", "content": "explain\n\nline 1\nline 2\n"}]


def test_nothing_is_sent_and_nothing_recorded(fake_server: Any, rill_env: Path) -> None:
    result = rill("--base-url", fake_server.url, "-m", "m", "hi")
    assert result.exit_code == 0
    assert fake_server.requests == []
    assert not (rill_env / "history").exists()


def test_the_installed_command_exits_0_without_contacting_the_server(
    fake_server: Any, rill_env: Path
) -> None:
    done = run(["--dry-run", "--base-url", fake_server.url, "-m", "m", "hi"], env=os.environ)
    assert (done.returncode, done.stderr) == (0, b"")
    assert KEY.encode() not in done.stdout
    assert parse(done.stdout.decode())[2]["messages"] == [{"role": "user", "content": "hi"}]
    assert fake_server.requests == []
    assert not (rill_env / "history").exists()


def test_an_empty_prompt_is_still_a_usage_error() -> None:
    done = run(["--dry-run"], env=os.environ)
    assert done.returncode == 2
    assert done.stdout == b""


def test_openrouter_needs_no_key_for_a_dry_run(rill_env: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENROUTER_API_KEY"}
    done = run(["--dry-run", "hi"], env=env)
    assert done.returncode == 0, done.stderr
    line, headers, body = parse(done.stdout.decode())
    assert line == f"POST {OPENROUTER}/chat/completions"
    assert "Authorization" not in headers
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    # One note says what the real run will need; nothing else on stderr.
    assert done.stderr.decode().splitlines() == [
        "rill: no API key: a real run needs OPENROUTER_API_KEY (or api_key_cmd in config.toml)"
    ]
    assert run(["hi"], env=env).returncode == 3  # the real run still refuses
    assert not (rill_env / "history").exists()


def test_a_dry_run_without_a_key_still_refuses_plain_http_to_another_host() -> None:
    # The configuration is checked as the run with a key would be: that run would send the key
    # in the clear, so it is refused here too.
    env = {k: v for k, v in os.environ.items() if k != "OPENROUTER_API_KEY"}
    done = run(["--dry-run", "--base-url", "http://openrouter.ai/api/v1", "hi"], env=env)
    assert done.returncode == 3
    assert done.stdout == b""
    assert b"plain http" in done.stderr
