"""Values rill can send and store: finite numbers, nesting a JSON or TOML reader can follow.

Python's json reads ``NaN``, ``Infinity`` and ``1e999`` and TOML spells them ``nan`` and ``inf``,
but no JSON request can carry them (httpx refuses to encode them) and no limit means anything
with them. Readers and writers of JSON and TOML recurse, so a value nested hundreds deep fails
far from where it came in, as a crash. Both checks walk without recursion.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, cast

__all__ = ["MAX_NESTING", "compact_json", "has_non_finite", "nested_deeper", "pretty_json"]

MAX_NESTING = 64
"""The deepest nesting accepted from the user (config tables, templates' options, ``-o``); the
history keeps upstream values to the same depth."""

compact_json: Callable[[Any], str] = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":")
).encode
"""``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``: what rill writes wherever it
writes a JSON value on one line. One encoder serves every call; ``json.dumps`` with arguments
builds a new one each time, which on a per-event path costs more than the encoding."""


_quote: Callable[[str], str] = json.encoder.encode_basestring


def pretty_json(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, indent=2)``, the same text, built without the
    closures that json's own indenting encoder makes each call: those hold each other, so every
    call left a cycle of some thirty objects for the cyclic collector (a chat file written twice per
    exchange, in a server under load). Strings are quoted by json's C quoting."""
    parts: list[str] = []
    _pretty(value, parts, "\n")
    return "".join(parts)


def _scalar(value: Any) -> str | None:
    """A JSON scalar's text as ``json`` writes it; None for a table or a list."""
    if isinstance(value, str):
        return _quote(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (math.inf, -math.inf):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    if isinstance(value, (dict, list, tuple)):
        return None
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _key(key: Any) -> str:
    if isinstance(key, str):
        return _quote(key)
    if key is None or isinstance(key, (bool, int, float)):
        return _quote(cast(str, _scalar(key)))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _pretty(value: Any, out: list[str], newline: str) -> None:
    scalar = _scalar(value)
    if scalar is not None:
        out.append(scalar)
        return
    inner = newline + "  "
    if isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        separator = "{" + inner
        for key, item in value.items():
            out.append(separator)
            out.append(_key(key))
            out.append(": ")
            _pretty(item, out, inner)
            separator = "," + inner
        out.append(newline + "}")
        return
    if not value:
        out.append("[]")
        return
    separator = "[" + inner
    for item in value:
        out.append(separator)
        _pretty(item, out, inner)
        separator = "," + inner
    out.append(newline + "]")


def has_non_finite(value: Any) -> bool:
    """Whether ``value`` holds NaN or an infinity anywhere (tables and lists are walked)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def nested_deeper(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether tables and lists in ``value`` nest more than ``limit`` deep."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list | tuple):
            if level > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return False
