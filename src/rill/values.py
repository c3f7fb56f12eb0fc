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
from typing import Any

__all__ = ["MAX_NESTING", "compact_json", "has_non_finite", "nested_deeper"]

MAX_NESTING = 64
"""The deepest nesting accepted from the user (config tables, templates' options, ``-o``); the
history keeps upstream values to the same depth."""

compact_json: Callable[[Any], str] = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":")
).encode
"""``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``: what rill writes wherever it
writes a JSON value on one line. One encoder serves every call; ``json.dumps`` with arguments
builds a new one each time, which on a per-event path costs more than the encoding."""


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
