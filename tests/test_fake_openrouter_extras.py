"""The fake server's OpenRouter routing, fallbacks and prompt cache."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from rill.fake import FakeOpenRouter, Scenario
from rill.fake.openrouter_extras import (
    NO_ENDPOINTS,
    PromptCache,
    adapt,
    cached_prefixes,
    candidates,
    served_model,
    serving_provider,
)

MARK = {"type": "ephemeral"}


def test_the_first_available_model_serves() -> None:
    body = {"model": "fake/down", "models": ["fake/down", "b/two", "c/three"]}
    assert candidates(body) == ["fake/down", "b/two", "c/three"]
    assert served_model(body) == "b/two"
    assert served_model({"model": "a/one", "models": ["b/two"]}) == "a/one"
    assert served_model({"model": "fake/down-a", "models": ["fake/down-b"]}) is None
    assert served_model({"models": ["b/two"]}) == "b/two"


def test_provider_preferences_choose_who_serves() -> None:
    assert serving_provider({}, "OpenAI") == "OpenAI"
    assert serving_provider({"provider": {"order": ["azure", "openai"]}}, "X") == "azure"
    prefs = {"order": ["azure", "openai"], "ignore": ["azure"]}
    assert serving_provider({"provider": prefs}, "X") == "openai"
    assert serving_provider({"provider": {"only": ["together"]}}, "X") == "together"
    prefs = {"order": ["azure", "openai"], "only": ["openai"]}
    assert serving_provider({"provider": prefs}, "X") == "openai"
    assert serving_provider({"provider": {"sort": "price"}}, "X") == "X"


def body(system: str, question: str, *, mark: bool = True) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "text", "text": system}
    if mark:
        part["cache_control"] = MARK
    return {
        "model": "anthropic/claude-sonnet-4",
        "messages": [
            {"role": "system", "content": [part]},
            {"role": "user", "content": question},
        ],
    }


def test_a_repeated_prefix_is_read_from_the_cache() -> None:
    cache = PromptCache()
    system = "x" * 4000
    assert cache.use(body(system, "first")) == (0, 1000)  # written
    assert cache.use(body(system, "second")) == (1000, 0)  # read back
    assert cache.use(body("y" * 4000, "third")) == (0, 1000)  # another prefix
    assert len(cache.marked) == 3
    cache.clear()
    assert cache.use(body(system, "again")) == (0, 1000)


def test_no_breakpoint_no_caching() -> None:
    cache = PromptCache()
    assert cached_prefixes(body("x" * 4000, "q", mark=False)) == []
    assert cache.use(body("x" * 4000, "q", mark=False)) == (0, 0)
    assert cache.marked == []


def test_a_longer_prefix_reads_the_shorter_and_writes_the_rest() -> None:
    cache = PromptCache()
    system = "s" * 400
    cache.use(body(system, "q"))
    doc = {"type": "text", "text": "d" * 800, "cache_control": MARK}
    longer = body(system, "q")
    longer["messages"][1]["content"] = [doc, {"type": "text", "text": "question"}]
    assert cache.use(longer) == (100, 200)


@dataclass(frozen=True)
class Play:
    """The scenario fields ``adapt`` reads, as the fake server's Scenario has them."""

    served_model: str | None = None
    provider: str = "OpenAI"
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    status: int = 200
    error_message: str | None = None

    @classmethod
    def error(cls, status: int, kind: str | None = None, *, message: str | None = None) -> Play:
        return cls(status=status, error_message=message)


def test_adapt_plays_fallbacks_providers_and_the_cache() -> None:
    cache = PromptCache()
    request = {"model": "fake/down", "models": ["fake/down", "b/two"], "provider": {"only": ["az"]}}
    assert adapt(Play(), request, cache) == Play(served_model="b/two", provider="az")
    assert adapt(Play(), {"model": "fake/down-x"}, cache).status == 503
    assert adapt(Play(), {"model": "a/one"}, cache) == Play()
    explicit = Play(served_model="c/three", provider="Groq")
    assert adapt(explicit, request, cache) == explicit
    marked = body("x" * 400, "q")
    assert adapt(Play(), marked, cache) == Play(cache_write_tokens=100)
    assert adapt(Play(), marked, cache) == Play(cached_tokens=100)


# --- the server plays them -----------------------------------------------------------------------


def stream(server: FakeOpenRouter, request: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """POST a streamed request; (status, the data chunks) — or (status, [error body])."""
    payload = {"messages": [{"role": "user", "content": "hi"}], **request, "stream": True}
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with httpx.Client(trust_env=False, timeout=10) as client:
        response = client.post(f"{server.url}/chat/completions", json=payload, headers=headers)
    if response.status_code != 200:
        return response.status_code, [response.json()]
    chunks = [
        json.loads(line[len("data: ") :])
        for line in response.text.splitlines()
        if line.startswith("data: {")
    ]
    return 200, chunks


def usage_of(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    return next(c["usage"] for c in chunks if c.get("usage"))


def test_the_fallback_serves_and_is_named_in_every_chunk(fake_server: FakeOpenRouter) -> None:
    request = {"model": "fake/down", "models": ["fake/down", "openai/gpt-4o-mini"]}
    status, chunks = stream(fake_server, request)
    assert status == 200
    assert {c["model"] for c in chunks} == {"openai/gpt-4o-mini"}
    generation = fake_server.generations[chunks[0]["id"]]
    assert generation.model == "openai/gpt-4o-mini"  # billed to the model that served
    status, (body,) = stream(fake_server, {"model": "fake/down-a", "models": ["fake/down-b"]})
    assert status == 503 and body["error"]["message"] == NO_ENDPOINTS


def test_a_canned_fallback_plays_its_scenario(fake_server: FakeOpenRouter) -> None:
    request = {"model": "fake/down", "models": ["fake/echo"]}
    payload = {**request, "messages": [{"role": "user", "content": "say this"}]}
    _status, chunks = stream(fake_server, payload)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "say this"


def test_provider_preferences_name_the_provider(fake_server: FakeOpenRouter) -> None:
    prefs = {"order": ["azure", "openai"], "ignore": ["azure"]}
    _status, chunks = stream(fake_server, {"model": "openai/gpt-4o", "provider": prefs})
    assert {c["provider"] for c in chunks} == {"openai"}
    _status, chunks = stream(fake_server, {"model": "openai/gpt-4o"})
    assert {c["provider"] for c in chunks} == {"OpenAI"}


def test_the_cache_writes_then_reads_and_reset_forgets_it(fake_server: FakeOpenRouter) -> None:
    request = body("x" * 4000, "first")
    assert usage_of(stream(fake_server, request)[1])["prompt_tokens_details"] == {
        "cached_tokens": 0,
        "cache_write_tokens": 1000,
    }
    again = body("x" * 4000, "second")
    assert usage_of(stream(fake_server, again)[1])["prompt_tokens_details"] == {
        "cached_tokens": 1000
    }
    assert len(fake_server.prompt_cache.marked) == 2
    fake_server.reset()
    assert fake_server.prompt_cache.marked == []
    details = usage_of(stream(fake_server, again)[1])["prompt_tokens_details"]
    assert details["cache_write_tokens"] == 1000 and details["cached_tokens"] == 0


def test_errors_and_other_personas_are_played_as_scripted(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario.error(429, retry_after=0))
    status, _body = stream(fake_server, body("x" * 400, "q"))
    assert status == 429
    assert fake_server.prompt_cache.marked == []  # nothing served, nothing cached
    fake_server.persona = "openai"
    _status, chunks = stream(fake_server, {"model": "fake/down", "models": ["a/one"]})
    assert {c["model"] for c in chunks} == {"fake/down"}
