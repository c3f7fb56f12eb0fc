"""Reading ``index.jsonl``: its complete lines, the last line of each exchange, the last chat.

The index is a cache of the chat files (``ChatFiles.reindex_locked`` writes it anew); a missing
one is rebuilt on first read, in memory only for a read-only store.
"""

from __future__ import annotations

import json
import os
from contextlib import suppress

from rill.files import read_private
from rill.history.chatfiles import ChatFiles
from rill.history.files import locked
from rill.history.records import INDEX_HEAD, decode_at, gc_paused, os_reason

TAIL_BYTES = 1 << 20  # how much of the index last_chat_id reads first

Scanned = dict[str, tuple[str, str, str, int]]
"""Exchange id → (chat id, event, started_at, offset in the index text) of its last line."""


def index_text(files: ChatFiles) -> tuple[str, int]:
    """The index's complete lines and its size in bytes, rebuilding it when it is missing."""
    try:
        raw = read_private(files.index_path)
    except FileNotFoundError:
        raw = _rebuilt_index(files)
    except OSError as exc:
        files.say(f"history: cannot read {files.index_path}: {os_reason(exc)}")
        return "", 0
    end = raw.rfind(b"\n") + 1  # a line still being written has no newline yet
    return raw[:end].decode("utf-8", "replace"), end


def _rebuilt_index(files: ChatFiles) -> bytes:
    if not files.chat_files():
        return b""
    if files.read_only:
        return b"".join(files.index_lines_from_chats())
    try:
        with locked(files.lock_path):
            files.ensure_index()
            return read_private(files.index_path)
    except OSError as exc:
        files.say(f"history: cannot rebuild {files.index_path}: {os_reason(exc)}")
        return b"".join(files.index_lines_from_chats())


def scan(files: ChatFiles, text: str) -> Scanned:
    """The last index line of every exchange in ``text``, leaving out the exchanges of removed
    chats; damaged lines are counted in one warning."""
    last: Scanned = {}
    removed: set[str] = set()
    bad = pos = 0
    with gc_paused():
        for match in INDEX_HEAD.finditer(text):
            start = match.start()
            if start > pos:
                bad += _scan_slowly(text, pos, start, last, removed)
            ex, chat, ev, at = match.groups()
            last[ex] = (chat, ev, at, start)
            pos = match.end() + 1
        if pos < len(text):
            bad += _scan_slowly(text, pos, len(text), last, removed)
    if bad:
        files.say(f"history: skipped {bad} damaged line(s) in {files.index_path}")
    if removed:
        last = {ex: entry for ex, entry in last.items() if entry[0] not in removed}
    return last


def _scan_slowly(text: str, pos: int, stop: int, last: Scanned, removed: set[str]) -> int:
    """Decode the lines in ``text[pos:stop]`` one by one; the number of damaged ones."""
    bad = 0
    while pos < stop:
        end = text.find("\n", pos, stop)
        end = stop if end < 0 else end
        record = None
        with suppress(ValueError):
            record = json.loads(text[pos:end]) if end > pos else {}
        if record == {}:
            pass
        elif not isinstance(record, dict) or not isinstance(record.get("chat"), str):
            bad += 1
        elif record.get("ev") == "rm":
            removed.add(record["chat"])
        elif isinstance(record.get("ex"), str) and isinstance(record.get("at"), str):
            last[record["ex"]] = (record["chat"], str(record.get("ev")), record["at"], pos)
        else:
            bad += 1
        pos = end + 1
    return bad


def last_chat_id(files: ChatFiles) -> str | None:
    """The most recently used chat: the one whose exchange was begun last.

    Reads the index backwards and stops at the first line that begins an exchange (a ``begin``
    line, or a ``full`` line written by reindex in start order); the last MiB almost always
    holds it, so ``rill -c`` does not pay for reading a large index.
    """
    try:
        with files.index_path.open("rb") as index:
            size = index.seek(0, os.SEEK_END)
            index.seek(max(0, size - TAIL_BYTES))
            tail = index.read()
    except OSError:
        tail, size = b"", 0
    if size > TAIL_BYTES:
        # The first line of the tail may be cut: skip it; the full read below covers it.
        text = tail[tail.find(b"\n") + 1 : tail.rfind(b"\n") + 1].decode("utf-8", "replace")
        found = _last_begun(files, text)
        if found is not None:
            return found
    return _last_begun(files, index_text(files)[0])


def _last_begun(files: ChatFiles, text: str) -> str | None:
    removed: set[str] = set()
    for line in reversed(text.split("\n")):
        match = INDEX_HEAD.match(line)
        if match is not None:
            chat, ev = match[2], match[3]
        else:
            record = decode_at(line, 0) if line else None
            if record is None:
                continue
            chat, ev = record["chat"], str(record.get("ev"))
        if ev == "rm":
            removed.add(chat)
        elif ev in ("begin", "full") and chat not in removed and files.chat_path(chat):
            return chat
    return None
