"""The process's edge: signals that cancel what is streaming, and a stdout that went away.

The streaming core never sets a signal handler; a command that runs streams on the main thread
wraps them in ``cancel_on_signals``. The first signal cancels (the stream's sockets are shut down,
so even a read blocked on a silent upstream ends at once, and the partial answer is recorded as
cancelled). While a request is still being sent there may be no socket to wake, so the handler
raises the cancel instead. A second signal leaves at once: the text already shown is in the
history journal by then, so nothing the user saw is lost.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Protocol

from rill.errors import Cancelled, ExitCode

SIGNALS: dict[int, tuple[str, ExitCode]] = {
    signal.SIGINT: ("SIGINT", ExitCode.INTERRUPTED),
    signal.SIGTERM: ("SIGTERM", ExitCode.TERMINATED),
    signal.SIGHUP: ("SIGHUP", ExitCode.TERMINATED),
}


class Cancellable(Protocol):
    """What a signal stops: one stream, or a whole batch."""

    opening: bool
    """True while nothing can be woken by ``cancel`` (a request is being sent)."""

    def cancel(self, error: Cancelled) -> bool: ...


def cancelled_by(signum: int) -> Cancelled:
    name, code = SIGNALS.get(signum, ("signal", ExitCode.TERMINATED))
    return Cancelled(name, code)


class SignalEdge:
    """The handler's state: the first signal received, if any."""

    def __init__(
        self, target: Cancellable, before_exit: Callable[[], object] | None = None
    ) -> None:
        self.target = target
        self.before_exit = before_exit
        self.received: Cancelled | None = None

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is not None:  # a second signal: leave now
            if self.before_exit is not None:
                self.before_exit()
            os._exit(int(self.received.exit_code))
        self.received = reason = cancelled_by(signum)
        if not self.target.cancel(reason) and self.target.opening:
            raise reason


@contextmanager
def cancel_on_signals(
    target: Cancellable, *, before_exit: Callable[[], object] | None = None
) -> Iterator[SignalEdge]:
    """Inside the block, SIGINT/SIGTERM/SIGHUP cancel ``target``; the previous handlers come back
    after it. ``before_exit`` runs before a second signal ends the process (finish a line).
    Off the main thread (where no handler can be set) it does nothing."""
    edge = SignalEdge(target, before_exit)
    if threading.current_thread() is not threading.main_thread():
        yield edge
        return
    previous = {sig: signal.signal(sig, edge.handle) for sig in SIGNALS}
    try:
        yield edge
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def silence_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
