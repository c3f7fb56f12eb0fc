"""A base URL may carry ``user:password@``: rill never prints that part — not in an error line,
``config show``/``get``, ``history show``/``export`` or a dry run."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from rill.fake import FakeOpenRouter, Scenario
from rill.urls import display_url, display_urls
from tests.e2e import run

SECRET = "pw-s3cret"
USERINFO = f"alice:{SECRET}@"


def with_userinfo(url: str) -> str:
    return url.replace("://", f"://{USERINFO}", 1)


def assert_hidden(result: subprocess.CompletedProcess[bytes]) -> None:
    both = result.stdout + result.stderr
    assert SECRET.encode() not in both and b"alice" not in both, both
    assert b"Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p@host/v1", "https://host/v1"),
        ("http://a@b@host:80/x?y=@z", "http://host:80/x?y=@z"),
        ("http://u:p@[::1]:8080/v1", "http://[::1]:8080/v1"),
        ("u:p@host/v1", "host/v1"),
        ("https://host/v1/@org", "https://host/v1/@org"),  # an @ in the path is no userinfo
        ("http://[::1/v1", "http://[::1/v1"),  # malformed, still no exception
        ("https://openrouter.ai/api/v1", "https://openrouter.ai/api/v1"),
    ],
)
def test_display_url_drops_only_the_userinfo(url: str, shown: str) -> None:
    assert display_url(url) == shown


def test_display_urls_cleans_every_url_in_a_message() -> None:
    text = "base URL 'http://u:p@h:abc/v1' is not valid; see https://x@y@z/p, mailto:a@b"
    assert (
        display_urls(text) == "base URL 'http://h:abc/v1' is not valid; see https://z/p, mailto:a@b"
    )


@pytest.mark.parametrize(
    "url",
    [
        f"http://{USERINFO}127.0.0.1:abc/v1",
        f"ftp://{USERINFO}example.com/v1",
        f"http://{USERINFO}[::1/v1",
    ],
    ids=["bad port", "not http", "cannot be split"],
)
def test_a_malformed_base_url_is_reported_without_its_credentials(
    fake_server: FakeOpenRouter, url: str
) -> None:
    for args in (
        ["--base-url", url, "hi"],
        ["models", "--base-url", url],
        ["key", "--base-url", url],
    ):
        result = run(args)
        assert result.returncode == 3, (args, result.stderr)
        assert result.stderr.startswith(b"rill: base URL")
        assert_hidden(result)


def test_a_malformed_base_url_from_config_or_environment_too(rill_env: Path) -> None:
    url = f"http://{USERINFO}127.0.0.1:abc/v1"
    rill_env.mkdir(parents=True)
    (rill_env / "config.toml").write_text(f'base_url = "{url}"\n', encoding="utf-8")
    result = run(["hi"])
    assert result.returncode == 3
    assert_hidden(result)
    result = run(["hi"], env=dict(os.environ, RILL_BASE_URL=url.replace("abc", "xyz")))
    assert result.returncode == 3
    assert_hidden(result)


def test_network_errors_name_the_host_only() -> None:
    url = f"http://{USERINFO}127.0.0.1:9/v1"  # nothing listens on port 9
    result = run(["--base-url", url, "--retries", "0", "-f", "json", "-m", "m", "hi"])
    assert result.returncode == 8
    assert "127.0.0.1" in json.loads(result.stdout)["message"]
    assert_hidden(result)


def test_a_routing_flag_for_another_server_is_refused_without_the_credentials(
    fake_server: FakeOpenRouter,
) -> None:
    result = run(["--base-url", with_userinfo(fake_server.url), "--only", "x", "-m", "m", "hi"])
    assert result.returncode == 2
    assert b"is not OpenRouter" in result.stderr
    assert_hidden(result)


def test_config_show_and_get_hide_the_credentials(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    url = with_userinfo(fake_server.url)
    assert run(["config", "set", "base_url", url]).returncode == 0
    assert SECRET in (rill_env / "config.toml").read_text(encoding="utf-8")  # kept, only hidden
    for args in (["config", "show"], ["config", "get", "base_url"]):
        result = run(args)
        assert result.returncode == 0
        assert fake_server.url.encode() in result.stdout
        assert_hidden(result)
    env = dict(os.environ, RILL_BASE_URL=url)
    result = run(["config", "get", "--show-origin", "base_url"], env=env)
    assert result.stdout.decode() == f"environment RILL_BASE_URL\t{fake_server.url}\n"
    assert_hidden(result)


def test_history_shows_no_credentials_even_from_a_file_that_holds_some(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    fake_server.require_auth = False
    url = with_userinfo(fake_server.url)
    result = run(["--base-url", url, "-m", "fake/echo", "hello"])
    assert result.returncode == 0, result.stderr
    assert_hidden(result)
    # rill stores none; a file written elsewhere, or edited by hand, may.
    (chat,) = (rill_env / "history" / "chats").iterdir()
    assert SECRET not in chat.read_text(encoding="utf-8")
    data = json.loads(chat.read_text(encoding="utf-8"))
    data["exchanges"][0]["base_url"] = url
    chat.write_text(json.dumps(data), encoding="utf-8")
    for args in (["history", "show"], ["history", "show", "--json"], ["history", "export"]):
        result = run(args)
        assert result.returncode == 0, result.stderr
        assert fake_server.url.encode() in result.stdout
        assert_hidden(result)


def test_dry_run_prints_the_url_without_credentials(fake_server: FakeOpenRouter) -> None:
    result = run(["--base-url", with_userinfo(fake_server.url), "-m", "m", "--dry-run", "hi"])
    assert result.returncode == 0
    assert result.stdout.startswith(f"POST {fake_server.url}/chat/completions\n".encode())
    assert_hidden(result)


def test_an_upstream_error_quoting_the_url_is_shown_without_credentials(
    fake_server: FakeOpenRouter,
) -> None:
    fake_server.require_auth = False
    url = with_userinfo(fake_server.url)
    fake_server.enqueue(Scenario.error(502, message=f"cannot reach {url}/chat/completions"))
    result = run(["--base-url", url, "--retries", "0", "-m", "m", "hi"])
    assert result.returncode == 7
    assert b"cannot reach http://127.0.0.1" in result.stderr
    assert_hidden(result)


def test_the_models_cache_keeps_no_credentials(fake_server: FakeOpenRouter, rill_env: Path) -> None:
    fake_server.require_auth = False
    url = with_userinfo(fake_server.url)
    result = run(["models", "--base-url", url, "--json"])
    assert result.returncode == 0, result.stderr
    assert_hidden(result)
    (cache,) = (rill_env / "cache").iterdir()
    assert SECRET not in cache.read_text(encoding="utf-8")
    again = run(["models", "--base-url", url, "--json"])  # served from that cache
    assert (again.returncode, again.stdout) == (0, result.stdout)
    assert len(fake_server.requests) == 1


def test_with_a_key_the_key_authenticates_not_the_urls_userinfo(
    fake_server: FakeOpenRouter,
) -> None:
    fake_server.enqueue(Scenario(content=["fine"]))
    result = run(["--base-url", with_userinfo(fake_server.url), "-m", "m", "hi"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"fine"
    (request,) = fake_server.chat_requests
    assert request.headers["authorization"] == f"Bearer {fake_server.api_key}"
    assert_hidden(result)
