"""``HistoryStore``: every history file under one root (the package docstring has the design).

The store's parts live beside it: ``chatfiles`` (paths, and the one way a chat file changes),
``running`` (unfinished exchanges), ``index`` (reading ``index.jsonl``), ``listing`` (the chat
list), ``usage`` (token and cost totals) and ``search`` (search and export).
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from rill.errors import UsageError
from rill.files import child, fsync_path, make_dirs
from rill.history import index, listing, running
from rill.history import search as searching
from rill.history import usage as totals
from rill.history.blobs import Blobs, hashes_in, sent_messages, stored_messages
from rill.history.chatfiles import EXTENSIONS, Changed, ChatFiles
from rill.history.files import locked
from rill.history.normalise import public_url
from rill.history.recorder import ExchangeRecorder
from rill.history.records import (
    SCHEMA_VERSION,
    ExchangeStart,
    Format,
    HistoryError,
    failed_path,
    index_record,
    new_id,
    now_iso,
    os_reason,
    read_chat,
    title_of,
)
from rill.history.usage import usage_total

__all__ = ["HistoryStore", "usage_total"]  # usage_total: kept importable from here


class HistoryStore(ChatFiles):
    """All history files under ``root``; see the package docstring for the design.

    ``fmt`` is the format of new chats (existing chats keep theirs). ``warn`` receives one-line
    messages meant for stderr. ``clock`` paces journal writes (tests pass a fake one). With
    ``read_only`` nothing under ``root`` is ever created or changed (``rill --no-history -c``,
    shell completion); ``begin``, ``remove`` and ``reindex`` then raise ``RillError``.
    Reading methods skip damaged chat files with a warning naming the file; ``load`` and
    ``conversation`` raise ``HistoryError`` (exit 3) for one; unknown or ambiguous chat ids are
    ``UsageError`` (exit 2).
    """

    def __init__(
        self,
        root: Path,
        fmt: Format = "json",
        warn: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        read_only: bool = False,
    ) -> None:
        super().__init__(root, fmt, warn, read_only)
        self.blobs = Blobs(self.root)
        self.clock = clock
        self.not_saved = 0
        """How many answers ``begin`` could not record (its warning is shown only once)."""
        self._not_saved_lock = threading.Lock()

    # -- writing

    def begin(self, start: ExchangeStart) -> ExchangeRecorder:
        """Record the prompt (journal, chat file, index line) before the request is sent.

        Raises UsageError for an unknown ``chat_id`` and HistoryError for a damaged chat file,
        before anything is written. I/O problems only warn and return a disabled recorder.
        """
        self.require_writable("begin")
        if start.chat_id is not None:
            path = self.chat_path(start.chat_id)
            if path is None:
                raise UsageError(f"no chat matches {start.chat_id!r}")
            with suppress(FileNotFoundError):  # removed meanwhile: _begin says so
                read_chat(path)  # a damaged chat file is reported before anything is written
        try:
            return self._begin(start)
        except OSError as exc:
            where, reason = failed_path(exc, self.root), os_reason(exc)
        except (ValueError, TypeError) as exc:
            where, reason = str(self.root), str(exc)
        except RecursionError:
            where, reason = str(self.root), "the messages are nested too deep to store"
        with self._not_saved_lock:
            self.not_saved += 1
        self.say(f"history: cannot write {where}: {reason}; the answer is not saved")
        return ExchangeRecorder(None, start.chat_id, {})

    def _begin(self, start: ExchangeStart) -> ExchangeRecorder:
        for directory in (self.root, self.chats_dir, self.journals_dir):
            make_dirs(directory)
        # Attached files are stored first: a chat file never names one that is not there.
        messages, attached = stored_messages(start.messages)
        for attachment in attached:
            self.blobs.put(attachment)
        now = now_iso()
        exchange: dict[str, Any] = {
            "id": secrets.token_hex(8),
            "started_at": now,
            "status": "running",
            "messages": messages,
            "requested_model": start.requested_model,
            "request": start.request,
            "base_url": public_url(start.base_url),
        }
        if start.tool_results:
            exchange["tool_results"] = start.tool_results
        if not start.sent:
            exchange["sent"] = False
        chat_id, path = self._chat_to_add_to(start.chat_id)
        titles: list[str | None] = []

        def add(chat: dict[str, Any] | None) -> Changed:
            chat = self._chat_as_begun(chat, chat_id, path, start, now)
            title = chat.get("title", "") if not chat["exchanges"] else None
            titles[:] = [title]
            chat["exchanges"].append(exchange)
            chat["updated"] = now
            return chat, [index_record(chat_id, exchange, "begin", title)]

        # The journal exists (locked) before the chat file names the exchange, so a reader never
        # sees a running exchange without its journal while the writer lives.
        fd = self.open_journal(chat_id, exchange)
        try:
            self.change_chat(path, add, durable=False)  # see change_chat: the finish syncs
        except BaseException:
            os.close(fd)
            with suppress(OSError):
                os.unlink(self.journal_path(exchange["id"]))
            raise
        for attachment in attached:  # a concurrent `history rm` swept it before the rename
            self.blobs.put(attachment)
        return ExchangeRecorder(self, chat_id, exchange, path, fd, titles[0] if titles else None)

    def _chat_to_add_to(self, chat_id: str | None) -> tuple[str, Path]:
        """The id and file of the chat to continue, or of a new chat (``chat_id`` None)."""
        if chat_id is not None:
            path = self.chat_path(chat_id)
            if path is None:
                raise UsageError(f"no chat matches {chat_id!r}")
            return chat_id, path
        chat_id = new_id()
        while self.chat_path(chat_id) is not None:
            chat_id = new_id()
        return chat_id, child(self.chats_dir, f"{chat_id}.{self.fmt}")

    def _chat_as_begun(
        self,
        chat: dict[str, Any] | None,
        chat_id: str,
        path: Path,
        start: ExchangeStart,
        now: str,
    ) -> dict[str, Any]:
        """The chat a new exchange goes into: ``chat`` as stored, or a new one."""
        if start.chat_id is not None:
            if chat is None:
                raise UsageError(f"no chat matches {chat_id!r}")  # removed meanwhile
            return chat
        if chat is not None or self.chat_path(chat_id) not in (None, path):
            raise FileExistsError(17, "chat id already taken", str(path))
        return {
            "schema_version": SCHEMA_VERSION,
            "id": chat_id,
            "title": title_of(start.messages),
            "created": now,
            "updated": now,
            "exchanges": [],
        }

    def save_finished(self, chat_id: str, exchange: dict[str, Any], title: str | None) -> None:
        """Replace (or restore) ``exchange`` in its chat file and index it; a removed chat stays
        removed. Raises ``OSError`` (a ``LockTimeout`` when the lock stays taken)."""
        self.require_writable("save_finished")
        path = self.chat_path(chat_id)
        if path is None:
            return

        def replace(chat: dict[str, Any] | None) -> Changed | None:
            if chat is None:
                return None  # removed meanwhile
            exchanges = chat["exchanges"]
            at = next((i for i, ex in enumerate(exchanges) if ex["id"] == exchange["id"]), None)
            if at is None:
                exchanges.append(exchange)
            else:
                exchanges[at] = exchange
            chat["updated"] = exchange.get("finished_at") or now_iso()
            return chat, [index_record(chat_id, exchange, "end", title)]

        self.change_chat(path, replace)

    def remove(self, chat_id: str) -> None:
        """Delete a chat file and its journals. The tombstone line in the index, which hides the
        chat's exchanges, is written first: a crash halfway leaves no listed chat without a file."""
        self.require_writable("remove")
        if self.chat_path(chat_id) is None:
            raise UsageError(f"no chat matches {chat_id!r}")
        try:
            with locked(self.lock_path):
                self.ensure_index()
                self.index_append({"chat": chat_id, "ev": "rm", "at": now_iso()})
                for suffix in EXTENSIONS:
                    child(self.chats_dir, f"{chat_id}{suffix}").unlink(missing_ok=True)
                for journal in self.journals_of(chat_id):
                    journal.unlink(missing_ok=True)
                self._sweep_attachments()
        except OSError as exc:
            raise HistoryError(f"cannot remove chat {chat_id}: {os_reason(exc)}") from None
        for synced in (self.index_path, self.chats_dir):
            with suppress(OSError):  # removed either way; this only makes it survive a crash
                fsync_path(synced)

    def _sweep_attachments(self) -> None:
        """Remove the stored attachments no chat refers to any more (under the lock). Every
        hash-like text in a chat file counts as a reference, so a damaged file (or exchange)
        keeps its attachments; a chat file that cannot be read at all keeps every one."""
        if not self.blobs.dir.is_dir():
            return
        referenced: set[str] = set()
        for path in self.chat_files():
            try:
                referenced |= hashes_in(path.read_bytes())
            except FileNotFoundError:
                continue
            except OSError:
                return
        with suppress(OSError):  # what stays is only disk space; the chat is gone either way
            self.blobs.sweep(referenced)

    def reindex(self) -> int:
        """Rebuild ``index.jsonl`` from the chat files (atomically); the number of exchanges."""
        self.require_writable("reindex")
        if not self.root.is_dir():
            return 0
        try:
            for directory in (self.chats_dir, self.journals_dir):
                make_dirs(directory)
            with locked(self.lock_path):
                return self.reindex_locked()
        except OSError as exc:
            raise HistoryError(f"cannot rebuild {self.index_path}: {os_reason(exc)}") from None

    # -- reading one chat

    def resolve(self, ref: str) -> str:
        """A chat id from "last", a full id or a unique prefix; UsageError otherwise."""
        if ref == "last":
            last = self.last_chat_id()
            if last is None:
                raise UsageError("no chat matches 'last': the history is empty")
            return last
        if self.chat_path(ref) is not None:
            return ref
        ids = sorted({p.stem for p in self.chat_files() if p.name.startswith(ref)}) if ref else []
        if len(ids) == 1:
            return ids[0]
        if not ids:
            raise UsageError(f"no chat matches {ref!r}")
        shown = ", ".join(ids[:5]) + (", …" if len(ids) > 5 else "")
        raise UsageError(f"{ref!r} matches {len(ids)} chats: {shown}")

    def load(self, chat_id: str) -> dict[str, Any]:
        """The chat record. Running exchanges show their partial answer; those whose writer is
        gone become ``finish_reason: "interrupted"``, and that is written back when possible
        (never by a read-only store)."""
        path = self.chat_path(chat_id)
        if path is None:
            raise UsageError(f"no chat matches {chat_id!r}")
        try:
            chat = self.read(path)
        except FileNotFoundError:
            raise UsageError(f"no chat matches {chat_id!r}") from None
        view, dead = running.resolve_running(self, chat, path)
        if dead and not self.read_only:
            with suppress(OSError, HistoryError, ValueError, TypeError):
                view = running.settle(self, chat_id) or view
        return view

    def origin(self, chat_id: str) -> tuple[str | None, str | None]:
        """The requested model and base URL of the chat's last exchange (None when unknown), so
        a continued chat goes on with the same model on the same server."""
        path = self.chat_path(chat_id)
        if path is None:
            raise UsageError(f"no chat matches {chat_id!r}")
        exchanges = self.read(path)["exchanges"]
        last = exchanges[-1] if exchanges else {}
        model, url = last.get("requested_model"), last.get("base_url")
        return (
            model if isinstance(model, str) and model else None,
            url if isinstance(url, str) and url else None,
        )

    def conversation(self, chat_id: str) -> list[dict[str, Any]]:
        """The messages that continue a chat: one system message first (the latest one set),
        then each turn's messages and its answer, partial answers included; a turn that produced
        nothing adds no assistant message."""
        system: dict[str, Any] | None = None
        messages: list[dict[str, Any]] = []
        for ex in self.load(chat_id)["exchanges"]:
            for message in ex.get("messages", []):
                if message.get("role") == "system":
                    system = message
                else:
                    messages.append(message)
            reply = _reply(ex.get("answer", {}))
            if reply is not None:
                messages.append(reply)
        # Attached files are sent again from history's own copies.
        return sent_messages(self.blobs, ([system] if system is not None else []) + messages)

    # -- reading all chats, and the index

    def search(self, text: str) -> list[dict[str, Any]]:
        """See ``rill.history.search.search``."""
        return searching.search(self, text)

    def export(self) -> Iterator[dict[str, Any]]:
        """See ``rill.history.search.export``."""
        return searching.export(self)

    def last_chat_id(self) -> str | None:
        """See ``rill.history.index.last_chat_id``."""
        return index.last_chat_id(self)

    def list_chats(self, limit: int | None = 20) -> list[dict[str, Any]]:
        """See ``rill.history.listing.list_chats``."""
        return listing.list_chats(self, limit)

    def usage(
        self, since: datetime | None = None, by: Literal["model", "day"] = "model"
    ) -> list[dict[str, Any]]:
        """See ``rill.history.usage.usage``; the grand total is ``usage_total(rows)``."""
        return totals.usage(self, since, by)


def _reply(answer: dict[str, Any]) -> dict[str, Any] | None:
    """The assistant message an exchange's answer adds to a continued chat (None: nothing)."""
    content, tool_calls = answer.get("content", ""), answer.get("tool_calls")
    if not content and not tool_calls:
        return None
    # OpenAI-style APIs want null, not "", as the content of a reply made of tool calls.
    reply: dict[str, Any] = {"role": "assistant", "content": content or None}
    if tool_calls:
        reply["tool_calls"] = tool_calls
    if answer.get("reasoning_details"):
        reply["reasoning_details"] = answer["reasoning_details"]
    return reply
