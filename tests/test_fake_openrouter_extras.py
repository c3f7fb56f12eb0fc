"""The fake server's OpenRouter routing, fallbacks and prompt cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rill.fake.openrouter_extras import (
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
