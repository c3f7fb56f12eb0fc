"""Attached files in history: each stored once, by content, and shared between chats.

A file's bytes live in ``attachments/<sha256>`` under the history root (0600, written atomically,
never rewritten: the name is the content). An exchange's messages keep, in each attachment's
place, a record of it (``Attachment.record``: name or URL, MIME type, size, hash); continuing a
chat turns the records back into parts from these files (checked against their hash), so a file
that has since gone from its own folder is sent again. A stored file that no chat refers to any
more is removed with the last chat that did (``sweep``, under the store's lock).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rill.files import child, make_dirs, read_private, write_atomic
from rill.history.records import HistoryError
from rill.stream.parts import Attachment, attachment_in

_HASH = re.compile(r"[0-9a-f]{64}")
_HASH_BYTES = re.compile(rb"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")


class Blobs:
    """The stored attachments under a history root."""

    def __init__(self, root: Path) -> None:
        self.dir = Path(root) / "attachments"

    def path(self, sha256: str) -> Path:
        if not _HASH.fullmatch(sha256):
            raise HistoryError(f"history: {sha256!r} is not an attachment's hash")
        return child(self.dir, sha256)

    def put(self, attachment: Attachment) -> None:
        """Store the file's bytes unless they are there already (a URL stores nothing)."""
        if attachment.data is None or attachment.sha256 is None:
            return
        path = self.path(attachment.sha256)
        if path.is_file():
            return
        make_dirs(self.dir)
        write_atomic(path, attachment.data)

    def get(self, record: dict[str, Any]) -> Attachment:
        """The attachment a history record stands for, its bytes read back and checked."""
        mime, name = str(record.get("mime") or ""), str(record.get("name") or "")
        if record.get("url"):
            url = str(record["url"])
            return Attachment(mime, url, url=url)
        sha256 = str(record.get("sha256") or "")
        path = self.path(sha256)
        try:
            data = read_private(path)
        except OSError as exc:
            raise HistoryError(
                f"history: the attached file {name} is missing from {self.dir} "
                f"({exc.strerror or exc}); it cannot be sent again"
            ) from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise HistoryError(f"history: the stored copy of {name} ({path}) is damaged")
        return Attachment(mime, name, data=data, sha256=sha256)

    def sweep(self, referenced: set[str]) -> int:
        """Remove every stored file whose hash is not in ``referenced``; how many went."""
        try:
            names = os.listdir(self.dir)
        except OSError:
            return 0
        removed = 0
        for name in names:
            if _HASH.fullmatch(name) and name not in referenced:
                (self.dir / name).unlink(missing_ok=True)
                removed += 1
        return removed


def stored_messages(
    messages: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[Attachment]]:
    """The messages as history keeps them (each attachment's part replaced by its record) and
    the attachments whose bytes must be stored."""
    found: list[Attachment] = []
    out = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            out.append(message)
            continue
        parts = []
        for part in content:
            attachment = attachment_in(part)
            if attachment is None:
                parts.append(part)
            else:
                found.append(attachment)
                parts.append(attachment.record())
        out.append({**message, "content": parts})
    return out, found


def records_in(messages: Iterable[Any]) -> list[dict[str, Any]]:
    """The attachment records in stored messages."""
    return [
        part
        for message in messages
        if isinstance(message, dict) and isinstance(message.get("content"), list)
        for part in message["content"]
        if isinstance(part, dict) and part.get("type") == "attachment"
    ]


def hashes_in(chat_file: bytes) -> set[str]:
    """Every hash a chat file may refer to: any 64 hex digits in it (a damaged file keeps its
    attachments)."""
    return {match.decode() for match in _HASH_BYTES.findall(chat_file)}


def sent_messages(blobs: Blobs, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored messages made sendable again: each record becomes its part, from its stored copy."""
    out = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list) or not records_in([message]):
            out.append(message)
            continue
        parts = [
            blobs.get(part).part()
            if isinstance(part, dict) and part.get("type") == "attachment"
            else part
            for part in content
        ]
        out.append({**message, "content": parts})
    return out
