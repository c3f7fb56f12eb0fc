"""A tmux server of a test's own, running one detached session: start it, type into it, read
its screen, wait (boundedly) for what it should show, kill it."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path


class Tmux:
    """tmux on a private ``-L`` socket, with ``config`` (a file, or nothing) and ``env`` (the
    environment of every tmux call, and so of the session's command). ``kill()`` when done."""

    SESSION = "main"

    def __init__(self, *, config: Path | None = None, env: Mapping[str, str] | None = None):
        self.socket = f"rill-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.config = str(config) if config is not None else "/dev/null"
        self.env = dict(os.environ if env is None else env)
        self.path = ""  # the socket file, once the server runs

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-u", "-f", self.config, "-L", self.socket, *args],
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=self.env,
            timeout=10,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"tmux {args[0]} failed: {done.stderr.strip()}")
        return done.stdout

    def start(self, *command: str, width: int = 120, height: int = 40) -> None:
        """Run ``command`` (one shell command, or an argv) in the session."""
        self("new-session", "-d", "-x", str(width), "-y", str(height), "-s", self.SESSION, *command)
        self.path = self("display", "-p", "#{socket_path}").strip()

    def send(self, *keys: str) -> None:
        self("send-keys", "-t", self.SESSION, *keys)

    def screen(self, *, escapes: bool = False) -> str:
        return self("capture-pane", "-p", *(["-e"] if escapes else []), "-t", self.SESSION)

    def wait_for(
        self, ready: Callable[[str], object], what: str = "expected screen", timeout: float = 10.0
    ) -> str:
        """The screen, once ``ready(screen)`` holds; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if ready(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout:g} s; the screen shows:\n{screen}")
            time.sleep(0.03)  # polling interval, bounded by the deadline above

    def kill(self) -> None:
        subprocess.run(
            ["tmux", "-L", self.socket, "kill-server"],
            capture_output=True,
            env=self.env,
            timeout=10,
            check=False,
        )
        if self.path:  # tmux 3.3 leaves its socket file behind
            Path(self.path).unlink(missing_ok=True)
