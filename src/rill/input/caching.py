"""``--cache``: prompt-caching breakpoints for the models that need explicit ones.

Anthropic's models (and Gemini's, through OpenRouter) cache a prompt prefix only up to a part
marked ``cache_control: {"type": "ephemeral"}``; other providers cache by themselves. So for
those models the system prompt and the long, repeated parts of the user's message (stdin text,
a template's text) become text parts of their own, each ending in a breakpoint, as OpenRouter
documents. Anthropic accepts at most four breakpoints per request; rill places at most that
many. The words of the message are not changed, only split. Pure functions: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

MAX_BREAKPOINTS = 4
EPHEMERAL = {"type": "ephemeral"}
#: Model-ID fragments of the families that need explicit breakpoints.
EXPLICIT_FAMILIES = ("anthropic/", "claude", "google/gemini", "gemini")


def needs_breakpoints(models: Iterable[str | None]) -> bool:
    """Whether any of the models (primary and fallbacks) caches only at explicit breakpoints."""
    return any(
        model and any(part in model.lower() for part in EXPLICIT_FAMILIES) for model in models
    )


def _part(text: str, mark: bool) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "text", "text": text}
    if mark:
        part["cache_control"] = dict(EPHEMERAL)
    return part


def split_at(text: str, pieces: Sequence[str]) -> list[tuple[str, bool]]:
    """``text`` cut right after each of ``pieces`` found in it: ``(segment, ends_a_piece)``.

    The segments joined give ``text`` back exactly.
    """
    cuts: set[int] = set()
    for piece in pieces:
        if not piece:
            continue
        at = text.find(piece)
        if at >= 0:
            cuts.add(at + len(piece))
    out: list[tuple[str, bool]] = []
    start = 0
    for cut in sorted(cuts):
        if cut > start:
            out.append((text[start:cut], True))
            start = cut
    if start < len(text):
        out.append((text[start:], False))
    return out


def _mark_user(content: Any, pieces: Sequence[str], budget: int) -> tuple[Any, int]:
    """The user content with breakpoints after ``pieces``; returns it and breakpoints used."""
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if not isinstance(parts, list):
        return content, 0
    out: list[Any] = []
    used = 0
    for part in parts:
        if not (isinstance(part, dict) and part.get("type") == "text" and "text" in part):
            out.append(part)
            continue
        for segment, ends_piece in split_at(str(part["text"]), pieces):
            mark = ends_piece and used < budget
            used += mark
            out.append(_part(segment, mark))
    if not used:
        return content, 0
    return out, used


def mark_cache(
    messages: list[dict[str, Any]],
    pieces: Iterable[str | None],
    models: Iterable[str | None],
) -> list[dict[str, Any]]:
    """``messages`` with cache breakpoints on the system prompt and on ``pieces`` (long user
    context) in the last user message, when one of ``models`` needs explicit breakpoints.

    Returns new message dicts; the input is not changed. Other models get ``messages`` as is.
    """
    if not needs_breakpoints(models):
        return messages
    wanted = [p for p in pieces if p and p.strip()]
    out = [dict(m) for m in messages]
    budget = MAX_BREAKPOINTS
    for message in out:
        if message.get("role") == "system" and isinstance(message.get("content"), str):
            message["content"] = [_part(message["content"], True)]
            budget -= 1
            break
    users = [m for m in out if m.get("role") == "user"]
    if users and wanted and budget > 0:
        last = users[-1]
        last["content"], _used = _mark_user(last.get("content"), wanted, budget)
    return out
