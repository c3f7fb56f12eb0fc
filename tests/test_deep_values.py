"""Values nested too deep to handle: ``-o``, a template's options, config.toml and ``config
set`` refuse them with one line (exit 2 from the command line, 3 from config.toml) instead of
crashing somewhere later, where JSON or TOML code recurses."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from rill.fake import FakeOpenRouter
from tests.e2e import run


def brackets(depth: int) -> str:
    return "[" * depth + "]" * depth


def one_line(result: subprocess.CompletedProcess[bytes]) -> str:
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rill: "), result.stderr[:300]
    return lines[0]


def ask(server: FakeOpenRouter, *args: str) -> subprocess.CompletedProcess[bytes]:
    return run(["--base-url", server.url, "-m", "fake/echo", *args])


@pytest.mark.parametrize(
    ("depth", "words"), [(65, "nested more than 64 deep"), (600, "nested more than 64 deep")]
)
def test_a_deep_request_option_is_a_usage_error(
    fake_server: FakeOpenRouter, depth: int, words: str
) -> None:
    result = ask(fake_server, "-o", f"x={brackets(depth)}", "hi")
    assert (result.returncode, result.stdout) == (2, b"")
    assert words in one_line(result)
    assert fake_server.chat_requests == []


def test_one_too_deep_for_json_to_read_is_a_usage_error_too(
    fake_server: FakeOpenRouter, tmp_path: Path
) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text(brackets(100_000), encoding="utf-8")
    for value in (brackets(20_000), f"@{deep}"):  # an argument is at most 128 KiB
        result = ask(fake_server, "-o", f"x={value}", "hi")
        assert (result.returncode, result.stdout) == (2, b"")
        assert "nested too deeply to read" in one_line(result)
    assert fake_server.chat_requests == []


def test_sixty_four_levels_still_go_through(fake_server: FakeOpenRouter) -> None:
    result = ask(fake_server, "-o", f"x={brackets(64)}", "hi")
    assert (result.returncode, result.stdout) == (0, b"hi"), result.stderr
    assert json.dumps(fake_server.chat_requests[0].body["x"]) == brackets(64)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (f"x = {brackets(64)}", "nested more than 64 deep"),
        (f"x = {brackets(5000)}", "nested too deeply to read"),
    ],
)
def test_a_template_with_deep_options_is_a_usage_error(
    fake_server: FakeOpenRouter, rill_env: Path, options: str, words: str
) -> None:
    folder = rill_env / "templates"
    folder.mkdir(parents=True)
    (folder / "deep.toml").write_text(f"[options]\n{options}\n", encoding="utf-8")
    result = ask(fake_server, "-t", "deep", "hi")
    assert (result.returncode, result.stdout) == (2, b"")
    assert words in one_line(result)
    assert fake_server.chat_requests == []


@pytest.mark.parametrize(
    ("table", "words"),
    [
        (f"[provider]\norder = {brackets(70)}\n", "provider is nested more than 64 deep"),
        (f"[provider]\norder = {brackets(5000)}\n", "nested too deeply to read"),
    ],
)
def test_a_config_file_with_deep_values_is_a_config_error(
    fake_server: FakeOpenRouter, rill_env: Path, table: str, words: str
) -> None:
    rill_env.mkdir(parents=True)
    (rill_env / "config.toml").write_text(table, encoding="utf-8")
    for args in (["hi"], ["config", "show"], ["config", "get", "retries"]):
        result = ask(fake_server, *args) if args == ["hi"] else run(args)
        assert (result.returncode, result.stdout) == (3, b""), args
        assert words in one_line(result), args
    assert fake_server.chat_requests == []


@pytest.mark.parametrize("depth", [70, 5000])
def test_config_set_refuses_a_deep_value(rill_env: Path, depth: int) -> None:
    result = run(["config", "set", "provider", f"{{ order = {brackets(depth)} }}"])
    assert (result.returncode, result.stdout) == (2, b"")
    assert "nested" in one_line(result)
    assert not (rill_env / "config.toml").exists()


def test_config_set_leaves_a_file_too_deep_to_read_alone(rill_env: Path) -> None:
    rill_env.mkdir(parents=True)
    config = rill_env / "config.toml"
    config.write_text(f"order = {brackets(5000)}\n", encoding="utf-8")
    result = run(["config", "set", "retries", "1"])
    assert (result.returncode, result.stdout) == (3, b"")
    assert "nested too deeply to read" in one_line(result)
    assert config.read_text(encoding="utf-8") == f"order = {brackets(5000)}\n"
