"""OpenRouter's routing, fallbacks and prompt caching, as the fake server plays them.

- **Fallbacks.** A model whose ID starts with ``fake/down`` is unavailable. The request's
  ``model`` and then its ``models`` list are tried in order; the first available one serves and
  is reported in every chunk's ``model`` (and billed), as OpenRouter does. When every model is
  down the answer is a 503 "no endpoints" error.
- **Provider preferences.** The ``provider`` object picks who serves: the first name of
  ``order`` (or of ``only``) that is not in ``ignore`` becomes the chunks' ``provider``.
- **Prompt caching.** Every text part marked ``cache_control`` ends a cacheable prefix (the
  messages up to and including that part). The first request with a prefix writes it
  (``cache_write_tokens``); a later request that repeats it reads it (``cached_tokens``), with the
  tokens estimated as the fake estimates prompt tokens (4 characters each).

Pure functions and one small memory; the server applies them to a request's scenario.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

DOWN_PREFIX = "fake/down"
NO_ENDPOINTS = "No endpoints found that can handle the request"


def is_down(model: str) -> bool:
    return model.startswith(DOWN_PREFIX)


def candidates(body: Mapping[str, Any]) -> list[str]:
    """The models the request allows, in the order OpenRouter tries them."""
    out: list[str] = []
    models = body.get("models")
    for model in [body.get("model"), *(models if isinstance(models, list) else [])]:
        if isinstance(model, str) and model and model not in out:
            out.append(model)
    return out


def served_model(body: Mapping[str, Any]) -> str | None:
    """The first available model; ``None`` when every one is down (or none was named)."""
    for model in candidates(body):
        if not is_down(model):
            return model
    return None


def serving_provider(body: Mapping[str, Any], default: str) -> str:
    """Who serves under the request's provider preferences (``default`` when they say nothing)."""
    prefs = body.get("provider")
    if not isinstance(prefs, dict):
        return default

    def names(key: str) -> list[str]:
        value = prefs.get(key)
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

    ignored = set(names("ignore"))
    only = names("only")
    for name in names("order") or only:
        if name not in ignored and (not only or name in only):
            return name
    return default


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def cached_prefixes(body: Mapping[str, Any]) -> list[tuple[str, int]]:
    """``(prefix key, tokens)`` for every ``cache_control`` breakpoint, first to last."""
    out: list[tuple[str, int]] = []
    seen: list[Any] = [body.get("model")]
    chars = 0
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        content = message.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": _text(content)}]
        for part in parts:
            if not isinstance(part, dict):
                continue
            text = str(part.get("text", "")) if part.get("type") == "text" else ""
            seen.append([role, text if text else part.get("type")])
            chars += len(text)
            if part.get("cache_control"):
                key = json.dumps(seen, ensure_ascii=False, separators=(",", ":"))
                out.append((key, max(1, chars // 4)))
    return out


class PromptCache:
    """The prefixes requests have marked, remembered until ``clear``."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self.marked: list[list[str]] = []
        """Per request that carried breakpoints, the JSON of each marked part (for tests)."""

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()
            self.marked.clear()

    def use(self, body: Mapping[str, Any]) -> tuple[int, int]:
        """``(cached_tokens, cache_write_tokens)`` for this request; remembers its prefixes."""
        prefixes = cached_prefixes(body)
        if not prefixes:
            return 0, 0
        with self._lock:
            read = max((tokens for key, tokens in prefixes if key in self._seen), default=0)
            longest = prefixes[-1][1]
            written = longest - read if longest > read else 0
            self._seen.update(key for key, _tokens in prefixes)
            self.marked.append([key for key, _tokens in prefixes])
        return read, written


def adapt(scenario: Any, body: Mapping[str, Any], cache: PromptCache) -> Any:
    """The scenario as OpenRouter would play it for ``body``.

    What a test set explicitly on the scenario wins: a ``served_model`` stays, a non-default
    ``provider`` stays, ``cached_tokens`` stay. When every model of the request is down the
    answer is the 503 "no endpoints" error.
    """
    from dataclasses import fields, replace

    defaults = {f.name: f.default for f in fields(scenario)}
    changes: dict[str, Any] = {}
    if any(is_down(m) for m in candidates(body)) or body.get("models"):
        served = served_model(body)
        if served is None:
            return type(scenario).error(503, message=NO_ENDPOINTS)
        if scenario.served_model is None:
            changes["served_model"] = served
    if scenario.provider == defaults.get("provider"):
        provider = serving_provider(body, scenario.provider)
        if provider != scenario.provider:
            changes["provider"] = provider
    read, written = cache.use(body)
    if scenario.cached_tokens == 0 and read:
        changes["cached_tokens"] = read
    if written and "cache_write_tokens" in defaults and not scenario.cache_write_tokens:
        changes["cache_write_tokens"] = written
    return replace(scenario, **changes) if changes else scenario
