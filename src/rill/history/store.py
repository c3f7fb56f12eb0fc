"""``HistoryStore``: every history file under one root (the package docstring has the design)."""

from __future__ import annotations

import fcntl
import heapq
import json
import json.scanner
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from rill.errors import RillError, UsageError
from rill.files import (
    FILE_MODE,
    GroupSync,
    NotRegularFile,
    append,
    fsync_path,
    make_dirs,
    read_private,
    write_all,
    write_atomic,
    write_temporary,
)
from rill.history.files import locked, read_journal, read_optional, writer_alive
from rill.history.normalise import is_number, public_url
from rill.history.recorder import ExchangeRecorder
from rill.history.records import (
    _HEAD,
    _SAFE_ID,
    SCHEMA_VERSION,
    ExchangeStart,
    Format,
    HistoryError,
    _clean,
    _decode_at,
    _gc_paused,
    _iso,
    _number,
    _parse_chat,
    _read_chat,
    _snippet,
    _text_of,
    _title,
    _where,
    dump_chat,
    encode_line,
    index_record,
    new_id,
    now_iso,
    os_reason,
)

_EXTENSIONS = (".json", ".toml")
_TAIL_BYTES = 1 << 20  # how much of the index last_chat_id reads first
_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens")

_Changed = tuple[dict[str, Any], list[dict[str, Any]]]
"""A changed chat and the index records that go with the change."""
_Change = Callable[[dict[str, Any] | None], _Changed | None]
"""Makes a ``_Changed`` from a chat as stored (None: no such file), or None to change nothing."""


class HistoryStore:
    """All history files under ``root``; see the module docstring for the design.

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
        self.root = Path(root)
        self.fmt: Format = "toml" if fmt == "toml" else "json"
        self.clock = clock
        self.read_only = read_only
        self.not_saved = 0
        """How many answers ``begin`` could not record (its warning is shown only once)."""
        self._warn = warn
        self._said: set[str] = set()
        self._said_lock = threading.Lock()
        self._chats = self.root / "chats"
        self._journals = self.root / "journal"
        self._index = self.root / "index.jsonl"
        self._lock = self.root / ".lock"
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

    def _writable(self, action: str) -> None:
        if self.read_only:
            raise RillError(f"internal error: {action} on a read-only history store")

    def journal_path(self, exchange_id: str) -> Path:
        return self._journals / f"{exchange_id}.jsonl"

    def chat_path(self, chat_id: str) -> Path | None:
        """The file of chat ``chat_id`` (either extension), or None."""
        if not _SAFE_ID.fullmatch(chat_id):
            return None
        for suffix in _EXTENSIONS:
            path = self._chats / f"{chat_id}{suffix}"
            if path.is_file():
                return path
        return None

    def _chat_files(self) -> list[Path]:
        try:
            names = os.listdir(self._chats)
        except OSError:
            return []
        return sorted(
            self._chats / n for n in names if n.endswith(_EXTENSIONS) and not n.startswith(".")
        )

    def _iter_chats(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        for path in self._chat_files():
            try:
                yield path, self._read(path)
            except FileNotFoundError:
                continue  # removed while we were reading
            except HistoryError as exc:
                self.say(f"history: skipping {exc.message}")

    def _read(self, path: Path) -> dict[str, Any]:
        """The chat file at ``path``; each damaged exchange in it is skipped with a warning."""
        chat = _read_chat(path)
        for problem, _ex in chat.skipped:
            self.say(f"history: skipping a damaged exchange in {path}: {problem}")
        return chat

    # -- writing

    def begin(self, start: ExchangeStart) -> ExchangeRecorder:
        """Record the prompt (journal, chat file, index line) before the request is sent.

        Raises UsageError for an unknown ``chat_id`` and HistoryError for a damaged chat file,
        before anything is written. I/O problems only warn and return a disabled recorder.
        """
        self._writable("begin")
        if start.chat_id is not None:
            path = self.chat_path(start.chat_id)
            if path is None:
                raise UsageError(f"no chat matches {start.chat_id!r}")
            with suppress(FileNotFoundError):  # removed meanwhile: _begin says so
                _read_chat(path)  # a damaged chat file is reported before anything is written
        try:
            return self._begin(start)
        except OSError as exc:
            where, reason = _where(exc, self.root), os_reason(exc)
        except (ValueError, TypeError) as exc:
            where, reason = str(self.root), str(exc)
        with self._said_lock:
            self.not_saved += 1
        self.say(f"history: cannot write {where}: {reason}; the answer is not saved")
        return ExchangeRecorder(None, start.chat_id, {})

    def _begin(self, start: ExchangeStart) -> ExchangeRecorder:
        for directory in (self.root, self._chats, self._journals):
            make_dirs(directory)
        now = now_iso()
        exchange: dict[str, Any] = {
            "id": secrets.token_hex(8),
            "started_at": now,
            "status": "running",
            "messages": start.messages,
            "requested_model": start.requested_model,
            "request": start.request,
            "base_url": public_url(start.base_url),
        }
        if start.chat_id is not None:
            chat_id = start.chat_id
            path = self.chat_path(chat_id)
            if path is None:
                raise UsageError(f"no chat matches {chat_id!r}")
        else:
            chat_id = new_id()
            while self.chat_path(chat_id) is not None:
                chat_id = new_id()
            path = self._chats / f"{chat_id}.{self.fmt}"
        titles: list[str | None] = []

        def add(chat: dict[str, Any] | None) -> _Changed:
            if start.chat_id is None:
                if chat is not None or self.chat_path(chat_id) not in (None, path):
                    raise FileExistsError(17, "chat id already taken", str(path))
                chat = {
                    "schema_version": SCHEMA_VERSION,
                    "id": chat_id,
                    "title": _title(start.messages),
                    "created": now,
                    "updated": now,
                    "exchanges": [],
                }
            elif chat is None:
                raise UsageError(f"no chat matches {chat_id!r}")  # removed meanwhile
            title = chat.get("title", "") if not chat["exchanges"] else None
            titles[:] = [title]
            chat["exchanges"].append(exchange)
            chat["updated"] = now
            return chat, [index_record(chat_id, exchange, "begin", title)]

        # The journal exists (locked) before the chat file names the exchange, so a reader never
        # sees a running exchange without its journal while the writer lives.
        fd = self._open_journal(chat_id, exchange)
        try:
            self._change_chat(path, add)
        except BaseException:
            os.close(fd)
            with suppress(OSError):
                os.unlink(self.journal_path(exchange["id"]))
            raise
        return ExchangeRecorder(self, chat_id, exchange, path, fd, titles[0] if titles else None)

    def _change_chat(
        self,
        path: Path,
        change: _Change,
    ) -> bool:
        """Replace the chat file ``path`` by ``change(chat)`` and append its index records.

        ``change`` gets a fresh copy of the chat as stored (None when there is no file) and
        returns the new chat and its index records, or None to leave everything as it is. The new
        file is written and fsynced before the lock is taken; under the lock it is renamed into
        place only if the file still holds what ``change`` saw, else ``change`` runs again on the
        file as it now is. The folder and the index are fsynced once the lock is released, so
        many writers at once share the slow part instead of queueing for it. False when
        ``change`` left things as they were.
        """
        seen = read_optional(path)
        prepared = self._prepare(path, seen, change)
        try:
            with locked(self._lock):
                current = read_optional(path)
                if current != seen:
                    self._discard(prepared)
                    prepared = self._prepare(path, current, change)
                if prepared is None:
                    return False
                tmp, records = prepared
                self._ensure_index()
                os.replace(tmp, path)
                prepared = None
                for record in records:
                    self._index_append(record)
        finally:
            self._discard(prepared)
        # Many threads finishing at once (``rill batch``) share these fsyncs (group commit).
        errors = self._sync.sync(path.parent, self._index)
        if path.parent in errors:
            raise errors[path.parent]
        index_error = errors.get(self._index)
        if index_error is not None and not isinstance(index_error, FileNotFoundError):
            # a FileNotFoundError: dropped after a failed append, it is rebuilt when next read
            self.say(f"history: cannot write {self._index}: {os_reason(index_error)}")
        return True

    @staticmethod
    def _prepare(
        path: Path,
        raw: bytes | None,
        change: _Change,
    ) -> tuple[Path, list[dict[str, Any]]] | None:
        stored = None if raw is None else _parse_chat(path, raw)
        changed = change(stored)
        if changed is None:
            return None
        chat, records = changed
        if stored is not None and stored.skipped:  # damaged exchanges are kept as they were
            chat = {**chat, "exchanges": [*chat["exchanges"], *(ex for _p, ex in stored.skipped)]}
        return write_temporary(path, dump_chat(chat, path.suffix)), records

    @staticmethod
    def _discard(prepared: tuple[Path, list[dict[str, Any]]] | None) -> None:
        if prepared is not None:
            with suppress(OSError):
                os.unlink(prepared[0])

    def _open_journal(self, chat_id: str, exchange: dict[str, Any]) -> int:
        """Create the exchange's journal, already locked: it is written under a temporary name and
        renamed, so no reader ever sees it unlocked while its writer lives."""
        final = self.journal_path(exchange["id"])
        tmp = final.with_name(f".{final.name}.tmp")
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
        )
        try:
            os.fchmod(fd, FILE_MODE)
            fcntl.flock(fd, fcntl.LOCK_EX)
            header = {"chat": chat_id, "ex": exchange["id"], "at": exchange["started_at"]}
            write_all(fd, encode_line(header))
            os.fsync(fd)
            os.replace(tmp, final)
            fsync_path(self._journals)  # the rename itself survives a power loss
        except BaseException:
            os.close(fd)
            with suppress(OSError):
                os.unlink(tmp)
            with suppress(OSError):
                os.unlink(final)
            raise
        return fd

    def save_finished(self, chat_id: str, exchange: dict[str, Any], title: str | None) -> None:
        """Replace (or restore) ``exchange`` in its chat file and index it; a removed chat stays
        removed. Raises ``OSError`` (a ``LockTimeout`` when the lock stays taken)."""
        self._writable("save_finished")
        path = self.chat_path(chat_id)
        if path is None:
            return

        def replace(chat: dict[str, Any] | None) -> _Changed | None:
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

        self._change_chat(path, replace)

    def _index_append(self, record: dict[str, Any]) -> None:
        """Append an index line (lock held). If that fails the index is dropped, to be rebuilt."""
        try:
            append(self._index, encode_line(record))
        except OSError as exc:
            if isinstance(exc, NotRegularFile):
                self.say(f"history: {self._index} is not a regular file; replacing it")
            try:
                self._index.unlink(missing_ok=True)
            except OSError:
                self.say(f"history: cannot write {self._index}: {os_reason(exc)}")

    def _ensure_index(self) -> None:
        """Rebuild a missing index (lock held)."""
        if not self._index.exists() and self._chat_files():
            self._reindex_locked()

    def remove(self, chat_id: str) -> None:
        """Delete a chat file and its journals. The tombstone line in the index, which hides the
        chat's exchanges, is written first: a crash halfway leaves no listed chat without a file."""
        self._writable("remove")
        if self.chat_path(chat_id) is None:
            raise UsageError(f"no chat matches {chat_id!r}")
        try:
            with locked(self._lock):
                self._ensure_index()
                self._index_append({"chat": chat_id, "ev": "rm", "at": now_iso()})
                for suffix in _EXTENSIONS:
                    (self._chats / f"{chat_id}{suffix}").unlink(missing_ok=True)
                for journal in self._journals_of(chat_id):
                    journal.unlink(missing_ok=True)
        except OSError as exc:
            raise HistoryError(f"cannot remove chat {chat_id}: {os_reason(exc)}") from None
        for synced in (self._index, self._chats):
            with suppress(OSError):  # removed either way; this only makes it survive a crash
                fsync_path(synced)

    def _journals_of(self, chat_id: str) -> list[Path]:
        found = []
        for journal in self._journals.glob("*.jsonl"):
            try:
                with journal.open("rb") as handle:
                    header = json.loads(handle.readline())
            except (OSError, ValueError):
                continue
            if isinstance(header, dict) and header.get("chat") == chat_id:
                found.append(journal)
        return found

    def reindex(self) -> int:
        """Rebuild ``index.jsonl`` from the chat files (atomically); the number of exchanges."""
        self._writable("reindex")
        if not self.root.is_dir():
            return 0
        try:
            for directory in (self._chats, self._journals):
                make_dirs(directory)
            with locked(self._lock):
                return self._reindex_locked()
        except OSError as exc:
            raise HistoryError(f"cannot rebuild {self._index}: {os_reason(exc)}") from None

    def _reindex_locked(self) -> int:
        lines = self._index_lines_from_chats()
        write_atomic(self._index, b"".join(lines))
        return len(lines)

    def _index_lines_from_chats(self) -> list[bytes]:
        records = []
        for _path, chat in self._iter_chats():
            for n, ex in enumerate(chat["exchanges"]):
                ev = "begin" if ex.get("status") == "running" else "full"
                title = chat.get("title", "") if n == 0 else None
                records.append(index_record(chat["id"], ex, ev, title))
        records.sort(key=lambda r: str(r["at"]))  # file order is begin order (see last_chat_id)
        return [encode_line(r) for r in records]

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
        ids = sorted({p.stem for p in self._chat_files() if p.name.startswith(ref)}) if ref else []
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
            chat = self._read(path)
        except FileNotFoundError:
            raise UsageError(f"no chat matches {chat_id!r}") from None
        view, dead = self._resolve_running(chat, path)
        if dead and not self.read_only:
            with suppress(OSError, HistoryError, ValueError, TypeError):
                view = self._settle(chat_id) or view
        return view

    def _resolve_running(
        self, chat: dict[str, Any], path: Path | None = None
    ) -> tuple[dict[str, Any], list[str]]:
        """A copy of ``chat`` with running exchanges resolved from their journals, and the ids of
        those whose writer is gone. A running exchange whose journal is missing has usually just
        finished (its journal is dropped right after the chat file is saved): the chat file at
        ``path`` is then read again, and what it says now wins."""
        view, dead, missing = self._resolve_once(chat)
        if missing and path is not None:
            try:
                fresh = _read_chat(path)
            except (OSError, HistoryError):
                pass
            else:
                view, dead, _missing = self._resolve_once(fresh)
        return view, dead

    def _resolve_once(self, chat: dict[str, Any]) -> tuple[dict[str, Any], list[str], bool]:
        dead: list[str] = []
        missing = False
        exchanges = []
        for ex in chat["exchanges"]:
            if ex.get("status") == "running":
                journal = self.journal_path(ex["id"])
                alive = writer_alive(journal)
                missing = missing or alive is None
                content, reasoning = read_journal(journal)
                ex = dict(ex, answer=_clean({"content": content, "reasoning": reasoning or None}))
                if not alive:
                    ex.update(status="done", finish_reason="interrupted")
                    dead.append(ex["id"])
            exchanges.append(ex)
        return dict(chat, exchanges=exchanges), dead, missing

    def _settle(self, chat_id: str) -> dict[str, Any] | None:
        """Write interrupted exchanges back into the chat file and drop their journals; the chat
        as it now stands (None if it vanished)."""
        self._writable("settle")
        path = self.chat_path(chat_id)
        if path is None:
            return None
        settled: list[dict[str, Any]] = []
        gone: list[str] = []

        def resolve(chat: dict[str, Any] | None) -> _Changed | None:
            settled[:] = [] if chat is None else [chat]
            if chat is None:
                return None
            view, dead = self._resolve_running(chat)
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

        if self._change_chat(path, resolve):
            for exchange_id in gone:
                self.journal_path(exchange_id).unlink(missing_ok=True)
        return settled[0] if settled else None

    def origin(self, chat_id: str) -> tuple[str | None, str | None]:
        """The requested model and base URL of the chat's last exchange (None when unknown), so
        a continued chat goes on with the same model on the same server."""
        path = self.chat_path(chat_id)
        if path is None:
            raise UsageError(f"no chat matches {chat_id!r}")
        exchanges = self._read(path)["exchanges"]
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
            answer = ex.get("answer", {})
            content, tool_calls = answer.get("content", ""), answer.get("tool_calls")
            if not content and not tool_calls:
                continue
            # OpenAI-style APIs want null, not "", as the content of a reply made of tool calls.
            reply: dict[str, Any] = {"role": "assistant", "content": content or None}
            if tool_calls:
                reply["tool_calls"] = tool_calls
            if answer.get("reasoning_details"):
                reply["reasoning_details"] = answer["reasoning_details"]
            messages.append(reply)
        return ([system] if system is not None else []) + messages

    # -- reading all chats

    def search(self, text: str) -> list[dict[str, Any]]:
        """Case-insensitive search over prompts and answers, newest first: one hit per message
        with the chat id, exchange id, role and a one-line snippet around the match."""
        if not text:
            raise UsageError("search text is empty")
        pattern = re.compile(re.escape(text), re.IGNORECASE)
        hits: list[dict[str, Any]] = []
        for path, stored in self._iter_chats():
            chat, _dead = self._resolve_running(stored, path)
            for ex in chat["exchanges"]:
                said = [
                    (m.get("role", "user"), _text_of(m.get("content")))
                    for m in ex.get("messages", [])
                ]
                said.append(("assistant", ex.get("answer", {}).get("content", "")))
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
                                "snippet": _snippet(body, found.start(), found.end()),
                            }
                        )
        hits.sort(key=lambda hit: str(hit["started_at"]), reverse=True)
        return hits

    def export(self) -> Iterator[dict[str, Any]]:
        """Every exchange, oldest first: ``schema_version``, ``chat_id``, ``title``,
        ``exchange_id`` and the exchange's own fields (messages, answer, models, usage…)."""
        rows = []
        for path, stored in self._iter_chats():
            chat, _dead = self._resolve_running(stored, path)
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

    # -- the index

    def _index_text(self) -> tuple[str, int]:
        """The index's complete lines and its size in bytes, rebuilding it when it is missing."""
        try:
            raw = read_private(self._index)
        except FileNotFoundError:
            raw = self._rebuilt_index()
        except OSError as exc:
            self.say(f"history: cannot read {self._index}: {os_reason(exc)}")
            return "", 0
        end = raw.rfind(b"\n") + 1  # a line still being written has no newline yet
        return raw[:end].decode("utf-8", "replace"), end

    def _rebuilt_index(self) -> bytes:
        if not self._chat_files():
            return b""
        if self.read_only:
            return b"".join(self._index_lines_from_chats())
        try:
            with locked(self._lock):
                self._ensure_index()
                return read_private(self._index)
        except OSError as exc:
            self.say(f"history: cannot rebuild {self._index}: {os_reason(exc)}")
            return b"".join(self._index_lines_from_chats())

    def _scan(self, text: str) -> dict[str, tuple[str, str, str, int]]:
        """Exchange id → (chat id, event, started_at, offset in ``text``) of its last index line,
        leaving out the exchanges of removed chats."""
        last: dict[str, tuple[str, str, str, int]] = {}
        removed: set[str] = set()
        bad = pos = 0
        with _gc_paused():
            for match in _HEAD.finditer(text):
                start = match.start()
                if start > pos:
                    bad += self._scan_slowly(text, pos, start, last, removed)
                ex, chat, ev, at = match.groups()
                last[ex] = (chat, ev, at, start)
                pos = match.end() + 1
            if pos < len(text):
                bad += self._scan_slowly(text, pos, len(text), last, removed)
        if bad:
            self.say(f"history: skipped {bad} damaged line(s) in {self._index}")
        if removed:
            last = {ex: entry for ex, entry in last.items() if entry[0] not in removed}
        return last

    @staticmethod
    def _scan_slowly(
        text: str,
        pos: int,
        stop: int,
        last: dict[str, tuple[str, str, str, int]],
        removed: set[str],
    ) -> int:
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

    def last_chat_id(self) -> str | None:
        """The most recently used chat: the one whose exchange was begun last.

        Reads the index backwards and stops at the first line that begins an exchange (a
        ``begin`` line, or a ``full`` line written by reindex in start order); the last MiB
        almost always holds it, so ``rill -c`` does not pay for reading a large index.
        """
        try:
            with self._index.open("rb") as index:
                size = index.seek(0, os.SEEK_END)
                index.seek(max(0, size - _TAIL_BYTES))
                tail = index.read()
        except OSError:
            tail, size = b"", 0
        if size > _TAIL_BYTES:
            # The first line of the tail may be cut: skip it; the full read below covers it.
            text = tail[tail.find(b"\n") + 1 : tail.rfind(b"\n") + 1].decode("utf-8", "replace")
            found = self._last_begun(text)
            if found is not None:
                return found
        return self._last_begun(self._index_text()[0])

    def _last_begun(self, text: str) -> str | None:
        removed: set[str] = set()
        for line in reversed(text.split("\n")):
            match = _HEAD.match(line)
            if match is not None:
                chat, ev = match[2], match[3]
            else:
                record = _decode_at(line, 0) if line else None
                if record is None:
                    continue
                chat, ev = record["chat"], str(record.get("ev"))
            if ev == "rm":
                removed.add(chat)
            elif ev in ("begin", "full") and chat not in removed and self.chat_path(chat):
                return chat
        return None

    def list_chats(self, limit: int | None = 20) -> list[dict[str, Any]]:
        """Chats, most recently used first, from the index alone: id, title, created, updated,
        turns, model (served, else requested, of the last exchange), finish_reason of the last
        exchange (``running``/``interrupted`` while unfinished), prompt_tokens,
        completion_tokens and cost summed over the chat."""
        text, size = self._index_text()
        last = self._scan(text)
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
            record = _decode_at(text, start) if n is not None else None
            if n is not None and record is not None:
                groups[n].append(dict(record, ex=ex))
        return [
            self._chat_row(chat, group, size)
            for (_at, chat), group in zip(chosen, groups, strict=True)
        ]

    def _chat_row(self, chat_id: str, records: list[dict[str, Any]], size: int) -> dict[str, Any]:
        records.sort(key=lambda r: str(r.get("at", "")))
        newest = records[-1] if records else {}
        finish = newest.get("finish")
        if newest.get("ev") == "begin":
            finish = self._unfinished_reason(newest, size)
        title = next((r["title"] for r in records if isinstance(r.get("title"), str)), "")
        return {
            "id": chat_id,
            "title": title,
            "created": records[0].get("at") if records else None,
            "updated": max((str(r.get("end") or r.get("at") or "") for r in records), default=""),
            "turns": len(records),
            "model": newest.get("served") or newest.get("model"),
            "finish_reason": finish,
            "prompt_tokens": sum(_number(r.get("prompt_tokens")) for r in records),
            "completion_tokens": sum(_number(r.get("completion_tokens")) for r in records),
            "cost": _known_cost(records),
        }

    def _unfinished_reason(self, record: dict[str, Any], size: int) -> str | None:
        """``running`` while the writer holds the journal; otherwise the finish reason of an end
        line appended since the index was read, else ``interrupted``."""
        ex = str(record["ex"])
        if writer_alive(self.journal_path(ex)):
            return "running"
        try:
            with self._index.open("rb") as handle:
                handle.seek(size)
                tail = handle.read().decode("utf-8", "replace")
        except OSError:
            tail = ""
        for match in _HEAD.finditer(tail):
            if match[1] == ex and match[3] == "end":
                finish = (_decode_at(tail, match.start()) or {}).get("finish")
                return finish if isinstance(finish, str) else None
        return "interrupted"

    def usage(
        self, since: datetime | None = None, by: Literal["model", "day"] = "model"
    ) -> list[dict[str, Any]]:
        """Token and cost totals from the index alone, one row per served model (requested model
        while none was reported) sorted by cost, or per UTC day (``YYYY-MM-DD``) in date order.

        Rows: key, requests, prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens,
        cost. ``since`` is inclusive; a naive datetime is local time. The grand total is
        ``usage_total(rows)``, a row whose key is "total".
        """
        floor = _iso(since) if since is not None else ""
        text, _size = self._index_text()
        rows: dict[str, list[Any]] = {}
        for _chat, _ev, at, start in self._scan(text).values():
            record = _decode_at(text, start) if at >= floor else None
            if record is None:
                continue
            get = record.get
            numbers = (
                get("prompt_tokens", 0),
                get("completion_tokens", 0),
                get("reasoning_tokens", 0),
                get("cached_tokens", 0),
            )
            if not all(is_number(n) for n in numbers):
                continue  # a hand-edited line with a non-number is left out
            key = str((at[:10] if by == "day" else get("served") or get("model")) or "unknown")
            row = rows.get(key)
            if row is None:
                row = rows[key] = [0, 0, 0, 0, 0, 0.0, 0]
            row[0] += 1
            for n, number in enumerate(numbers, start=1):
                row[n] += number
            cost = get("cost")
            if is_number(cost):
                row[5] += cost
            else:
                row[6] += 1  # no cost reported: unknown, not free
        result = [_usage_row(key, row) for key, row in rows.items()]
        if by == "day":
            return sorted(result, key=lambda r: str(r["key"]))
        return sorted(result, key=lambda r: (-(r["cost"] or 0), -r["requests"], str(r["key"])))


def _usage_row(key: str, row: list[int | float]) -> dict[str, Any]:
    """A usage row; ``cost`` is None when no request in it reported one."""
    requests, without = int(row[0]), int(row[6])
    return {
        "key": key,
        "requests": requests,
        **{field: row[n] for n, field in enumerate(_USAGE_FIELDS, start=1)},
        "cost": round(float(row[5]), 9) if requests > without else None,
        "requests_without_cost": without,
    }


def _known_cost(records: list[dict[str, Any]]) -> float | None:
    """The sum of the reported costs; None when none was reported."""
    costs = [r["cost"] for r in records if is_number(r.get("cost"))]
    return round(sum(costs), 9) if costs else None


def usage_total(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Sum ``HistoryStore.usage`` rows into one row whose key is "total"."""
    total: list[int | float] = [0, 0, 0, 0, 0, 0.0, 0]
    fields = ("requests", *_USAGE_FIELDS, "cost", "requests_without_cost")
    for row in rows:
        for n, field in enumerate(fields):
            total[n] += _number(row.get(field))
    return _usage_row("total", total)
