"""The chat list (``rill history``): one row per chat, most recently used first, from the index
alone, so it stays fast with 100,000 exchanges."""

from __future__ import annotations

import heapq
from typing import Any

from rill.history.chatfiles import ChatFiles
from rill.history.files import writer_alive
from rill.history.index import index_text, scan
from rill.history.records import INDEX_HEAD, decode_at, number_or_zero
from rill.history.usage import known_cost


def list_chats(files: ChatFiles, limit: int | None = 20) -> list[dict[str, Any]]:
    """Chats, most recently used first, from the index alone: id, title, created, updated,
    turns, model (served, else requested, of the last exchange), finish_reason of the last
    exchange (``running``/``interrupted`` while unfinished), prompt_tokens,
    completion_tokens and cost summed over the chat."""
    text, size = index_text(files)
    last = scan(files, text)
    latest: dict[str, str] = {}
    for chat, _ev, at, _start in last.values():
        if at >= latest.get(chat, ""):
            latest[chat] = at
    order = [(at, chat) for chat, at in latest.items()]
    chosen = heapq.nlargest(limit, order) if limit is not None else sorted(order, reverse=True)
    wanted = {chat: n for n, (_at, chat) in enumerate(chosen)}
    groups: list[list[dict[str, Any]]] = [[] for _ in chosen]
    for ex, (chat, _ev, _at, start) in last.items():
        n = wanted.get(chat)
        record = decode_at(text, start) if n is not None else None
        if n is not None and record is not None:
            groups[n].append(dict(record, ex=ex))
    return [
        _chat_row(files, chat, group, size)
        for (_at, chat), group in zip(chosen, groups, strict=True)
    ]


def _chat_row(
    files: ChatFiles, chat_id: str, records: list[dict[str, Any]], size: int
) -> dict[str, Any]:
    records.sort(key=lambda r: str(r.get("at", "")))
    newest = records[-1] if records else {}
    finish = newest.get("finish")
    if newest.get("ev") == "begin":
        finish = _unfinished_reason(files, newest, size)
    title = next((r["title"] for r in records if isinstance(r.get("title"), str)), "")
    return {
        "id": chat_id,
        "title": title,
        "created": records[0].get("at") if records else None,
        "updated": max((str(r.get("end") or r.get("at") or "") for r in records), default=""),
        "turns": len(records),
        "model": newest.get("served") or newest.get("model"),
        "finish_reason": finish,
        "prompt_tokens": sum(number_or_zero(r.get("prompt_tokens")) for r in records),
        "completion_tokens": sum(number_or_zero(r.get("completion_tokens")) for r in records),
        "cost": known_cost(records),
    }


def _unfinished_reason(files: ChatFiles, record: dict[str, Any], size: int) -> str | None:
    """``running`` while the writer holds the journal; otherwise the finish reason of an end
    line appended since the index was read, else ``interrupted``."""
    ex = str(record["ex"])
    if writer_alive(files.journal_path(ex)):
        return "running"
    try:
        with files.index_path.open("rb") as handle:
            handle.seek(size)
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        tail = ""
    for match in INDEX_HEAD.finditer(tail):
        if match[1] == ex and match[3] == "end":
            finish = (decode_at(tail, match.start()) or {}).get("finish")
            return finish if isinstance(finish, str) else None
    return "interrupted"
