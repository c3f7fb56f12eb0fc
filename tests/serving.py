"""Helpers for the ``rill serve`` tests: start the installed ``rill serve`` on a free port
against the fake server, and stop it; count how many threads do something at once."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from rill.fake import FakeOpenRouter
from tests.e2e import finish, read_until, spawn


class Concurrency:
    """How many threads are inside ``during`` at once, at most."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def during(self, seconds: float) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(seconds)
        with self.lock:
            self.now -= 1


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    url: str  # http://127.0.0.1:PORT (no trailing slash)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> tuple[int, bytes, bytes]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return finish(self.proc, timeout=15)


def start_serve(fake: FakeOpenRouter, *args: str, model: str = "test/model") -> Served:
    """``rill serve --port 0`` on the fake server; returns once it listens."""
    argv: Sequence[str] = ["serve", "--port", "0", "--base-url", fake.url, "-m", model, *args]
    proc = spawn(list(argv))
    line = read_until(proc, b"\n", timeout=20).decode()
    url = line.strip().rstrip("/")
    assert url.startswith("http://"), line
    return Served(proc, url)
