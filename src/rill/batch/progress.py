"""stderr while a batch runs: failures, rate-limit notes, progress and the summary."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from rill.batch.items import Item
from rill.batch.pacing import Stop
from rill.events import Done, Error, Terminal

#: Failure messages shown on stderr before the rest are left to the output lines.
SHOWN_FAILURES = 10


@dataclass
class Tally:
    total: int
    skipped: int = 0
    done: int = 0
    failed: int = 0
    running: int = 0
    tokens: int = 0
    cost: float | None = None
    shown_failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, terminal: Terminal, failed: bool) -> None:
        usage = terminal.usage if isinstance(terminal, Done) else None
        with self.lock:
            self.running -= 1
            if failed:
                self.failed += 1
            else:
                self.done += 1
            if usage:
                self.tokens += int(usage.get("total_tokens") or 0)
                if isinstance(usage.get("cost"), int | float):
                    self.cost = (self.cost or 0.0) + float(usage["cost"])


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _money(cost: float) -> str:
    return f"${cost:.6f}" if cost < 0.01 else f"${cost:.4f}"


class Reporter:
    """stderr: failure messages, rate-limit notes, and a ``\\r`` progress line on a terminal."""

    def __init__(self, err: TextIO, tally: Tally, *, progress: bool) -> None:
        self.err = err
        self.tally = tally
        self.progress = progress
        self.started = time.monotonic()
        self.waiting: Callable[[], float] = lambda: 0.0
        self._lock = threading.Lock()
        self._shown = False

    def say(self, message: str) -> None:
        with self._lock:
            self._clear()
            self.err.write(f"rill: {message}\n")
            self.err.flush()

    def _clear(self) -> None:
        if self._shown:
            self.err.write("\r\x1b[K")
            self._shown = False

    def tick(self) -> None:
        if not self.progress:
            return
        t = self.tally
        with t.lock:
            finished, done, failed, running = t.done + t.failed, t.done, t.failed, t.running
            tokens, cost = t.tokens, t.cost
        elapsed = time.monotonic() - self.started
        parts = [f"{done}/{t.total} done", f"{failed} failed", f"{running} running"]
        parts.append(f"{tokens:,} tokens")
        if cost is not None:
            parts.append(_money(cost))
        waiting = self.waiting()
        if waiting > 0:
            parts.append(f"rate limited, waiting {waiting:.0f} s")
        elif finished and finished < t.total:
            parts.append(f"ETA {_duration(elapsed / finished * (t.total - finished))}")
        width = shutil.get_terminal_size((100, 24)).columns - 1
        text = ("rill: " + " · ".join(parts))[:width]
        with self._lock:
            self.err.write(f"\r\x1b[K{text}")
            self.err.flush()
            self._shown = True

    def failure(self, item: Item, terminal: Terminal) -> None:
        with self.tally.lock:
            self.tally.shown_failures += 1
            count = self.tally.shown_failures
        if count > SHOWN_FAILURES:
            return
        message = terminal.message if isinstance(terminal, Error) else "failed"
        status = terminal.status if isinstance(terminal, Error) else None
        suffix = f" (HTTP {status})" if status and status != 200 else ""
        name = f"item {item.key}: " if item.key is not None else ""
        self.say(f"{name}{message}{suffix}")
        if count == SHOWN_FAILURES:
            self.say("further failures are only in the output lines")

    def summary(self, stop: Stop, unfinished: int, resumable: bool, not_saved: int = 0) -> None:
        """The last line. ``not_saved`` counts the items history could not record: their warning
        is shown once, however many there are, so the count is given here."""
        t = self.tally
        parts = [f"{t.done} done, {t.failed} failed, {t.skipped} skipped"]
        if stop.is_set() and unfinished:
            hint = " (run again with the same -o FILE to finish them)" if resumable else ""
            parts[0] += f", {unfinished} not finished{hint}"
        if not_saved:
            parts.append(f"{not_saved} not saved in history")
        parts.append(f"{t.tokens:,} tokens")
        if t.cost is not None:
            parts.append(_money(t.cost))
        parts.append(_duration(time.monotonic() - self.started))
        head = f"batch stopped by {stop.reason}" if stop.is_set() else "batch"
        self.say(f"{head}: " + " · ".join(parts))
