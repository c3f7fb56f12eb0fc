"""Helpers for end-to-end tests: run the installed ``rill`` as a subprocess, read its output.

Every wait is bounded by a deadline; a test that would hang fails instead. Every process started
by ``spawn`` is remembered until the end of the test, when ``reap_spawned`` (an autouse fixture in
conftest.py) kills whatever still runs and closes its pipes, so a failing test leaves nothing
behind for a later one to trip over.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

# The rill installed beside this Python (the venv's), else the one on PATH, else the module.
_BESIDE = Path(sys.executable).with_name("rill")
_EXE = str(_BESIDE) if _BESIDE.exists() else shutil.which("rill")
RILL: list[str] = [_EXE] if _EXE else [sys.executable, "-m", "rill"]

#: Processes started by ``spawn`` during the current test (see ``reap_spawned``).
_spawned: list[subprocess.Popen[bytes]] = []


def run(
    args: Sequence[str], *, input: bytes | None = None, timeout: float = 30, **kw: Any
) -> subprocess.CompletedProcess[bytes]:
    """Run rill to completion (stdin from ``input`` or /dev/null) and capture its output."""
    return subprocess.run(
        [*RILL, *args],
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=False,
        **kw,
    )


def closed_stdout(*args: str) -> subprocess.CompletedProcess[bytes]:
    """Run rill with a stdout whose reader has already gone (a `| head` that has exited)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [*RILL, *args],
            stdin=subprocess.DEVNULL,
            stdout=write,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)


def spawn(args: Sequence[str], **kw: Any) -> subprocess.Popen[bytes]:
    """Start rill with piped stdout/stderr (read them with ``read_until`` / ``finish``)."""
    proc = subprocess.Popen(
        [*RILL, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )
    _spawned.append(proc)
    return proc


def wait_until(
    ready: Callable[[], object], timeout: float = 5.0, what: str = "the condition"
) -> float:
    """Poll ``ready`` until it holds; returns the seconds that took, fails after ``timeout``."""
    t0 = time.monotonic()
    while not ready():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.005)  # polling interval, bounded by the deadline above
    return time.monotonic() - t0


def stop(procs: Iterable[subprocess.Popen[Any]], timeout: float = 5) -> None:
    """Kill each process that still runs, wait for it (``timeout`` seconds at most) and close
    its pipes. Harmless for processes that already ended and pipes already closed."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + timeout
    for proc in procs:
        with suppress(subprocess.TimeoutExpired):
            proc.wait(max(deadline - time.monotonic(), 0.01))
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def reap_spawned() -> None:
    """``stop`` every process ``spawn`` started since the last call, and forget them."""
    procs = _spawned[:]
    _spawned.clear()
    stop(procs)


def read_until(proc: subprocess.Popen[bytes], needle: bytes, timeout: float = 10) -> bytes:
    """Read the process's stdout until ``needle`` has appeared; returns everything read."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    got = b""
    deadline = time.monotonic() + timeout
    while needle not in got:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {needle!r}; got {got!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        piece = os.read(fd, 65536)
        if not piece:
            raise AssertionError(f"stdout closed before {needle!r}; got {got!r}")
        got += piece
    return got


def finish(proc: subprocess.Popen[bytes], timeout: float = 10) -> tuple[int, bytes, bytes]:
    """Wait for the process to end; return (exit code, rest of stdout, stderr)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop([proc])
        raise AssertionError("rill did not exit in time") from None
    return proc.returncode, out, err
