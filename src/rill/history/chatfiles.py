"""``ChatFiles``: the files under a history root and the one way a chat file changes.

A chat file is only ever replaced whole, under the store's lock, together with the index lines
that describe the change (the package docstring has the design). Everything else in the store
reads through these paths and writes through ``change_chat``.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

from rill.errors import RillError
from rill.files import (
    FILE_MODE,
    GroupSync,
    NotRegularFile,
    append,
    child,
    write_all,
    write_atomic,
    write_temporary,
)
from rill.history.files import locked, read_optional
from rill.history.records import (
    SAFE_ID,
    Format,
    HistoryError,
    dump_chat,
    encode_line,
    index_record,
    os_reason,
    parse_chat,
    read_chat,
)

EXTENSIONS = (".json", ".toml")

Changed = tuple[dict[str, Any], list[dict[str, Any]]]
"""A changed chat and the index records that go with the change."""
Change = Callable[[dict[str, Any] | None], Changed | None]
"""Makes a ``Changed`` from a chat as stored (None: no such file), or None to change nothing."""
_Prepared = tuple[Path, list[dict[str, Any]]]


class ChatFiles:
    """The chat files, journals, index and lock under ``root``.

    ``fmt`` is the format of new chats; ``warn`` receives one-line messages meant for stderr
    (``say`` passes each distinct one on once). With ``read_only`` the writing methods of the
    store raise ``RillError`` (``require_writable``).
    """

    def __init__(
        self,
        root: Path,
        fmt: Format = "json",
        warn: Callable[[str], None] | None = None,
        read_only: bool = False,
    ) -> None:
        self.root = Path(root)
        self.fmt: Format = "toml" if fmt == "toml" else "json"
        self.read_only = read_only
        self.chats_dir = self.root / "chats"
        self.journals_dir = self.root / "journal"
        self.index_path = self.root / "index.jsonl"
        self.lock_path = self.root / ".lock"
        self._warn = warn
        self._said: set[str] = set()
        self._said_lock = threading.Lock()
        self._sync = GroupSync()

    # -- paths and messages

    def say(self, message: str) -> None:
        """Warn once per distinct message."""
        with self._said_lock:
            if message in self._said:
                return
            self._said.add(message)
        if self._warn is not None:
            self._warn(message)

    def require_writable(self, action: str) -> None:
        if self.read_only:
            raise RillError(f"internal error: {action} on a read-only history store")

    def journal_path(self, exchange_id: str) -> Path:
        return child(self.journals_dir, f"{exchange_id}.jsonl")

    def chat_path(self, chat_id: str) -> Path | None:
        """The file of chat ``chat_id`` (either extension), or None."""
        if not SAFE_ID.fullmatch(chat_id):
            return None
        for suffix in EXTENSIONS:
            path = child(self.chats_dir, f"{chat_id}{suffix}")
            if path.is_file():
                return path
        return None

    def chat_files(self) -> list[Path]:
        try:
            names = os.listdir(self.chats_dir)
        except OSError:
            return []
        return sorted(
            self.chats_dir / n for n in names if n.endswith(EXTENSIONS) and not n.startswith(".")
        )

    def iter_chats(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        """Every readable chat file; a damaged one is skipped with a warning naming it."""
        for path in self.chat_files():
            try:
                yield path, self.read(path)
            except FileNotFoundError:
                continue  # removed while we were reading
            except HistoryError as exc:
                self.say(f"history: skipping {exc.message}")

    def read(self, path: Path) -> dict[str, Any]:
        """The chat file at ``path``; each damaged exchange in it is skipped with a warning."""
        chat = read_chat(path)
        for problem, _ex in chat.skipped:
            self.say(f"history: skipping a damaged exchange in {path}: {problem}")
        return chat

    # -- changing a chat

    def change_chat(self, path: Path, change: Change, *, durable: bool = True) -> bool:
        """Replace the chat file ``path`` by ``change(chat)`` and append its index records.

        ``change`` gets a fresh copy of the chat as stored (None when there is no file) and
        returns the new chat and its index records, or None to leave everything as it is. The new
        file is written and fsynced before the lock is taken; under the lock it is renamed into
        place only if the file still holds what ``change`` saw, else ``change`` runs again on the
        file as it now is. The folder and the index are fsynced once the lock is released, so
        many writers at once share the slow part instead of queueing for it. Without
        ``durable`` nothing is fsynced: the change survives the process being killed, not a power
        loss (a prompt's record before its answer: the answer's record, fsynced, makes it
        durable). False when ``change`` left things as they were.
        """
        seen = read_optional(path)
        prepared = _prepare(path, seen, change, durable)
        try:
            with locked(self.lock_path):
                current = read_optional(path)
                if current != seen:
                    _discard(prepared)
                    prepared = _prepare(path, current, change, durable)
                if prepared is None:
                    return False
                tmp, records = prepared
                self.ensure_index()
                os.replace(tmp, path)
                prepared = None
                for record in records:
                    self.index_append(record)
        finally:
            _discard(prepared)
        if durable:
            self._sync_after_change(path)
        return True

    def _sync_after_change(self, path: Path) -> None:
        # Many threads finishing at once (``rill batch``) share these fsyncs (group commit).
        errors = self._sync.sync(path.parent, self.index_path)
        if path.parent in errors:
            raise errors[path.parent]
        index_error = errors.get(self.index_path)
        if index_error is not None and not isinstance(index_error, FileNotFoundError):
            # a FileNotFoundError: dropped after a failed append, it is rebuilt when next read
            self.say(f"history: cannot write {self.index_path}: {os_reason(index_error)}")

    # -- the index (lock held)

    def index_append(self, record: dict[str, Any]) -> None:
        """Append an index line (lock held). If that fails the index is dropped, to be rebuilt."""
        try:
            append(self.index_path, encode_line(record))
        except OSError as exc:
            if isinstance(exc, NotRegularFile):
                self.say(f"history: {self.index_path} is not a regular file; replacing it")
            try:
                self.index_path.unlink(missing_ok=True)
            except OSError:
                self.say(f"history: cannot write {self.index_path}: {os_reason(exc)}")

    def ensure_index(self) -> None:
        """Rebuild a missing index (lock held)."""
        if not self.index_path.exists() and self.chat_files():
            self.reindex_locked()

    def reindex_locked(self) -> int:
        """Rewrite the index from the chat files (lock held); the number of exchanges."""
        lines = self.index_lines_from_chats()
        write_atomic(self.index_path, b"".join(lines))
        return len(lines)

    def index_lines_from_chats(self) -> list[bytes]:
        records = []
        for _path, chat in self.iter_chats():
            for n, ex in enumerate(chat["exchanges"]):
                ev = "begin" if ex.get("status") == "running" else "full"
                title = chat.get("title", "") if n == 0 else None
                records.append(index_record(chat["id"], ex, ev, title))
        records.sort(key=lambda r: str(r["at"]))  # file order is begin order (see last_chat_id)
        return [encode_line(r) for r in records]

    # -- journals

    def open_journal(self, chat_id: str, exchange: dict[str, Any]) -> int:
        """Create the exchange's journal, already locked: it is written under a temporary name and
        renamed, so no reader ever sees it unlocked while its writer lives. Like each read's text
        appended to it, it is not fsynced: it is there for a run that is killed, and a finished
        answer is made durable in its chat file."""
        final = self.journal_path(exchange["id"])
        tmp = child(self.journals_dir, f".{final.name}.tmp")
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
        )
        try:
            os.fchmod(fd, FILE_MODE)
            fcntl.flock(fd, fcntl.LOCK_EX)
            header = {"chat": chat_id, "ex": exchange["id"], "at": exchange["started_at"]}
            write_all(fd, encode_line(header))
            os.replace(tmp, final)
        except BaseException:
            os.close(fd)
            with suppress(OSError):
                os.unlink(tmp)
            with suppress(OSError):
                os.unlink(final)
            raise
        return fd

    def journals_of(self, chat_id: str) -> list[Path]:
        """The journals whose header names chat ``chat_id``."""
        found = []
        for journal in self.journals_dir.glob("*.jsonl"):
            try:
                with journal.open("rb") as handle:
                    header = json.loads(handle.readline())
            except (OSError, ValueError):
                continue
            if isinstance(header, dict) and header.get("chat") == chat_id:
                found.append(journal)
        return found


def _prepare(path: Path, raw: bytes | None, change: Change, durable: bool) -> _Prepared | None:
    stored = None if raw is None else parse_chat(path, raw)
    changed = change(stored)
    if changed is None:
        return None
    chat, records = changed
    if stored is not None and stored.skipped:  # damaged exchanges are kept as they were
        chat = {**chat, "exchanges": [*chat["exchanges"], *(ex for _p, ex in stored.skipped)]}
    return write_temporary(path, dump_chat(chat, path.suffix), sync=durable), records


def _discard(prepared: _Prepared | None) -> None:
    if prepared is not None:
        with suppress(OSError):
            os.unlink(prepared[0])
