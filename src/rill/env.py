"""The process around a command: its streams, its environment variables, which are terminals.

Commands take one ``Environment`` instead of reaching for ``sys.stdout``, ``os.environ`` or
``isatty()`` themselves, so a test builds one (``Environment(stdout=io.BytesIO(), ...)``) and
needs no monkeypatching, and the terminal checks live in one place. Nothing is read when this
module is imported: ``Environment.from_process()`` looks at the process when a command starts.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, TextIO


def isatty(stream: Any) -> bool:
    """Whether ``stream`` is a terminal; a closed, missing or fake stream is not."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


@dataclass
class Environment:
    """Where a command reads and writes, and what it may know about them.

    ``stdout`` is binary (answers are written as bytes, byte-exact); ``stderr`` is text (notes,
    errors, the spinner). ``stdin`` is binary or None when the process has none.
    """

    stdin: BinaryIO | None
    stdout: BinaryIO
    stderr: TextIO
    environ: Mapping[str, str] = field(default_factory=dict)
    stdin_isatty: bool = False
    stdout_isatty: bool = False
    stderr_isatty: bool = False

    @classmethod
    def from_process(cls) -> Environment:
        stdin: IO[Any] | None = sys.stdin
        stdin_buffer = getattr(stdin, "buffer", None) if stdin is not None else None
        return cls(
            stdin=stdin_buffer,
            stdout=sys.stdout.buffer,
            stderr=sys.stderr,
            environ=os.environ,
            stdin_isatty=isatty(stdin),
            stdout_isatty=isatty(sys.stdout),
            stderr_isatty=isatty(sys.stderr),
        )

    @property
    def shared_terminal(self) -> bool:
        """Whether stdout and stderr are one terminal, where a line on stderr goes on from
        wherever the answer left the cursor (a stderr sent to a file never needs a line ended).
        """
        if not (self.stdout_isatty and self.stderr_isatty):
            return False
        try:
            return os.path.samestat(os.fstat(self.stdout.fileno()), os.fstat(self.stderr.fileno()))
        except (OSError, ValueError, AttributeError):
            return True  # two terminals that cannot be told apart: most likely the same screen

    @property
    def watched(self) -> bool:
        """A person may be watching: stdout or stderr is a terminal."""
        return self.stdout_isatty or self.stderr_isatty

    def say(self, message: str) -> None:
        """One ``rill:`` line on stderr (the message is already safe to show)."""
        try:
            self.stderr.write(f"rill: {message}\n")
            self.stderr.flush()
        except (OSError, ValueError):
            pass  # stderr is gone too: nothing left to tell anyone
