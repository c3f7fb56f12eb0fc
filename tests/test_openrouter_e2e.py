"""OpenRouter's own features end to end: the installed ``rill`` against the fake server.

The fake listens on 127.0.0.1, so ``RILL_OPENROUTER=1`` tells rill that this address is
OpenRouter (as it would for a gateway in front of it); without it every routing flag is refused.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from rill.fake import Scenario
from tests.e2e import run

EVERY_FLAG = [
    ["--provider", "openai", "--provider", "azure"],
    ["--only", "openai"],
    ["--ignore", "deepinfra"],
    ["--sort", "throughput"],
    ["--no-fallbacks"],
    ["--zdr"],
    ["--deny-data-collection"],
    ["--fallback", "openai/gpt-4o-mini"],
    ["--online"],
]
PROVIDER_OF_FLAG = {
    "--provider": {"order": ["openai", "azure"]},
    "--only": {"only": ["openai"]},
    "--ignore": {"ignore": ["deepinfra"]},
    "--sort": {"sort": "throughput"},
    "--no-fallbacks": {"allow_fallbacks": False},
    "--zdr": {"zdr": True},
    "--deny-data-collection": {"data_collection": "deny"},
}


def openrouter_env(server: Any, **extra: str) -> dict[str, str]:
    return {**os.environ, "RILL_BASE_URL": server.url, "RILL_OPENROUTER": "1", **extra}


def dry_body(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The JSON body ``--dry-run`` prints for the default (OpenRouter) base URL."""
    done = run(["--dry-run", *args], env=env)
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    return dict(json.loads(text[text.index("\n{") :]))


@pytest.mark.parametrize("flag", EVERY_FLAG, ids=lambda f: f[0])
def test_dry_run_shows_each_flag_in_the_body(flag: list[str]) -> None:
    body = dry_body("-m", "a/one", *flag, "hi")
    if flag[0] in PROVIDER_OF_FLAG:
        assert body["provider"] == PROVIDER_OF_FLAG[flag[0]]
        assert body["model"] == "a/one"
    elif flag[0] == "--fallback":
        assert body["models"] == ["a/one", "openai/gpt-4o-mini"]
    else:
        assert body["model"] == "a/one:online"
    without = dry_body("-m", "a/one", "hi")
    assert "provider" not in without and "models" not in without


def test_config_table_is_the_default_and_a_flag_wins(rill_env: Any) -> None:
    rill_env.mkdir(parents=True, exist_ok=True)
    (rill_env / "config.toml").write_text('[provider]\nsort = "price"\nonly = ["openai"]\n')
    assert dry_body("hi")["provider"] == {"sort": "price", "only": ["openai"]}
    assert dry_body("--sort", "latency", "hi")["provider"] == {
        "sort": "latency",
        "only": ["openai"],
    }


def test_a_bad_config_table_exits_3(rill_env: Any) -> None:
    rill_env.mkdir(parents=True, exist_ok=True)
    (rill_env / "config.toml").write_text('[provider]\nsort = "cheapest"\n')
    done = run(["--dry-run", "hi"])
    assert done.returncode == 3
    assert done.stderr.decode().startswith("rill: config.toml [provider]: sort must be one of")


@pytest.mark.parametrize("flag", EVERY_FLAG, ids=lambda f: f[0])
def test_each_flag_is_refused_for_another_server(fake_server: Any, flag: list[str]) -> None:
    done = run(["--base-url", fake_server.url, *flag, "hi"])
    assert done.returncode == 2
    err = done.stderr.decode()
    assert err.startswith(f"rill: {flag[0]} is OpenRouter-only")
    assert err.count("\n") == 1
    assert fake_server.chat_requests == []  # nothing was sent


def test_config_table_is_not_sent_to_another_server(fake_server: Any, rill_env: Any) -> None:
    rill_env.mkdir(parents=True, exist_ok=True)
    (rill_env / "config.toml").write_text('[provider]\nsort = "price"\n')
    done = run(["--base-url", fake_server.url, "hi"])
    assert done.returncode == 0, done.stderr
    assert "provider" not in fake_server.chat_requests[0].body


def test_the_fake_receives_every_routing_field(fake_server: Any) -> None:
    flags = [arg for flag in EVERY_FLAG for arg in flag]
    done = run(["-m", "openai/gpt-4o", *flags, "hi"], env=openrouter_env(fake_server))
    assert done.returncode == 0, done.stderr
    body = fake_server.chat_requests[0].body
    assert body["provider"] == {k: v for part in PROVIDER_OF_FLAG.values() for k, v in part.items()}
    assert body["model"] == "openai/gpt-4o:online"
    assert body["models"] == ["openai/gpt-4o:online", "openai/gpt-4o-mini:online"]


def test_the_served_fallback_is_recorded_everywhere(fake_server: Any) -> None:
    # The fake's fake/down… models are unavailable: OpenRouter's fallback serves instead.
    env = openrouter_env(fake_server)
    done = run(
        ["-m", "fake/down-sonnet", "--fallback", "openai/gpt-4o-mini", "-f", "json"]
        + ["--stats", "hi"],
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert fake_server.chat_requests[0].body["models"] == [
        "fake/down-sonnet",
        "openai/gpt-4o-mini",
    ]
    assert json.loads(done.stdout)["model"] == "openai/gpt-4o-mini"  # the done event
    assert "openai/gpt-4o-mini" in done.stderr.decode()  # --stats
    chat = json.loads(run(["history", "show", "last", "--json"], env=env).stdout)
    exchange = chat["exchanges"][-1]
    assert exchange["requested_model"] == "fake/down-sonnet"
    assert exchange["served_model"] == "openai/gpt-4o-mini"
    usage = json.loads(run(["usage", "--json"], env=env).stdout)
    assert [row["key"] for row in usage["rows"]] == ["openai/gpt-4o-mini"]


def test_without_a_fallback_a_down_model_fails(fake_server: Any) -> None:
    done = run(["-m", "fake/down", "--retries", "0", "hi"], env=openrouter_env(fake_server))
    assert done.returncode == 7
    assert "No endpoints found" in done.stderr.decode()


def test_the_provider_chosen_by_the_flags_serves(fake_server: Any) -> None:
    args = ["-m", "openai/gpt-4o", "--provider", "azure", "--provider", "openai"]
    done = run([*args, "--ignore", "azure", "-f", "json", "hi"], env=openrouter_env(fake_server))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["provider"] == "openai"


def test_a_repeated_cached_prefix_reports_cached_tokens(fake_server: Any) -> None:
    env = openrouter_env(fake_server)
    document = ("A long shared document. " * 200).encode()
    args = ["-m", "anthropic/claude-sonnet-4", "-s", "be terse", "--cache", "-f", "json"]
    first = run([*args, "summarise"], input=document, env=env)
    assert first.returncode == 0, first.stderr
    written = json.loads(first.stdout)["usage"]
    assert written["cache_write_tokens"] > 1000 and written["cached_tokens"] == 0
    # The same system prompt (the first breakpoint) with another question: read back.
    second = run([*args, "list the points"], input=b"other text", env=env)
    assert second.returncode == 0, second.stderr
    read = json.loads(second.stdout)["usage"]
    assert read["cached_tokens"] == 2  # "be terse": 8 characters, 4 per token
    # The very same request again: the whole marked prefix is read, nothing is written.
    third = run([*args, "summarise"], input=document, env=env)
    again = json.loads(third.stdout)["usage"]
    assert again["cached_tokens"] == written["cache_write_tokens"]
    assert "cache_write_tokens" not in again
    usage = json.loads(run(["usage", "--json"], env=env).stdout)
    assert usage["total"]["cached_tokens"] == 2 + again["cached_tokens"]


def test_cache_marks_the_request_only_when_asked(fake_server: Any) -> None:
    env = openrouter_env(fake_server)
    document = "A long shared document.\n" * 200
    args = ["-m", "anthropic/claude-sonnet-4", "-s", "be terse", "summarise"]
    assert run(args, input=document.encode(), env=env).returncode == 0
    plain = fake_server.chat_requests[-1].body["messages"]
    assert plain[0]["content"] == "be terse"
    assert isinstance(plain[1]["content"], str)
    assert run([*args, "--cache"], input=document.encode(), env=env).returncode == 0
    marked = fake_server.chat_requests[-1].body["messages"]
    assert marked[0]["content"] == [
        {"type": "text", "text": "be terse", "cache_control": {"type": "ephemeral"}}
    ]
    assert marked[1]["content"] == [
        {
            "type": "text",
            "text": f"summarise\n\n{document}",
            "cache_control": {"type": "ephemeral"},
        }
    ]


def test_cached_tokens_are_counted_by_usage(fake_server: Any) -> None:
    env = openrouter_env(fake_server)
    fake_server.enqueue(Scenario(cached_tokens=0), Scenario(cached_tokens=1200))
    for _ in range(2):
        assert run(["-m", "anthropic/claude-sonnet-4", "--cache", "hi"], env=env).returncode == 0
    usage = json.loads(run(["usage", "--json"], env=env).stdout)
    assert usage["total"]["cached_tokens"] == 1200
    done = run(["usage"], env=env)
    table = done.stdout.decode().splitlines()
    assert table[-1].split("\t")[5] == "1200"  # the CACHED column of the TOTAL row
    assert done.stderr == b""  # no model prices known yet: no saving to tell


def test_usage_tells_what_caching_saved_at_the_listed_prices(fake_server: Any) -> None:
    env = openrouter_env(fake_server)
    for model in fake_server.models:
        if model["id"] == "anthropic/claude-sonnet-4":
            model["pricing"]["input_cache_read"] = "0.0000003"  # $0.30/M against $3/M
    assert run(["models"], env=env).returncode == 0  # the list, with prices, is cached
    fake_server.enqueue(Scenario(cached_tokens=1200))
    assert run(["-m", "anthropic/claude-sonnet-4", "hi"], env=env).returncode == 0
    done = run(["usage"], env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.decode() == (
        "rill: prompt caching saved about $0.00324 (at the listed cache-read prices)\n"
    )
