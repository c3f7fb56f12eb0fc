"""Where the text goes on a terminal: the answer as plain text or as markdown on stdout, and the
reasoning, dimmed, on stderr. Each sink knows whether its last write ended a line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, BinaryIO, Protocol, TextIO

from rill.terminal.color import DIM, RESET, terminal_size
from rill.terminal.safe import Exact, SafeText

if TYPE_CHECKING:
    from rill.terminal.markdown import TerminalMarkdown


class Sink(Protocol):
    @property
    def pending(self) -> bool: ...

    @property
    def at_line_start(self) -> bool: ...

    def write(self, text: str) -> None: ...

    def close(self, *, cancelled: bool) -> None: ...


class _StdoutSink:
    """Writes to stdout at once and remembers the last character written."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.last = ""

    @property
    def at_line_start(self) -> bool:
        """Nothing written yet, or the last write ended a line."""
        return self.last in ("", "\n")

    def _emit(self, text: str) -> None:
        if text:
            self.out.write(text.encode("utf-8", "surrogateescape"))
            self.out.flush()
            self.last = text[-1]


class PlainSink(_StdoutSink):
    """The answer as text (``--no-markdown`` or ``--raw``), with a final newline."""

    pending = False

    def __init__(self, out: BinaryIO, filt: SafeText | Exact) -> None:
        super().__init__(out)
        self.filt = filt

    def write(self, text: str) -> None:
        self._emit(self.filt.feed(text))

    def close(self, *, cancelled: bool) -> None:
        tail = self.filt.flush()
        last = tail[-1:] or self.last
        if last and last != "\n":
            tail += "\n"
        self._emit(tail)


class MarkdownSink(_StdoutSink):
    """The answer rendered as markdown; rich is imported by ``prepare`` (or the first write)."""

    def __init__(self, out: BinaryIO, filt: SafeText, *, color: bool, env: Mapping[str, str]):
        super().__init__(out)
        self.filt = filt
        self.color = color
        self.env = env
        self.md: TerminalMarkdown | None = None

    @property
    def pending(self) -> bool:
        return self.md is not None and self.md.pending

    def prepare(self) -> TerminalMarkdown:
        if self.md is None:
            from rill.terminal.markdown import TerminalMarkdown

            width, height = terminal_size(self.out, self.env)
            self.md = TerminalMarkdown(color=self.color, width=width, height=height, env=self.env)
        return self.md

    def write(self, text: str) -> None:
        self._emit(self.prepare().feed(self.filt.feed(text)))

    def close(self, *, cancelled: bool) -> None:
        md = self.prepare()
        rest = self.filt.flush()
        self._emit((md.feed(rest) if rest else "") + md.close(keep_raw=cancelled))


class ReasoningSink:
    """Reasoning on stderr, dimmed when colour is on."""

    def __init__(self, err: TextIO, filt: SafeText | Exact, *, color: bool) -> None:
        self.err = err
        self.filt = filt
        self.color = color
        self.shown = False
        self.last = "\n"

    def write(self, text: str) -> None:
        text = self.filt.feed(text)
        if text:
            styled = f"{DIM}{text}{RESET}" if self.color else text
            self.err.write(styled)
            self.err.flush()
            self.shown = True
            self.last = text[-1]

    def end(self, *, blank_line: bool) -> None:
        """Close the reasoning: end its line, and leave a blank line before the answer."""
        if not self.shown:
            return
        rest = self.filt.flush()
        tail = f"{DIM}{rest}{RESET}" if self.color and rest else rest
        if (rest[-1:] or self.last) != "\n":
            tail += "\n"
        if blank_line:
            tail += "\n"
        self.err.write(tail)
        self.err.flush()
        self.shown = False
