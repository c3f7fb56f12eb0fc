"""The output lines: encoded whole, written in order, and an -o file kept one line per id."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from rill.batch.items import ItemId, id_key, is_done_line, valid_id
from rill.errors import UsageError
from rill.events import Terminal
from rill.values import compact_json


def encode_line(item_id: ItemId | None, terminal: Terminal, line: int | None = None) -> bytes:
    """The item's line: ``id`` first, then the ``json`` format's object. That object's own
    ``id`` (the upstream generation id of a ``done``) is renamed ``generation_id``."""
    obj: dict[str, Any] = {"id": item_id}
    for key, value in terminal.as_dict().items():
        obj["generation_id" if key == "id" else key] = value
    if line is not None:
        obj["line"] = line
    text = compact_json(obj)
    try:
        return (text + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from upstream: \u-escapes keep the line valid
        return (json.dumps(obj, separators=(",", ":")) + "\n").encode("ascii")


class Output:
    """Writes whole lines under a lock; with ``ordered``, holds results back until their turn."""

    def __init__(self, write: Callable[[bytes], None], *, ordered: bool) -> None:
        self._write = write
        self.ordered = ordered
        self.lock = threading.Lock()
        self._pending: dict[int, bytes | None] = {}
        self._next = 0

    def put(self, position: int, line: bytes | None) -> None:
        """The result at ``position`` (input order); None for an item that writes nothing."""
        with self.lock:
            if not self.ordered:
                if line is not None:
                    self._write(line)
                return
            self._pending[position] = line
            while self._next in self._pending:
                ready = self._pending.pop(self._next)
                self._next += 1
                if ready is not None:
                    self._write(ready)

    def drain(self) -> None:
        """After a stop: what is still held back, in input order, past the gaps."""
        with self.lock:
            for position in sorted(self._pending):
                ready = self._pending.pop(position)
                if ready is not None:
                    self._write(ready)


def open_output(path: Path) -> int:
    """An append-only descriptor on ``path`` that holds a shared lock on it until closed, so no
    other run rewrites the file meanwhile (``compact_output``); a torn last line gets its
    newline first."""
    from rill.files import write_all

    fd = _open_locked(path)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            write_all(fd, b"\n")
    except OSError as exc:
        os.close(fd)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return fd


def _open_locked(path: Path) -> int:
    """``path`` opened to append, with a shared lock; opened again when another run replaced
    the file while this one waited for the lock. Without locks (some network file systems)
    the file is appended to all the same, and never rewritten."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise UsageError(f"cannot open {path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except FileNotFoundError:
            pass  # replaced, then removed: create it again
        except OSError:
            return fd
        os.close(fd)


def compacted(data: bytes) -> bytes | None:
    """An output file with one line per item, or None when it already has that.

    Each id keeps the place of its first line and the content of its latest one, so a re-run
    that answered a failed item replaces that failure; an id once answered keeps its answer
    (it is skipped as done). Lines of input lines that were not items (no id) are kept once
    each; blank lines, lines torn by a hard kill and lines that are no batch line are dropped.
    """
    kept: dict[str | bytes, bytes] = {}
    answered: set[str] = set()
    for raw in data.split(b"\n"):
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError):  # blank, torn, not UTF-8 or nested too deep
            continue
        if not isinstance(obj, dict) or "id" not in obj:
            continue
        if not valid_id(obj["id"]):
            kept.setdefault(raw, raw)
            continue
        key, done = id_key(obj["id"]), is_done_line(obj)
        if done or key not in answered:
            kept[key] = raw
        if done:
            answered.add(key)
    new = b"".join(line + b"\n" for line in kept.values())
    return None if new == data else new


def compact_output(fd: int, path: Path) -> bool:
    """Rewrite ``path`` (whose descriptor ``fd`` this run appended to) with one line per item,
    atomically, when it has more (``compacted``). False, and nothing done, while another run
    still holds the file open (its own end compacts it) or when locks are not available."""
    from rill.files import fsync_path, write_temporary

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held = os.fstat(fd)
        if not (stat.S_ISREG(held.st_mode) and os.path.samestat(held, os.stat(path))):
            return False
    except OSError:
        return False
    new = compacted(path.read_bytes())
    if new is None:
        return True
    target = Path(os.path.realpath(path))  # a symlinked output file stays a symlink
    tmp = write_temporary(target, new)
    try:
        os.chmod(tmp, stat.S_IMODE(held.st_mode))
        os.replace(tmp, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_path(target.parent)
    return True


def check_output(path: Path, source: str | None) -> None:
    """The output file may not be the input file: rewriting it would lose the items."""
    if source is None or source == "-":
        return
    with suppress(OSError):
        if os.path.samefile(source, path):
            raise UsageError(f"-o {path} is the input file: write the results to another file")
