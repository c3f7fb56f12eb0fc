"""A program on a pseudo-terminal of its own, its screen kept by a terminal emulator (pyte).

``PtyTerm.start(argv)`` forks the program as the session leader with the pty as its controlling
terminal, so Ctrl-C typed into it is a real SIGINT from the line discipline. Every wait is
bounded; ``kill()`` ends whatever is left.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import termios
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress

import pyte

PASTE_START = b"\x1b[200~"
PASTE_END = b"\x1b[201~"


class PtyTerm:
    def __init__(
        self, argv: Sequence[str], env: Mapping[str, str], *, cols: int = 100, rows: int = 40
    ):
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.output = bytearray()
        self.returncode: int | None = None
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its controlling terminal
            with suppress(Exception):
                os.execvpe(argv[0], list(argv), dict(env))
            os._exit(127)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def pump(self, timeout: float = 0.05) -> None:
        """Read what the program wrote (waiting at most ``timeout``) into the emulator."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the program has gone
            data = b""
        if data:
            self.output += data
            self.stream.feed(data)
            # Answer a cursor-position query (prompt_toolkit asks), as a terminal would.
            if b"\x1b[6n" in data:
                y, x = self.screen.cursor.y + 1, self.screen.cursor.x + 1
                self.send(f"\x1b[{y};{x}R".encode())

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def wait_for(self, ready: Callable[[str], object], what: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            screen = self.text()
            if ready(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen:\n{screen}")
            if self.returncode is None:
                self.poll()

    def wait_text(self, text: str, timeout: float = 15.0, count: int = 1) -> str:
        return self.wait_for(lambda s: s.count(text) >= count, repr(text), timeout)

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def line(self, text: str) -> None:
        self.send(text.encode() + b"\r")

    def paste(self, text: str) -> None:
        self.send(PASTE_START + text.encode() + PASTE_END)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait_exit(self, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            self.pump(0.05)
            if time.monotonic() > deadline:
                raise AssertionError(f"still running after {timeout} s; the screen:\n{self.text()}")
        with suppress(OSError):
            while select.select([self.fd], [], [], 0)[0] and os.read(self.fd, 65536):
                pass
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            with suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.returncode = -9
        with suppress(OSError):
            os.close(self.fd)
