"""``rill config set|get|unset provider.KEY``: OpenRouter's routing defaults, one entry at a
time, checked like the ``[provider]`` table and sent with the next request."""

from __future__ import annotations

import os

from rill.fake import FakeOpenRouter, Scenario
from tests.e2e import run


def test_provider_entries_are_set_checked_and_used(fake_server: FakeOpenRouter) -> None:
    assert run(["config", "set", "provider.order", "openai, anthropic"]).returncode == 0
    assert run(["config", "set", "provider.sort", "price"]).returncode == 0
    assert run(["config", "set", "provider.zdr", "true"]).returncode == 0
    bad = run(["config", "set", "provider.sort", "cheapest"])
    assert bad.returncode == 2 and b"sort must be one of" in bad.stderr
    unknown = run(["config", "set", "provider.fastest", "1"])
    assert unknown.returncode == 2 and b"provider.order" in unknown.stderr
    got = run(["config", "get", "provider.order"])
    assert got.stdout.decode().strip() == '["openai", "anthropic"]'
    assert run(["config", "unset", "provider.zdr"]).returncode == 0
    env = {**os.environ, "RILL_OPENROUTER": "1"}
    fake_server.enqueue(Scenario(content=["ok"]))
    done = run(["--base-url", fake_server.url, "-m", "m", "hi"], env=env)
    assert done.returncode == 0, done.stderr
    (request,) = fake_server.chat_requests
    assert request.body["provider"] == {"order": ["openai", "anthropic"], "sort": "price"}
