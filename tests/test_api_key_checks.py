"""An API key that no HTTP header can carry (non-ASCII, line breaks, control characters) is a
configuration error (exit 3) wherever it comes from: OPENROUTER_API_KEY, ``api_key`` or the
output of ``api_key_cmd``. Every command says so in one line, before any request, and the line
never shows the key."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from rill.fake import FakeOpenRouter
from tests.e2e import run

#: Keys that cannot be sent, each with a piece that must never be shown.
BAD_KEYS = {
    "cyrillic": ("sk-or-v1-секрет0123456789", "секрет"),
    "typographic quote": ("sk-or-v1-0123456789abcdef\u201d", "0123456789abcdef"),
    "no-break space": ("sk-or-v1-0123\u00a0456789abcdef", "456789abcdef"),
    "CRLF and a header": ("sk-or-v1-0123456789\r\nX-Injected: yes", "X-Injected"),
    "escape character": ("sk-or-v1-0123456789\x1b[31mred", "0123456789"),
    "DEL": ("sk-or-v1-01234\x7f56789abcdef", "56789abcdef"),
    "tab": ("sk-or-v1-01234\t56789abcdef", "56789abcdef"),
}


def one_line(result: subprocess.CompletedProcess[bytes]) -> str:
    lines = result.stderr.decode("utf-8", "replace").splitlines()
    assert len(lines) == 1 and lines[0].startswith("rill: "), result.stderr
    return lines[0]


def with_key(key: str) -> dict[str, str]:
    return dict(os.environ, OPENROUTER_API_KEY=key)


def commands(url: str) -> dict[str, list[str]]:
    return {
        "prompt": ["--base-url", url, "-m", "fake/echo", "hi"],
        "dry-run": ["--base-url", url, "-m", "fake/echo", "--dry-run", "hi"],
        "batch": ["batch", "--base-url", url, "-m", "fake/echo"],
        "models": ["models", "--base-url", url, "--refresh"],
        "key": ["key", "--base-url", url],
    }


@pytest.mark.parametrize(("key", "secret"), BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_a_key_from_the_environment_that_cannot_be_sent_is_a_config_error(
    fake_server: FakeOpenRouter, key: str, secret: str
) -> None:
    result = run(
        ["--base-url", fake_server.url, "-m", "fake/echo", "hi"], env=with_key(key), input=b""
    )
    assert (result.returncode, result.stdout) == (3, b"")
    line = one_line(result)
    assert "OPENROUTER_API_KEY" in line
    assert secret not in line and "sk-or-v1" not in line
    assert fake_server.requests == []


@pytest.mark.parametrize("command", ["dry-run", "batch", "models", "key"])
def test_every_command_refuses_it_before_any_request(
    fake_server: FakeOpenRouter, command: str
) -> None:
    key, secret = BAD_KEYS["cyrillic"]
    args = commands(fake_server.url)[command]
    result = run(args, env=with_key(key), input=b'{"id": 1, "prompt": "hi"}\n')
    assert (result.returncode, result.stdout) == (3, b""), result.stderr
    line = one_line(result)
    assert "non-ASCII" in line and secret not in line
    assert fake_server.requests == []


def test_a_key_in_config_toml_that_cannot_be_sent_is_a_config_error(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    rill_env.mkdir(parents=True)
    config = rill_env / "config.toml"
    config.write_text('api_key = "sk-or-v1-0123456789\\u00e9cafe"\n', encoding="utf-8")
    config.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k != "OPENROUTER_API_KEY"}
    result = run(["--base-url", fake_server.url, "-m", "fake/echo", "hi"], env=env)
    assert (result.returncode, result.stdout) == (3, b"")
    line = one_line(result)
    assert "config.toml" in line and "non-ASCII" in line
    assert "cafe" not in line and "0123456789" not in line
    assert fake_server.requests == []


def write_key_command(home: Path, output: bytes) -> None:
    """``api_key_cmd`` in config.toml, printing ``output``."""
    home.mkdir(parents=True, exist_ok=True)
    printed = home / "key.bin"
    printed.write_bytes(output)
    command = f"cat {shlex.quote(str(printed))}"
    (home / "config.toml").write_text(f"api_key_cmd = {command!r}\n".replace("'", '"'))


@pytest.mark.parametrize(
    "output",
    [b"sk-or-v1-first\nsk-or-v1-second\n", "sk-or-v1-\u00fcber0123\n".encode(), b"sk\x07bell\n"],
    ids=["two lines", "non-ASCII", "BEL"],
)
def test_api_key_cmd_output_that_cannot_be_sent_is_a_config_error(
    fake_server: FakeOpenRouter, rill_env: Path, output: bytes
) -> None:
    write_key_command(rill_env, output)
    env = {k: v for k, v in os.environ.items() if k != "OPENROUTER_API_KEY"}
    result = run(["--base-url", fake_server.url, "-m", "fake/echo", "hi"], env=env)
    assert (result.returncode, result.stdout) == (3, b"")
    line = one_line(result)
    assert "api_key_cmd" in line
    assert "second" not in line and "ber0123" not in line and "bell" not in line
    assert fake_server.requests == []


def test_a_clean_key_with_a_trailing_newline_still_works(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    write_key_command(rill_env, fake_server.api_key.encode() + b"\r\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENROUTER_API_KEY"}
    result = run(["--base-url", fake_server.url, "-m", "fake/echo", "hi"], env=env)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"hi", b"")
    auth = fake_server.chat_requests[0].headers.get("authorization")
    assert auth == f"Bearer {fake_server.api_key}"
