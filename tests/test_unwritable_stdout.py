"""A stdout that cannot be written (a full disk; ``/dev/full`` here) is one ``rill:`` line and
exit 74 for every command, never an internal error; a closed one stays a quiet exit 141."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rill.fake import FakeOpenRouter
from tests.e2e import RILL, closed_stdout, run

COMMANDS = [
    ["history", "list"],
    ["history", "export"],
    ["history", "show"],
    ["config", "path"],
    ["config", "show"],
    ["config", "get", "retries"],
    ["templates", "path"],
    ["completions", "bash"],
    ["fake-server", "--list-scenarios"],
    ["--version"],
    ["--help"],
    ["history", "--help"],
    ["models", "--help"],
]


def to_full_disk(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    with open("/dev/full", "wb") as full:
        return subprocess.run(
            [*RILL, *args],
            stdin=subprocess.DEVNULL,
            stdout=full,
            stderr=subprocess.PIPE,
            timeout=30,
            check=False,
        )


@pytest.fixture
def one_chat(fake_server: FakeOpenRouter, rill_env: Path) -> None:
    """A chat in history and a config file, so every command has something to print."""
    assert run(["--base-url", fake_server.url, "-m", "fake/echo", "hello"]).returncode == 0
    assert run(["config", "set", "model", "a/b"]).returncode == 0


@pytest.mark.usefixtures("one_chat")
@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_full_disk_is_one_line_and_exit_74(args: list[str]) -> None:
    result = to_full_disk(args)
    assert result.returncode == 74, result.stderr
    assert result.stderr == b"rill: cannot write the output: No space left on device\n"


def test_rill_models_too(fake_server: FakeOpenRouter) -> None:
    result = to_full_disk(["models", "--base-url", fake_server.url])
    assert result.returncode == 74, result.stderr
    assert result.stderr.startswith(b"rill: cannot write the output")


@pytest.mark.usefixtures("one_chat")
@pytest.mark.parametrize("args", [["history", "export"], ["config", "show"], ["--version"]])
def test_a_closed_stdout_is_still_a_quiet_141(args: list[str]) -> None:
    result = closed_stdout(*args)
    assert (result.returncode, result.stderr) == (141, b"")


def test_json_format_to_a_full_disk_is_exit_74(fake_server: FakeOpenRouter) -> None:
    result = to_full_disk(["--base-url", fake_server.url, "-m", "fake/echo", "-f", "json", "hi"])
    assert result.returncode == 74
    assert result.stderr.startswith(b"rill: ")


def test_batch_to_a_full_disk_is_exit_74(fake_server: FakeOpenRouter) -> None:
    with open("/dev/full", "wb") as full:
        result = subprocess.run(
            [*RILL, "batch", "--base-url", fake_server.url, "-m", "fake/echo"],
            input=b'{"id": 1, "prompt": "a"}\n',
            stdout=full,
            stderr=subprocess.PIPE,
            timeout=30,
            check=False,
        )
    assert result.returncode == 74, result.stderr
