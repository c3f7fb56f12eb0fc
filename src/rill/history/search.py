"""Reading every chat file: ``rill history search`` and ``rill history export``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from rill.errors import UsageError
from rill.history.chatfiles import ChatFiles
from rill.history.records import SCHEMA_VERSION, snippet, text_of
from rill.history.running import resolve_running


def search(files: ChatFiles, text: str) -> list[dict[str, Any]]:
    """Case-insensitive search over prompts and answers, newest first: one hit per message
    with the chat id, exchange id, role and a one-line snippet around the match."""
    if not text:
        raise UsageError("search text is empty")
    pattern = re.compile(re.escape(text), re.IGNORECASE)
    hits: list[dict[str, Any]] = []
    for path, stored in files.iter_chats():
        chat, _dead = resolve_running(files, stored, path)
        for ex in chat["exchanges"]:
            hits += _hits(pattern, chat, ex)
    hits.sort(key=lambda hit: str(hit["started_at"]), reverse=True)
    return hits


def _hits(
    pattern: re.Pattern[str], chat: dict[str, Any], ex: dict[str, Any]
) -> list[dict[str, Any]]:
    """One hit per message of exchange ``ex`` that ``pattern`` matches."""
    said = [(m.get("role", "user"), text_of(m.get("content"))) for m in ex.get("messages", [])]
    said.append(("assistant", ex.get("answer", {}).get("content", "")))
    hits = []
    for role, body in said:
        found = pattern.search(body)
        if found:
            hits.append(
                {
                    "chat_id": chat["id"],
                    "exchange_id": ex["id"],
                    "started_at": ex.get("started_at", ""),
                    "role": role,
                    "title": chat.get("title", ""),
                    "snippet": snippet(body, found.start(), found.end()),
                }
            )
    return hits


def export(files: ChatFiles) -> Iterator[dict[str, Any]]:
    """Every exchange, oldest first: ``schema_version``, ``chat_id``, ``title``,
    ``exchange_id`` and the exchange's own fields (messages, answer, models, usage…)."""
    rows = []
    for path, stored in files.iter_chats():
        chat, _dead = resolve_running(files, stored, path)
        for ex in chat["exchanges"]:
            fields = {k: v for k, v in ex.items() if k != "id"}
            rows.append(
                {
                    "schema_version": SCHEMA_VERSION,
                    "chat_id": chat["id"],
                    "title": chat.get("title", ""),
                    "exchange_id": ex["id"],
                    **fields,
                }
            )
    rows.sort(key=lambda row: str(row.get("started_at", "")))
    yield from rows
