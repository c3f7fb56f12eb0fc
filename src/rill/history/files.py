"""File primitives of the history store: 0700/0600 creation, atomic replacement, appends,
the cross-process lock and journal reading.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

_DIR_MODE = 0o700
_FILE_MODE = 0o600
_LOCK_TIMEOUT = 10.0  # a stopped process must not freeze every other run


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
