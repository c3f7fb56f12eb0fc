"""The history store's cross-process lock and journal reading (the private-file primitives
are in ``rill.files``).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rill.files import open_private, read_private

LOCK_TIMEOUT = 10.0  # a stopped process must not freeze every other run


def read_optional(path: Path) -> bytes | None:
    """The bytes of ``path``, or None when there is no such file. A symlink or a FIFO there
    raises ``NotRegularFile`` (an ``OSError``): it is never followed, never blocks."""
    try:
        return read_private(path)
    except FileNotFoundError:
        return None


class LockTimeout(OSError):
    """The store's lock stayed taken for the whole ``LOCK_TIMEOUT``."""


# The threads of one process (``rill batch -j 200``) queue here before taking the file lock:
# blocked on a lock they are woken in turn, instead of all polling ``flock`` at once.
_THREAD_LOCK = threading.Lock()
_handovers = 0  # how many times _THREAD_LOCK was taken: a queue that moves is not stuck


def _take_thread_lock(path: Path) -> None:
    """Take ``_THREAD_LOCK``, waiting as long as it keeps changing hands: a long queue of this
    process's own threads is progress, only one holder keeping it for ``LOCK_TIMEOUT`` is not."""
    global _handovers
    seen = _handovers
    while not _THREAD_LOCK.acquire(timeout=LOCK_TIMEOUT):
        if _handovers == seen:
            raise LockTimeout(11, "locked by another thread of this process", str(path))
        seen = _handovers
    _handovers += 1


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold this process's lock, then an exclusive ``flock`` on ``path``; ``LockTimeout`` when
    one holder keeps either for ``LOCK_TIMEOUT`` seconds. Not reentrant: never nest it."""
    _take_thread_lock(path)
    try:
        fd = open_private(path, os.O_RDWR | os.O_CREAT)
        try:
            deadline, delay = time.monotonic() + LOCK_TIMEOUT, 0.001
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LockTimeout(11, "locked by another rill process", str(path)) from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock
    finally:
        _THREAD_LOCK.release()


def writer_alive(journal: Path) -> bool | None:
    """True while a live process holds the journal's lock, False once it is gone, None when the
    journal does not exist. A shared lock is enough to test, so readers never block each other."""
    try:
        fd = open_private(journal, os.O_RDONLY)
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


def read_journal(journal: Path) -> tuple[str, str]:
    """The partial (content, reasoning) a journal holds; a torn last line is ignored."""
    content: list[str] = []
    reasoning: list[str] = []
    try:
        raw = read_private(journal)
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
