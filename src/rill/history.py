"""The history store: every exchange is on disk before its request is sent, and nothing is lost.

Under the store's root (directories 0700, files 0600, whatever the umask) each chat is one file,
``chats/<chat_id>.json`` or ``.toml``, holding its exchanges: this turn's messages, the request
options, the requested and served model, the answer, usage, timings and errors. Chat files are the
source of truth and are only ever replaced whole: the new file is written and fsynced under a
temporary name first, then, inside a short critical section serialised across processes by
``flock`` on ``.lock`` (and across the threads of one process by a lock they queue on), it is
renamed into place only if the chat file still holds what the change was based on (else the
change is made again there), so concurrent runs appending to one chat never lose an exchange.
While an answer streams, its new text is appended about once a second to
``journal/<exchange_id>.jsonl``, which the writing process holds under an exclusive ``flock`` for
its whole life: a reader that can take a shared lock on it knows the writer is gone (SIGKILL,
power loss) and shows the exchange as ``interrupted`` with the journalled partial answer; ``load``
writes that resolution back into the chat file. ``index.jsonl`` is an append-only log, one compact
JSON line per event (exchange begun, exchange finished, chat removed; the last line for an
exchange wins), each written by a single ``os.write`` on an ``O_APPEND`` descriptor inside the
same critical section. ``list_chats``, ``usage`` and ``last_chat_id`` read only the index, so they
stay fast with 100,000 exchanges; it is a cache that ``reindex`` rebuilds from the chat files, and
it is rebuilt by itself when missing. Failing to write never breaks a run: the problem is reported
through ``warn`` (once per distinct message; ``not_saved`` counts the answers left unrecorded) and
the answer still streams.

A store opened with ``read_only=True`` never creates, writes, renames or deletes anything under
its root: a missing index is rebuilt in memory, interrupted exchanges are resolved in memory, and
the writing methods raise ``RillError`` (calling them is a bug).
"""

from __future__ import annotations

import fcntl
import gc
import heapq
import json
import json.scanner
import os
import re
import secrets
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import tomli_w

from rill.errors import ExitCode, RillError, UsageError

__all__ = [
    "SCHEMA_VERSION",
    "ExchangeStart",
    "Format",
    "HistoryError",
    "HistoryStore",
    "Recorder",
    "new_id",
    "usage_total",
]

SCHEMA_VERSION = 1
Format = Literal["json", "toml"]

_EXTENSIONS = (".json", ".toml")
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DIR_MODE = 0o700
_FILE_MODE = 0o600
_JOURNAL_EVERY = 1.0  # seconds between journal appends while an answer streams
_COMPACT_MASK = 4095  # join unjournaled pieces every 4,096 deltas
_LOCK_TIMEOUT = 10.0  # a stopped process must not freeze every other run
_FINISH_PATIENCE = 60.0  # how long a finished answer keeps waiting for a busy lock
_TITLE_CHARS = 60
_SNIPPET_CHARS = 40
_TAIL_BYTES = 1 << 20  # how much of the index last_chat_id reads first
_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens")


class HistoryError(RillError):
    """A chat file cannot be read back (bad JSON/TOML, wrong types) or the store cannot be changed.

    It exits 3 like an unreadable config file: the user's own files need attention; it is not a
    bug in rill (exit 1) and not a bad argument (exit 2).
    """

    exit_code = ExitCode.CONFIG


def new_id() -> str:
    """A new chat id: 12 random lowercase hex characters."""
    return secrets.token_hex(6)


@dataclass(frozen=True, slots=True)
class ExchangeStart:
    """What ``HistoryStore.begin`` records before the request is sent."""

    chat_id: str | None
    """The chat to continue; None creates a new chat."""
    messages: list[dict[str, Any]]
    """The messages this turn adds (an optional system message, then the user's)."""
    requested_model: str | None
    request: dict[str, Any]
    """Request options sent besides the messages; never the API key."""
    base_url: str


# --- small pure helpers -------------------------------------------------------------------------


def _now() -> str:
    return _iso(datetime.now(UTC))


def _iso(moment: datetime) -> str:
    # One fixed-width UTC spelling, so timestamps compare correctly as strings in the index.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clean(value: Any) -> Any:
    """Drop None recursively: TOML has no null (tomli_w raises), and JSON files stay alike."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value if v is not None]
    return value


def _has_crlf(value: Any) -> bool:
    if isinstance(value, str):
        return "\r\n" in value
    if isinstance(value, dict):
        return any(_has_crlf(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_crlf(v) for v in value)
    return False


def _dump(chat: dict[str, Any], suffix: str) -> bytes:
    data = _clean(chat)
    if suffix == ".toml":
        # tomli_w turns CRLF into LF inside multi-line strings; such text is kept byte-exact by
        # falling back to escaped one-line strings.
        text = tomli_w.dumps(data, multiline_strings=not _has_crlf(data))
    else:
        text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    return text.encode("utf-8", "replace")


def _first_line(text: str) -> str:
    lines = text.splitlines()
    return lines[0] if lines else ""


def _check_exchange(ex: Any) -> str | None:
    if not isinstance(ex, dict):
        return "an exchange is not a table"
    if not isinstance(ex.get("id"), str) or not _SAFE_ID.fullmatch(ex["id"]):
        return "an exchange has no valid id"  # ids name journal files: no paths
    messages = ex.get("messages", [])
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return f"exchange {ex['id']}: messages is not a list of tables"
    for key in ("answer", "usage", "timings", "error", "request"):
        if key in ex and not isinstance(ex[key], dict):
            return f"exchange {ex['id']}: {key} is not a table"
    answer = ex.get("answer", {})
    for key in ("content", "reasoning"):
        if key in answer and not isinstance(answer[key], str):
            return f"exchange {ex['id']}: answer.{key} is not a string"
    for key in ("started_at", "finished_at", "status", "finish_reason", "served_model"):
        if key in ex and not isinstance(ex[key], str):
            return f"exchange {ex['id']}: {key} is not a string"
    return None


def _check_chat(data: Any) -> str | None:
    """Why ``data`` is not a chat record this version can use, or None."""
    if not isinstance(data, dict):
        return "not a table"
    version = data.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        return f"unsupported schema_version {version!r}"
    if not isinstance(data.get("id"), str):
        return "no string id"
    for key in ("title", "created", "updated"):
        if key in data and not isinstance(data[key], str):
            return f"{key} is not a string"
    exchanges = data.get("exchanges")
    if not isinstance(exchanges, list):
        return "exchanges is not a list"
    for ex in exchanges:
        problem = _check_exchange(ex)
        if problem:
            return problem
    return None


def _read_chat(path: Path) -> dict[str, Any]:
    """A chat file, checked: HistoryError naming the file when damaged; FileNotFoundError passes."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise HistoryError(f"cannot read chat file {path}: {_reason(exc)}") from None
    return _parse_chat(path, raw)


def _parse_chat(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except ValueError as exc:  # JSON, TOML and UTF-8 decoding errors are all ValueErrors
        raise HistoryError(f"damaged chat file {path}: {_first_line(str(exc))}") from None
    problem = _check_chat(data)
    if problem:
        raise HistoryError(f"damaged chat file {path}: {problem}")
    result: dict[str, Any] = data
    return result


def _text_of(content: Any) -> str:
    """The text of a message's content, whether a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = (p.get("text") for p in content if isinstance(p, dict))
        return "\n".join(t for t in texts if isinstance(t, str))
    return ""


def _title(messages: list[dict[str, Any]]) -> str:
    for message in messages:
        if message.get("role") == "user":
            lines = [line.strip() for line in _text_of(message.get("content")).splitlines()]
            line = next((line for line in lines if line), "")
            return line if len(line) <= _TITLE_CHARS else line[: _TITLE_CHARS - 1].rstrip() + "…"
    return ""


def _snippet(text: str, start: int, end: int) -> str:
    lo, hi = max(0, start - _SNIPPET_CHARS), min(len(text), end + _SNIPPET_CHARS)
    middle = " ".join(text[lo:hi].split())
    return ("…" if lo else "") + middle + ("…" if hi < len(text) else "")


def _number(value: Any) -> int | float:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _usage_numbers(usage: Any) -> dict[str, int | float]:
    """Token counts and cost from an OpenAI/OpenRouter usage object (flat or with *_details)."""
    if not isinstance(usage, dict):
        return {}
    details = usage.get("completion_tokens_details")
    prompt_details = usage.get("prompt_tokens_details")
    found = {
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "reasoning_tokens": usage.get("reasoning_tokens")
        or (details.get("reasoning_tokens") if isinstance(details, dict) else None),
        "cached_tokens": usage.get("cached_tokens")
        or (prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else None),
        "cost": usage.get("cost"),
    }
    return {key: _number(value) for key, value in found.items() if _number(value)}


def _index_record(chat_id: str, ex: dict[str, Any], ev: str, title: str | None) -> dict[str, Any]:
    """One index line; ``ev`` is "begin" (exchange begun), "end" (finished) or "full" (written by
    ``reindex``, in start order). Its first four keys are fixed (see ``_HEAD``); the title is
    only on lines of the chat's first exchange. Removing a chat appends ``{"chat", "ev": "rm",
    "at"}``."""
    record = {
        "ex": ex["id"],
        "chat": chat_id,
        "ev": ev,
        "at": ex.get("started_at") or "",
        "end": ex.get("finished_at"),
        "model": ex.get("requested_model"),
        "served": ex.get("served_model"),
        "finish": ex.get("finish_reason"),
        **_usage_numbers(ex.get("usage")),
        "title": title,
    }
    cleaned: dict[str, Any] = _clean(record)
    return cleaned


def _encode_line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode(
        "utf-8", "replace"
    )


# Lines this module writes start with these four keys in this order, so one regex pass over the
# whole index finds every line's exchange, chat, event and start time, and only the lines a query
# needs are decoded. Anything else (a tombstone, an edited line) is decoded in full.
_HEAD = re.compile(
    r'^\{"ex":"([^"\\\n]*)","chat":"([^"\\\n]*)","ev":"(\w*)","at":"([^"\\\n]*)"[^\n]*\}$', re.M
)
# Decodes in place, without copying each line out of the index text. (typeshed types the
# argument as a scanner context; any JSONDecoder is one.)
_scan_once = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def _decode_at(text: str, start: int) -> dict[str, Any] | None:
    """The index record starting at ``text[start]``, or None when it does not decode."""
    try:
        record, _end = _scan_once(text, start)
    except (ValueError, StopIteration):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("chat"), str) else None


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic collector while a scan builds ~100,000 long-lived tuples: they hold no
    cycles, and collecting would walk them again and again (a third of the scan's time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _where(exc: OSError, default: Path) -> str:
    return str(exc.filename) if exc.filename else str(default)


# --- file primitives ------------------------------------------------------------------------------


def _make_dirs(path: Path) -> None:
    """Create ``path`` and missing parents with mode 0700, whatever the umask."""
    missing: list[Path] = []
    while not path.is_dir():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, _DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(directory, _DIR_MODE)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_path(path: Path) -> None:
    """fsync a folder (after a rename in it) or a file written through another descriptor."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temporary(path: Path, data: bytes) -> Path:
    """``data`` written and fsynced to a new temporary file next to ``path``; its path."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, _FILE_MODE)
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = _write_temporary(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_path(path.parent)


def _read_optional(path: Path) -> bytes | None:
    """The bytes of ``path``, or None when there is no such file."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _append(path: Path, data: bytes) -> None:
    """Append one line with a single write on an O_APPEND descriptor: lines never interleave.
    Not fsynced here: the caller does that once the lock is released (``_fsync_path``)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
    try:
        os.fchmod(fd, _FILE_MODE)
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(28, "short write (disk full?)", str(path))
    finally:
        os.close(fd)


class _LockTimeout(OSError):
    """The store's lock stayed taken for the whole ``_LOCK_TIMEOUT``."""


# The threads of one process (``rill batch -j 200``) queue here before taking the file lock:
# blocked on a lock they are woken in turn, instead of all polling ``flock`` at once.
_THREAD_LOCK = threading.Lock()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold this process's lock, then an exclusive ``flock`` on ``path``; ``_LockTimeout`` when
    either stays taken for ``_LOCK_TIMEOUT`` seconds. Not reentrant: never nest it."""
    if not _THREAD_LOCK.acquire(timeout=_LOCK_TIMEOUT):
        raise _LockTimeout(11, "locked by another thread of this process", str(path))
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
        try:
            os.fchmod(fd, _FILE_MODE)
            deadline, delay = time.monotonic() + _LOCK_TIMEOUT, 0.001
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise _LockTimeout(
                            11, "locked by another rill process", str(path)
                        ) from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock
    finally:
        _THREAD_LOCK.release()


def _writer_alive(journal: Path) -> bool | None:
    """True while a live process holds the journal's lock, False once it is gone, None when the
    journal does not exist. A shared lock is enough to test, so readers never block each other."""
    try:
        fd = os.open(journal, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def _read_journal(journal: Path) -> tuple[str, str]:
    """The partial (content, reasoning) a journal holds; a torn last line is ignored."""
    content: list[str] = []
    reasoning: list[str] = []
    try:
        raw = journal.read_bytes()
    except OSError:
        return "", ""
    for line in raw.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            if isinstance(entry.get("c"), str):
                content.append(entry["c"])
            if isinstance(entry.get("r"), str):
                reasoning.append(entry["r"])
    return "".join(content), "".join(reasoning)


# --- the recorder ---------------------------------------------------------------------------------


class Recorder:
    """Records one exchange while its answer streams; every method is safe to call and never
    raises for I/O. A disabled recorder (history could not be written) ignores every call; its
    ``chat_id`` is None for a chat that was never created (as for ``session.NullRecorder``).

    ``add`` only appends to lists, and writes the new text to the journal when a second has
    passed since the last write. A stream that stalls right after a delta calls ``add`` no more,
    so a daemon thread journals such pending text once its second is up: a run killed mid-stall
    still keeps everything it received more than about a second before.
    """

    __slots__ = (
        "chat_id",
        "exchange_id",
        "path",
        "enabled",
        "_store",
        "_clock",
        "_exchange",
        "_title",
        "_fd",
        "_content",
        "_reasoning",
        "_sent",
        "_next_flush",
        "_journaling",
        "_lock",
        "_stop",
        "_thread",
        "_finished",
    )

    def __init__(
        self,
        store: HistoryStore | None,
        chat_id: str | None,
        exchange: dict[str, Any],
        path: Path | None = None,
        fd: int | None = None,
        title: str | None = None,
    ) -> None:
        self.chat_id = chat_id
        self.exchange_id: str = exchange.get("id", "")
        self.path = path
        self.enabled = store is not None and fd is not None
        self._store = store
        self._clock = store.clock if store is not None else time.monotonic
        self._exchange = exchange
        self._title = title
        self._fd = fd
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._sent = (0, 0)  # how many content / reasoning pieces are already journalled
        self._next_flush = self._clock() if self.enabled else float("inf")
        self._journaling = self.enabled
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._finished = False
        if self.enabled:
            self._thread = threading.Thread(
                target=self._flush_when_stalled, name="rill-journal", daemon=True
            )
            self._thread.start()

    @property
    def journal(self) -> Path | None:
        return None if self._store is None else self._store.journal_path(self.exchange_id)

    def add(self, content: str = "", reasoning: str = "") -> None:
        """Keep a delta; append what is new to the journal at most once a second."""
        if not self.enabled:
            return
        if content:
            self._content.append(content)
            if len(self._content) & _COMPACT_MASK == 0:
                self._compact()
        if reasoning:
            self._reasoning.append(reasoning)
        if self._clock() >= self._next_flush:
            self.flush()

    def _compact(self) -> None:
        """Join the pieces not yet journaled into one string: a long answer made of 100,000
        tiny deltas must not be held as 100,000 string objects."""
        with self._lock:
            sent_c = self._sent[0]
            end = len(self._content)
            if end - sent_c > 1:
                self._content[sent_c:end] = ["".join(self._content[sent_c:end])]

    def _pending(self) -> bool:
        return (len(self._content), len(self._reasoning)) != self._sent

    def _flush_when_stalled(self) -> None:
        while self._journaling:
            delay = self._next_flush - self._clock()
            if self._stop.wait(delay if delay > 0 else _JOURNAL_EVERY):
                return
            if self._clock() >= self._next_flush and self._pending():
                self.flush()

    def flush(self, sync: bool = True) -> None:
        """Append the text received since the last journal write now, and fsync it (unless
        ``sync`` is False: the text then survives the process being killed, not a power loss)."""
        with self._lock:
            if self._fd is None or self._store is None or not self._journaling:
                return
            self._next_flush = self._clock() + _JOURNAL_EVERY
            entry: dict[str, str] = {}
            sent = []
            # Each journaled range is replaced by its joined text: one string per write, not
            # one per delta. Other threads only append, so the range itself stays put.
            for key, pieces, done in (
                ("c", self._content, self._sent[0]),
                ("r", self._reasoning, self._sent[1]),
            ):
                end = len(pieces)
                if end > done:
                    text = "".join(pieces[done:end])
                    pieces[done:end] = [text]
                    entry[key] = text
                    end = done + 1
                sent.append(end)
            self._sent = (sent[0], sent[1])
            if not entry:
                return
            try:
                _write_all(self._fd, _encode_line(entry))
                if sync:
                    os.fsync(self._fd)
            except OSError as exc:
                self._journaling = False  # keep the lock (the run is alive), stop journaling
                self._store.say(
                    f"history: cannot write {self.journal}: {_reason(exc)}; "
                    "the answer is kept in memory until the end"
                )

    def finish(self, outcome: dict[str, Any]) -> None:
        """Write the final exchange into the chat file and the index; drop the journal.

        Idempotent. When the chat file cannot be written, the journal is completed and kept, so
        the answer shows up later as ``interrupted`` with its text.
        """
        store, fd, chat_id = self._store, self._fd, self.chat_id
        if self._finished or not self.enabled or store is None or fd is None or chat_id is None:
            self._finished = True
            return
        self._finished = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=_LOCK_TIMEOUT)
        # Saving may wait for a busy lock, and a second Ctrl-C ends the process at once: the
        # journal gets the last second's text first, so nothing received is lost either way.
        if self._pending():
            self.flush(sync=False)
        exchange = dict(self._exchange)
        exchange.update(self._final_fields(outcome))
        try:
            self._save(store, chat_id, exchange)
        except (OSError, HistoryError, ValueError, TypeError) as exc:
            reason = _reason(exc) if isinstance(exc, OSError) else str(exc)
            self.flush()  # the journal keeps the text; it is shown later as interrupted
            store.say(
                f"history: cannot save the answer to {self.path}: {reason}; "
                f"the partial answer stays in {self.journal}"
            )
        else:
            with suppress(OSError):
                os.unlink(store.journal_path(self.exchange_id))
        with self._lock:
            os.close(fd)
            self._fd = None

    def _save(self, store: HistoryStore, chat_id: str, exchange: dict[str, Any]) -> None:
        """``save_finished``, waiting up to ``_FINISH_PATIENCE`` seconds for a busy lock: an
        answer that has been received is worth the wait, unlike a prompt not yet sent."""
        deadline = time.monotonic() + _FINISH_PATIENCE
        while True:
            try:
                store.save_finished(chat_id, exchange, self._title)
                return
            except _LockTimeout:
                if time.monotonic() >= deadline:
                    raise

    def _final_fields(self, outcome: dict[str, Any]) -> dict[str, Any]:
        content = outcome.get("content")
        reasoning = outcome.get("reasoning")
        answer = {
            "content": content if isinstance(content, str) else "".join(self._content),
            "reasoning": reasoning if isinstance(reasoning, str) else "".join(self._reasoning),
            "tool_calls": outcome.get("tool_calls") or None,
            "reasoning_details": outcome.get("reasoning_details") or None,
        }
        if not answer["reasoning"]:
            answer["reasoning"] = None
        fields = {
            key: outcome.get(key)
            for key in ("served_model", "provider", "generation_id", "finish_reason")
        }
        return {
            "status": "done",
            "finished_at": _now(),
            "answer": answer,
            **fields,
            "usage": outcome.get("usage") or None,
            "timings": outcome.get("timings") or None,
            "error": outcome.get("error") or None,
        }


# --- the store ------------------------------------------------------------------------------------

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
                yield path, _read_chat(path)
            except FileNotFoundError:
                continue  # removed while we were reading
            except HistoryError as exc:
                self.say(f"history: skipping {exc.message}")

    # -- writing

    def begin(self, start: ExchangeStart) -> Recorder:
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
            where, reason = _where(exc, self.root), _reason(exc)
        except (ValueError, TypeError) as exc:
            where, reason = str(self.root), str(exc)
        with self._said_lock:
            self.not_saved += 1
        self.say(f"history: cannot write {where}: {reason}; the answer is not saved")
        return Recorder(None, start.chat_id, {})

    def _begin(self, start: ExchangeStart) -> Recorder:
        for directory in (self.root, self._chats, self._journals):
            _make_dirs(directory)
        now = _now()
        exchange: dict[str, Any] = {
            "id": secrets.token_hex(8),
            "started_at": now,
            "status": "running",
            "messages": start.messages,
            "requested_model": start.requested_model,
            "request": start.request,
            "base_url": start.base_url,
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
            return chat, [_index_record(chat_id, exchange, "begin", title)]

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
        return Recorder(self, chat_id, exchange, path, fd, titles[0] if titles else None)

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
        seen = _read_optional(path)
        prepared = self._prepare(path, seen, change)
        try:
            with _locked(self._lock):
                current = _read_optional(path)
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
        _fsync_path(path.parent)
        try:
            _fsync_path(self._index)
        except FileNotFoundError:
            pass  # dropped after a failed append: it is rebuilt when next read
        except OSError as exc:
            self.say(f"history: cannot write {self._index}: {_reason(exc)}")
        return True

    @staticmethod
    def _prepare(
        path: Path,
        raw: bytes | None,
        change: _Change,
    ) -> tuple[Path, list[dict[str, Any]]] | None:
        changed = change(None if raw is None else _parse_chat(path, raw))
        if changed is None:
            return None
        chat, records = changed
        return _write_temporary(path, _dump(chat, path.suffix)), records

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
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC)
        try:
            os.fchmod(fd, _FILE_MODE)
            fcntl.flock(fd, fcntl.LOCK_EX)
            header = {"chat": chat_id, "ex": exchange["id"], "at": exchange["started_at"]}
            _write_all(fd, _encode_line(header))
            os.fsync(fd)
            os.replace(tmp, final)
            _fsync_path(self._journals)  # the rename itself survives a power loss
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
        removed. Raises ``OSError`` (a ``_LockTimeout`` when the lock stays taken)."""
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
            chat["updated"] = exchange.get("finished_at") or _now()
            return chat, [_index_record(chat_id, exchange, "end", title)]

        self._change_chat(path, replace)

    def _index_append(self, record: dict[str, Any]) -> None:
        """Append an index line (lock held). If that fails the index is dropped, to be rebuilt."""
        try:
            _append(self._index, _encode_line(record))
        except OSError as exc:
            try:
                self._index.unlink(missing_ok=True)
            except OSError:
                self.say(f"history: cannot write {self._index}: {_reason(exc)}")

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
            with _locked(self._lock):
                self._ensure_index()
                self._index_append({"chat": chat_id, "ev": "rm", "at": _now()})
                for suffix in _EXTENSIONS:
                    (self._chats / f"{chat_id}{suffix}").unlink(missing_ok=True)
                for journal in self._journals_of(chat_id):
                    journal.unlink(missing_ok=True)
        except OSError as exc:
            raise HistoryError(f"cannot remove chat {chat_id}: {_reason(exc)}") from None
        for synced in (self._index, self._chats):
            with suppress(OSError):  # removed either way; this only makes it survive a crash
                _fsync_path(synced)

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
                _make_dirs(directory)
            with _locked(self._lock):
                return self._reindex_locked()
        except OSError as exc:
            raise HistoryError(f"cannot rebuild {self._index}: {_reason(exc)}") from None

    def _reindex_locked(self) -> int:
        lines = self._index_lines_from_chats()
        _write_atomic(self._index, b"".join(lines))
        return len(lines)

    def _index_lines_from_chats(self) -> list[bytes]:
        records = []
        for _path, chat in self._iter_chats():
            for n, ex in enumerate(chat["exchanges"]):
                ev = "begin" if ex.get("status") == "running" else "full"
                title = chat.get("title", "") if n == 0 else None
                records.append(_index_record(chat["id"], ex, ev, title))
        records.sort(key=lambda r: str(r["at"]))  # file order is begin order (see last_chat_id)
        return [_encode_line(r) for r in records]

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
            chat = _read_chat(path)
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
                alive = _writer_alive(journal)
                missing = missing or alive is None
                content, reasoning = _read_journal(journal)
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
                _index_record(chat_id, ex, "end", view.get("title", "") if n == 0 else None)
                for n, ex in enumerate(view["exchanges"])
                if ex["id"] in dead
            ]
            return view, records

        if self._change_chat(path, resolve):
            for exchange_id in gone:
                self.journal_path(exchange_id).unlink(missing_ok=True)
        return settled[0] if settled else None

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
            raw = self._index.read_bytes()
        except FileNotFoundError:
            raw = self._rebuilt_index()
        except OSError as exc:
            self.say(f"history: cannot read {self._index}: {_reason(exc)}")
            return "", 0
        end = raw.rfind(b"\n") + 1  # a line still being written has no newline yet
        return raw[:end].decode("utf-8", "replace"), end

    def _rebuilt_index(self) -> bytes:
        if not self._chat_files():
            return b""
        if self.read_only:
            return b"".join(self._index_lines_from_chats())
        try:
            with _locked(self._lock):
                self._ensure_index()
                return self._index.read_bytes()
        except OSError as exc:
            self.say(f"history: cannot rebuild {self._index}: {_reason(exc)}")
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
            "cost": round(sum(_number(r.get("cost")) for r in records), 9),
        }

    def _unfinished_reason(self, record: dict[str, Any], size: int) -> str | None:
        """``running`` while the writer holds the journal; otherwise the finish reason of an end
        line appended since the index was read, else ``interrupted``."""
        ex = str(record["ex"])
        if _writer_alive(self.journal_path(ex)):
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
                get("cost", 0),
            )
            try:
                sum(numbers)  # a hand-edited line with a non-number is left out
            except TypeError:
                continue
            key = str((at[:10] if by == "day" else get("served") or get("model")) or "unknown")
            row = rows.get(key)
            if row is None:
                row = rows[key] = [0, 0, 0, 0, 0, 0.0]
            row[0] += 1
            row[1] += numbers[0]
            row[2] += numbers[1]
            row[3] += numbers[2]
            row[4] += numbers[3]
            row[5] += numbers[4]
        result = [_usage_row(key, row) for key, row in rows.items()]
        if by == "day":
            return sorted(result, key=lambda r: str(r["key"]))
        return sorted(result, key=lambda r: (-r["cost"], -r["requests"], str(r["key"])))


def _usage_row(key: str, row: list[int | float]) -> dict[str, Any]:
    return {
        "key": key,
        "requests": row[0],
        **{field: row[n] for n, field in enumerate(_USAGE_FIELDS, start=1)},
        "cost": round(float(row[5]), 9),
    }


def usage_total(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Sum ``HistoryStore.usage`` rows into one row whose key is "total"."""
    total: list[int | float] = [0, 0, 0, 0, 0, 0.0]
    for row in rows:
        for n, field in enumerate(("requests", *_USAGE_FIELDS, "cost")):
            total[n] += _number(row.get(field))
    return _usage_row("total", total)
