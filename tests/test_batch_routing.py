"""``rill batch`` with OpenRouter's routing flags and ``--cache``: the installed ``rill`` against
the fake server, which ``RILL_OPENROUTER=1`` makes count as OpenRouter."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from rill.fake import FakeOpenRouter
from tests.e2e import run
from tests.test_openrouter_e2e import EVERY_FLAG, PROVIDER_OF_FLAG

EPHEMERAL = {"type": "ephemeral"}


def jsonl(*objs: Any) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objs)


def lines_of(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def batch(server: FakeOpenRouter, *args: str, input: bytes, openrouter: bool = True) -> Any:
    env = {**os.environ, "RILL_OPENROUTER": "1"} if openrouter else None
    return run(["batch", "--base-url", server.url, *args], input=input, env=env, timeout=60)


def bodies(server: FakeOpenRouter) -> dict[str, dict[str, Any]]:
    """Request bodies by the text of their last message."""
    out = {}
    for request in server.chat_requests:
        content = request.body["messages"][-1]["content"]
        text = content if isinstance(content, str) else "".join(p["text"] for p in content)
        out[text] = request.body
    return out


def test_every_routing_flag_reaches_each_items_request(fake_server: FakeOpenRouter) -> None:
    flags = [arg for flag in EVERY_FLAG for arg in flag]
    data = jsonl(
        {"id": 1, "prompt": "one"},
        {"id": 2, "prompt": "two", "model": "anthropic/claude-sonnet-4"},
        {"id": 3, "messages": [{"role": "user", "content": "three"}]},
    )
    done = batch(fake_server, "-m", "openai/gpt-4o", *flags, "--no-history", input=data)
    assert done.returncode == 0, done.stderr
    assert len(lines_of(done.stdout)) == 3
    provider = {k: v for part in PROVIDER_OF_FLAG.values() for k, v in part.items()}
    sent = bodies(fake_server)
    assert sorted(sent) == ["one", "three", "two"]
    for text, model in [
        ("one", "openai/gpt-4o"),
        ("two", "anthropic/claude-sonnet-4"),  # the item's own model is routed the same way
        ("three", "openai/gpt-4o"),
    ]:
        body = sent[text]
        assert body["provider"] == provider
        assert body["model"] == f"{model}:online"
        assert body["models"] == [f"{model}:online", "openai/gpt-4o-mini:online"]


def test_without_flags_no_routing_fields_are_sent(fake_server: FakeOpenRouter) -> None:
    done = batch(fake_server, "-m", "openai/gpt-4o", input=jsonl({"id": 1, "prompt": "one"}))
    assert done.returncode == 0, done.stderr
    body = fake_server.chat_requests[0].body
    assert "provider" not in body and "models" not in body


def test_a_down_model_falls_back_for_every_item(fake_server: FakeOpenRouter) -> None:
    data = jsonl(*({"id": i, "prompt": f"item {i}"} for i in range(1, 5)))
    args = ["-m", "fake/down", "--fallback", "fake/echo", "--provider", "azure", "-j", "2"]
    done = batch(fake_server, *args, "--ordered", input=data)
    assert done.returncode == 0, done.stderr
    results = lines_of(done.stdout)
    assert [r["id"] for r in results] == [1, 2, 3, 4]
    for r in results:
        assert r["model"] == "fake/echo" and r["provider"] == "azure"
        assert r["message"]["content"] == f"item {r['id']}"
    usage = json.loads(run(["usage", "--json"]).stdout)
    assert [(row["key"], row["requests"]) for row in usage["rows"]] == [("fake/echo", 4)]


def test_explicit_fields_win_inside_the_provider_object(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    rill_env.mkdir(parents=True, exist_ok=True)
    (rill_env / "config.toml").write_text('[provider]\nsort = "price"\nzdr = true\n')
    data = jsonl(
        {"id": 1, "prompt": "one"},
        {"id": 2, "prompt": "two", "options": {"provider": {"only": ["groq"]}}},
    )
    args = ["-m", "openai/gpt-4o", "--only", "openai", "--sort", "latency"]
    done = batch(fake_server, *args, "--option", "provider.zdr=false", input=data)
    assert done.returncode == 0, done.stderr
    sent = bodies(fake_server)
    # config table < flags < --option < the item's own options, key by key.
    assert sent["one"]["provider"] == {"sort": "latency", "zdr": False, "only": ["openai"]}
    assert sent["two"]["provider"] == {"sort": "latency", "zdr": False, "only": ["groq"]}


@pytest.mark.parametrize("flag", EVERY_FLAG, ids=lambda f: f[0])
def test_each_flag_is_refused_for_another_server(
    fake_server: FakeOpenRouter, tmp_path: Path, flag: list[str]
) -> None:
    out = tmp_path / "out.jsonl"
    data = jsonl({"id": 1, "prompt": "one"})
    done = batch(fake_server, *flag, "-o", str(out), input=data, openrouter=False)
    assert done.returncode == 2
    err = done.stderr.decode()
    assert err.startswith(f"rill: {flag[0]} is OpenRouter-only")
    assert err.count("\n") == 1
    assert done.stdout == b"" and not out.exists()
    assert fake_server.chat_requests == []  # nothing was sent


def test_the_provider_table_is_not_sent_to_another_server(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    rill_env.mkdir(parents=True, exist_ok=True)
    (rill_env / "config.toml").write_text('[provider]\nsort = "price"\n')
    done = batch(fake_server, input=jsonl({"id": 1, "prompt": "one"}), openrouter=False)
    assert done.returncode == 0, done.stderr
    assert "provider" not in fake_server.chat_requests[0].body


def test_a_bad_sort_or_table_is_refused_before_sending(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    data = jsonl({"id": 1, "prompt": "one"})
    done = batch(fake_server, "--sort", "cheapest", input=data)
    assert done.returncode == 2 and b"--sort must be one of" in done.stderr
    rill_env.mkdir(parents=True, exist_ok=True)
    (rill_env / "config.toml").write_text('[provider]\nsort = "cheapest"\n')
    done = batch(fake_server, input=data)
    assert done.returncode == 3
    assert done.stderr.decode().startswith("rill: config.toml [provider]: sort must be one of")
    assert fake_server.chat_requests == []


def test_cache_marks_the_shared_text_and_later_items_read_it(
    fake_server: FakeOpenRouter,
) -> None:
    context = "A long shared document.\n" * 200
    data = jsonl(*({"id": i, "prompt": f"question {i}"} for i in range(1, 4)))
    args = ["-m", "anthropic/claude-sonnet-4", "-s", "be terse", "--prompt-prefix", context]
    done = batch(fake_server, *args, "-j", "1", "--ordered", "--cache", input=data)
    assert done.returncode == 0, done.stderr
    first = fake_server.chat_requests[0].body["messages"]
    assert first[0]["content"] == [{"type": "text", "text": "be terse", "cache_control": EPHEMERAL}]
    assert first[1]["content"] == [
        {"type": "text", "text": context, "cache_control": EPHEMERAL},
        {"type": "text", "text": "question 1"},
    ]
    usage = [r["usage"] for r in lines_of(done.stdout)]
    written = usage[0]["cache_write_tokens"]
    assert written > 1000 and usage[0]["cached_tokens"] == 0
    assert [u["cached_tokens"] for u in usage[1:]] == [written, written]
    # History keeps the words of each prompt, not the request's parts.
    chat = json.loads(run(["history", "show", "last", "--json"]).stdout)
    assert chat["exchanges"][-1]["messages"][-1]["content"] == context + "question 3"

    fake_server.reset()
    plain = batch(fake_server, *args, input=data)
    assert plain.returncode == 0, plain.stderr
    for request in fake_server.chat_requests:
        assert all(isinstance(m["content"], str) for m in request.body["messages"])
