"""The waiting indicator: a spinner with elapsed seconds on stderr, and the guard that makes
every other note written to stderr erase it first."""

from __future__ import annotations

import atexit
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO, cast

from rill.terminal.color import DIM, RESET


class Spinner:
    """A spinner with elapsed seconds on a terminal stream, drawn from a daemon thread.

    Everyone who writes to that terminal does it inside ``with spinner.writing():``, which
    erases the spinner first; the thread redraws it at its next tick if it is still ``enabled``
    and the last write ended a line. ``stop`` erases it for good.
    """

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(
        self,
        stream: TextIO,
        *,
        color: bool,
        interval: float = 0.1,
        delay: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.color = color
        self.interval = interval
        self.delay = delay
        self.clock = clock
        self.lock = threading.RLock()
        self.enabled = True
        self.label = ""
        self.at_line_start = True
        self._shown = 0  # cells on the screen
        self._frame = 0
        self._t0 = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Spinner:
        self._thread = threading.Thread(target=self._run, name="rill-spinner", daemon=True)
        self._thread.start()
        atexit.register(self.stop)
        return self

    def _run(self) -> None:
        if self._stop.wait(self.delay):
            return
        while True:
            with self.lock:
                if self._stop.is_set():
                    return
                if self.enabled and self.at_line_start:
                    self._draw()
            if self._stop.wait(self.interval):
                return

    def _draw(self) -> None:
        elapsed = self.clock() - self._t0
        label = f"{self.label} " if self.label else ""
        text = f"{self.FRAMES[self._frame % len(self.FRAMES)]} {label}{elapsed:.1f}s"
        self._frame += 1
        pad = " " * max(self._shown - len(text), 0)
        styled = f"{DIM}{text}{RESET}" if self.color else text
        self._write("\r" + styled + pad + ("\b" * len(pad)))
        self._shown = len(text)

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self._stop.set()  # the terminal is gone; nothing left to draw on

    def erase(self) -> None:
        with self.lock:
            if self._shown:
                self._write("\r" + " " * self._shown + "\r")
                self._shown = 0

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self.lock:
            self.erase()
            yield

    def stop(self) -> None:
        self._stop.set()
        self.erase()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(1.0)
        atexit.unregister(self.stop)


class GuardedStderr:
    """Stands in for ``sys.stderr`` while a spinner may be on it: a note written by anyone
    (a retry warning, an error) erases the spinner first and is never cut by it."""

    def __init__(self, stream: TextIO, spinner: Spinner) -> None:
        self._stream = stream
        self._spinner = spinner

    def write(self, text: str) -> int:
        with self._spinner.writing():
            n = self._stream.write(text)
            if text:
                self._spinner.at_line_start = text.endswith("\n")
            return n

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_stderr(err: TextIO, spinner: Spinner) -> Callable[[], None]:
    """Put a ``GuardedStderr`` in ``sys.stderr``; the returned function puts ``err`` back."""
    guard = cast(TextIO, GuardedStderr(err, spinner))
    sys.stderr = guard

    def restore() -> None:
        if sys.stderr is guard:
            sys.stderr = err

    return restore
