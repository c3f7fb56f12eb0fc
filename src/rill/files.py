"""Private files: folders made 0700 and files 0600 whatever the umask, atomic replacement
(temporary file, fsync, rename), single-write appends, and opening that never follows a symlink.

The bottom layer: only the standard library and ``rill.errors`` are imported here.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import threading
from contextlib import suppress
from pathlib import Path
from typing import cast

DIR_MODE = 0o700
FILE_MODE = 0o600


def child(directory: Path, name: str) -> Path:
    """``directory / name`` for a file name made once (an id, a temporary file's name).

    ``pathlib`` interns every part it parses (``sys.intern``). Names that are new each time pass
    through the interpreter's table of interned strings, which then keeps being rebuilt, about
    1 MB at a time, and a long-running process (``rill serve``) fragments its heap with every
    rebuild: its memory grows under a steady load although nothing is kept. The path is built
    the way ``glob()`` builds its own, which does not intern (Python 3.11 and 3.12);
    ``directory / name`` where this Python has no such way."""
    make = getattr(directory, "_make_child_relpath", None)
    return cast(Path, make(name)) if make is not None else directory / name


class NotRegularFile(OSError):
    """The path is a symlink, a FIFO, a folder or a device: rill neither follows nor opens it."""


def make_dirs(path: Path) -> None:
    """Create ``path`` and missing parents with mode 0700, whatever the umask. Folders that
    already exist are left as they are (rill never chmods what it did not create)."""
    missing: list[Path] = []
    while not path.is_dir():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(directory, DIR_MODE)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may write less than asked)."""
    written = os.write(fd, data)
    if written == len(data):
        return
    view = memoryview(data)[written:]
    while view:
        view = view[os.write(fd, view) :]


def fsync_path(path: Path) -> None:
    """fsync a folder (after a rename in it) or a file written through another descriptor."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_private(path: Path, flags: int) -> int:
    """``os.open`` that never follows a symlink and never blocks on a FIFO; a file it creates
    is 0600, and only a file it created is chmod-ed. ``NotRegularFile`` for anything but a
    regular file."""
    if flags & os.O_CREAT:
        try:
            fd = os.open(path, flags | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
        except FileExistsError:
            pass
        else:
            os.fchmod(fd, FILE_MODE)
            return fd
    plain = (flags & ~os.O_CREAT) | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(path, plain)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):  # a symlink; a FIFO nobody reads
            raise NotRegularFile(exc.errno, "not a regular file; left alone", str(path)) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegularFile(errno.EINVAL, "not a regular file; left alone", str(path))
    os.set_blocking(fd, True)
    return fd


def read_private(path: Path) -> bytes:
    """The bytes of the regular file ``path``; ``NotRegularFile`` for a symlink or a FIFO."""
    fd = open_private(path, os.O_RDONLY)
    try:
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def write_temporary(path: Path, data: bytes, *, sync: bool = True) -> Path:
    """``data`` written (and with ``sync``, fsynced) to a new 0600 temporary file next to
    ``path``; its path."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, FILE_MODE)
            write_all(fd, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    return child(path.parent, os.path.basename(tmp))


def write_atomic(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Replace ``path`` by a 0600 file holding ``data``: readers see the old or the new file,
    never half of one. A symlink at ``path`` is replaced, never followed."""
    tmp = write_temporary(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_dir:
        fsync_path(path.parent)


def append(path: Path, data: bytes) -> None:
    """Append ``data`` with a single write on an O_APPEND descriptor (lines never interleave);
    the file is created 0600. Not fsynced. A symlink or FIFO at ``path`` raises
    ``NotRegularFile``."""
    fd = open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(28, "short write (disk full?)", str(path))
    finally:
        os.close(fd)


class _Batch:
    __slots__ = ("paths", "errors", "done")

    def __init__(self) -> None:
        self.paths: dict[Path, None] = {}
        self.errors: dict[Path, OSError] = {}
        self.done = False


class GroupSync:
    """fsync shared by many threads (group commit). A thread that has written calls ``sync``
    with the paths to make durable; it returns once an fsync of each path has *started after*
    the call, so its writes are durable, but one thread does the fsyncs for everyone waiting:
    64 threads finishing at once cost a few fsyncs, not 64 of each."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._open: _Batch | None = None  # the batch new callers join
        self._busy = False  # a batch is being synced right now

    def sync(self, *paths: Path) -> dict[Path, OSError]:
        """fsync ``paths`` (shared with other callers); the errors met, by path."""
        with self._cond:
            batch = self._open if self._open is not None else _Batch()
            self._open = batch
            batch.paths.update(dict.fromkeys(paths))
            while not batch.done:
                if self._busy:
                    self._cond.wait()
                    continue
                self._busy, self._open = True, None  # this thread syncs the batch it is in
                self._cond.release()
                try:
                    errors = _fsync_each(batch.paths)
                finally:
                    self._cond.acquire()
                    self._busy = False
                    self._cond.notify_all()
                batch.errors, batch.done = errors, True
            return {p: e for p, e in batch.errors.items() if p in paths}


def _fsync_each(paths: dict[Path, None]) -> dict[Path, OSError]:
    errors: dict[Path, OSError] = {}
    for path in paths:
        try:
            fsync_path(path)
        except OSError as exc:
            errors[path] = exc
    return errors
