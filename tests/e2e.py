"""Helpers for end-to-end tests: run the installed ``rill`` as a subprocess, read its output.

Every wait is bounded by a deadline; a test that would hang fails instead.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

_EXE = shutil.which("rill")
RILL: list[str] = [_EXE] if _EXE else [sys.executable, "-m", "rill"]


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


def spawn(args: Sequence[str], **kw: Any) -> subprocess.Popen[bytes]:
    """Start rill with piped stdout/stderr (read them with ``read_until`` / ``finish``)."""
    return subprocess.Popen(
        [*RILL, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )


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
        proc.kill()
        proc.communicate()
        raise AssertionError("rill did not exit in time") from None
    return proc.returncode, out, err
