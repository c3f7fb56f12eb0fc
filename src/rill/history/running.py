"""Running exchanges, seen from a reader: the partial answer from the journal, and
``interrupted`` once the writer is gone (which ``settle`` writes back into the chat file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rill.history.chatfiles import Changed, ChatFiles
from rill.history.files import read_journal, writer_alive
from rill.history.records import HistoryError, index_record, read_chat, without_none


def resolve_running(
    files: ChatFiles, chat: dict[str, Any], path: Path | None = None
) -> tuple[dict[str, Any], list[str]]:
    """A copy of ``chat`` with running exchanges resolved from their journals, and the ids of
    those whose writer is gone. A running exchange whose journal is missing has usually just
    finished (its journal is dropped right after the chat file is saved): the chat file at
    ``path`` is then read again, and what it says now wins."""
    view, dead, missing = _resolve_once(files, chat)
    if missing and path is not None:
        try:
            fresh = read_chat(path)
        except (OSError, HistoryError):
            pass
        else:
            view, dead, _missing = _resolve_once(files, fresh)
    return view, dead


def _resolve_once(files: ChatFiles, chat: dict[str, Any]) -> tuple[dict[str, Any], list[str], bool]:
    dead: list[str] = []
    missing = False
    exchanges = []
    for ex in chat["exchanges"]:
        if ex.get("status") == "running":
            journal = files.journal_path(ex["id"])
            alive = writer_alive(journal)
            missing = missing or alive is None
            content, reasoning = read_journal(journal)
            answer = without_none({"content": content, "reasoning": reasoning or None})
            ex = dict(ex, answer=answer)
            if not alive:
                ex.update(status="done", finish_reason="interrupted")
                dead.append(ex["id"])
        exchanges.append(ex)
    return dict(chat, exchanges=exchanges), dead, missing


def settle(files: ChatFiles, chat_id: str) -> dict[str, Any] | None:
    """Write interrupted exchanges back into the chat file and drop their journals; the chat
    as it now stands (None if it vanished)."""
    files.require_writable("settle")
    path = files.chat_path(chat_id)
    if path is None:
        return None
    settled: list[dict[str, Any]] = []
    gone: list[str] = []

    def resolve(chat: dict[str, Any] | None) -> Changed | None:
        settled[:] = [] if chat is None else [chat]
        if chat is None:
            return None
        view, dead = resolve_running(files, chat)
        settled[:] = [view]
        gone[:] = dead
        if not dead:
            return None
        records = [
            index_record(chat_id, ex, "end", view.get("title", "") if n == 0 else None)
            for n, ex in enumerate(view["exchanges"])
            if ex["id"] in dead
        ]
        return view, records

    if files.change_chat(path, resolve):
        for exchange_id in gone:
            files.journal_path(exchange_id).unlink(missing_ok=True)
    return settled[0] if settled else None
