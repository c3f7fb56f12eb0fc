"""What comes from upstream, made into what the history reader accepts before it is stored.

Servers send anything: a ``finish_reason`` that is an object, a cost of NaN, reasoning details
nested 100,000 deep. Strings stay strings, other scalars become strings, structures where a
string belongs become None; usage numbers that are not finite numbers are dropped; a structure
nested deeper than ``MAX_DEPTH`` is dropped. Each change leaves a note for the record's
``notes``.
"""

from __future__ import annotations

import math
from typing import Any

from rill.urls import display_url

MAX_DEPTH = 64  # deeper structures are dropped: json and tomllib recurse to read them
TEXT_FIELDS = ("served_model", "provider", "generation_id", "finish_reason")
_USAGE_NUMBERS = ("prompt_tokens", "completion_tokens", "total_tokens", "cost", "reasoning_tokens")


def text_or_none(value: Any, name: str, notes: list[str]) -> str | None:
    """``value`` as a string: strings as they are, numbers written out, anything else None."""
    if value is None or isinstance(value, str):
        return value
    text = str(value) if isinstance(value, bool | int | float) else None
    notes.append(f"{name} was not a string ({type(value).__name__}); stored as {text!r}")
    return text


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply ``value`` nests (without recursion), counting no further than ``limit + 1``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > limit:
                return level
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def shallow(value: Any, name: str, notes: list[str]) -> Any:
    """``value``, or None (with a note) when it nests deeper than ``MAX_DEPTH``."""
    if depth(value) > MAX_DEPTH:
        notes.append(f"{name} was nested more than {MAX_DEPTH} deep; dropped")
        return None
    return value


def table(value: Any, name: str, notes: list[str]) -> dict[str, Any] | None:
    """``value`` if it is a table no deeper than ``MAX_DEPTH``, else None (with a note): the
    reader skips an exchange whose table field is anything else."""
    if value is None:
        return None
    if not isinstance(value, dict):
        notes.append(f"{name} was a {type(value).__name__}, not a table; dropped")
        return None
    return shallow(value, name, notes)  # type: ignore[no-any-return]


def finite_numbers(value: Any, name: str, notes: list[str]) -> Any:
    """``value`` with every float that is NaN or infinite dropped (noted); lists and tables
    are walked (``value`` must already be shallow)."""
    if isinstance(value, float) and not math.isfinite(value):
        notes.append(f"{name} was not a number ({value}); dropped")
        return None
    if isinstance(value, dict):
        kept = {}
        for key, item in value.items():
            item = finite_numbers(item, f"{name}.{key}", notes)
            if item is not None or value[key] is None:
                kept[str(key)] = item
        return kept
    if isinstance(value, list):
        return [finite_numbers(item, f"{name}[{n}]", notes) for n, item in enumerate(value)]
    return value


def usage(value: Any, notes: list[str]) -> dict[str, Any] | None:
    """The usage object, with its counts and cost only when they are finite numbers."""
    if value is None:
        return None
    value = shallow(value, "usage", notes)
    if not isinstance(value, dict):
        if value is not None:
            notes.append(f"usage was not a table ({type(value).__name__}); dropped")
        return None
    cleaned: dict[str, Any] = finite_numbers(value, "usage", notes)
    for key in _USAGE_NUMBERS:
        number = cleaned.get(key)
        if key in cleaned and number is not None and not is_number(number):
            notes.append(f"usage.{key} was not a number ({number!r:.40}); dropped")
            del cleaned[key]
    return cleaned or None


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def public_url(url: Any) -> str | None:
    """``url`` without any ``user:password@`` part: what may be stored and shown."""
    return display_url(url) if isinstance(url, str) else None
