"""Cancellation and time limits of one stream, usable from any thread, without signals.

A ``Control`` belongs to one request. The thread that reads the response asks it how long the
next read may wait (``read_timeout``: the idle limit, cut short by the nearest first-token or
total deadline) and whether the stream was cancelled (``check``). Any other thread — a signal
handler at the command's edge, a batch stop, a web client that went away, the caller of
``ChatStream.close`` — calls ``cancel``: the reason is kept and every socket the request opened
is shut down, which wakes a read blocked on a silent upstream at once (``close()`` would not,
on Linux). Sockets are known from httpcore's ``trace`` extension as soon as they connect.

When the body is read through httpx rather than read by rill (see ``body.reads``), the reads
cannot be given a deadline, so ``arm`` starts a timer that cancels the stream with the expired
limit's ``TimeoutError_`` instead.

Whoever runs the reading thread may set ``waiting``: it is told when that thread starts and stops
waiting on the network (connecting, sending the body, the response's headers, a body httpx reads,
from the same ``trace``) or on a retry's backoff, so a pool can run another call meanwhile.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from rill.errors import RillError, TimeoutError_

#: httpcore's traced phases that wait on the network (each ends ``.complete`` or ``.failed``).
NETWORK_WAITS = frozenset(
    {
        "connection.connect_tcp",
        "connection.start_tls",
        "http11.send_request_body",
        "http11.receive_response_headers",
        "http11.receive_response_body",
    }
)


@dataclass(frozen=True, slots=True)
class Limits:
    """Seconds, or None for no limit. ``idle``: between two reads (keep-alives count);
    ``first_token``: from the start to the first delta; ``total``: from the start to the end."""

    idle: float | None = None
    first_token: float | None = None
    total: float | None = None


def seconds(value: float | None) -> str:
    """A time limit as messages name it: ``30 s``, or ``(no limit)``."""
    return "(no limit)" if value is None else f"{value:g} s"


def shutdown(sock: socket.socket) -> None:
    """Wake a thread blocked in recv() on ``sock``. The base-class method is used on TLS sockets
    too, so their TLS state is left to the thread that owns it."""
    with suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Control:
    def __init__(self, limits: Limits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._started = clock()
        self._due: dict[str, float] = {}
        if limits.first_token is not None:
            self._due["first_token"] = self._started + limits.first_token
        if limits.total is not None:
            self._due["total"] = self._started + limits.total
        self._lock = threading.Lock()
        self._woken = threading.Event()
        self._sockets: list[socket.socket] = []
        self._timer: threading.Timer | None = None
        self.reason: RillError | None = None
        #: Told True before a wait on the network or the clock that may be long (connecting,
        #: the upstream's headers, a retry's backoff) and False after it, by the thread that
        #: waits: a pool running that thread may run another call meanwhile.
        self.waiting: Callable[[bool], None] | None = None

    # -- any thread ---------------------------------------------------------------------------

    def cancel(self, reason: RillError) -> bool:
        """Stop the stream for ``reason`` (the first reason wins). True when a socket was open to
        shut down, so a read blocked on it wakes now."""
        with self._lock:
            if self.reason is None:
                self.reason = reason
            sockets = list(self._sockets)
        self._woken.set()
        for sock in sockets:
            shutdown(sock)
        return bool(sockets)

    @property
    def cancelled(self) -> bool:
        return self._woken.is_set()

    # -- the reading thread -------------------------------------------------------------------

    def check(self) -> None:
        """Raise the cancel reason, if there is one."""
        if self._woken.is_set() and self.reason is not None:
            raise self.reason

    def attach(self, sock: Any) -> None:
        """Know ``sock`` (a request's connection) so that ``cancel`` can wake its reads."""
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            late = self.reason is not None
            if not late:
                self._sockets.append(sock)
        if late:
            shutdown(sock)

    def trace(self, name: str, info: dict[str, Any]) -> None:
        """httpcore's ``trace`` extension: learn each connection's socket as it connects, and tell
        ``waiting`` about the phases that wait on the network."""
        waiting = self.waiting
        if waiting is not None:
            phase, _, state = name.rpartition(".")
            if phase in NETWORK_WAITS:
                waiting(state == "started")
        if name in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            stream = info.get("return_value")
            if stream is not None:
                self.attach(stream.get_extra_info("socket"))

    def attach_response(self, response: Any) -> None:
        """Know the socket of ``response``'s connection (a pooled one made no trace)."""
        stream = response.extensions.get("network_stream")
        if stream is not None:
            self.attach(stream.get_extra_info("socket"))

    def first_token_seen(self) -> None:
        self._due.pop("first_token", None)

    def remaining(self) -> float | None:
        """Seconds to the nearest deadline (None: no deadline); raises once one has passed."""
        if not self._due:
            return None
        # A copy: the timer thread reads the deadlines while the reader may drop one.
        name, due = min(list(self._due.items()), key=lambda kv: kv[1])
        left = due - self._clock()
        if left <= 0:
            raise self.expired(name)
        return left

    def read_timeout(self, idle: float | None) -> float | None:
        """How long the next read may wait: the idle limit, or less when a deadline is nearer."""
        left = self.remaining()
        if left is None:
            return idle
        return left if idle is None else min(idle, left)

    def timed_out(self) -> RillError | None:
        """After a read timed out: the deadline that expired, or None (the idle limit did)."""
        try:
            self.remaining()
        except TimeoutError_ as exc:
            return exc
        return None

    def expired(self, name: str) -> TimeoutError_:
        label = "first token" if name == "first_token" else "total"
        limit = self.limits.first_token if name == "first_token" else self.limits.total
        return TimeoutError_(f"no answer within the {label} time limit of {limit:g} s")

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a retry's backoff); a cancel or a deadline ends the wait early."""
        left = self.remaining()
        wait = seconds if left is None else min(seconds, left)
        waiting = self.waiting
        if waiting is not None:
            waiting(True)
        try:
            woken = self._woken.wait(max(wait, 0.0))
        finally:
            if waiting is not None:
                waiting(False)
        if woken:
            self.check()
        self.remaining()  # a deadline passed during the wait

    def arm(self) -> None:
        """Enforce the deadlines with a timer, for reads that cannot be given one."""
        left = self.remaining()
        if left is None or self._timer is not None:
            return
        self._timer = threading.Timer(left, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        error = self.timed_out()
        if error is not None:
            self.cancel(error)
        else:  # the first-token deadline went away: the total one may remain
            self._timer = None
            with suppress(RillError):
                self.arm()

    def release(self) -> None:
        """The request is over: stop the timer and forget the sockets."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        with self._lock:
            self._sockets.clear()
