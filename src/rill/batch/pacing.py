"""Stopping a batch, the shared backoff gate and the connection pool every worker uses."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from rill.config.settings import Settings
from rill.errors import APIError, Cancelled, ExitCode, RillError
from rill.stream.client import RetryPolicy, make_http_client
from rill.stream.control import Control
from rill.stream.pipeline import ChatStream


class Stop:
    """One flag for the whole batch, and the running streams to cancel when it is raised."""

    #: Never true: a stop always has the streams to cancel (see ``rill.process``).
    opening = False

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""
        self.code = ExitCode.OK
        self._lock = threading.Lock()
        self._streams: set[ChatStream] = set()

    def is_set(self) -> bool:
        return self.event.is_set()

    def cancel(self, error: Cancelled) -> bool:
        """A signal's cancel (``rill.process.Cancellable``)."""
        self.trigger(error.reason, error.exit_code)
        return True

    def trigger(self, reason: str, code: ExitCode) -> None:
        with self._lock:
            if self.event.is_set():
                return
            self.reason, self.code = reason, code
            self.event.set()
            streams = list(self._streams)
        for stream in streams:
            stream.cancel(Cancelled(reason, code))

    def watch(self, stream: ChatStream) -> None:
        """Cancel ``stream`` when the batch stops (at once if it has)."""
        with self._lock:
            stopping = self.event.is_set()
            if not stopping:
                self._streams.add(stream)
        if stopping:
            stream.cancel(Cancelled(self.reason, self.code))

    def forget(self, stream: ChatStream) -> None:
        with self._lock:
            self._streams.discard(stream)


class BackoffGate:
    """A deadline every worker waits for before sending: one 429 slows the whole batch down."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = 0.0
        self._lock = threading.Lock()

    def push(self, delay: float) -> bool:
        """Keep everyone waiting ``delay`` seconds from now; True when the gate was open."""
        with self._lock:
            now = self._clock()
            was_open = self._until <= now
            self._until = max(self._until, now + delay)
            return was_open

    def remaining(self) -> float:
        with self._lock:
            return max(0.0, self._until - self._clock())

    def wait(self, control: Control) -> None:
        """Wait for the gate to open; a stop or the item's time limit ends the wait."""
        while (left := self.remaining()) > 0:
            control.sleep(left)
        control.check()


class GatedPolicy(RetryPolicy):
    """Every send waits at the shared gate. A wait the server asked for (``Retry-After``) or a
    429 pushes the gate for every worker; other retries (a 502, a refused connection) only pause
    their own item."""

    def __init__(
        self,
        retries: int,
        gate: BackoffGate,
        on_gate: Callable[[float, str], None] = lambda _delay, _why: None,
    ) -> None:
        super().__init__(retries)
        self.gate = gate
        self.on_gate = on_gate

    def before_attempt(self, control: Control) -> None:
        self.gate.wait(control)

    def wait(self, attempt: int, failure: RillError, control: Control) -> None:
        retry_after = failure.retry_after if isinstance(failure, APIError) else None
        status = failure.status if isinstance(failure, APIError) else None
        if retry_after is None and status != 429:
            super().wait(attempt, failure, control)
            return
        delay = self.delay(attempt, failure)
        if self.gate.push(delay):
            self.on_gate(delay, failure.message)


def make_pool(
    settings: Settings, jobs: int, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """One client for every worker, with ``jobs`` connections kept alive between items."""
    return make_http_client(settings, transport, connections=jobs)
